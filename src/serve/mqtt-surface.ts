import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { SieveError, UsageError } from '../errors.js';
import type { AlertStatus, Alerts } from './alerts.js';
import type { Daemon } from './daemon.js';
import { EmbeddedBroker } from './embedded-broker.js';
import {
  type AnswerReply,
  answerReply,
  type ErrorCode,
  type ErrorReply,
  errorReply,
  parseQuery,
} from './mqtt-messages.js';
import type { MqttConfig } from './pipeline-config.js';
import { ShuttingDownError } from './query-scheduler.js';

/** Camera status and daemon stats are published this often (and a camera's status when its source changes). */
export const STATUS_EVERY_MS = 30_000;
/** How long stop() waits for the broker to take `offline` and the disconnect. */
const GOODBYE_MS = 2_000;

export interface MqttSurfaceOptions {
  log: (line: string) => void;
  /** The daemon's alerts: their changes are published, retained, and announced to Home Assistant. */
  alerts?: Alerts;
  statusEveryMs?: number;
}

export interface MqttStats {
  /** Messages on `<prefix>/+/query`. */
  received: number;
  answered: number;
  /** Error replies by code. */
  errors: Partial<Record<ErrorCode, number>>;
  connected: boolean;
  /** Connections after the first. */
  reconnects: number;
}

type Daemonish = Pick<Daemon, 'ask' | 'cameras' | 'pipeline' | 'scheduler' | 'status'>;

/**
 * The daemon on MQTT (design §5). Topics under the prefix (default `sieve`):
 * `available` (online/offline, retained; offline is also the connection's last will), `<camera>/query` ←
 * `{id, question, window_s?, max_frames?, method?, budget?}`, replies on `<camera>/answer` (or the MQTT 5
 * response topic, with the correlation data) — the answer with its provenance, or `{id, camera, error, hint?,
 * code}` —, `<camera>/last_answer` (retained), `<camera>/alerts/<name>` (retained, on change),
 * `<camera>/status` (retained) and `stats`. Without a broker URL it starts an embedded broker. After a
 * reconnect the subscription, `online` and the retained topics are published again.
 */
export class MqttSurface {
  private client?: MqttClient;
  private broker?: EmbeddedBroker;
  private version: 4 | 5 = 5;
  private readonly pending = new Set<Promise<void>>();
  private readonly counts = { received: 0, answered: 0, reconnects: 0 };
  private readonly errors: Partial<Record<ErrorCode, number>> = {};
  private readonly lastAnswers = new Map<string, AnswerReply>();
  private readonly lastStatus = new Map<string, { state: string; at: number }>();
  private lastStatsAt = -Infinity;
  private timers: NodeJS.Timeout[] = [];
  private stopAlerts?: () => void;
  private lastError?: string;
  private everConnected = false;
  private stopping = false;
  private stopped?: Promise<void>;
  private readonly firstConnect: Promise<void>;
  private markConnected: () => void = () => undefined;
  readonly clientId: string;

