import type {LoadedConfig} from '../config/load.js'
import {movesSchema, type MoveSettings, type ShardsSettings} from '../config/schema.js'
import {UserError} from '../errors.js'

/** env.shards of the loaded config, or a UserError saying how to add it. */
export function requireShards(loaded: LoadedConfig): ShardsSettings {
  const shards = loaded.env.shards
  if (!shards) {
    throw new UserError(`Environment "${loaded.environment}" in ${loaded.file} has no shards section.`, {
      fix: 'Add env.shards (catalog URL and servers) to the config, or use the lab config (`feedops lab up`).',
    })
  }
  return shards
}

/** env.moves of the loaded config, with its defaults when the section is absent. */
export function moveSettings(loaded: LoadedConfig): MoveSettings {
  return loaded.env.moves ?? movesSchema.parse({})
}
