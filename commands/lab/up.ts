import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {defaultLabDir} from '../../src/config/load.js'
import {ExitCode} from '../../src/errors.js'
import {labUp, type LabStatus} from '../../src/lab/index.js'
import {labStatusTable, labSummary} from '../../src/lab/render.js'

export default class LabUp extends FeedopsCommand<LabStatus> {
  static override description = `Start the lab: sshd app hosts, NGINX nodes, Postgres servers with PgBouncer, Redis, Memcached and the cloud endpoint on loopback, and write its feedops.yml.

A new lab also gets its shard catalog and logical shards (\`shards init\`), so a deploy can serve a feed.

Idempotent: processes that run are kept, dead or missing ones are started, and asking for fewer hosts stops the extras. Without --hosts/--postgres the lab keeps its current size (new labs: 12 hosts, 3 NGINX nodes, 2 Postgres). Afterwards \`feedops hosts\`, \`run\` and \`play\` use the lab with no flags.`

  static override examples = [
    '<%= config.bin %> lab up',
    '<%= config.bin %> lab up --hosts 48 --postgres 2',
    '<%= config.bin %> lab up --hosts 14 && <%= config.bin %> play nginx-upstreams',
    '<%= config.bin %> lab up --install',
    '<%= config.bin %> lab up --dir /tmp/lab2 --net 2 --no-cloud --json',
  ]

  static override flags = {
    // Ranges are checked by labUp, which reports them as bad input (exit 2).
    hosts: Flags.integer({description: 'Number of app hosts (sshd on 127.N.1.K:2222), 0..254.'}),
    nginx: Flags.integer({description: 'Number of NGINX nodes (sshd on 127.N.2.K:2222, nginx on :8080), 0..254 (new labs: 3).'}),
    postgres: Flags.integer({description: 'Number of physical Postgres servers (127.N.0.1:5433…), 0..16.'}),
    dir: Flags.string({description: 'Lab dir (default: $FEEDOPS_LAB_DIR or ./.lab).'}),
    net: Flags.integer({description: 'Second octet of the lab addresses, 127.NET.x.x, 0..255 (default: the lab\'s, else 0).'}),
    install: Flags.boolean({description: 'Install missing Debian packages with apt-get (needs root).'}),
    redis: Flags.boolean({description: 'Run Redis (default: as before, else yes).', allowNo: true}),
    memcached: Flags.boolean({description: 'Run Memcached (default: as before, else yes).', allowNo: true}),
    cloud: Flags.boolean({description: 'Run the EC2/ELB endpoint (default: as before, else yes).', allowNo: true}),
    pgbouncer: Flags.boolean({description: 'Run PgBouncer in front of each Postgres server, for the app (default: as before, else yes).', allowNo: true}),
  }

  async run(): Promise<LabStatus> {
    const {flags} = await this.parse(LabUp)
    const status = await withProgress(['lab'], progressMode(this.jsonEnabled()), async (progress) => {
      const up = await labUp(
        {
          dir: flags.dir ?? defaultLabDir(),
          net: flags.net,
          hosts: flags.hosts,
          nginx: flags.nginx,
          postgres: flags.postgres,
          install: flags.install,
          redis: flags.redis,
          memcached: flags.memcached,
          cloud: flags.cloud,
          pgbouncer: flags.pgbouncer,
        },
        (msg) => progress.update('lab', msg),
      )
      progress.done('lab', true, 'up')
      return up
    })
    this.log(labStatusTable(status))
    this.log(labSummary(status))
    if (status.configFile) this.log(`Config: ${status.configFile}`)
    if (status.state !== 'up') this.setExitCode(ExitCode.failed)
    return status
  }
}
