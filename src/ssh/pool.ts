import {readFile} from 'node:fs/promises'
import {NodeSSH, type Config as NodeSshConfig} from 'node-ssh'
import type {Client, ServerHostKeyAlgorithm} from 'ssh2'

import type {SshSettings} from '../config/schema.js'
import type {Host} from '../inventory/host.js'
import {markPhase} from '../start-timing.js'
import {fingerprint, keyTypeOf, KnownHosts} from './known-hosts.js'
import {
  checkIdentityFile,
  loadSshConfigFile,
  pickIdentity,
  resolveJump,
  resolveTarget,
  type ConnectTarget,
  type JumpTarget,
} from './settings.js'

/** Why a host could not be reached; `kind` drives the per-host status. */
export class ConnectError extends Error {
  override readonly name = 'ConnectError'
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'hostkey' | 'auth' | 'timeout' | 'interrupted',
  ) {
    super(message)
  }
}

export interface Connection {
  host: Host
  target: ConnectTarget
  ssh: NodeSSH
  /** The bastion this connection goes through, if any. */
  via?: string
}

export interface PoolOptions {
  ssh: SshSettings
  knownHosts: KnownHosts
  /** Parsed ssh config file (see loadSshConfigFile); none when ssh.sshConfig is false. */
  sshConfig?: Awaited<ReturnType<typeof loadSshConfigFile>>
  /** Record first-seen host keys instead of refusing them (never accepts a changed key). */
  acceptNew?: boolean
}

export interface PoolStats {
  /** Connections opened to targets (one per host per invocation when reuse works). */
  connections: number
  /** Connections opened to bastions (one per bastion, shared by every target behind it). */
  bastionConnections: number
  /** Targets reached through a bastion's forwardOut. */
  forwarded: number
}

// ssh2's default host key preference; hosts with a known key type are asked for that type first.
const HOST_KEY_ALGORITHMS: ServerHostKeyAlgorithm[] = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']

function algorithmsFor(keyTypes: string[]): ServerHostKeyAlgorithm[] {
  if (keyTypes.length === 0) return HOST_KEY_ALGORITHMS
  const wanted = keyTypes.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]))
  const known = HOST_KEY_ALGORITHMS.filter((a) => wanted.includes(a))
  return [...known, ...HOST_KEY_ALGORITHMS.filter((a) => !known.includes(a))]
}

/**
 * One connection per host for the whole invocation: `connect(host)` returns the same promise every time
 * it is asked for the same host, and every bastion is connected once and shared. `close()` ends all.
 */
export class ConnectionPool {
  readonly stats: PoolStats = {connections: 0, bastionConnections: 0, forwarded: 0}
  private readonly conns = new Map<string, Promise<Connection>>()
  private readonly bastions = new Map<string, Promise<NodeSSH>>()
  private readonly keys = new Map<string, Promise<string>>()
  private readonly open = new Set<Client>()
  /** Clients still in their handshake (a subset of `open`). */
  private readonly handshaking = new Set<Client>()
  private closed = false
  private readonly timeoutMs: number

  constructor(private readonly opts: PoolOptions) {
    this.timeoutMs = opts.ssh.connectTimeout * 1000
  }

  /**
   * Loads known_hosts, the ssh config and the configured identity once (side by side, and beside the
   * inventory: see session.ts), and checks up front what would otherwise fail on every host (a configured
   * key file that does not exist, a malformed jump host).
   */
  static async create(ssh: SshSettings, opts: {acceptNew?: boolean; knownHosts?: KnownHosts} = {}): Promise<ConnectionPool> {
    const [knownHosts, sshConfig, identity] = await Promise.all([
      opts.knownHosts ?? KnownHosts.load(ssh.knownHosts),
      loadSshConfigFile(ssh),
      ssh.identityFile ? checkIdentityFile(ssh.identityFile) : undefined,
    ])
    if (ssh.jumpHost) resolveJump(ssh.jumpHost, ssh, sshConfig)
    const pool = new ConnectionPool({ssh, knownHosts, sshConfig, acceptNew: opts.acceptNew ?? false})
    if (ssh.identityFile && identity !== undefined) pool.keys.set(ssh.identityFile, Promise.resolve(identity))
    return pool
  }

  get knownHosts(): KnownHosts {
    return this.opts.knownHosts
  }

