import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { Daemon, type WindowAnswer } from '../serve/daemon.js';
import { pipelineSchema } from '../serve/pipeline-config.js';
import { displayPath, parseNumber, reportError } from './cli-output.js';
import { defaultModelDir } from './default-model.js';
import { runUntilSignal } from './serve-command.js';

interface WatchFlags {
  every: string;
  loop?: boolean;
  json?: boolean;
  fps: string;
  windowS: string;
  speed: string;
  model?: string;
  method?: string;
  budget?: string;
  maxNewTokens?: string;
  verbose?: boolean;
}

/** "5s", "500ms", "2m" or plain seconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
  const seconds = m ? Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1) : Number.NaN;
  if (!(seconds > 0)) throw new UsageError(`${flag} must be a duration such as 5s, 500ms or 2m, got "${value}"`);
  return seconds;
}

/** The source a `sieve watch` argument names: a URL by its scheme, a V4L2 device, else a file. */
export function sourceOf(input: string, loop: boolean, speed: number): Record<string, unknown> {
  if (/^rtsps?:\/\//.test(input)) return { type: 'rtsp', url: input };
  if (/^https?:\/\//.test(input)) return { type: 'http', url: input };
  if (input.startsWith('/dev/video')) return { type: 'v4l2', device: input };
  return { type: 'file', path: input, loop, speed };
}

function printAnswer(answer: WindowAnswer, json: boolean): void {
  const last = answer.frames.at(-1);
  if (json) {
    process.stdout.write(`${JSON.stringify({ t: last?.t ?? 0, at: new Date().toISOString(), ...answer })}\n`);
  } else {
    process.stdout.write(`[${(last?.t ?? 0).toFixed(1).padStart(7)} s] ${answer.answer}\n`);
  }
}

export function registerWatchCommand(program: Command): void {
  program
    .command('watch')
    .description('ask a standing question about a live source every few seconds (a file is played as a camera)')
    .argument('<source>', 'a video file, rtsp:// or http(s):// URL, or /dev/videoN')
    .argument('<question>', 'the question, in quotes')
    .option('--every <duration>', 'how often to ask, e.g. 5s', '5s')
    .option('--loop', 'replay a file forever, as a live camera')
    .option('--json', 'one JSON object per answer (t, answer, frames, tokens, latency)')
    .option('--fps <rate>', 'frames sampled per second into the window', '1')
    .option('--window-s <seconds>', 'the window the question is about', '10')
    .option('--speed <factor>', 'play a file this many times faster than real time (0 = as fast as it decodes)', '1')
    .option('--model <dir>', 'checkpoint folder (default: the shipped demo model)')
    .option('--method <name>', 'visual-token pruning method (default none)')
    .option('--budget <fraction>', "layer-averaged fraction of visual tokens kept (default: the method's)")
    .option('--max-new-tokens <n>', 'longest answer in tokens', '32')
    .option('--verbose', "show ONNX Runtime's own log lines")
    .action(async (source: string, question: string, flags: WatchFlags) => {
      const everyS = parseDuration(flags.every, '--every');
      if (question.trim() === '') throw new UsageError('the question is empty');
      const windowS = parseNumber(flags.windowS, '--window-s', 0, 86_400, { exclusiveMin: true });
      const parsed = pipelineSchema.safeParse({
        generation: { max_new_tokens: flags.maxNewTokens },
        cameras: {
          watch: {
            source: sourceOf(source, flags.loop === true, parseNumber(flags.speed, '--speed', 0, 1000)),
            sampling: { fps: flags.fps },
            window: { seconds: windowS },
            pruning: { method: flags.method ?? 'none', ...(flags.budget ? { budget: flags.budget } : {}) },
          },
        },
      });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new UsageError(`${String(issue.path.at(-1) ?? 'argument')}: ${issue.message}`, 'see sieve watch --help');
      }
      const modelDir = flags.model ?? defaultModelDir();
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const daemon = await Daemon.start(parsed.data, {
        modelDir,
        modelName: displayPath(modelDir),
        runtime: { ep: 'cpu', threads: 0, verbose: flags.verbose === true },
        log,
      });
      const camera = daemon.cameras.get('watch');
      let asking: Promise<void> = Promise.resolve();
      const ask = () => {
        asking = daemon
          .ask('watch', { question, windowS }, { client: 'cli' })
          .then((answer) => printAnswer(answer, flags.json === true))
          .catch((err: unknown) => {
            reportError(err, { json: flags.json === true });
          });
        return asking;
      };
      let busy = false;
      const timer = setInterval(() => {
        if (busy || !camera || camera.window.size === 0) return;
        busy = true;
        void ask().finally(() => {
          busy = false;
        });
      }, everyS * 1000);
      // A file that does not loop ends: one last answer about its end, then exit.
      const ended = camera?.ended.then(async () => {
        clearInterval(timer);
        await asking;
        if (camera.status().source.state === 'ended' && camera.window.size > 0) await ask();
      });
      try {
        await runUntilSignal(daemon, log, ended);
      } finally {
        clearInterval(timer);
      }
    });
}
