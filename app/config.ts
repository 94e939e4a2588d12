/**
 * The feed app's view of its config, and the checks it makes at start. They live here, not in app/, so that
 * `feedops deploy` (before shipping) and `feedops config show` run exactly the checks the app runs: a config
 * the app would refuse never leaves the operator's machine. app/config.ts re-exports them.
 */
export {appConfigFrom, parseAppSection, parseBytes, parseSeconds, type AppConfig, type AppSettings, type AppSection} from '../src/config/app.js'
