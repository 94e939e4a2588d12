/**
 * Parallel SSH: a connection pool (one connection per host per invocation, bastions shared, host keys
 * checked against known_hosts), remote commands as data (argv arrays quoted here), and a runner that
 * reports every host on its own.
 */
export {commandLine, quoteArgv, type Argv, type CommandOptions, type RemoteCommand, type RemoteStep} from './command.js'
export {execOn, type ExecOptions, type ExecResult} from './exec.js'
export {
  checkHostKey,
  fingerprint,
  formatKnownHostLine,
  KnownHosts,
  knownHostName,
  parseKnownHosts,
  type HostKeyCheck,
  type KnownHostEntry,
} from './known-hosts.js'
export {PrefixedLines, prefixLines} from './output.js'
export {ConnectError, ConnectionPool, type Connection, type PoolStats} from './pool.js'
export {formatDuration, formatRunSummary, summarize, type HostResult, type HostStatus, type RunSummary} from './results.js'
export {connectStatus, eachHost, runCommand, seconds, type RunCommandOptions} from './runner.js'
export {openSession, type Session, type SessionOptions} from './session.js'
export {
  loadSshConfigFile,
  parseJumpSpec,
  parseSshConfigText,
  resolveJump,
  resolveTarget,
  type ConnectTarget,
  type JumpTarget,
} from './settings.js'
