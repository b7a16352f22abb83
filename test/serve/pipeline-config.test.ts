// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests feed the literal ${VAR} syntax to the loader
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { loadPipeline } from '../../src/serve/pipeline-config.js';
import { REPO_ROOT, tempDir } from '../helpers/fixtures.js';

function pipelineFile(text: string): string {
  const file = join(tempDir('pipeline'), 'p.yaml');
  writeFileSync(file, text);
  return file;
}

describe('pipeline files', () => {
  it('the shipped pipelines load as they are', () => {
    for (const name of ['demo', 'camera-daemon', 'file-watch']) {
      const p = loadPipeline(join(REPO_ROOT, 'pipelines', `${name}.yaml`), {});
      assert.ok(Object.keys(p.cameras).length > 0 || p.watch, name);
    }
    const demo = loadPipeline(join(REPO_ROOT, 'pipelines', 'demo.yaml'), {});
    const source = demo.cameras.demo.source;
    assert.equal(source.type, 'file');
    assert.equal(
      source.type === 'file' && source.path,
      join(REPO_ROOT, 'models/demo/examples/videos/test-2000000000.mp4'),
    );
    assert.equal(demo.model, join(REPO_ROOT, 'models', 'demo'));
  });

  it('defaults reach every camera and a camera overrides them key by key', () => {
    const p = loadPipeline(
      pipelineFile(`
defaults:
  sampling: { fps: 2 }
  window: { seconds: 20, max_frames: 8 }
  source: { stall_s: 4, reconnect: { max_s: 8 } }
cameras:
  a: { source: { type: rtsp, url: "rtsp://127.0.0.1:1/a" } }
  b:
    source: { type: rtsp, url: "rtsp://127.0.0.1:1/b", reconnect: { initial_s: 0.5 } }
    window: { seconds: 5 }
`),
      {},
    );
    assert.equal(p.cameras.a.sampling.fps, 2);
    assert.deepEqual(p.cameras.a.window, { seconds: 20, max_frames: 8 });
    assert.deepEqual(p.cameras.b.window, { seconds: 5, max_frames: 8 });
    assert.equal(p.cameras.b.source.stall_s, 4);
    assert.deepEqual(p.cameras.b.source.reconnect, { initial_s: 0.5, max_s: 8, jitter: 0.3 });
    assert.equal(p.cameras.a.source.type === 'rtsp' && p.cameras.a.source.transport, 'tcp');
  });

  it('${VAR} is substituted (numbers too); an unset variable without a default is named', () => {
    const file = pipelineFile(
      'cameras:\n  door:\n    source: { type: rtsp, url: "${URL}" }\n    sampling: { fps: "${FPS:-0.5}" }\n',
    );
    const p = loadPipeline(file, { URL: 'rtsp://cam.local/stream' });
    assert.equal(p.cameras.door.source.type === 'rtsp' && p.cameras.door.source.url, 'rtsp://cam.local/stream');
    assert.equal(p.cameras.door.sampling.fps, 0.5);
    assert.throws(() => loadPipeline(file, {}), /environment variable URL is not set/);
  });

  it('errors name the file, the key and what is wrong', () => {
    const cases: [string, RegExp][] = [
      [
        'cameras:\n  door:\n    source: { type: rtsp, url: "http://x" }\n',
        /p\.yaml: cameras\.door\.source\.url: .*rtsp:\/\//,
      ],
      ['cameras:\n  door:\n    source: { type: webcam }\n', /cameras\.door\.source\.type/],
      ['cameras:\n  door:\n    source: { type: file, path: a.mp4, speeed: 2 }\n', /cameras\.door\.source.*speeed/],
      [
        'cameras:\n  door:\n    source: { type: file, path: a.mp4 }\n    window: { seconds: -1 }\n',
        /cameras\.door\.window\.seconds/,
      ],
      [
        'cameras:\n  "front door":\n    source: { type: file, path: a.mp4 }\n',
        /cameras\.front door: a camera name is letters/,
      ],
      ['defaults:\n  colour: red\ncameras: {}\n', /defaults\.colour: not a camera key/],
      ['{}\n', /needs cameras, a watch folder, or http/],
      ['cameras: [a\n', /not valid YAML/],
      ['watch:\n  folder: in\n  output: out.jsonl\n  questions: []\n', /watch\.questions: give at least one question/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => loadPipeline(pipelineFile(text), {}),
        (e: Error) => e instanceof UsageError && message.test(e.message),
        text,
      );
    }
    assert.throws(() => loadPipeline('/no/such/pipeline.yaml', {}), /pipeline file .* does not exist/);
  });
});
