import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import ort from 'onnxruntime-node';
import { ffmpegBinaries } from '../media/ffmpeg-binaries.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { formatBytes } from './cli-output.js';
import { defaultModelDir } from './default-model.js';

const requireCjs = createRequire(import.meta.url);

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
      line('execution providers', backends.map((b) => `${b.name}${providerState(b.name, b.bundled)}`).join(', '));
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
      const state = modelState(model);
      line('default model', state.ok ? `${model} (${state.detail})` : `${state.detail} (${model})`);
      if (!state.ok) process.exitCode = 1;
    });
}

/**
 * Whether a provider's shared library sits beside ONNX Runtime's (npm ships only the CPU one; the CUDA
 * and TensorRT ones come from onnxruntime-node's install script or a source build, docs/jetson.md).
 */
function providerState(name: string, bundled: boolean): string {
  if (bundled) return '';
  const binding = requireCjs.resolve('onnxruntime-node');
  const libDir = join(dirname(binding), '..', 'bin', 'napi-v6', process.platform, process.arch);
  const lib = join(libDir, `libonnxruntime_providers_${name}.so`);
  return existsSync(lib) ? ' (library present)' : ` (libraries not installed: --ep ${name} will not start)`;
}

/** The model loads: its config, tokenizer and weight headers are there and agree (a 0-byte file does not). */
function modelState(dir: string): { ok: boolean; detail: string } {
  if (!existsSync(join(dir, 'config.json'))) return { ok: false, detail: 'missing: give --model or set SIEVE_MODEL' };
  try {
    const checkpoint = loadCheckpoint(dir);
    checkpoint.weights.close();
    const { config } = checkpoint;
    const vision =
      config.modelType === 'llava' ? `${config.vision.family} ${config.vision.imageSize} px` : config.modelType;
    return { ok: true, detail: `loads: ${vision} + ${config.text.numLayers}-layer decoder` };
  } catch (err) {
    return { ok: false, detail: `broken: ${err instanceof Error ? err.message : String(err)}` };
  }
}
