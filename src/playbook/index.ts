/** The playbook API: define playbooks (playbooks/*.ts) and run one across hosts with the SSH runner. */
export {
  CommandTimeoutError,
  definePlaybook,
  RemoteCommandError,
  type CommandOutput,
  type HostHandle,
  type HostRunOptions,
  type Playbook,
  type PlaybookStep,
} from './define.js'
export {
  findPlaybook,
  playbookHosts,
  runPlaybook,
  type PlaybookEvent,
  type PlaybookHostResult,
  type PlaybookRunResult,
  type RunPlaybookOptions,
  type StepResult,
  type StepStatus,
} from './run.js'
