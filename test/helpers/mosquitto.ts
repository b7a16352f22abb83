import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './fixtures.js';
import { freePort, waitForPort } from './ports.js';

const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p)) ?? 'mosquitto';

// A broker a failed test left running goes with the test file's process.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface MosquittoOptions {
  /** Users for a password file; without them, anonymous clients are allowed. */
  users?: { username: string; password: string }[];
  /** TLS only (mqtts://), with a server certificate for 127.0.0.1 signed by a CA made for the test. */
  tls?: boolean;
}

/**
 * A real MQTT broker (Debian's mosquitto, which .ci/run installs) on a free loopback port with its own
 * config in a temp folder: no persistence, so a restart loses retained messages as a crash would.
 * kill() and start() again keep the URL.
 */
export class Mosquitto {
  private child?: ChildProcess;
  private output = '';

  private constructor(
    readonly port: number,
    private readonly config: string,
    /** With tls: the CA certificate (PEM) a client needs to trust the broker. */
    readonly caFile?: string,
  ) {}

  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    if (!existsSync(MOSQUITTO) && MOSQUITTO === 'mosquitto') {
      try {
        execFileSync('which', ['mosquitto']);
      } catch {
        throw new Error('mosquitto is not installed: apt-get install mosquitto mosquitto-clients (.ci/run does)');
      }
    }
    const dir = tempDir('mosquitto');
    const port = await freePort();
    const lines = [`listener ${port} 127.0.0.1`, 'persistence false', 'log_dest stderr', 'log_type error'];
    if (options.users?.length) {
      const passwords = join(dir, 'passwords');
      writeFileSync(passwords, '');
      for (const u of options.users) execFileSync('mosquitto_passwd', ['-b', passwords, u.username, u.password]);
      lines.push('allow_anonymous false', `password_file ${passwords}`);
    } else {
      lines.push('allow_anonymous true');
    }
    let caFile: string | undefined;
    if (options.tls) {
      caFile = makeCertificates(dir);
      lines.push(`cafile ${caFile}`, `certfile ${join(dir, 'server.crt')}`, `keyfile ${join(dir, 'server.key')}`);
    }
    const config = join(dir, 'mosquitto.conf');
    writeFileSync(config, `${lines.join('\n')}\n`);
    // Started as root, mosquitto reads the password file as the user mosquitto: the folder must let it.
    chmodSync(dir, 0o755);
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
    const broker = new Mosquitto(port, config, caFile);
    await broker.resume();
    return broker;
  }

  get url(): string {
    return `${this.caFile ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  /** What mosquitto wrote to stderr (errors only), for failure messages. */
  get log(): string {
    return this.output;
  }

  /** (Re)starts the broker on the same port and waits until it takes connections. */
  async resume(): Promise<void> {
    const child = spawn(MOSQUITTO, ['-c', this.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    await waitForPort(this.port, {
      gaveUp: () => (child.exitCode !== null ? `mosquitto exited: ${this.output}` : undefined),
    });
  }

  /** Kills the broker at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }
}

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl, EC P-256, valid 2 days); returns the CA file. */
function makeCertificates(dir: string): string {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=sieve test CA',
  );
  openssl('req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('server.crt'),
    '-days',
    '2',
    '-extfile',
    file('san.ext'),
  );
  return file('ca.crt');
}
