"""Writes the trained model as a Hugging Face llava checkpoint, plus golden outputs for the engine."""
import base64
import copy
import json
import os
import shutil
import subprocess

import numpy as np
import torch

import data as D
from vlm import Llava, causal_mask, load_safetensors, save_safetensors

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FIXTURE = os.path.join(REPO, 'test', 'fixtures', 'hf-reference', 'llava-tiny-clip-llama', 'config.json')


def hf_config(cfg, vocab):
    """config.json with the keys transformers 4.46 writes (the reference fixture's), our values."""
    out = json.load(open(FIXTURE))
    vc, tc = cfg['vision_config'], cfg['text_config']
    out['vision_config'].update(
        hidden_size=vc['hidden_size'], intermediate_size=vc['intermediate_size'], num_hidden_layers=vc['num_hidden_layers'],
        num_attention_heads=vc['num_attention_heads'], image_size=vc['image_size'], patch_size=vc['patch_size'],
        hidden_act=vc['hidden_act'], layer_norm_eps=vc['layer_norm_eps'], projection_dim=vc['hidden_size'])
    out['text_config'].update(
        hidden_size=tc['hidden_size'], intermediate_size=tc['intermediate_size'], num_hidden_layers=tc['num_hidden_layers'],
        num_attention_heads=tc['num_attention_heads'], num_key_value_heads=tc['num_key_value_heads'],
        head_dim=tc['head_dim'], rms_norm_eps=tc['rms_norm_eps'], rope_theta=tc['rope_theta'], vocab_size=tc['vocab_size'],
        max_position_embeddings=tc['max_position_embeddings'], bos_token_id=vocab.bos, eos_token_id=vocab.eos,
        pad_token_id=vocab.pad, tie_word_embeddings=False)
    out['image_token_index'] = vocab.image
    out['image_seq_length'] = (vc['image_size'] // vc['patch_size']) ** 2
    out['projector_hidden_act'] = cfg['projector_hidden_act']
    out['vision_feature_layer'] = cfg['vision_feature_layer']
    out['vision_feature_select_strategy'] = cfg['vision_feature_select_strategy']
    out['pad_token_id'] = vocab.pad
    out['tie_word_embeddings'] = False
    return out


def preprocessor_config(image_size, mean, std):
    return {
        'crop_size': {'height': image_size, 'width': image_size},
        'do_center_crop': True,
        'do_convert_rgb': True,
        'do_normalize': True,
        'do_rescale': True,
        'do_resize': True,
        'image_mean': mean,
        'image_processor_type': 'CLIPImageProcessor',
        'image_std': std,
        'processor_class': 'LlavaProcessor',
        'resample': 3,
        'rescale_factor': 1 / 255,
        'size': {'shortest_edge': image_size},
    }


def last_logits(model, vocab, frames_u8, question, mean, std):
    """fp32 forward of one prompt exactly as the engine builds it; logits at the last position."""
    return last_logits_ext(model, vocab, frames_u8, question, [], mean, std)


def greedy(model, vocab, frames_u8, question, mean, std, max_new=4):
    out = []
    for _ in range(max_new):
        _, _, logits = last_logits_ext(model, vocab, frames_u8, question, out, mean, std)
        nxt = int(logits.argmax())
        if nxt == vocab.eos:
            break
        out.append(nxt)
    return ' '.join(vocab.words[i] for i in out)


def last_logits_ext(model, vocab, frames_u8, question, answer_ids, mean, std):
    n = frames_u8.shape[0]
    tpi = (model.cfg['vision_config']['image_size'] // model.cfg['vision_config']['patch_size']) ** 2
    ids = D.prompt_ids(vocab, question, n, tpi) + list(answer_ids)
    x = torch.from_numpy(frames_u8.copy()).permute(0, 3, 1, 2).float() / 255.0
    px = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = model.image_features(px).reshape(1, -1, model.cfg['text_config']['hidden_size'])
        t = len(ids)
        h = model.forward_embeds(torch.tensor([ids]), feats, torch.arange(t)[None], causal_mask(t))
        return ids, px, model.logits(h[0, -1]).float()


def export(model, cfg, vocab, tok_dir, out, val, packer, evaluate, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
           examples_dir=None):
    mean, std = list(mean), list(std)
    os.makedirs(out, exist_ok=True)
    hf = hf_config(cfg, vocab)
    json.dump(hf, open(os.path.join(out, 'config.json'), 'w'), indent=2, sort_keys=True)
    json.dump({'_from_model_config': True, 'bos_token_id': vocab.bos, 'eos_token_id': vocab.eos, 'pad_token_id': vocab.pad,
               'transformers_version': '4.46.1'}, open(os.path.join(out, 'generation_config.json'), 'w'), indent=2)
    sd = {k: v for k, v in model.state_dict().items()}
    save_safetensors(sd, os.path.join(out, 'model.safetensors'))
    for f in ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.json'):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out, f))
    vc = cfg['vision_config']
    json.dump(preprocessor_config(vc['image_size'], mean, std), open(os.path.join(out, 'preprocessor_config.json'), 'w'), indent=2)
    json.dump({'image_token': '<image>', 'num_additional_image_tokens': 1, 'patch_size': vc['patch_size'],
               'processor_class': 'LlavaProcessor', 'vision_feature_select_strategy': 'default'},
              open(os.path.join(out, 'processor_config.json'), 'w'), indent=2)

    # Reload what was written (fp32) and check it reproduces the trained model.
    fresh = Llava(copy.deepcopy(cfg))
    missing = fresh.load_state_dict(load_safetensors(os.path.join(out, 'model.safetensors')), strict=True)
    fresh.eval()
    metrics = evaluate(fresh)
    print('exported model, val:', json.dumps(metrics), flush=True)

    # Golden outputs on the shipped example clips (test split), decoded as training decodes them.
    golden = {'note': 'fp32 PyTorch reference of the exported checkpoint (tools/train/export.py). input_ids are the '
                      'engine prompt (chat template, word-level tokenizer, <image> expanded to image_seq_length ids). '
                      'frames_rgb_base64: the decoded clip (uint8 HWC per frame, frame-major), so the check does not '
                      'depend on the ffmpeg build; pixel values = (rgb/255 - mean)/std, no resize (frames are 64x64).',
              'image_mean': mean, 'image_std': std, 'cases': []}
    if examples_dir and os.path.exists(os.path.join(examples_dir, 'test.jsonl')):
        recs = [json.loads(l) for l in open(os.path.join(examples_dir, 'test.jsonl'))]
        videos = sorted({r['video'] for r in recs})
        frames = {v: D.decode_many([os.path.join(examples_dir, v)], [8], 64) for v in videos}
        picked = []
        for v in videos:
            rs = [r for r in recs if r['video'] == v]
            picked += [rs[0], rs[5]] if len(rs) > 5 else rs[:1]
        for r in picked[:6]:
            f = frames[r['video']]
            ids, px, logits = last_logits(fresh, vocab, f, r['question'], mean, std)
            answer = greedy(fresh, vocab, f, r['question'], mean, std)
            golden['cases'].append({
                'video': os.path.relpath(os.path.join(examples_dir, r['video']), out), 'question': r['question'],
                'expected_answer': r['answer'], 'type': r['type'], 'model_answer': answer, 'input_ids': ids,
                'frames_shape': list(f.shape), 'frames_rgb_base64': base64.b64encode(f.tobytes()).decode(),
                'last_logits': [round(float(x), 6) for x in logits], 'last_argmax': int(logits.argmax())})
        ex_results = []
        for r in recs:
            ans = greedy(fresh, vocab, frames[r['video']], r['question'], mean, std)
            ex_results.append(dict(r, model_answer=ans))
        with open(os.path.join(out, 'examples', 'answers.jsonl'), 'w') as fh:
            fh.writelines(json.dumps(x) + '\n' for x in ex_results)
    json.dump(golden, open(os.path.join(out, 'golden.json'), 'w'))
    json.dump(metrics, open(os.path.join(out, 'val_metrics.json'), 'w'), indent=2)
    size = os.path.getsize(os.path.join(out, 'model.safetensors'))
    print(f'model.safetensors: {size / 1e6:.2f} MB', flush=True)
    return metrics
