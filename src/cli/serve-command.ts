import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { Alerts } from '../serve/alerts.js';
import { Daemon } from '../serve/daemon.js';
import { parseBrokerListen } from '../serve/embedded-broker.js';
import { HttpSurface, parseListen } from '../serve/http-surface.js';
import { SieveMetrics } from '../serve/metrics.js';
import { MqttSurface } from '../serve/mqtt-surface.js';
import { loadPipeline, type PipelineConfig, pipelineSchema } from '../serve/pipeline-config.js';
import { displayPath } from './cli-output.js';
import { defaultModelDir } from './default-model.js';

/** How often `sieve serve` logs a status line per camera. */
const STATUS_EVERY_MS = 60_000;

/**
 * Runs a daemon until SIGINT or SIGTERM: then it stops the sources, lets answers in progress finish,
 * closes the model and resolves (exit code 0).
 */
export async function runUntilSignal(
  daemon: Daemon,
  log: (line: string) => void,
  ended?: Promise<void>,
): Promise<void> {
  await new Promise<void>((resolve) => {
    const finish = (why: string) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      log(`${new Date().toISOString()} sieve: ${why}, stopping`);
      resolve();
    };
    const onSignal = (signal: NodeJS.Signals) => finish(`${signal} received`);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    void ended?.then(() => finish('every source ended'));
  });
  await daemon.stop();
}

/** `--mqtt` and `--http` point a pipeline at another broker or address without editing it. */
export function withSurfaceFlags(pipeline: PipelineConfig, flags: { mqtt?: string; http?: string }): PipelineConfig {
  const overrides: Record<string, unknown> = {};
  if (flags.mqtt !== undefined) overrides.mqtt = { ...pipeline.mqtt, url: flags.mqtt };
  if (flags.http !== undefined) overrides.http = { ...pipeline.http, listen: flags.http };
  if (Object.keys(overrides).length === 0) return pipeline;
  const checked = pipelineSchema.safeParse({ ...pipeline, ...overrides });
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const flag = issue.path[0] === 'mqtt' ? '--mqtt' : '--http';
    throw new UsageError(`${flag}: ${issue.message}`, 'e.g. --mqtt mqtt://127.0.0.1:1883 or --http 127.0.0.1:8080');
  }
  return checked.data;
}

interface ServeFlags {
  pipeline?: string;
  mqtt?: string;
  http?: string;
  model?: string;
  verbose?: boolean;
}

/**
 * The pipeline file, or without one (`sieve serve --http host:port`) a daemon with no cameras that answers
 * questions about images sent to its HTTP API: what `sieve ask --server` uses to find the model warm.
 */
function pipelineOf(flags: ServeFlags): PipelineConfig {
  if (flags.pipeline !== undefined) {
    if (flags.model !== undefined) {
      throw new UsageError('--model is for serving without a pipeline', "the pipeline's model key names its model");
    }
    return loadPipeline(flags.pipeline);
  }
  if (flags.http === undefined) {
    throw new UsageError(
      'sieve serve needs --pipeline, or --http to answer questions about images only',
      'e.g. sieve serve --pipeline pipelines/demo.yaml, or sieve serve --http 127.0.0.1:8080 --model <dir>',
    );
  }
  return pipelineSchema.parse({ model: flags.model, http: {} });
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'run the camera daemon of a pipeline file: sources, per-frame encoding, rolling windows, standing questions',
    )
    .option('--pipeline <file>', 'pipeline YAML, e.g. pipelines/demo.yaml (without it: --http only, no cameras)')
    .option('--mqtt <url>', "MQTT broker URL, instead of the pipeline's (mqtt://host:1883)")
    .option('--http <host:port>', "listen address of the HTTP API, instead of the pipeline's")
    .option('--model <dir>', 'checkpoint folder, without --pipeline (default: the shipped demo model)')
    .option('--verbose', "show ONNX Runtime's own log lines")
    .action(async (flags: ServeFlags) => {
      const pipeline = withSurfaceFlags(pipelineOf(flags), flags);
      if (pipeline.http) parseListen(pipeline.http.listen); // a bad address is said before the model loads
      if (pipeline.mqtt && !pipeline.mqtt.url) parseBrokerListen(pipeline.mqtt.listen);
      const modelDir = resolve(pipeline.model ?? defaultModelDir());
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const what = flags.pipeline === undefined ? 'the HTTP API' : displayPath(flags.pipeline);
      log(`${new Date().toISOString()} sieve: starting ${what} with ${displayPath(modelDir)}`);
      const daemon = await Daemon.start(pipeline, {
        modelDir,
        modelName: displayPath(modelDir),
        runtime: { ep: pipeline.runtime.ep, threads: pipeline.runtime.threads, verbose: flags.verbose === true },
        log,
      });
      const cameras = [...daemon.cameras.keys()];
      log(`${new Date().toISOString()} sieve: running ${cameras.length} camera(s): ${cameras.join(', ') || 'none'}`);
      let http: HttpSurface | undefined;
      if (pipeline.http) {
        const { listen, token, max_body_mb } = pipeline.http;
        const metrics = new SieveMetrics(daemon);
        http = await HttpSurface.start(daemon, {
          listen,
          token,
          maxBodyBytes: max_body_mb * 2 ** 20,
          log,
          metrics,
        }).catch(async (err: unknown) => {
          await daemon.stop();
          throw err;
        });
        log(`${new Date().toISOString()} sieve: HTTP API on ${http.address.url}${token ? ' (bearer token)' : ''}`);
      }
      // Alerts run with or without MQTT: their changes are logged, and published when MQTT is on.
      const withAlerts = Object.values(pipeline.cameras).some((c) => c.alerts.length > 0);
      const alerts = withAlerts
        ? new Alerts(daemon, (camera, line) => log(`${new Date().toISOString()} ${camera}: ${line}`))
        : undefined;
      alerts?.onChange((a) =>
        log(`${new Date().toISOString()} ${a.camera}: alert ${a.alert} is ${a.state} (answer "${a.answer}")`),
      );
      alerts?.start();
      let mqtt: MqttSurface | undefined;
      if (pipeline.mqtt) {
        mqtt = await MqttSurface.start(daemon, pipeline.mqtt, { log, alerts }).catch(async (err: unknown) => {
          alerts?.stop();
          await http?.close();
          await daemon.stop();
          throw err;
        });
      }
      const statusTimer = setInterval(() => {
        for (const s of daemon.status()) {
          log(
            `${new Date().toISOString()} ${s.camera}: ${s.source.state}, ${s.source.fpsIn} fps in, ` +
              `${s.frames.encoded} encoded, ${s.frames.dropped} dropped, ${s.frames.unchanged} unchanged, ` +
              `window ${s.window.frames} frames / ${s.window.span_s} s, ${s.source.reconnects} reconnects`,
          );
        }
      }, STATUS_EVERY_MS);
      try {
        await runUntilSignal(daemon, log);
      } finally {
        clearInterval(statusTimer);
        await http?.close(); // after the daemon stopped: in-flight answers went out, queued ones got "shutting down"
        alerts?.stop();
        await mqtt?.stop(); // the same, then `offline` (retained) and a clean disconnect
      }
      log(`${new Date().toISOString()} sieve: stopped`);
    });
}
