import mqtt, { type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';

/** A parsed JSON payload, as loose as JSON.parse's. */
export type Json = ReturnType<typeof JSON.parse>;

export interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
  properties?: IPublishPacket['properties'];
  /** The payload as JSON, or undefined when it is not JSON. */
  json?: Json;
}

/** A test's own MQTT client: every message it receives is kept, and can be waited for. */
export class TestClient {
  readonly messages: Received[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      let json: unknown;
      try {
        json = JSON.parse(payload.toString());
      } catch {
        json = undefined;
      }
      this.messages.push({ topic, payload, retain: packet.retain, properties: packet.properties, json });
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async connect(url: string, protocolVersion: 4 | 5 = 5, more: IClientOptions = {}): Promise<TestClient> {
    const client = await mqtt.connectAsync(url, {
      protocolVersion,
      reconnectPeriod: 200,
      connectTimeout: 5000,
      ...more,
    });
    return new TestClient(client);
  }

  async subscribe(...topics: string[]): Promise<void> {
    await this.client.subscribeAsync(topics, { qos: 1 });
  }

  async publish(topic: string, payload: string | Buffer, opts: IClientPublishOptions = { qos: 1 }): Promise<void> {
    await this.client.publishAsync(topic, payload, opts);
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Waits until `condition` holds (checked on every message and every 100 ms). */
  async waitFor<T>(condition: () => T | undefined | false, ms: number, what: string): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = condition();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The first message on `topic` whose JSON matches, waited for. */
  reply(topic: string, match: (json: Json) => boolean, ms = 20_000): Promise<Received> {
    return this.waitFor(
      () => this.messages.find((m) => m.topic === topic && m.json !== undefined && match(m.json)),
      ms,
      `a message on ${topic}`,
    );
  }

  async end(): Promise<void> {
    await this.client.endAsync(true);
  }
}
