"""Training data: the generator's MP4s decoded with ffmpeg (what the engine sees), the object-id maps
it wrote with --labels, its scenes and questions; the prompt exactly as the engine builds it."""
import json
import os
import re
import subprocess

import numpy as np
import torch

COLOURS = ['red', 'green', 'blue', 'yellow', 'white', 'purple']
SHAPES = ['square', 'circle', 'triangle', 'dot']
MOTIONS = ['static', 'left', 'right', 'up', 'down']
QUESTION_TYPES = ['colour', 'shape', 'position', 'count', 'order', 'direction', 'exists', 'small']

SPECIAL_RE = r'<pad>|<s>|</s>|<unk>|<image>'
# Hugging Face's Whitespace pre-tokenizer splits on \w+|[^\w\s]+ (added tokens are split out first).
TOKEN_RE = re.compile(SPECIAL_RE + r'|\w+|[^\w\s]+')


class Vocab:
    def __init__(self, tokenizer_json):
        tok = json.load(open(tokenizer_json))
        self.ids = tok['model']['vocab']
        self.words = {i: w for w, i in self.ids.items()}
        self.unk = self.ids['<unk>']
        self.image = self.ids['<image>']
        self.bos = self.ids['<s>']
        self.eos = self.ids['</s>']
        self.pad = self.ids['<pad>']

    def __len__(self):
        return len(self.ids)

    def encode(self, text):
        return [self.ids.get(t, self.unk) for t in TOKEN_RE.findall(text)]


def prompt_prefix_text(n_frames):
    """The chat template's rendering up to the question (see tools/train/write-tokenizer.ts)."""
    return '<s>user :' + ''.join(f' frame {i + 1} <image>' for i in range(n_frames))


def prompt_text(question, n_frames):
    return prompt_prefix_text(n_frames) + f' {question}' + ' assistant :'


def prompt_ids(vocab, question, n_frames, tokens_per_image):
    ids = vocab.encode(prompt_text(question, n_frames))
    out = []
    for i in ids:
        out.extend([i] * tokens_per_image if i == vocab.image else [i])
    return out


