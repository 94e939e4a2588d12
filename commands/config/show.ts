import {FeedopsCommand} from '../../src/cli/base-command.js'
import {redactSecrets} from '../../src/config/redact.js'
import type {EnvironmentConfig} from '../../src/config/schema.js'

interface ConfigShowResult {
  file: string
  environment: string
  config: EnvironmentConfig
  /** What was checked beyond the schema: the app's own start-up checks, the static inventory. */
  checked: string[]
  /** Checks that need the hosts or the network, which only the commands that reach them can make. */
  notChecked: string[]
}

export default class ConfigShow extends FeedopsCommand<ConfigShowResult> {
  static override description = `Validate feedops.yml and show the selected environment with defaults filled in (secrets shown as ***).

It makes the checks every command makes before it touches anything: the schema (every key, deploy.batch,
deploy.maxFail, deploy.path, unique shard server names, host addresses), the static inventory's names, and,
when the environment has an app section, the checks the feed app makes at start, on the config a deploy would
render for each host, exactly as \`feedops deploy\` makes them before shipping. So "valid" here means every
command accepts the file. What only the hosts can tell (a dead URL, a host's home) is listed as not checked.`

  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --env prod --json']

  async run(): Promise<ConfigShowResult> {
    const {flags} = await this.parse(ConfigShow)
    const {checkEnvironment} = await import('../../src/config/check.js')
    const loaded = this.loadConfig(flags)
    const {env, checked, notChecked} = checkEnvironment(loaded)
    const result = {file: loaded.file, environment: loaded.environment, config: redactSecrets(env) as EnvironmentConfig, checked, notChecked}
    this.log(`${loaded.file} (environment ${loaded.environment}) is valid (checked: ${checked.join('; ')}):`)
    this.log(JSON.stringify(result.config, null, 2))
    if (notChecked.length > 0) this.log(`Not checked here (the commands that reach them do): ${notChecked.join('; ')}.`)
    return result
  }
}
