import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import sharp from 'sharp';
import { defaultModelDir } from '../../src/cli/default-model.js';
import type { Frame } from '../../src/media/frame.js';
import { videoFrames } from '../../src/media/sampler.js';
import { Daemon } from '../../src/serve/daemon.js';
import { HttpSurface } from '../../src/serve/http-surface.js';
import { SieveMetrics } from '../../src/serve/metrics.js';
import { pipelineSchema } from '../../src/serve/pipeline-config.js';
import { REPO_ROOT } from './fixtures.js';

export const DEMO_CLIP = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos', 'test-2000000000.mp4');

export interface HttpDaemon {
  daemon: Daemon;
  surface: HttpSurface;
  url: string;
  log: string[];
  /** Stops the daemon, then the surface (as sieve serve does); safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A real daemon in this process (the demo model; the demo clip looped at 2× as camera `demo`, ViTCoP
 * 0.111) with its HTTP surface on a free loopback port, once the camera's window has frames.
 */
export async function startHttpDaemon(
  opts: { capacity?: number; maxBodyBytes?: number; token?: string } = {},
): Promise<HttpDaemon> {
  const pipeline = pipelineSchema.parse({
    cameras: {
      demo: {
        source: { type: 'file', path: DEMO_CLIP, loop: true, speed: 2 },
        sampling: { fps: 4 },
        window: { seconds: 4, max_frames: 8 },
        pruning: { method: 'vitcop', budget: 0.111 },
      },
    },
    queries: { capacity: opts.capacity ?? 32 },
  });
  const log: string[] = [];
  const daemon = await Daemon.start(pipeline, {
    modelDir: defaultModelDir(),
    modelName: 'models/demo',
    runtime: { ep: 'cpu', threads: 0 },
    log: (line) => log.push(line),
  });
  const surface = await HttpSurface.start(daemon, {
    listen: '127.0.0.1:0',
    token: opts.token,
    maxBodyBytes: opts.maxBodyBytes ?? 2 * 2 ** 20,
    log: (line) => log.push(line),
    metrics: new SieveMetrics(daemon),
  });
  const stop = async () => {
    await daemon.stop();
    await surface.close();
  };
  const started = Date.now();
  while ((daemon.cameras.get('demo')?.window.size ?? 0) < 4) {
    if (Date.now() - started > 30_000) {
      await stop();
      throw new Error(`camera demo has no frames after 30 s: ${log.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { daemon, surface, url: surface.address.url, log, stop };
}

/** `count` frames of the demo clip, and each as a PNG data URL (lossless: the same pixels). */
export async function demoFrames(count: number): Promise<{ frames: Frame[]; dataUrls: string[] }> {
  const frames = await lastValueFrom(videoFrames(DEMO_CLIP, { frames: count }).pipe(toArray()));
  const dataUrls = await Promise.all(
    frames.map(async (f) => {
      const png = await sharp(f.rgb, { raw: { width: f.width, height: f.height, channels: 3 } })
        .png()
        .toBuffer();
      return `data:image/png;base64,${png.toString('base64')}`;
    }),
  );
  return { frames, dataUrls };
}

/** POST a JSON body (or raw bytes) to the chat completions route. */
export function postChat(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? (body as BodyInit) : JSON.stringify(body),
  });
}

export const question = (text: string) => [{ role: 'user', content: text }];
