import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** An array as the reference fixtures write it: flat row-major data with its shape. */
export interface Arr {
  shape: number[];
  data: number[];
}

/** What every family fixture's `reference_<case>.json` holds (test/fixtures/hf-reference/README.md). */
export interface FamilyReference {
  vision_features: Arr;
  image_features: Arr;
  inserted_positions: number[];
  inserted_features: Arr;
  hidden_states_last_pos: Arr;
  last_logits: number[];
  greedy_tokens: number[];
  greedy_step_max_logit: number[];
}

/** A JSON file of a fixture folder. */
export const readFixtureJson = <T>(dir: string, file: string): T =>
  JSON.parse(readFileSync(join(dir, file), 'utf8')) as T;
