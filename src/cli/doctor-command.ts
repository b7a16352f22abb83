import { existsSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import ort from 'onnxruntime-node';
import { ffmpegBinaries } from '../media/ffmpeg.js';
import { formatBytes } from './cli-output.js';
import { defaultModelDir } from './default-model.js';

/** `sieve doctor`: what this machine offers vlm-sieve, and what is missing. */
export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('print the runtime, execution providers, ffmpeg and default model this machine has')
    .action(async () => {
      const line = (k: string, v: string) => console.log(`${k.padEnd(22)} ${v}`);
      line('node', process.version);
      line('onnxruntime-node', ort.env.versions.node ?? 'unknown');
      const backends = ort.listSupportedBackends().filter((b) => ['cpu', 'cuda', 'tensorrt'].includes(b.name));
      line(
        'execution providers',
        backends.map((b) => `${b.name}${b.bundled ? '' : ' (needs its libraries installed)'}`).join(', '),
      );
      line('cpu', `${cpus()[0]?.model ?? 'unknown'} — ${availableParallelism()} threads`);
      line('memory', formatBytes(totalmem()));
      try {
        const { ffmpeg, ffprobe } = await ffmpegBinaries();
        line('ffmpeg', `${ffmpeg.version} (${ffmpeg.source}: ${ffmpeg.path})`);
        line('ffprobe', `${ffprobe.version} (${ffprobe.source}: ${ffprobe.path})`);
      } catch (err) {
        line('ffmpeg', `not found — ${(err as Error).message}`);
        process.exitCode = 1;
      }
      const model = defaultModelDir();
      line(
        'default model',
        existsSync(join(model, 'config.json')) ? model : `missing (${model}); give --model or set SIEVE_MODEL`,
      );
    });
}