  /** Where and as whom a host would be reached (no network). */
  target(host: Host): ConnectTarget {
    return resolveTarget(host, this.opts.ssh, this.opts.sshConfig)
  }

  connect(host: Host): Promise<Connection> {
    let conn = this.conns.get(host.name)
    if (!conn) {
      conn = this.openTarget(host)
      this.conns.set(host.name, conn)
      conn.catch(() => {})
    }
    return conn
  }

  /** Ends every connection. With `abort`, sockets are torn down at once (Ctrl-C). */
  close(opts: {abort?: boolean} = {}): void {
    this.closed = true
    for (const client of this.open) {
      if (opts.abort) client.destroy()
      else client.end()
    }
    this.open.clear()
    this.handshaking.clear()
  }

  /**
   * Opens no more connections and tears down those still in their handshake; established ones stay
   * open, so what runs on them can still be stopped (Ctrl-C). `close()` still has to be called.
   */
  stopConnecting(): void {
    this.closed = true
    for (const client of this.handshaking) client.destroy()
    this.handshaking.clear()
  }

  private async openTarget(host: Host): Promise<Connection> {
    markPhase('connect start', host.name)
    const target = this.target(host)
    const via = target.jump?.spec
    const sock = target.jump ? await this.forward(target.jump, target) : undefined
    const ssh = await this.handshake(target, sock)
    markPhase('first connect', host.name)
    this.stats.connections++
    if (via) this.stats.forwarded++
    return via ? {host, target, ssh, via} : {host, target, ssh}
  }

  private async forward(jump: JumpTarget, target: ConnectTarget): Promise<NonNullable<NodeSshConfig['sock']>> {
    let bastion = this.bastions.get(jump.spec)
    if (!bastion) {
      bastion = this.handshake({...jump, name: `bastion ${jump.spec}`}).then((ssh) => {
        this.stats.bastionConnections++
        return ssh
      })
      this.bastions.set(jump.spec, bastion)
      bastion.catch(() => {})
    }
    let ssh: NodeSSH
    try {
      ssh = await bastion
    } catch (err) {
      const e = err as ConnectError
      throw new ConnectError(`via bastion ${jump.spec}: ${e.message}`, e.kind ?? 'unreachable')
    }
    try {
      return await withTimeout(ssh.forwardOut('127.0.0.1', 0, target.address, target.port), this.timeoutMs, () =>
        new ConnectError(`forward through ${jump.spec} to ${target.address}:${target.port} timed out after ${this.opts.ssh.connectTimeout} s`, 'timeout'),
      )
    } catch (err) {
      if (err instanceof ConnectError) throw err
      throw new ConnectError(`bastion ${jump.spec} could not reach ${target.address}:${target.port}: ${(err as Error).message}`, 'unreachable')
    }
  }

  private privateKey(files: readonly string[]): Promise<string> | undefined {
    const file = pickIdentity(files)
    if (!file) return undefined
    let key = this.keys.get(file)
    if (!key) {
      key = readFile(file, 'utf8')
      this.keys.set(file, key)
    }
    return key
  }

  private agentSocket(): string | undefined {
    const agent = this.opts.ssh.agent
    if (agent === false) return undefined
    return agent === true ? process.env.SSH_AUTH_SOCK : agent
  }

  private async handshake(
    target: Pick<ConnectTarget, 'name' | 'address' | 'port' | 'user' | 'identityFiles'>,
    sock?: NodeSshConfig['sock'],
  ): Promise<NodeSSH> {
    if (this.closed) throw new ConnectError('interrupted', 'interrupted')
    const agent = this.agentSocket()
    const keyFile = pickIdentity(target.identityFiles)
    const privateKey = await this.privateKey(target.identityFiles)
    if (!privateKey && !agent) {
      throw new ConnectError(`no private key (tried ${target.identityFiles.join(', ')}) and no ssh-agent`, 'auth')
    }
    const where = `${target.address}:${target.port}`
    let refusal: ConnectError | undefined
    const config: NodeSshConfig = {
      username: target.user,
      port: target.port,
      readyTimeout: this.timeoutMs,
      algorithms: {serverHostKey: algorithmsFor(this.opts.knownHosts.keyTypes(target.address, target.port))},
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        this.verifyHostKey(target.name, target.address, target.port, key).then(
          () => verify(true),
          (err: ConnectError) => {
            refusal = err
            verify(false)
          },
        )
      },
    }
    if (sock) config.sock = sock
    else config.host = target.address
    if (privateKey) config.privateKey = privateKey
    if (agent) config.agent = agent
    // Straight to the key (and agent): ssh2 would first try "none", a round trip every host pays for.
    config.authHandler = [...(privateKey ? (['publickey'] as const) : []), ...(agent ? (['agent'] as const) : [])]

