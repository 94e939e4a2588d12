import {loadConfig, type ConfigLocation, type LoadedConfig} from '../config/load.js'
import {abandonInventory, startInventory} from '../inventory/index.js'

/**
 * A head start for the commands that list hosts first: before oclif loads, the CLI's loader (cli-loader.ts)
 * reads the config named on the command line and starts the EC2 inventory request, so that request is
 * answered while oclif, the command and the SSH modules load. The command then takes both over: the same
 * config (FeedopsCommand.loadConfig) and the listing already under way (loadInventory). Which command
 * lines get it: prefetch-args.ts.
 *
 * A config that fails to load is left alone: the command reads it again and reports the problem as it
 * always does. Listing an inventory is a read, so a command line that oclif then rejects has changed nothing.
 */
let early: {loc: ConfigLocation; loaded: LoadedConfig; taken: boolean} | undefined

export function prefetch(loc: ConfigLocation): void {
  let loaded: LoadedConfig
  try {
    loaded = loadConfig(loc)
  } catch {
    return
  }
  early = {loc, loaded, taken: false}
  startInventory(loaded.env)
}

/** At the end of the command: a head start it did not take is dropped (see abandonInventory). */
export function abandonPrefetch(): void {
  if (early) abandonInventory(early.loaded.env)
  early = undefined
}

/** The config prefetch read, when the command asks for the same one; once. */
export function takePrefetchedConfig(loc: ConfigLocation): LoadedConfig | undefined {
  const e = early
  if (!e || e.taken || e.loc.flag !== loc.flag || e.loc.environment !== loc.environment || loc.cwd !== undefined || loc.envVars !== undefined) return undefined
  e.taken = true
  return e.loaded
}