def decode_video(path, width=64, height=64):
    raw = subprocess.run(['ffmpeg', '-v', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def decode_many(paths, counts, size, out_size=64, chunk=500):
    """Decodes many clips of one frame size with few ffmpeg processes (concat demuxer, every frame passed
    through; byte-identical to decoding each file on its own). Clips of another size than out_size are
    resized as the engine's processor does (bicubic to out_size²). Returns uint8 [sum(counts), H, W, 3]."""
    out = []
    scale = [] if size == out_size else ['-vf', f'scale={out_size}:{out_size}:flags=bicubic']
    for s in range(0, len(paths), chunk):
        lst = os.path.join(os.path.dirname(paths[0]), f'.concat-{os.getpid()}.txt')
        with open(lst, 'w') as f:
            f.writelines(f"file '{os.path.abspath(p)}'\n" for p in paths[s:s + chunk])
        raw = subprocess.run(['ffmpeg', '-v', 'error', '-f', 'concat', '-safe', '0', '-i', lst, '-fps_mode', 'passthrough',
                              *scale, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], check=True, capture_output=True).stdout
        os.remove(lst)
        a = np.frombuffer(raw, dtype=np.uint8)
        n = sum(counts[s:s + chunk])
        if a.size != n * out_size * out_size * 3:
            raise RuntimeError(f'decoded {a.size} bytes, expected {n} frames of {out_size}x{out_size}')
        out.append(a.reshape(n, out_size, out_size, 3))
    return np.concatenate(out)


def resize_ids(ids, out_size=64):
    """Nearest-neighbour resize of id maps [F, S, S] to out_size²."""
    size = ids.shape[-1]
    if size == out_size:
        return ids
    idx = np.minimum(((np.arange(out_size) + 0.5) * size / out_size).astype(np.int64), size - 1)
    return ids[:, idx][:, :, idx]


def load_split(split_dir, split, cache_dir):
    """Returns dict(frames uint8 [total frames,64,64,3], ids uint8 [total frames,64,64], offsets/counts [N]
    (clip i's frames are frames[offsets[i]:offsets[i]+counts[i]]), obj_* int [N,8] (index = object id;
    0 = background), questions: list of (clip, question, answer, type))."""
    os.makedirs(cache_dir, exist_ok=True)
    cache = os.path.join(cache_dir, os.path.basename(os.path.normpath(split_dir)) + '.npz')
    scenes = [json.loads(l) for l in open(os.path.join(split_dir, f'{split}.scenes.jsonl'))]
    seed_to_clip = {s['seed']: i for i, s in enumerate(scenes)}
    qs = [json.loads(l) for l in open(os.path.join(split_dir, f'{split}.jsonl'))]
    questions = [(seed_to_clip[q['seed']], q['question'], q['answer'], q['type']) for q in qs]
    counts = np.array([s['frames'] for s in scenes], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if os.path.exists(cache):
        z = np.load(cache)
        frames, ids = z['frames'], z['ids']
    else:
        frames = np.zeros((counts.sum(), 64, 64, 3), np.uint8)
        ids = np.zeros((counts.sum(), 64, 64), np.uint8)
        for size in sorted({s['width'] for s in scenes}):
            group = [i for i, s in enumerate(scenes) if s['width'] == size]
            dec = decode_many([os.path.join(split_dir, 'videos', f"{split}-{scenes[i]['seed']}.mp4") for i in group],
                              [int(counts[i]) for i in group], size)
            k = 0
            for i in group:
                frames[offsets[i]:offsets[i] + counts[i]] = dec[k:k + counts[i]]
                k += counts[i]
        for i, s in enumerate(scenes):
            m = np.fromfile(os.path.join(split_dir, 'labels', f"{split}-{s['seed']}.ids"), dtype=np.uint8)
            ids[offsets[i]:offsets[i] + counts[i]] = resize_ids(m.reshape(-1, s['height'], s['width']))
        np.savez(cache, frames=frames, ids=ids)
    obj_colour = np.zeros((len(scenes), 8), np.int64)
    obj_shape = np.zeros((len(scenes), 8), np.int64)
    obj_motion = np.zeros((len(scenes), 8), np.int64)  # 0 background, 1 static, 2..5 left right up down
    obj_start = np.zeros((len(scenes), 8), np.int64)
    for i, s in enumerate(scenes):
        for o in s['objects']:
            obj_colour[i, o['id']] = COLOURS.index(o['colour']) + 1
            obj_shape[i, o['id']] = SHAPES.index(o['shape']) + 1
            obj_motion[i, o['id']] = MOTIONS.index(o['motion']) + 1
            obj_start[i, o['id']] = o['start']
    return dict(frames=frames, ids=ids, offsets=offsets, counts=counts, obj_colour=obj_colour, obj_shape=obj_shape,
                obj_motion=obj_motion, obj_start=obj_start, questions=questions, scenes=scenes)


def concat_splits(parts):
    frames_before = np.cumsum([0] + [len(p['frames']) for p in parts[:-1]])
    out = dict(frames=np.concatenate([p['frames'] for p in parts]), ids=np.concatenate([p['ids'] for p in parts]),
               offsets=np.concatenate([p['offsets'] + b for p, b in zip(parts, frames_before)]),
               counts=np.concatenate([p['counts'] for p in parts]),
               obj_colour=np.concatenate([p['obj_colour'] for p in parts]),
               obj_shape=np.concatenate([p['obj_shape'] for p in parts]),
               obj_motion=np.concatenate([p['obj_motion'] for p in parts]),
               obj_start=np.concatenate([p['obj_start'] for p in parts]), questions=[], scenes=[])
    base = 0
    for p in parts:
        out['questions'] += [(c + base, q, a, t) for c, q, a, t in p['questions']]
        out['scenes'] += p['scenes']
        base += len(p['counts'])
    return out


def clip_frame_index(ds, clips):
    """Row indices into ds['frames'] of the given clips' frames, clip-major."""
    return np.concatenate([np.arange(ds['offsets'][c], ds['offsets'][c] + ds['counts'][c]) for c in clips])


def frame_presence(ids, obj_colour, obj_shape, min_pixels=8):
    """Multi-label target of a frame's CLS: which (colour, shape) pairs it shows, shape 'dot' included.
    ids [B,H,W] tensor; obj_* [B,8] long → [B, 24] float (index (colour-1)*4 + shape-1)."""
    b = ids.shape[0]
    area = torch.nn.functional.one_hot(ids.long().view(b, -1), 8).sum(1)  # [B, 8]
    shown = (area >= min_pixels) & (obj_colour > 0)
    out = torch.zeros(b, 24)
    idx = ((obj_colour - 1).clamp(min=0) * 4 + (obj_shape - 1).clamp(min=0))
    out.scatter_add_(1, idx, shown.float())
    return out.clamp(max=1)


def patch_targets(ids, obj_colour, obj_shape, patch):
    """Dense per-patch targets from object-id maps.
    ids [B,H,W] uint8 tensor; obj_colour/obj_shape [B,8] long (per frame's clip).
    Returns dict of tensors over the patch grid [B, g, g, ...]."""
    b, h, w = ids.shape
    g = h // patch
    idl = ids.long()
    onehot_id = torch.nn.functional.one_hot(idl, 8).float()  # [B,H,W,8]
    frac_id = onehot_id.view(b, g, patch, g, patch, 8).mean(dim=(2, 4))  # [B,g,g,8]
    col = torch.gather(obj_colour, 1, idl.view(b, -1)).view(b, h, w)
    shp = torch.gather(obj_shape, 1, idl.view(b, -1)).view(b, h, w)
    frac_col = torch.nn.functional.one_hot(col, 7).float().view(b, g, patch, g, patch, 7).mean(dim=(2, 4))
    frac_shp = torch.nn.functional.one_hot(shp, 5).float().view(b, g, patch, g, patch, 5).mean(dim=(2, 4))
    # Centroid of every object in the frame.
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w, 1) + 0.5
    area = onehot_id.sum(dim=(1, 2)).clamp(min=1)  # [B,8]
    cy = (onehot_id * ys).sum(dim=(1, 2)) / area
    cx = (onehot_id * xs).sum(dim=(1, 2)) / area
    obj_frac, major = frac_id[..., 1:].max(dim=-1)
    major = major + 1  # [B,g,g]
    has_obj = obj_frac >= 4 / (patch * patch)
    pcy = (torch.arange(g, dtype=torch.float32) + 0.5).view(1, g, 1) * patch
    pcx = (torch.arange(g, dtype=torch.float32) + 0.5).view(1, 1, g) * patch
    oy = (torch.gather(cy, 1, major.view(b, -1)).view(b, g, g) - pcy) / patch
    ox = (torch.gather(cx, 1, major.view(b, -1)).view(b, g, g) - pcx) / patch
    # Size of the majority object (area in patches) and whether it is the small dot.
    obj_area = torch.gather(area, 1, major.view(b, -1)).view(b, g, g) / (patch * patch)
    rows = (torch.arange(g, dtype=torch.float32) / (g - 1)).view(1, g, 1).expand(b, g, g)
    cols = (torch.arange(g, dtype=torch.float32) / (g - 1)).view(1, 1, g).expand(b, g, g)
    return dict(frac_col=frac_col, frac_shp=frac_shp, present_col=(frac_col[..., 1:] >= 2 / patch ** 2).float(),
                present_shp=(frac_shp[..., 1:] >= 2 / patch ** 2).float(), has_obj=has_obj,
                offset=torch.stack([oy, ox], -1), obj_area=obj_area, pos=torch.stack([rows, cols], -1))


def motion_targets(ids, obj_motion, obj_start, patch):
    """Per visual token (clip-major, frame-major, patch row-major): the motion of the object on the
    patch as far as the frames up to this one show it: 0 background, 1 static, 2..5 left/right/up/down,
    -100 (ignored) on background and on a moving object's first visible frame. ids [B,F,H,W]; obj_* [B,8]."""
    b, f, h, w = ids.shape
    g = h // patch
    idl = torch.as_tensor(ids).long().view(b * f, h, w)
    frac = torch.nn.functional.one_hot(idl, 8).float().view(b * f, g, patch, g, patch, 8).mean(dim=(2, 4))
    obj_frac, major = frac[..., 1:].max(dim=-1)
    major = (major + 1).view(b, f, g * g)
    has = (obj_frac >= 4 / patch ** 2).view(b, f, g * g)
    mot = torch.gather(torch.as_tensor(obj_motion), 1, major.view(b, -1)).view(b, f, g * g)
    start = torch.gather(torch.as_tensor(obj_start), 1, major.view(b, -1)).view(b, f, g * g)
    frame = torch.arange(f).view(1, f, 1)
    lab = torch.where(has, mot, torch.full_like(mot, -100))
    lab = torch.where(has & (mot >= 2) & (frame <= start), torch.full_like(lab, -100), lab)
    return lab.view(b, f * g * g)