  private constructor(
    private readonly daemon: Daemonish,
    private readonly config: MqttConfig,
    private readonly options: MqttSurfaceOptions,
    readonly url: string,
  ) {
    this.clientId = config.client_id ?? `sieve-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.firstConnect = new Promise<void>((resolve) => {
      this.markConnected = resolve;
    });
  }

  /**
   * Starts the embedded broker when the config has no URL, then connects (in the background: a broker that
   * is not up yet is retried every second, and the failures are logged).
   */
  static async start(daemon: Daemonish, config: MqttConfig, options: MqttSurfaceOptions): Promise<MqttSurface> {
    const tls = readTls(config);
    if (tls && !config.url) {
      throw new UsageError(
        'mqtt.tls is set, but no mqtt.url: the embedded broker listens without TLS',
        'give the URL of a broker with TLS (mqtts://host:8883), or remove mqtt.tls',
      );
    }
    if (tls && config.url && !/^(mqtts|wss):/.test(config.url)) {
      throw new UsageError(`mqtt.tls is set, but mqtt.url ${config.url} is not a TLS URL`, 'use mqtts:// (or wss://)');
    }
    let broker: EmbeddedBroker | undefined;
    if (!config.url) {
      broker = await EmbeddedBroker.start(config.listen);
      options.log(`${stamp()} mqtt: embedded broker listening on ${broker.url}`);
    }
    const url = config.url ?? broker?.url;
    if (!url) throw new SieveError('no MQTT broker URL'); // unreachable: the embedded broker has one
    const surface = new MqttSurface(daemon, config, options, url);
    surface.broker = broker;
    // aedes speaks MQTT 3.1.1 only; another broker is asked for MQTT 5 first (response topics).
    surface.connect(broker ? 4 : 5, tls);
    if (options.alerts) surface.stopAlerts = options.alerts.onChange((status) => surface.publishAlert(status));
    surface.timers.push(setInterval(() => surface.tick(), 1000));
    return surface;
  }

  /** The topic prefix, e.g. `sieve`. */
  get prefix(): string {
    return this.config.prefix;
  }

  /** MQTT 5 or 3.1.1, as the broker accepted. */
  get protocolVersion(): 4 | 5 {
    return this.version;
  }

  /** Resolves when the first connection is up (or rejects after `timeoutMs`). */
  async connected(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SieveError(`no connection to the MQTT broker ${this.url} after ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.firstConnect, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  stats(): MqttStats {
    return { ...this.counts, errors: { ...this.errors }, connected: this.client?.connected === true };
  }

  /**
   * Replies to the queries still running (waiting at most `waitMs`), publishes `offline` (retained),
   * disconnects, and stops the embedded broker. New queries meanwhile are answered "shutting down".
   */
  stop(waitMs = 30_000): Promise<void> {
    this.stopped ??= this.shutdown(waitMs);
    return this.stopped;
  }

  private async shutdown(waitMs: number): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.stopAlerts?.();
    await withTimeout(Promise.allSettled([...this.pending]), waitMs);
    const client = this.client;
    if (client) {
      if (client.connected) {
        await withTimeout(
          client.publishAsync(this.topic('available'), 'offline', { qos: 1, retain: true }).catch(() => undefined),
          GOODBYE_MS,
        );
      }
      const ended = await withTimeout(
        client.endAsync().then(() => true),
        GOODBYE_MS,
      );
      if (!ended) client.end(true);
    }
    await this.broker?.close();
    this.options.log(`${stamp()} mqtt: disconnected`);
  }

  private topic(...levels: string[]): string {
    return [this.config.prefix, ...levels].join('/');
  }

  private connect(version: 4 | 5, tls?: Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>): void {
    this.version = version;
    const client = mqtt.connect(this.url, {
      protocolVersion: version,
      clientId: this.clientId,
      clean: true,
      resubscribe: false, // subscribed again on every connect, below
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      will: { topic: this.topic('available'), payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(this.config.username !== undefined ? { username: this.config.username } : {}),
      ...(this.config.password !== undefined ? { password: this.config.password } : {}),
      ...tls,
    });
    this.client = client;
    client.on('connect', () => {
      void this.onConnect(client);
    });
    client.on('message', (topic, payload, packet) => this.track(this.onQuery(topic, payload, packet)));
    client.on('error', (err) => this.onError(client, err, tls));
    client.on('close', () => {
      if (this.client === client && this.everConnected && !this.stopping && this.lastError !== 'closed') {
        this.lastError = 'closed';
        this.options.log(`${stamp()} mqtt: connection to ${this.url} lost; reconnecting every second`);
      }
    });
  }

  private onError(client: MqttClient, err: Error, tls: Parameters<MqttSurface['connect']>[1]): void {
    if (this.client !== client || this.stopping) return;
    const code = (err as { code?: number | string }).code;
    if (this.version === 5 && !this.everConnected && (code === 1 || code === 132)) {
      this.options.log(`${stamp()} mqtt: ${this.url} does not speak MQTT 5; using MQTT 3.1.1 (no response topics)`);
      client.end(true);
      this.connect(4, tls);
      return;
    }
    const hint =
      code === 4 || code === 5 || code === 134 || code === 135
        ? ' (check mqtt.username and mqtt.password)'
        : code === 'ECONNREFUSED'
          ? ' (is the broker running? retrying every second)'
          : typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)
            ? " (give the broker's CA certificate in mqtt.tls.ca)"
            : '';
    const line = `mqtt: ${this.url}: ${err.message}${hint}`;
    if (line === this.lastError) return; // the same failure on every retry is logged once
    this.lastError = line;
    this.options.log(`${stamp()} ${line}`);
  }

