import type { Command } from 'commander';
import { prepareModel } from '../engine/prepare-model.js';
import { UsageError } from '../errors.js';
import { VISION_DTYPES, WEIGHT_DTYPES } from '../onnx/layers.js';
import { formatBytes, parseChoice, parseInteger, progressReporter } from './cli-output.js';

export function parseBoundaries(value: string): number[] {
  if (value.trim() === '') return [];
  return value.split(',').map((v) => parseInteger(v, '--boundaries', 1));
}

interface ConvertFlags {
  out?: string;
  dtype: string;
  visionDtype?: string;
  quantBlock: string;
  boundaries?: string;
  force?: boolean;
}

export function registerConvertCommand(program: Command): void {
  program
    .command('convert')
    .description(
      'build the ONNX graphs of a Hugging Face llava checkpoint (vision, projector, embeddings, decoder segments)',
    )
    .argument('<checkpoint>', 'checkpoint folder (config.json, *.safetensors, tokenizer files)')
    .option('--out <dir>', 'where to write the graphs (default: <checkpoint>/.sieve/<variant>)')
    .option(
      '--dtype <dtype>',
      'weight storage: fp32; fp16 (half the files; computed in fp32 on CPU); int8 or int4 (decoder and LM head ' +
        'MatMuls block-quantised, MatMulNBits, block 32; the rest fp16)',
      'fp32',
    )
    .option('--quant-block <n>', 'weights per MatMulNBits block with int8/int4: 16, 32, 64, 128, 256', '32')
    .option('--vision-dtype <dtype>', 'vision graphs: fp32, fp16 or int8 (default: as --dtype; int8 with int8/int4)')
    .option('--boundaries <layers>', 'decoder segment boundaries, e.g. 2,22 (default: 2 and round(0.69·layers))')
    .option('--force', 'rebuild even when cached graphs match the checkpoint')
    .action(async (checkpoint: string, opts: ConvertFlags) => {
      const dtype = parseChoice(opts.dtype, '--dtype', WEIGHT_DTYPES);
      const visionDtype =
        opts.visionDtype === undefined ? undefined : parseChoice(opts.visionDtype, '--vision-dtype', VISION_DTYPES);
      if (opts.boundaries !== undefined && opts.boundaries.trim() === '')
        throw new UsageError('--boundaries needs at least one layer, e.g. 2,22');
      const progress = progressReporter('convert');
      const started = performance.now();
      const prepared = await prepareModel(checkpoint, {
        dtype,
        visionDtype,
        quantBlock: parseInteger(opts.quantBlock, '--quant-block', 16, 256),
        graphDir: opts.out,
        boundaries: opts.boundaries === undefined ? undefined : parseBoundaries(opts.boundaries),
        force: opts.force,
        onProgress: (e) => progress.update(e.done, e.total, `${e.graph} (graph ${e.graphIndex + 1}/${e.graphCount})`),
      });
      progress.stop();
      prepared.checkpoint.weights.close();
      const m = prepared.manifest;
      const bytes = Object.values(m.weightBytes).reduce((a, b) => a + b, 0);
      const segments = m.segments.map((s) => `[${s.start}, ${s.end})`).join(' ');
      process.stderr.write(
        `${prepared.converted ? 'built' : 'reused cached'} graphs in ${prepared.graphDir}\n` +
          `  dtype ${m.dtype} (vision ${m.visionDtype}), decoder segments ${segments}, weights ${formatBytes(bytes)}, ` +
          `${((performance.now() - started) / 1000).toFixed(1)} s\n`,
      );
      process.stdout.write(`${prepared.graphDir}\n`);
    });
}
