import {appConfigFrom, validateAppSection} from '../config/app.js'
import {configFromText, type LoadedConfig} from '../config/load.js'
import {UserError} from '../errors.js'
import type {Host} from '../inventory/host.js'

/**
 * The app's config as a deploy renders it for each host, and the check made before anything is shipped.
 *
 * Each release gets its own copy on a host, shared/config/<release>/ (feedops.json, and app.env with the
 * secret), both readable by the deploy user only (0600; 0640 with deploy.configGroup, the group the systemd
 * unit names). The release's process manager and the systemd unit start a release with its own copy, so a
 * switch back or a rollback brings back the config that release ran with, and shipping a new one changes
 * nothing that runs.
 */

/**
 * The app's config as the app on one host reads it: the environment's sections, no secret, bound to the host.
 * As JSON, which is YAML too and which the app reads without its YAML parser (config/load.ts).
 */
export function renderAppConfig(loaded: LoadedConfig, host: Pick<Host, 'name' | 'address' | 'roles'>): string {
  const {shards, redis, memcached, app} = loaded.env
  const {secret: _secret, ...appShown} = (app ?? {}) as Record<string, unknown>
  const env = {
    inventory: {source: 'static', hosts: [{name: host.name, address: host.address, roles: host.roles}]},
    shards,
    redis,
    memcached,
    app: {...appShown, host: host.address},
  }
  return `${JSON.stringify({defaultEnvironment: loaded.environment, environments: {[loaded.environment]: env}}, null, 2)}\n`
}

/** The app's secret: $FEEDOPS_APP_SECRET, else app.secret (the app reads it the same way, from app.env). */
export function appSecret(loaded: LoadedConfig, envVars: NodeJS.ProcessEnv = process.env): string | undefined {
  return envVars.FEEDOPS_APP_SECRET || (loaded.env.app?.secret as string | undefined)
}

/**
 * Checks the app's config for each host with the code the app runs at start (the config schema, then
 * app/config.ts's appConfigFrom: sections, the app's schema, the secret), on the very text the host would
 * get. A problem names the operator's file and the key, and nothing has left this machine. Returns the
 * rendered text per host name.
 */
export function checkAppConfig(loaded: LoadedConfig, hosts: readonly Pick<Host, 'name' | 'address' | 'roles'>[], envVars: NodeJS.ProcessEnv = process.env): Map<string, string> {
  const secret = appSecret(loaded, envVars)
  const where = `${loaded.file}: environments.${loaded.environment}`
  const missing = (['shards', 'redis', 'memcached', 'app'] as const).filter((k) => !loaded.env[k])
  if (missing.length > 0) {
    throw new UserError(`${where} has no ${missing.join(', ')} section; the app cannot run without it.`, {
      fix: 'Add the sections the app needs (`feedops lab up` writes them for the lab); nothing was shipped.',
    })
  }
  const rendered = new Map<string, string>()
  for (const host of hosts) {
    const text = renderAppConfig(loaded, host)
    try {
      // The operator's own app section first, so a bad key (or a short app.secret) is named as it is in the file.
      if (rendered.size === 0) validateAppSection(loaded.env.app, where)
      // As the app loads it (main.ts: loadConfig, appConfigFrom), with its secret in the environment as app.env puts it.
      appConfigFrom(configFromText(text, loaded.file, loaded.environment), secret ? {FEEDOPS_APP_SECRET: secret} : {})
    } catch (err) {
      if (!(err instanceof UserError)) throw err
      throw new UserError(`${err.message.replace(/\.$/, '')} (the app would refuse it at start; nothing was shipped).`, {
        ...(err.fix ? {fix: err.fix} : {}),
        cause: err,
      })
    }
    rendered.set(host.name, text)
  }
  return rendered
}
