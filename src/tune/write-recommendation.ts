import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isMap, isScalar, parseDocument } from 'yaml';
import { UsageError } from '../errors.js';
import type { TuneRun } from './tune-table.js';

/**
 * Puts the recommended method and budget into a YAML file, keeping its comments and other keys: a
 * pipeline file (it has `cameras`) gets them in every camera's `pruning`, a config file in `pruning`;
 * a file that does not exist becomes a config file with just that. Returns what was set.
 */
export function writeRecommendation(file: string, run: TuneRun): string[] {
  const doc = parseDocument(existsSync(file) ? readFileSync(file, 'utf8') : '');
  if (doc.errors.length) {
    throw new UsageError(`${file} is not valid YAML: ${doc.errors[0].message}`, 'fix the file, or --write a new one');
  }
  const cameras = doc.get('cameras');
  const paths: (string | number)[][] = isMap(cameras)
    ? cameras.items.map((item) => ['cameras', String(isScalar(item.key) ? item.key.value : item.key), 'pruning'])
    : [['pruning']];
  for (const path of paths) {
    doc.setIn([...path, 'method'], run.method);
    if (run.method === 'none') doc.deleteIn([...path, 'budget']);
    else doc.setIn([...path, 'budget'], run.budget);
  }
  writeFileSync(file, doc.toString());
  return paths.map((p) => p.join('.'));
}
