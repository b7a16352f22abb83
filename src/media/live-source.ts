/**
 * Camera-like sources for the daemon: a file (once or looped, paced at real time or faster), an RTSP
 * or HTTP(S) stream (MJPEG, HLS), a V4L2 device — all through one streaming ffmpeg command — and a
 * folder of images. Each reconnects with exponential backoff and jitter, restarts when no frame came
 * for `stallS`, and reports its status. Frames are sampled in JS by the rule the file decoder uses, so
 * a file streamed here yields the frames `sieve ask --fps` picks.
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { Observable, type Subscriber } from 'rxjs';
import { MediaError } from '../errors.js';
import { binaries } from './ffmpeg-binaries.js';
import { ffmpegReason, isErrorLine } from './ffmpeg-messages.js';
import { runFfmpeg } from './ffmpeg-process.js';
import type { Frame } from './frame.js';
import { readImage } from './image-source.js';
import { ShowinfoReader } from './showinfo.js';
import type { SourceStatus } from './source-status.js';

export type LiveInput =
  | { type: 'file'; path: string; loop: boolean; speed: number }
  | { type: 'rtsp'; url: string; transport: 'tcp' | 'udp' }
  | { type: 'http'; url: string }
  | { type: 'v4l2'; device: string }
  | { type: 'images'; path: string; intervalS: number; loop: boolean };

export interface LiveSourceOptions {
  input: LiveInput;
  /** Sampling rate: the first frame at or after each multiple of 1/fps (less half a frame). */
  fps: number;
  /**
   * Frames larger than this on their shorter side are scaled down in ffmpeg to it (keeping the aspect),
   * so no full-resolution frame is kept: the preprocessor's shortest-edge size.
   */
  shortestEdge?: number;
  reconnect: { initialS: number; maxS: number; jitter: number };
  stallS: number;
  connectTimeoutS: number;
  /** One line per event: up, down, reconnect in N s. */
  onEvent?: (message: string) => void;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff']);

/** A live source; `frames()` can be subscribed once. */
export class LiveSource {
  private state: SourceStatus['state'] = 'connecting';
  private framesDecoded = 0;
  private reconnects = 0;
  private lastError?: { message: string; at: string };
  private since?: string;
  private readonly arrivals: number[] = [];
  private stopped = false;
  private stopCurrent?: () => void;
  /** Wall-clock time stream time 0 was due (a paced file). */
  private clockStart?: number;
  private wakeUp?: () => void;

  constructor(private readonly options: LiveSourceOptions) {}

