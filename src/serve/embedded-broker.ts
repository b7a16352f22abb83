import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { SieveError, UsageError } from '../errors.js';

/**
 * An MQTT broker inside the daemon (aedes, MQTT 3.1.1, in memory), so that `sieve serve` works on a machine
 * without one. It listens on plain TCP; for TLS, credentials or MQTT 5, run a broker such as mosquitto and
 * give its URL instead.
 */
export class EmbeddedBroker {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly broker: Aedes,
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Starts a broker on `listen` (host:port, [v6]:port or a port; port 0 = any free port). */
  static async start(listen: string): Promise<EmbeddedBroker> {
    const { host, port } = parseBrokerListen(listen);
    const broker = await Aedes.createBroker();
    const server = createServer((socket) => broker.handle(socket));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') {
        throw new SieveError(
          `the embedded MQTT broker cannot listen on ${listen}: the port is in use (another broker?)`,
          `use that broker with --mqtt mqtt://${listen}, or set mqtt.listen to a free address`,
        );
      }
      throw new SieveError(
        `the embedded MQTT broker cannot listen on ${listen}: ${(err as Error).message}`,
        'set mqtt.listen to an address of this machine, e.g. 127.0.0.1:1883',
      );
    }
    const address = server.address();
    const bound = address && typeof address !== 'string' ? address.port : port;
    return new EmbeddedBroker(broker, server, host, bound);
  }

  /** The URL clients connect to. */
  get url(): string {
    const host = this.host === '0.0.0.0' || this.host === '::' ? '127.0.0.1' : this.host;
    return `mqtt://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  /** Disconnects every client and stops listening. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** `host:port`, `[v6 address]:port` or a bare port (on loopback). */
export function parseBrokerListen(listen: string): { host: string; port: number } {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]*):(\d+)$/.exec(listen) ?? /^()(\d+)$/.exec(listen);
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isInteger(port) || port > 65_535) {
    throw new UsageError(
      `mqtt.listen: "${listen}" is not host:port`,
      'e.g. 127.0.0.1:1883 (loopback only) or 0.0.0.0:1883 (every interface)',
    );
  }
  return { host: match[1] || '127.0.0.1', port };
}
