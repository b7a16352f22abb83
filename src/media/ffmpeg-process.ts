/**
 * The one place that runs ffmpeg (through fluent-ffmpeg) and ffprobe (directly: fluent-ffmpeg's parser
 * drops the packet lists the frame plan reads). Callers describe a command (inputs
 * with their options, output options, a file or a pipe) and get its output, its end and a way to stop it.
 */
import { execFile } from 'node:child_process';
import type { Readable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';

export interface FfmpegInput {
  /** A file name, or a stream piped to ffmpeg's stdin. */
  source: string | Readable;
  /** Options for this input (they go before its -i). */
  options?: readonly string[];
}

export interface FfmpegJob {
  inputs: readonly FfmpegInput[];
  /** Everything after the inputs: filters, maps, codecs, the format. */
  outputOptions: readonly string[];
  /** A file to write; without it the output goes to a pipe, read from `stdout`. */
  outputFile?: string;
  /** Every line ffmpeg writes to stderr, as it comes. */
  onStderr?: (line: string) => void;
}

export interface FfmpegRun {
  /** The piped output (nothing when writing a file). */
  stdout: AsyncIterable<Buffer>;
  /** Settles when ffmpeg has ended: undefined when it succeeded (or its piped output was closed), else why not. */
  exit: Promise<Error | undefined>;
  /** Kills ffmpeg (SIGKILL), also when it has not started yet. */
  kill(): void;
}

/** Starts ffmpeg `binary` on a job. */
export function runFfmpeg(binary: string, job: FfmpegJob): FfmpegRun {
  // fluent-ffmpeg keeps the binary path in module-wide state: set it right before every command.
  ffmpeg.setFfmpegPath(binary);
  const command = ffmpeg();
  skipCapabilityChecks(command);
  for (const input of job.inputs) {
    command.input(input.source);
    if (input.options?.length) command.inputOptions([...input.options]);
  }
  command.outputOptions([...job.outputOptions]);
  if (job.onStderr) command.on('stderr', job.onStderr);

  let finished = false;
  let cancelled = false;
  const exit = new Promise<Error | undefined>((resolve) => {
    command.on('end', () => resolve(undefined));
    // fluent-ffmpeg reports a consumed output stream as an error; the caller's byte count decides instead.
    command.on('error', (err: Error) => resolve(err.message === 'Output stream closed' ? undefined : err));
  }).then((err) => {
    finished = true;
    return err;
  });
  // A kill before the process exists is a no-op in fluent-ffmpeg: repeat it once it starts.
  command.on('start', () => {
    if (cancelled) command.kill('SIGKILL');
  });

  let stdout: AsyncIterable<Buffer>;
  if (job.outputFile !== undefined) {
    command.save(job.outputFile);
    stdout = (async function* () {})();
  } else {
    stdout = command.pipe() as AsyncIterable<Buffer>;
  }
  return {
    stdout,
    exit,
    kill(): void {
      cancelled = true;
      if (!finished) command.kill('SIGKILL');
    },
  };
}

/**
 * fluent-ffmpeg runs `ffmpeg -formats` and `ffmpeg -encoders` before the first command of every process,
 * to check the names it was given and to add `-strict experimental` for experimental encoders: two more
 * processes per answer (70 ms each for a dynamically linked ffmpeg, seconds on a loaded machine). We pass
 * codecs and formats as plain options, ffmpeg checks them itself, and its errors are reported anyway.
 */
function skipCapabilityChecks(command: ffmpeg.FfmpegCommand): void {
  const internals = command as unknown as {
    _checkCapabilities: (done: (err?: Error) => void) => void;
    availableEncoders: (done: (err: Error | null, encoders: Record<string, never>) => void) => void;
  };
  internals._checkCapabilities = (done) => done();
  internals.availableEncoders = (done) => done(null, {});
}

export type FfprobeResult =
  | { ok: true; stdout: string }
  | { ok: false; signal?: string; stderr: string; message: string };

/** Runs ffprobe `binary` with these arguments; its output, or how it failed. */
export function runFfprobe(binary: string, args: readonly string[]): Promise<FfprobeResult> {
  return new Promise((resolve) => {
    execFile(binary, [...args], { maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ ok: true, stdout });
      resolve({
        ok: false,
        ...(err.signal ? { signal: err.signal } : {}),
        stderr: String(stderr),
        message: err.message,
      });
    });
  });
}
