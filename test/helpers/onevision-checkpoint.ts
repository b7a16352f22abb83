import { writeRandomOnevisionCheckpoint } from '../../src/model/random-onevision-checkpoint.js';
import { tempDir } from './fixtures.js';

/**
 * A small random llava_onevision checkpoint in a fresh folder: SigLIP tiles of 48 px / patch 4 (12×12
 * patches, 6×6 tokens per video frame after pooling, pinpoints up to 3×3 tiles) + a 6-layer Qwen2 with GQA.
 */
export function tinyOnevisionCheckpoint(seed = 1): string {
  const dir = tempDir('ckpt-onevision');
  writeRandomOnevisionCheckpoint(dir, {
    vision: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, imageSize: 48, patchSize: 4 },
    text: { hiddenSize: 64, intermediateSize: 128, numLayers: 6, numHeads: 4, numKvHeads: 2, vocabSize: 128 },
    seed,
  });
  return dir;
}
