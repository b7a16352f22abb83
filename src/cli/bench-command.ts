import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { createSession, type RuntimeOptions, tensor } from '../engine/ort-session.js';
import { prepareModel } from '../engine/prepare-model.js';
import { VlmRunner } from '../engine/vlm-runner.js';
import { SieveError } from '../errors.js';
import { writeRandomCheckpoint } from '../model/random-checkpoint.js';
import type { TextConfig } from '../model/vlm-config.js';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { WEIGHT_DTYPES, type WeightDtype } from '../onnx/layers.js';
import { writeModel } from '../onnx/model-writer.js';
import { registerBenchDecodeCommand } from './bench-decode-command.js';
import { decodeByDtype } from './bench-dtype-decode.js';
import { registerBenchLoadCommand } from './bench-load-command.js';
import { registerBenchPruneCommand } from './bench-prune-command.js';
import { addBenchOutOption, writeBenchResult } from './bench-results.js';
import { registerBenchStreamCommands } from './bench-stream-command.js';
import { registerBenchVisionCommand } from './bench-vision-command.js';
import { formatBytes, parseChoice, parseInteger, parseNumber } from './cli-output.js';

/** Qwen2-0.5B's language model shape (the vocabulary is configurable to keep the files small). */
const QWEN2_05B = { hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, intermediateSize: 4864 };

interface LlmBenchOptions {
  /** Weight dtypes whose decode is timed side by side (none: skipped). */
  dtypes: WeightDtype[];
  promptTokens: number;
  contexts: number[];
  decodeSteps: number;
  vocab: number;
  threads: number;
  /** Decode time at the longest context over that at the shortest above which the bench fails. */
  maxGrowth: number;
  keep?: boolean;
  /** Folder for the results JSON. */
  out: string;
}

/**
 * FLOPs of a prefill of `s` tokens (a multiply-add counts 2): the projections and the MLP, causal
 * attention — QKᵀ and PV, 2·hd each per head and query–key pair (s(s+1)/2 pairs) — and the LM head on
 * the last row.
 */
export function prefillFlops(t: TextConfig, s: number): number {
  const d = t.hiddenSize;
  const qkvo = 2 * d * (t.numHeads * t.headDim) + 2 * d * (t.numKvHeads * t.headDim);
  const mlp = 3 * d * t.intermediateSize;
  const attention = 4 * t.numHeads * t.headDim * ((s * (s + 1)) / 2);
  return t.numLayers * (2 * s * (qkvo + mlp) + attention) + 2 * d * t.vocabSize;
}

/** Positions the random model needs for a prefill of `promptTokens` and decodes of `decodeSteps` at each context. */
export function benchPositions(promptTokens: number, contexts: readonly number[], decodeSteps: number): number {
  return Math.max(promptTokens, ...contexts) + decodeSteps + 2;
}

export interface DecodeTiming {
  context: number;
  msPerToken: number;
  cpuMsPerToken: number;
}

/** Time per token at the longest context over that at the shortest (timings sorted by context). */
export function decodeGrowth(decode: readonly DecodeTiming[], measure: 'msPerToken' | 'cpuMsPerToken'): number {
  return decode[decode.length - 1][measure] / decode[0][measure];
}

/** Fails the bench, after its results are written, when decode grows with the context past `maxGrowth`. */
export function checkDecodeGrowth(decode: readonly DecodeTiming[], maxGrowth: number): void {
  const growth = decodeGrowth(decode, 'msPerToken');
  if (growth <= maxGrowth) return;
  const [shortest, longest] = [decode[0].context, decode[decode.length - 1].context];
  throw new SieveError(
    `decode at ${longest} tokens of context took ×${growth.toFixed(2)} the time at ${shortest}, ` +
      `above the bound ×${maxGrowth}`,
    'a decode step should cost about the same at any context (reading the KV cache takes a few ms); if the ' +
      `CPU-time ratio (×${decodeGrowth(decode, 'cpuMsPerToken').toFixed(2)}) is within the bound, other work on ` +
      'the machine skewed the wall times: rerun on a quiet machine',
  );
}

async function matmulRate(dir: string, runtime: RuntimeOptions, m: number, k: number, n: number): Promise<number> {
  const g = new GraphBuilder('matmul');
  const a = g.input('a', 'float32', [m, k]);
  const w = new Float32Array(k * n).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
  g.output(g.op('MatMul', [a, g.weight('b', 'float32', [k, n], () => w)]), 'c', 'float32', [m, n]);
  const path = join(dir, 'matmul.onnx');
  writeModel(g, path);
  const session = await createSession(path, runtime);
  const input = { a: tensor.f32(new Float32Array(m * k).fill(0.01), [m, k]) };
  await session.run(input);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await session.run(input);
    times.push(performance.now() - t0);
  }
  await session.release();
  return (2 * m * k * n) / (Math.min(...times) / 1000) / 1e9;
}