  private async onConnect(client: MqttClient): Promise<void> {
    if (this.client !== client) return;
    if (this.everConnected) this.counts.reconnects++;
    this.options.log(
      `${stamp()} mqtt: ${this.everConnected ? 'reconnected' : 'connected'} to ${this.url} ` +
        `(MQTT ${this.version === 5 ? '5' : '3.1.1'}, prefix ${this.config.prefix})`,
    );
    this.everConnected = true;
    this.lastError = undefined;
    try {
      const [grant] = await client.subscribeAsync(this.topic('+', 'query'), { qos: 1 });
      if (grant && grant.qos >= 0x80) {
        this.options.log(
          `${stamp()} mqtt: the broker refused the subscription to ${grant.topic} (code ${grant.qos}): ` +
            'no queries will come; check its access control list',
        );
      }
      await client.publishAsync(this.topic('available'), 'online', { qos: 1, retain: true });
      // A broker that restarted without persistence has lost the retained topics: they are published again.
      await Promise.all([
        ...this.discovery().map(([topic, body]) =>
          client.publishAsync(topic, JSON.stringify(body), { qos: 1, retain: true }),
        ),
        ...(this.options.alerts?.states() ?? []).map((s) =>
          client.publishAsync(this.topic(s.camera, 'alerts', s.alert), JSON.stringify(s), { qos: 1, retain: true }),
        ),
        ...[...this.lastAnswers.values()].map((a) =>
          client.publishAsync(this.topic(a.camera, 'last_answer'), JSON.stringify(a), { qos: 1, retain: true }),
        ),
      ]);
      for (const camera of this.daemon.cameras.keys()) this.publishStatus(camera);
      this.markConnected();
    } catch (err) {
      if (!this.stopping) this.options.log(`${stamp()} mqtt: setting up topics failed: ${(err as Error).message}`);
    }
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** One query → exactly one reply: the answer, or an error naming the problem. */
  private async onQuery(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    const prefix = `${this.config.prefix}/`;
    if (!topic.startsWith(prefix) || !topic.endsWith('/query')) return;
    const camera = topic.slice(prefix.length, -'/query'.length);
    if (packet.retain) {
      // A retained query comes again with every (re)subscription: it was answered when it was published.
      this.options.log(`${stamp()} mqtt: a retained query on ${topic} ignored (publish queries without retain)`);
      return;
    }
    this.counts.received++;
    const responseTopic = publishable(packet.properties?.responseTopic);
    const to = {
      topic: responseTopic ?? this.topic(camera, 'answer'),
      correlation: packet.properties?.correlationData,
    };
    const parsed = parseQuery(payload, camera, [...this.daemon.cameras.keys()]);
    if (!parsed.ok) return this.reply(to, parsed.reply);
    if (this.stopping) return this.reply(to, errorReply(parsed.id, camera, new ShuttingDownError()));
    try {
      const answer = await this.daemon.ask(camera, parsed.query, {
        client: responseTopic ? `mqtt:${responseTopic}` : 'mqtt',
      });
      const reply = answerReply(parsed.id, answer);
      this.lastAnswers.set(camera, reply);
      await Promise.all([
        this.reply(to, reply),
        // While disconnected, the reply waits for the connection; the last answer is published on connecting.
        this.client?.connected
          ? this.publish(this.topic(camera, 'last_answer'), reply, { qos: 1, retain: true })
          : undefined,
      ]);
    } catch (err) {
      const reply = errorReply(parsed.id, camera, err);
      if (reply.code === 'failed') this.options.log(`${stamp()} mqtt: query on ${camera} failed: ${reply.error}`);
      await this.reply(to, reply);
    }
  }

  private async reply(to: { topic: string; correlation?: Buffer }, body: AnswerReply | ErrorReply): Promise<void> {
    if ('error' in body) this.errors[body.code] = (this.errors[body.code] ?? 0) + 1;
    else this.counts.answered++;
    const properties =
      this.version === 5
        ? {
            contentType: 'application/json',
            ...(to.correlation ? { correlationData: to.correlation } : {}),
          }
        : undefined;
    await this.publish(to.topic, body, { qos: 1, ...(properties ? { properties } : {}) });
  }

  private async publish(
    topic: string,
    body: unknown,
    opts: { qos: 0 | 1; retain?: boolean; properties?: IPublishPacket['properties'] },
  ): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      await client.publishAsync(topic, JSON.stringify(body), opts);
    } catch (err) {
      if (!this.stopping || client.connected) {
        this.options.log(`${stamp()} mqtt: publishing on ${topic} failed: ${(err as Error).message}`);
      }
    }
  }

  /** While disconnected nothing is queued: the next connection publishes every alert's current state. */
  private publishAlert(status: AlertStatus): void {
    if (this.stopping || !this.client?.connected) return;
    this.track(this.publish(this.topic(status.camera, 'alerts', status.alert), status, { qos: 1, retain: true }));
  }

  /** Every second: a camera's status when its source changed state, and everything every statusEveryMs. */
  private tick(): void {
    if (!this.client?.connected) return;
    const every = this.options.statusEveryMs ?? STATUS_EVERY_MS;
    const now = performance.now();
    for (const s of this.daemon.status()) {
      const last = this.lastStatus.get(s.camera);
      if (!last || last.state !== s.source.state || now - last.at >= every) this.publishStatus(s.camera);
    }
    if (now - this.lastStatsAt >= every) {
      this.lastStatsAt = now;
      void this.publish(this.topic('stats'), this.statsBody(), { qos: 0 });
    }
  }

  private publishStatus(camera: string): void {
    const status = this.daemon.status().find((s) => s.camera === camera);
    if (!status) return;
    this.lastStatus.set(camera, { state: status.source.state, at: performance.now() });
    const alerts = Object.fromEntries(
      this.daemon.pipeline.cameras[camera].alerts.map((a) => [
        a.name,
        this.options.alerts?.states().find((s) => s.camera === camera && s.alert === a.name)?.state ?? null,
      ]),
    );
    const body = { at: new Date().toISOString(), state: status.source.state, ...status, alerts };
    void this.publish(this.topic(camera, 'status'), body, { qos: 0, retain: true });
  }

  private statsBody() {
    return {
      at: new Date().toISOString(),
      uptime_s: Math.round(process.uptime()),
      cameras: this.daemon.cameras.size,
      queries: this.daemon.scheduler.stats(),
      mqtt: this.stats(),
      ...(this.options.alerts ? { alerts: this.options.alerts.stats() } : {}),
      memory: { rss_bytes: process.memoryUsage.rss(), peak_rss_bytes: process.resourceUsage().maxRSS * 1024 },
    };
  }

  /**
   * Home Assistant MQTT discovery (when enabled): a binary_sensor per alert and a sensor with each camera's
   * last answer, both unavailable while the daemon is offline.
   */
  private discovery(): [string, unknown][] {
    const { discovery } = this.config;
    if (!discovery.enabled) return [];
    const availability = {
      availability_topic: this.topic('available'),
      payload_available: 'online',
      payload_not_available: 'offline',
    };
    return Object.entries(this.daemon.pipeline.cameras).flatMap(([camera, c]) => {
      const device = {
        identifiers: [`sieve_${camera}`],
        name: `sieve ${camera}`,
        manufacturer: 'vlm-sieve',
        model: 'camera daemon',
      };
      const answer: [string, unknown] = [
        `${discovery.prefix}/sensor/sieve_${camera}_answer/config`,
        {
          name: 'last answer',
          unique_id: `sieve_${camera}_answer`,
          state_topic: this.topic(camera, 'last_answer'),
          value_template: '{{ value_json.answer }}',
          json_attributes_topic: this.topic(camera, 'last_answer'),
          json_attributes_template: '{{ {"question": value_json.question, "id": value_json.id} | tojson }}',
          icon: 'mdi:message-question',
          ...availability,
          device,
        },
      ];
      const alerts = c.alerts.map((a): [string, unknown] => [
        `${discovery.prefix}/binary_sensor/sieve_${camera}_${a.name}/config`,
        {
          name: a.name,
          unique_id: `sieve_${camera}_${a.name}`,
          state_topic: this.topic(camera, 'alerts', a.name),
          // yes → ON, no → OFF, any other answer → unknown
          value_template:
            "{% if value_json.state == 'yes' %}ON{% elif value_json.state == 'no' %}OFF{% else %}None{% endif %}",
          payload_on: 'ON',
          payload_off: 'OFF',
          json_attributes_topic: this.topic(camera, 'alerts', a.name),
          json_attributes_template: '{{ {"prompt": value_json.prompt, "answer": value_json.answer} | tojson }}',
          ...availability,
          device,
        },
      ]);
      return [answer, ...alerts];
    });
  }
}

/** The TLS files of the config, read (errors name the key). */
function readTls(config: MqttConfig): Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> | undefined {
  const { tls } = config;
  if (!tls) return undefined;
  const read = (key: 'ca' | 'cert' | 'key') => {
    const file = tls[key];
    if (file === undefined) return {};
    try {
      return { [key]: readFileSync(file) };
    } catch (err) {
      throw new UsageError(
        `mqtt.tls.${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        'give a PEM file; relative paths start at the pipeline file',
      );
    }
  };
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new UsageError('mqtt.tls: cert and key go together (a client certificate and its private key)');
  }
  return { ...read('ca'), ...read('cert'), ...read('key'), rejectUnauthorized: tls.reject_unauthorized };
}

/** A response topic a reply may be published on (a wildcard or an empty topic would be refused by the broker). */
function publishable(topic: string | undefined): string | undefined {
  if (!topic || /[+#]/.test(topic) || topic.includes('\0') || Buffer.byteLength(topic) > 65_535) return undefined;
  return topic;
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function stamp(): string {
  return new Date().toISOString();
}
