import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { defaultModelDir } from '../../src/cli/default-model.js';
import { DEFAULT_RUNTIME } from '../../src/engine/ort-session.js';
import { ffmpegBinaries } from '../../src/media/ffmpeg-binaries.js';
import { Daemon } from '../../src/serve/daemon.js';
import { type MqttConfig, pipelineSchema } from '../../src/serve/pipeline-config.js';
import { REPO_ROOT, tempDir } from './fixtures.js';

const VIDEOS = join(REPO_ROOT, 'models', 'demo', 'examples', 'videos');
/** The quick-start clip: a purple circle and a red square (2 s, 4 fps). */
export const CLIP = join(VIDEOS, 'test-2000000000.mp4');

/**
 * A daemon in this process on the demo model, for a pipeline given as the parsed YAML would be
 * (`cameras`, `queries`, …); its log lines are kept in `log`.
 */
export async function startDaemon(doc: Record<string, unknown>): Promise<{ daemon: Daemon; log: string[] }> {
  const log: string[] = [];
  const daemon = await Daemon.start(pipelineSchema.parse(doc), {
    modelDir: defaultModelDir(),
    modelName: 'models/demo',
    runtime: DEFAULT_RUNTIME,
    log: (line) => log.push(line),
  });
  return { daemon, log };
}

/**
 * A 4 s clip that changes half way: 2 s with a green square (the demo model answers "yes" to "is there a
 * green square in the clip?"), then 2 s without ("no"). Looped, it makes an alert flip.
 */
export async function alternatingClip(): Promise<string> {
  const { ffmpeg } = await ffmpegBinaries();
  const out = join(tempDir('clip'), 'green-then-not.mp4');
  execFileSync(ffmpeg.path, [
    '-v',
    'error',
    '-i',
    join(VIDEOS, 'test-2000000001.mp4'),
    '-i',
    join(VIDEOS, 'test-2000000002.mp4'),
    '-filter_complex',
    '[0:v][1:v]concat=n=2:v=1[v]',
    '-map',
    '[v]',
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-g',
    '4',
    out,
  ]);
  return out;
}

/** The mqtt key as a pipeline file would give it, with the schema's defaults. */
export function mqttConfig(mqtt: Record<string, unknown>): MqttConfig {
  const parsed = pipelineSchema.parse({ cameras: { x: { source: { type: 'v4l2' } } }, mqtt }).mqtt;
  if (!parsed) throw new Error('no mqtt key');
  return parsed;
}