async function benchLlm(opts: LlmBenchOptions): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'sieve-bench-'));
  const runtime: RuntimeOptions = { ep: 'cpu', threads: opts.threads };
  const log = (s: string) => process.stderr.write(`${s}\n`);
  try {
    log(`writing a random checkpoint of Qwen2-0.5B's shape (vocab ${opts.vocab}) to ${work}`);
    const ckptDir = join(work, 'checkpoint');
    writeRandomCheckpoint(ckptDir, {
      vision: {
        family: 'siglip',
        hiddenSize: 64,
        intermediateSize: 128,
        numLayers: 2,
        numHeads: 4,
        imageSize: 32,
        patchSize: 8,
      },
      text: {
        family: 'qwen2',
        ...QWEN2_05B,
        vocabSize: opts.vocab,
        // Sized to what is asked: a context past max_position_embeddings has no rotary table entry.
        maxPositions: Math.max(4096, benchPositions(opts.promptTokens, opts.contexts, opts.decodeSteps)),
      },
      seed: 7,
    });
    log('building graphs');
    const prepared = await prepareModel(ckptDir, { graphDir: join(work, 'graphs') });
    prepared.checkpoint.weights.close();
    const text = prepared.manifest.config.text;
    const runner = await VlmRunner.open(prepared.graphDir, prepared.manifest, runtime);
    const d = text.hiddenSize;
    const randomHidden = (rows: number) => new Float32Array(rows * d).map(() => Math.random() * 0.2 - 0.1);
    const positions = (rows: number) => Array.from({ length: rows }, (_, i) => i);

    const maxContext = Math.max(...opts.contexts);
    log(`matmul reference (${opts.promptTokens}×${d} · ${d}×${text.intermediateSize})`);
    const matmulGflops = await matmulRate(work, runtime, opts.promptTokens, d, text.intermediateSize);

    log(`prefill of ${opts.promptTokens} tokens`);
    const prefillMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const h = randomHidden(opts.promptTokens);
      const t0 = performance.now();
      await runner.prefill(h, positions(opts.promptTokens), 1);
      prefillMs.push(performance.now() - t0);
    }
    const bestPrefill = Math.min(...prefillMs);
    const prefillGflops = prefillFlops(text, opts.promptTokens) / (bestPrefill / 1000) / 1e9;

    // Two passes over the contexts, the first untimed: the first run at a new, larger context pays for
    // ONNX Runtime growing its buffers (up to ×1.5 on the largest context), which is not the steady state.
    // CPU time beside wall time: on a machine shared with other work it is the steadier of the two.
    const decode: DecodeTiming[] = [];
    const contexts = [...opts.contexts].sort((a, b) => a - b);
    for (const timed of [false, true]) {
      for (const context of contexts) {
        log(`decode at ${context} tokens of context${timed ? '' : ' (warm-up pass)'}`);
        await runner.prefill(randomHidden(context), positions(context), opts.decodeSteps + 1);
        await runner.decode(1, context);
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        for (let s = 1; s <= opts.decodeSteps; s++) await runner.decode(1 + s, context + s);
        const cpu = process.cpuUsage(cpu0);
        const msPerToken = (performance.now() - t0) / opts.decodeSteps;
        if (timed)
          decode.push({ context, msPerToken, cpuMsPerToken: (cpu.user + cpu.system) / 1000 / opts.decodeSteps });
      }
    }
    await runner.release();
    const byDtype = opts.dtypes.length
      ? await decodeByDtype(ckptDir, work, runtime, opts.dtypes, {
          context: contexts[0],
          steps: opts.decodeSteps,
          log,
        })
      : [];
    const flat = decodeGrowth(decode, 'msPerToken');
    const flatCpu = decodeGrowth(decode, 'cpuMsPerToken');
    const peakRss = process.resourceUsage().maxRSS * 1024;

    const result = {
      model: { shape: 'Qwen2-0.5B', ...QWEN2_05B, vocab: opts.vocab },
      threads: opts.threads || 'auto',
      matmulGflops,
      prefill: {
        tokens: opts.promptTokens,
        ms: bestPrefill,
        tokensPerS: opts.promptTokens / (bestPrefill / 1000),
        gflops: prefillGflops,
        ofMatmul: prefillGflops / matmulGflops,
      },
      decode: decode.map((x) => ({ ...x, tokensPerS: 1000 / x.msPerToken })),
      decodeRatioLongestToShortest: flat,
      decodeCpuRatioLongestToShortest: flatCpu,
      maxGrowth: opts.maxGrowth,
      decodeByDtype: byDtype,
      peakRssBytes: peakRss,
      maxContext,
    };
    const file = writeBenchResult(opts.out, 'llm', result);

    const shape = `${opts.promptTokens}×${d}·${d}×${text.intermediateSize}`;
    console.log(`MatMul ${shape}: ${matmulGflops.toFixed(1)} GFLOP/s`);
    console.log(
      `prefill ${opts.promptTokens} tokens: ${bestPrefill.toFixed(0)} ms, ` +
        `${result.prefill.tokensPerS.toFixed(1)} tokens/s, ${prefillGflops.toFixed(1)} GFLOP/s = ` +
        `${(100 * result.prefill.ofMatmul).toFixed(0)}% of the MatMul rate`,
    );
    for (const x of result.decode)
      console.log(
        `decode at ${x.context} tokens: ${x.msPerToken.toFixed(1)} ms/token (${x.tokensPerS.toFixed(1)} tokens/s), ` +
          `CPU ${x.cpuMsPerToken.toFixed(1)} ms/token`,
      );
    const [shortest, longest] = [decode[0].context, decode[decode.length - 1].context];
    console.log(
      `decode time ${longest} vs ${shortest} tokens of context: ×${flat.toFixed(2)} (CPU time ×${flatCpu.toFixed(2)}), ` +
        `bound ×${opts.maxGrowth}`,
    );
    for (const x of byDtype)
      console.log(
        `decode ${x.dtype.padEnd(4)} at ${contexts[0]} tokens: ${x.msPerToken.toFixed(1)} ms/token ` +
          `(CPU ${x.cpuMsPerToken.toFixed(1)}), ${formatBytes(x.weightBytesPerToken)} of weights read per token, ` +
          `${x.gbPerS.toFixed(2)} GB/s`,
      );
    console.log(`peak RSS ${formatBytes(peakRss)}; results in ${file}`);
    checkDecodeGrowth(decode, opts.maxGrowth);
  } finally {
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  }
}

