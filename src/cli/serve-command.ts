import type { Command } from 'commander';
import { Daemon } from '../serve/daemon.js';
import { loadPipeline } from '../serve/pipeline-config.js';
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

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'run the camera daemon of a pipeline file: sources, per-frame encoding, rolling windows, standing questions',
    )
    .requiredOption('--pipeline <file>', 'pipeline YAML, e.g. pipelines/demo.yaml')
    .option('--verbose', "show ONNX Runtime's own log lines")
    .action(async (flags: { pipeline: string; verbose?: boolean }) => {
      const pipeline = loadPipeline(flags.pipeline);
      const modelDir = pipeline.model ?? defaultModelDir();
      const log = (line: string) => process.stderr.write(`${line}\n`);
      log(`${new Date().toISOString()} sieve: starting ${displayPath(flags.pipeline)} with ${displayPath(modelDir)}`);
      const daemon = await Daemon.start(pipeline, {
        modelDir,
        modelName: displayPath(modelDir),
        runtime: { ep: pipeline.runtime.ep, threads: pipeline.runtime.threads, verbose: flags.verbose === true },
        log,
      });
      const cameras = [...daemon.cameras.keys()];
      log(`${new Date().toISOString()} sieve: running ${cameras.length} camera(s): ${cameras.join(', ') || 'none'}`);
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
      }
      log(`${new Date().toISOString()} sieve: stopped`);
    });
}
