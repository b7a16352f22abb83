import { join } from 'node:path';
import type { RuntimeOptions } from '../engine/ort-session.js';
import { prepareModel } from '../engine/prepare-model.js';
import { VlmRunner } from '../engine/vlm-runner.js';
import type { WeightDtype } from '../onnx/layers.js';

export interface DtypeDecode {
  dtype: WeightDtype;
  msPerToken: number;
  cpuMsPerToken: number;
  /** Weight bytes a decode step reads: every decoder segment's graph (the LM head included), as loaded. */
  weightBytesPerToken: number;
  /** Those bytes over the step's time: how close decode runs to the memory-bandwidth bound. */
  gbPerS: number;
}

/**
 * Decode speed per weight dtype on one checkpoint, measured side by side: each dtype's graphs are
 * built, then the dtypes take turns (`rounds` rounds of `steps` steps at `context` tokens of context),
 * so a machine whose load changes affects them alike. The median round counts.
 */
export async function decodeByDtype(
  checkpointDir: string,
  work: string,
  runtime: RuntimeOptions,
  dtypes: readonly WeightDtype[],
  { context, steps, rounds = 3, log }: { context: number; steps: number; rounds?: number; log: (s: string) => void },
): Promise<DtypeDecode[]> {
  const runners: { dtype: WeightDtype; runner: VlmRunner; bytes: number }[] = [];
  try {
    for (const dtype of dtypes) {
      log(`building ${dtype} graphs`);
      const p = await prepareModel(checkpointDir, { dtype, graphDir: join(work, `graphs-${dtype}`) });
      p.checkpoint.weights.close();
      const stored = p.manifest.segments.reduce((a, s) => a + p.manifest.weightBytes[s.file], 0);
      // On the CPU EP ONNX Runtime folds fp16 weights' Cast at load: decode reads them as fp32.
      const bytes = dtype === 'fp16' ? 2 * stored : stored;
      runners.push({ dtype, runner: await VlmRunner.open(p.graphDir, p.manifest, runtime), bytes });
    }
    const d = runners[0].runner.config.text.hiddenSize;
    const hidden = new Float32Array(context * d).map(() => Math.random() * 0.2 - 0.1);
    const positions = Array.from({ length: context }, (_, i) => i);
    const samples = runners.map(() => [] as { ms: number; cpuMs: number }[]);
    for (let round = 0; round <= rounds; round++) {
      for (const [i, { dtype, runner }] of runners.entries()) {
        log(`decode ${dtype}, round ${round}${round === 0 ? ' (warm-up)' : ''}`);
        await runner.prefill(hidden, positions, steps + 1);
        await runner.decode(1, context);
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        for (let s = 1; s <= steps; s++) await runner.decode(1 + s, context + s);
        const cpu = process.cpuUsage(cpu0);
        if (round > 0)
          samples[i].push({ ms: (performance.now() - t0) / steps, cpuMs: (cpu.user + cpu.system) / 1000 / steps });
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    return runners.map(({ dtype, bytes }, i) => {
      const msPerToken = median(samples[i].map((x) => x.ms));
      return {
        dtype,
        msPerToken,
        cpuMsPerToken: median(samples[i].map((x) => x.cpuMs)),
        weightBytesPerToken: bytes,
        gbPerS: bytes / (msPerToken / 1000) / 1e9,
      };
    });
  } finally {
    await Promise.all(runners.map(({ runner }) => runner.release()));
  }
}