export function registerBenchCommand(program: Command): void {
  const bench = program.command('bench').description('measure speed and memory (benchmarks, not tests)');
  addBenchOutOption(
    bench
      .command('llm')
      .description("prefill and decode speed of a random LLM of Qwen2-0.5B's shape, next to a large MatMul's GFLOP/s"),
  )
    .option('--prompt-tokens <n>', 'prefill length', '1500')
    .option('--contexts <list>', 'contexts for decode timing', '500,1000,2000')
    .option('--decode-steps <n>', 'decode steps timed per context', '16')
    .option('--vocab <n>', 'vocabulary size (Qwen2 has 151936)', '151936')
    .option('--threads <n>', 'intra-op threads (0 = ONNX Runtime default)', '0')
    .option(
      '--max-growth <ratio>',
      'fail when decode at the longest context takes more than this × the shortest',
      '1.2',
    )
    .option('--dtypes <list>', 'also time decode per weight dtype side by side, e.g. fp32,int8,int4')
    .option('--keep', 'keep the generated checkpoint and graphs')
    .action(async (o: Record<string, string | boolean>) => {
      await benchLlm({
        dtypes: o.dtypes
          ? String(o.dtypes)
              .split(',')
              .map((d) => parseChoice(d.trim(), '--dtypes', WEIGHT_DTYPES))
          : [],
        promptTokens: parseInteger(String(o.promptTokens), '--prompt-tokens', 1),
        contexts: String(o.contexts)
          .split(',')
          .map((c) => parseInteger(c, '--contexts', 1)),
        decodeSteps: parseInteger(String(o.decodeSteps), '--decode-steps', 1),
        vocab: parseInteger(String(o.vocab), '--vocab', 8),
        threads: parseInteger(String(o.threads), '--threads', 0),
        maxGrowth: parseNumber(String(o.maxGrowth), '--max-growth', 1, 100),
        keep: Boolean(o.keep),
        out: String(o.out),
      });
    });
  registerBenchPruneCommand(bench);
  registerBenchVisionCommand(bench);
  registerBenchDecodeCommand(bench);
  registerBenchStreamCommands(bench);
  registerBenchLoadCommand(bench);
}
