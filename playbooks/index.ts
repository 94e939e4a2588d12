import type {Playbook} from '../src/playbook/define.js'
import check from './check.js'
import facts from './facts.js'
import nginxReload from './nginx-reload.js'
import nginxUpstreams from './nginx-upstreams.js'
import provision from './provision.js'

/**
 * Every playbook `feedops play` knows. To add one: write playbooks/NAME.ts exporting
 * `definePlaybook({name, description, roles, steps})` as default, import it here and add it to the list.
 */
export const playbooks: readonly Playbook[] = [check, facts, nginxReload, nginxUpstreams, provision]