    const ssh = new NodeSSH()
    // privateKey is given as text, so connect() creates the client synchronously and it can be tracked.
    const connecting = ssh.connect(config)
    const client = ssh.connection
    if (client) {
      this.open.add(client)
      this.handshaking.add(client)
      // After `ready` node-ssh drops its error listener; a later reset must not crash the process.
      client.on('error', () => {})
      client.on('close', () => {
        this.open.delete(client)
        this.handshaking.delete(client)
      })
    }
    try {
      await withTimeout(connecting, this.timeoutMs + 1000, () => {
        client?.destroy()
        return new ConnectError(`connect timed out after ${this.opts.ssh.connectTimeout} s (${where})`, 'timeout')
      })
      if (client) this.handshaking.delete(client)
      if (this.closed) {
        client?.destroy()
        throw new ConnectError('interrupted', 'interrupted')
      }
      return ssh
    } catch (err) {
      client?.destroy()
      if (this.closed) throw new ConnectError('interrupted', 'interrupted')
      if (refusal) throw refusal
      throw describeConnectError(err, where, target.user, keyFile, this.opts.ssh.connectTimeout)
    }
  }

  private async verifyHostKey(name: string, address: string, port: number, key: Buffer): Promise<void> {
    const kh = this.opts.knownHosts
    const check = kh.check(address, port, key)
    const shown = `${keyTypeOf(key)} ${fingerprint(key)}`
    const where = port === 22 ? address : `[${address}]:${port}`
    switch (check.status) {
      case 'trusted':
        return
      case 'revoked':
        throw new ConnectError(`host key of ${name} (${where}, ${shown}) is revoked in ${kh.file}:${check.entry.line}; refusing to connect`, 'hostkey')
      case 'changed': {
        const e = check.entries[0]!
        throw new ConnectError(
          `host key of ${name} (${where}) CHANGED: it offered ${shown} but ${kh.file}:${e.line} has ${e.keyType} ${fingerprint(e.key)}` +
            ` ("${truncate(e.text, 120)}"); refusing to connect. If the host was rebuilt, remove that line (ssh-keygen -R '${where}' -f ${kh.file}) and reconnect with --accept-new`,
          'hostkey',
        )
      }
      case 'unknown':
        if (!this.opts.acceptNew) {
          throw new ConnectError(`host key of ${name} (${where}, ${shown}) is not in ${kh.file}; refusing an unknown host (use --accept-new to record it)`, 'hostkey')
        }
        await kh.add(address, port, key)
    }
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s
}

export function describeConnectError(err: unknown, where: string, user: string, keyFile: string | undefined, timeoutS: number): ConnectError {
  if (err instanceof ConnectError) return err
  const e = err as NodeJS.ErrnoException & {level?: string}
  const msg = e?.message ?? String(err)
  switch (e?.code) {
    case 'ECONNREFUSED':
      return new ConnectError(`connection refused (${where})`, 'unreachable')
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ConnectError(`host unreachable (${where})`, 'unreachable')
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConnectError(`cannot resolve ${where}`, 'unreachable')
    case 'ECONNRESET':
      return new ConnectError(`connection reset by ${where}`, 'unreachable')
    case 'ETIMEDOUT':
      return new ConnectError(`connect timed out after ${timeoutS} s (${where})`, 'timeout')
  }
  if (/Timed out while waiting for handshake/.test(msg)) return new ConnectError(`connect timed out after ${timeoutS} s (${where})`, 'timeout')
  if (e?.level === 'client-authentication' || /authentication methods failed/.test(msg)) {
    return new ConnectError(`authentication failed as ${user}${keyFile ? ` with ${keyFile}` : ''} (${where})`, 'auth')
  }
  if (/passphrase|private key|Cannot parse privateKey/i.test(msg)) return new ConnectError(`cannot use the private key ${keyFile ?? ''}: ${msg}`, 'auth')
  return new ConnectError(`${msg} (${where})`, 'unreachable')
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  if (!(ms > 0)) return p
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms)
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}
