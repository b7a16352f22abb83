import { appendFileSync, mkdirSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import type { VlmPipeline } from '../engine/answer-pipeline.js';
import { fitFramesToContext } from '../engine/context-fit.js';
import type { SamplingOptions } from '../engine/sampling.js';
import type { PruneRequest } from '../engine/visual-query.js';
import type { Frame } from '../media/frame.js';
import { videoFrames } from '../media/sampler.js';
import type { WatchConfig } from './pipeline-config.js';

export interface FolderWatchOptions {
  generation: { maxNewTokens: number; sampling: SamplingOptions };
  prune: PruneRequest;
  modelName: string;
  log: (line: string) => void;
}

/** How often the folder is listed; a clip counts as complete once its size stayed the same for one look. */
const POLL_MS = 1000;

/**
 * A folder of clips: every new clip (once its size has settled, so a clip still being copied is not
 * read half-written) is answered against the standing questions, one JSON line per answer appended to
 * the output file. A clip that cannot be decoded gets one error line and the watch goes on.
 */
export class FolderWatch {
  private readonly done = new Set<string>();
  private readonly sizes = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private busy?: Promise<void>;
  private stopped = false;
  private first = true;

  constructor(
    private readonly config: WatchConfig,
    private readonly model: VlmPipeline,
    private readonly options: FolderWatchOptions,
  ) {}

  start(): void {
    this.options.log(`watching ${this.config.folder} for ${this.config.extensions.join(' ')} clips`);
    const tick = () => {
      if (this.stopped) return;
      this.busy = this.look().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, POLL_MS);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.busy;
  }

  private async look(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.config.folder)).filter((n) =>
        this.config.extensions.includes(extname(n).toLowerCase()),
      );
    } catch (err) {
      this.options.log(`cannot list ${this.config.folder}: ${(err as Error).message}`);
      return;
    }
    const first = this.first;
    this.first = false;
    for (const name of names.sort()) {
      if (this.stopped || this.done.has(name)) continue;
      if (first && !this.config.existing) {
        this.done.add(name);
        continue;
      }
      const file = join(this.config.folder, name);
      const size = await stat(file).then(
        (s) => s.size,
        () => -1,
      );
      const before = this.sizes.get(name);
      this.sizes.set(name, size);
      if (size <= 0 || size !== before) continue; // still being written: look again next time
      this.done.add(name);
      this.sizes.delete(name);
      await this.answer(file);
    }
  }

  private async answer(file: string): Promise<void> {
    const started = performance.now();
    const write = (record: Record<string, unknown>) => {
      mkdirSync(dirname(this.config.output), { recursive: true });
      appendFileSync(
        this.config.output,
        `${JSON.stringify({ at: new Date().toISOString(), clip: basename(file), ...record })}\n`,
      );
    };
    let frames: Frame[];
    try {
      const longest = this.config.questions.reduce((a, b) => (a.length >= b.length ? a : b));
      const fit = fitFramesToContext(
        this.model.checkpoint,
        longest,
        this.config.frames,
        this.options.generation.maxNewTokens,
        (k) => Array.from({ length: k }, (_, i) => i),
      );
      frames = await lastValueFrom(videoFrames(file, { frames: fit.frames }).pipe(toArray()));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.options.log(`${basename(file)}: ${message}`);
      for (const question of this.config.questions) write({ question, error: message });
      return;
    }
    for (const question of this.config.questions) {
      try {
        const a = await this.model.answer(frames, question, { ...this.options.generation, prune: this.options.prune });
        write({
          question,
          answer: a.answer,
          frames: a.frames.map((f) => ({ t: Math.round(f.timestampS * 1000) / 1000 })),
          method: this.options.prune.method,
          budget: this.options.prune.budget,
          tokens: { prompt: a.promptTokens, generated: a.generatedTokens, visual_input: a.visualTokens.input },
          model: this.options.modelName,
        });
        this.options.log(`${basename(file)}: ${question} → ${a.answer}`);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        write({ question, error: message });
        this.options.log(`${basename(file)}: "${question}" failed: ${message}`);
      }
    }
    this.options.log(`${basename(file)} answered in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}
