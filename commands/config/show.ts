import {FeedopsCommand} from '../../src/cli/base-command.js'
import {validateAppSection} from '../../src/config/app.js'
import {redactSecrets} from '../../src/config/redact.js'
import type {EnvironmentConfig} from '../../src/config/schema.js'

interface ConfigShowResult {
  file: string
  environment: string
  config: EnvironmentConfig
}

export default class ConfigShow extends FeedopsCommand<ConfigShowResult> {
  static override description = `Validate feedops.yml and show the selected environment with defaults filled in (secrets shown as ***).

The app section is checked with the feed app's own schema, so a file shown as valid here is one the app accepts.`

  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --env prod --json']

  async run(): Promise<ConfigShowResult> {
    const {flags} = await this.parse(ConfigShow)
    const loaded = this.loadConfig(flags)
    const env = loaded.env.app
      ? {...loaded.env, app: validateAppSection(loaded.env.app, `${loaded.file}: environments.${loaded.environment}`)}
      : loaded.env
    const result = {file: loaded.file, environment: loaded.environment, config: redactSecrets(env) as EnvironmentConfig}
    this.log(`${loaded.file} (environment ${loaded.environment}) is valid:`)
    this.log(JSON.stringify(result.config, null, 2))
    return result
  }
}