  status(): SourceStatus {
    const now = performance.now();
    const recent = this.arrivals.filter((t) => now - t <= 5000);
    return {
      state: this.state,
      fpsIn: recent.length >= 2 ? Math.round(((recent.length - 1) / ((now - recent[0]) / 1000)) * 10) / 10 : 0,
      framesDecoded: this.framesDecoded,
      reconnects: this.reconnects,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.since ? { since: this.since } : {}),
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.state !== 'ended') this.state = 'stopped';
    this.stopCurrent?.();
    this.wakeUp?.();
  }

  frames(): Observable<Frame> {
    return new Observable<Frame>((subscriber) => {
      void this.run(subscriber);
      return () => this.stop();
    });
  }

  /** Connect, stream until the end or a failure, wait, connect again — until stopped or a file ends. */
  private async run(subscriber: Subscriber<Frame>): Promise<void> {
    const { input } = this.options;
    let attempt = 0;
    let offsetS = 0;
    let index = 0;
    let previousCell: number | undefined;
    while (!this.stopped) {
      // A looped file or folder starting again stays live; anything else connects anew.
      if (this.state !== 'live') this.state = 'connecting';
      /** Every decoded frame; the sampled ones go on (frameS: the source's frame interval, for the rule). */
      const emit = (frame: Omit<Frame, 'index'>, frameS: number) => {
        if (this.state !== 'live') {
          this.state = 'live';
          this.since = new Date().toISOString();
          attempt = 0;
          this.options.onEvent?.(`source up (${describe(input)})`);
        }
        this.framesDecoded++;
        this.arrivals.push(performance.now());
        if (this.arrivals.length > 64) this.arrivals.shift();
        const timestampS = offsetS + frame.timestampS;
        const cell = samplingCell(timestampS, this.options.fps, frameS);
        if (previousCell !== undefined && cell <= previousCell) return;
        previousCell = cell;
        subscriber.next({ ...frame, index: index++, timestampS });
      };
      const outcome =
        input.type === 'images' ? await this.streamImages(input, emit) : await this.streamFfmpeg(input, emit, offsetS);
      if (this.stopped) break;
      offsetS += outcome.lastS === undefined ? 0 : outcome.lastS + outcome.frameS;
      const finite = input.type === 'file' || input.type === 'images';
      // A file that played (damaged parts are skipped by ffmpeg, and noted) is over; one that could not be
      // opened is tried again, as a camera would be (it may be copied in later).
      if (finite && (outcome.error === undefined || outcome.lastS !== undefined)) {
        if (outcome.error) {
          this.lastError = { message: outcome.error, at: new Date().toISOString() };
          this.options.onEvent?.(`played with errors: ${outcome.error}`);
        }
        if (input.loop) continue;
        this.state = 'ended';
        this.options.onEvent?.('source ended');
        subscriber.complete();
        return;
      }
      const message = outcome.error ?? 'the stream ended';
      this.lastError = { message, at: new Date().toISOString() };
      const { initialS, maxS, jitter } = this.options.reconnect;
      const delayS = Math.min(maxS, initialS * 2 ** attempt) * (1 + jitter * (2 * Math.random() - 1));
      attempt++;
      this.reconnects++;
      this.state = 'waiting';
      this.options.onEvent?.(`source down: ${message}; reconnecting in ${delayS.toFixed(1)} s`);
      await this.sleep(delayS);
    }
    if (this.state !== 'ended') this.state = 'stopped';
    subscriber.complete();
  }

  /**
   * One ffmpeg run: frames scaled and converted to RGB in ffmpeg, timestamps from its showinfo filter,
   * paced in JS for a file at `speed` (ffmpeg waits on the full pipe meanwhile). Ends with the reason
   * it failed, if it did: a stall, no first frame in time, or ffmpeg's own error.
   */
  private async streamFfmpeg(
    input: Exclude<LiveInput, { type: 'images' }>,
    emit: (frame: Omit<Frame, 'index'>, frameS: number) => void,
    /** Stream time this run starts at (a looped file's earlier runs). */
    offsetS: number,
  ): Promise<{ error?: string; lastS?: number; frameS: number }> {
    const { ffmpeg } = await binaries();
    const problems: string[] = [];
    /** showinfo's description of output frame n (a line garbled by other threads' log lines is missing). */
    const shown = new Map<number, { t: number; width: number; height: number }>();
    let lastShown = -1;
    let previous: { t: number; width: number; height: number } | undefined;
    let current: { t: number; width: number; height: number } | undefined;
    const showinfo = new ShowinfoReader();
    let wake: (() => void) | undefined;
    const edge = this.options.shortestEdge;
    const run = runFfmpeg(ffmpeg.path, {
      inputs: [
        {
          source: inputUrl(input),
          options: ['-hide_banner', '-nostdin', '-loglevel', 'level+info', ...inputOptions(input)],
        },
      ],
      outputOptions: [
        '-map',
        '0:v:0',
        '-vf',
        [edge && shortestEdgeScale(edge), 'format=rgb24', 'showinfo'].filter(Boolean).join(','),
        '-f',
        'rawvideo',
      ],
      onStderr: (line) => {
        if (line.includes('Parsed_showinfo_')) {
          const frame = showinfo.read(line);
          if (frame) {
            lastShown = frame.n;
            shown.set(frame.n, { t: frame.t, width: frame.width, height: frame.height });
            wake?.();
          }
        } else if (isErrorLine(line)) {
          problems.push(line);
          if (problems.length > 20) problems.shift();
        }
      },
    });
    this.stopCurrent = () => run.kill();
    let exited = false;
    void run.exit.then(() => {
      exited = true;
      wake?.();
    });

    let failure: string | undefined;
    let lastFrameAt = performance.now();
    let started = false;
    const watchdog = setInterval(() => {
      const quietS = (performance.now() - lastFrameAt) / 1000;
      const limit = started ? this.options.stallS : this.options.connectTimeoutS;
      if (quietS > limit) {
        failure = started ? `no frame for ${limit} s (stalled)` : `no frame within ${limit} s of connecting`;
        run.kill();
      }
    }, 250);
    const speed = input.type === 'file' ? input.speed : 0;
    // A looped file keeps one clock across its runs, so ffmpeg's restart does not speed it up.
    this.clockStart ??= performance.now();
    const clockStart = this.clockStart + (offsetS * 1000) / Math.max(speed, 1e-9);
    let firstT: number | undefined;
    let lastS: number | undefined;
    let frameS = 1 / 25;
    let decoded = 0;
    let buf: Uint8Array | undefined;
    let filled = 0;
    try {
      for await (const chunk of run.stdout) {
        let off = 0;
        while (off < chunk.length) {
          if (!current) {
            // A new frame begins: its description, or (a garbled line) the previous one's a frame later.
            while (lastShown < decoded && !exited) await new Promise<void>((r) => (wake = r));
            const described = shown.get(decoded);
            shown.delete(decoded);
            current =
              described && Number.isFinite(described.t)
                ? described
                : previous && { ...previous, t: previous.t + frameS };
            if (!current) return { error: 'ffmpeg sent pixels for an unannounced frame', lastS, frameS };
          }
          const info = current;
          buf ??= new Uint8Array(info.width * info.height * 3);
          const n = Math.min(buf.length - filled, chunk.length - off);
          buf.set(chunk.subarray(off, off + n), filled);
          filled += n;
          off += n;
          if (filled < buf.length) continue;
          const rgb = buf;
          buf = undefined;
          filled = 0;
          previous = current;
          current = undefined;
          decoded++;
          started = true;
          lastFrameAt = performance.now();
          firstT ??= info.t;
          const t = info.t - firstT;
          if (lastS !== undefined && t > lastS) frameS = t - lastS;
          lastS = t;
          if (speed > 0) {
            const due = clockStart + (t * 1000) / speed;
            const wait = due - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            lastFrameAt = performance.now();
          }
          if (this.stopped) return { lastS, frameS };
          emit({ timestampS: Math.round(t * 1e6) / 1e6, width: info.width, height: info.height, rgb }, frameS);
        }
      }
      const err = await run.exit;
      const reason = ffmpegReason(problems, inputUrl(input));
      if (failure) return { error: failure, lastS, frameS };
      if (err) return { error: reason || err.message.split('\n')[0], lastS, frameS };
      if (decoded === 0) return { error: reason || 'ffmpeg delivered no frame', lastS, frameS };
      return { lastS, frameS };
    } catch (err) {
      return { error: failure ?? (err instanceof Error ? err.message : String(err)), lastS, frameS };
    } finally {
      clearInterval(watchdog);
      run.kill();
      this.stopCurrent = undefined;
    }
  }

  /** New images in a folder, in name order, each one frame; a looped folder starts again at its end. */
  private async streamImages(
    input: Extract<LiveInput, { type: 'images' }>,
    emit: (frame: Omit<Frame, 'index'>, frameS: number) => void,
  ): Promise<{ error?: string; lastS?: number; frameS: number }> {
    const seen = new Set<string>();
    const start = performance.now();
    let lastS: number | undefined;
    while (!this.stopped) {
      let names: string[];
      try {
        if (!(await stat(input.path)).isDirectory()) throw new MediaError(`${input.path} is not a folder`);
        names = (await readdir(input.path)).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort();
      } catch (err) {
        return { error: err instanceof Error ? err.message : String(err), lastS, frameS: input.intervalS };
      }
      const fresh = names.filter((n) => !seen.has(n));
      if (fresh.length === 0 && seen.size > 0 && input.loop) return { lastS, frameS: input.intervalS };
      for (const name of fresh) {
        seen.add(name);
        try {
          const frame = await readImage(join(input.path, name));
          lastS = (performance.now() - start) / 1000;
          emit({ timestampS: lastS, width: frame.width, height: frame.height, rgb: frame.rgb }, input.intervalS);
        } catch (err) {
          this.lastError = { message: err instanceof Error ? err.message : String(err), at: new Date().toISOString() };
          this.options.onEvent?.(`skipped an unreadable image: ${this.lastError.message}`);
        }
        await this.sleep(input.intervalS);
        if (this.stopped) break;
      }
      if (fresh.length === 0) await this.sleep(input.intervalS);
    }
    return { lastS, frameS: input.intervalS };
  }

  private sleep(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * The file decoder's sampling rule for a stream: a frame is sampled when it is the first at or after a
 * multiple of 1/fps, less half of the source's frame interval (which picks the frame nearest to it).
 */
function samplingCell(t: number, fps: number, frameS: number): number {
  return Math.floor((t + frameS / 2) * fps + 1e-9);
}

/** ffmpeg scale filter: the shorter side down to `edge` (never up), aspect kept, as the processor resizes. */
function shortestEdgeScale(edge: number): string {
  return `scale=w='if(lte(iw,ih),min(iw,${edge}),-1)':h='if(lte(iw,ih),-1,min(ih,${edge}))':flags=bicubic`;
}

function inputUrl(input: Exclude<LiveInput, { type: 'images' }>): string {
  if (input.type === 'file') return input.path;
  if (input.type === 'v4l2') return input.device;
  return input.url;
}

function inputOptions(input: Exclude<LiveInput, { type: 'images' }>): string[] {
  if (input.type === 'rtsp') return ['-rtsp_transport', input.transport];
  if (input.type === 'v4l2') return ['-f', 'v4l2'];
  if (input.type === 'http') return ['-reconnect', '0'];
  return [];
}

function describe(input: LiveInput): string {
  return input.type === 'images' ? `images in ${input.path}` : `${input.type} ${inputUrl(input)}`;
}
