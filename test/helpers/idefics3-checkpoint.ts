import { writeRandomIdefics3Checkpoint } from '../../src/model/random-idefics3-checkpoint.js';
import { tempDir } from './fixtures.js';

/**
 * A small random SmolVLM2 checkpoint in a fresh folder: 32-px frames, patch 4 (8×8 patches), pixel shuffle ×2,
 * so 4×4 = 16 tokens per frame; a 4-layer Llama with GQA.
 */
export function tinyIdefics3Checkpoint(seed = 1): string {
  const dir = tempDir('smolvlm');
  writeRandomIdefics3Checkpoint(dir, {
    vision: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, imageSize: 32, patchSize: 4 },
    scaleFactor: 2,
    text: { hiddenSize: 64, intermediateSize: 128, numLayers: 4, numHeads: 4, numKvHeads: 2, maxPositions: 2048 },
    seed,
  });
  return dir;
}
