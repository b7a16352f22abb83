import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

/** One answer of one configuration, as the state file keeps it (one JSON line each). */
export interface TuneRecord {
  run: string;
  video: string;
  question: string;
  answer?: string;
  error?: string;
  firstTokenMs?: number;
  prefillMs?: number;
  kvBytes?: number;
  visualTokens?: number;
}

/** What the answers depend on: a state file written under other settings is not resumed. */
export interface TuneSettings {
  model: string;
  frames: number;
  maxNewTokens: number;
  dtype: string;
  visionDtype?: string;
  quantBlock?: number;
}

export const runKey = (method: string, budget: number): string => `${method}@${budget}`;
export const itemKey = (r: Pick<TuneRecord, 'run' | 'video' | 'question'>): string =>
  `${r.run}\u0000${r.video}\u0000${r.question}`;

/**
 * The answers found so far, appended one line at a time so an interrupted run resumes where it stopped.
 * The first line holds the settings.
 */
export class TuneState {
  readonly records = new Map<string, TuneRecord>();

  constructor(
    readonly file: string,
    settings: TuneSettings,
  ) {
    if (!existsSync(file)) {
      appendFileSync(file, `${JSON.stringify({ settings })}\n`);
      return;
    }
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    let saved: TuneSettings | undefined;
    try {
      saved = (JSON.parse(lines[0] ?? '{}') as { settings?: TuneSettings }).settings;
    } catch {
      saved = undefined;
    }
    if (!saved || JSON.stringify(saved) !== JSON.stringify(settings)) {
      throw new UsageError(
        `${file} holds a tuning run with other settings (${JSON.stringify(saved ?? null)})`,
        'give another --out folder, or --restart to start this one over',
      );
    }
    for (const line of lines.slice(1)) {
      try {
        const r = JSON.parse(line) as TuneRecord;
        this.records.set(itemKey(r), r);
      } catch {
        // A line cut short by an interrupted write: that answer is simply asked again.
      }
    }
  }

  has(r: Pick<TuneRecord, 'run' | 'video' | 'question'>): boolean {
    return this.records.has(itemKey(r));
  }

  add(r: TuneRecord): void {
    this.records.set(itemKey(r), r);
    appendFileSync(this.file, `${JSON.stringify(r)}\n`);
  }
}
