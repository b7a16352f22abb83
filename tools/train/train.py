"""Staged training of the demo video VLM (see docs/demo-model.md).

  stage vision : CLIP tower + projector on dense per-patch targets (colour, shape, coverage, object
                 centre offset, patch position) from the generator's object-id maps.
  stage decoder: Llama decoder on frozen vision features, answer tokens only; several questions of a
                 clip share one visual prefix (block attention mask, positions as in the real prompt).
  stage joint  : everything, low learning rate on the vision side, vision loss kept alongside.
  export       : Hugging Face llava checkpoint + golden outputs into models/demo.

Every stage is time-budgeted and resumable: state lives in --state (outside the repo), checkpointed
every few minutes; rerunning the same command continues where it stopped.
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
from vlm import Llava, causal_mask, load_safetensors  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]
BF16 = [True]
MOTION_WEIGHT = [0.5]
CLS_WEIGHT = [0.0]
CLS_ATTN_WEIGHT = [0.0]
# Visual tokens per QA step: clips of one frame count are batched up to this many frames.
FRAMES_PER_STEP = 32


def amp():
    return torch.autocast('cpu', dtype=torch.bfloat16, enabled=BF16[0])


def model_config(vocab_size, image_token_index, args):
    vision = dict(hidden_size=args.v_hidden, intermediate_size=args.v_hidden * 4, num_hidden_layers=args.v_layers,
                  num_attention_heads=args.v_heads, image_size=64, patch_size=8, num_channels=3,
                  hidden_act='gelu', layer_norm_eps=1e-5)
    text = dict(hidden_size=args.t_hidden, intermediate_size=args.t_inter, num_hidden_layers=args.t_layers,
                num_attention_heads=args.t_heads, num_key_value_heads=args.t_kv,
                head_dim=args.t_hidden // args.t_heads, rms_norm_eps=1e-6, rope_theta=10000.0,
                vocab_size=vocab_size, max_position_embeddings=4096)
    return dict(vision_config=vision, text_config=text, projector_hidden_act='gelu',
                image_token_index=image_token_index, vision_feature_layer=-2,
                vision_feature_select_strategy='default')


class VisionHead(nn.Module):
    """Dense per-patch readout used only for training (not exported)."""
    SIZES = dict(col=7, shp=5, pcol=6, pshp=4, off=2, pos=2, area=1)

    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, sum(self.SIZES.values()))

    def forward(self, x):
        out, i = {}, 0
        y = self.proj(x)
        for k, n in self.SIZES.items():
            out[k] = y[..., i:i + n]
            i += n
        return out


class ClsHead(nn.Module):
    """Training-only readout of the CLS token at the feature layer: which (colour, shape) pairs the frame
    shows. It gives the CLS an image-level objective, so its attention ranks the patches that matter."""

    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, 24)

    def forward(self, x):
        return self.proj(x)


class MotionHead(nn.Module):
    """Training-only readout of a middle decoder layer at visual tokens: the motion of the object on
    that patch, which needs earlier frames (teaches the decoder to compare frames; not exported)."""

    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, 6)

    def forward(self, x):
        return self.proj(x)


def to_pixels(frames):
    """uint8 [..., H, W, 3] → normalised float [N, 3, H, W] (CLIPImageProcessor: rescale, normalise)."""
    x = torch.as_tensor(frames).reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def vision_loss(pred, tgt, g):
    b = pred['col'].shape[0]
    p = {k: v.float().view(b, g, g, -1) for k, v in pred.items()}
    l_col = -(tgt['frac_col'] * F.log_softmax(p['col'], -1)).sum(-1).mean()
    l_shp = -(tgt['frac_shp'] * F.log_softmax(p['shp'], -1)).sum(-1).mean()
    l_pcol = F.binary_cross_entropy_with_logits(p['pcol'], tgt['present_col'])
    l_pshp = F.binary_cross_entropy_with_logits(p['pshp'], tgt['present_shp'])
    m = tgt['has_obj'].float()[..., None]
    l_off = (((p['off'] - tgt['offset'].clamp(-3, 3)) ** 2) * m).sum() / m.sum().clamp(min=1) / 2
    l_area = (((p['area'][..., 0] - tgt['obj_area']) ** 2) * m[..., 0]).sum() / m.sum().clamp(min=1)
    l_pos = ((p['pos'] - tgt['pos']) ** 2).mean()
    return l_col + l_shp + l_pcol + l_pshp + l_off + l_area + l_pos


def random_frames(ds, rng, n):
    """n random (clip, row of ds['frames']) pairs."""
    idx = rng.integers(0, len(ds['counts']), n)
    return idx, ds['offsets'][idx] + (rng.random(n) * ds['counts'][idx]).astype(np.int64)


def vision_batch(ds, idx, rows):
    frames = ds['frames'][rows]
    ids = torch.from_numpy(ds['ids'][rows])
    colour, shape = torch.from_numpy(ds['obj_colour'][idx]), torch.from_numpy(ds['obj_shape'][idx])
    tgt = D.patch_targets(ids, colour, shape, 8)
    tgt['presence'] = D.frame_presence(ids, colour, shape)
    return to_pixels(frames), tgt


def cls_attention_loss(saliency, has_obj):
    """Cross-entropy between the class token's attention over the patches (renormalised) and a uniform
    distribution over the patches that show an object; frames without an object are left out."""
    target = has_obj.reshape(has_obj.shape[0], -1).float()
    shown = target.sum(-1) > 0
    target = target / target.sum(-1, keepdim=True).clamp(min=1)
    p = saliency.float() / saliency.float().sum(-1, keepdim=True)
    return -(target * torch.log(p + 1e-9)).sum(-1)[shown].mean()


def vision_step_loss(model, head, cls_head, px, tgt):
    with amp():
        feats, cls, saliency = model.cls_saliency(px)
        pred = head(feats)
        loss = vision_loss(pred, tgt, 8)
        if CLS_WEIGHT[0] > 0:
            loss = loss + CLS_WEIGHT[0] * F.binary_cross_entropy_with_logits(cls_head(cls).float(), tgt['presence'])
        if CLS_ATTN_WEIGHT[0] > 0:
            loss = loss + CLS_ATTN_WEIGHT[0] * cls_attention_loss(saliency, tgt['has_obj'])
    return loss


@torch.no_grad()
def vision_eval(model, head, ds, n=400, seed=0):
    rng = np.random.default_rng(seed)
    idx, rows = random_frames(ds, rng, n)
    correct_c = correct_s = total = hits = shown = 0
    for s in range(0, n, 100):
        px, tgt = vision_batch(ds, idx[s:s + 100], rows[s:s + 100])
        with amp():
            feats, _, saliency = model.cls_saliency(px)
            pred = head(feats)
        b = px.shape[0]
        # Stage I's view at 1/9 (keep 30 % of the patches): how many object patches the top ones hold.
        obj = tgt['has_obj'].reshape(b, -1)
        top = saliency.float().topk(int(0.3 * obj.shape[1]), dim=-1).indices
        hits += torch.gather(obj, 1, top).sum().item()
        shown += torch.minimum(obj.sum(-1), torch.tensor(top.shape[1])).sum().item()
        col = pred['col'].float().view(b, 8, 8, -1).argmax(-1)
        shp = pred['shp'].float().view(b, 8, 8, -1).argmax(-1)
        tc = tgt['frac_col'].argmax(-1)
        ts = tgt['frac_shp'].argmax(-1)
        m = tgt['frac_col'][..., 0] < 0.75  # patches with a real object share
        correct_c += (col == tc)[m].sum().item()
        correct_s += (shp == ts)[m].sum().item()
        total += m.sum().item()
    return dict(patch_colour_acc=correct_c / max(total, 1), patch_shape_acc=correct_s / max(total, 1),
                cls_top30_object_recall=hits / max(shown, 1))


# ---------------------------------------------------------------- packed QA batches
class Packer:
    def __init__(self, vocab, tokens_per_image):
        self.vocab = vocab
        self.tpi = tokens_per_image
        self.prefixes = {}
        self.cache = {}

    def prefix(self, n_frames):
        if n_frames not in self.prefixes:
            ids = []
            for i in self.vocab.encode(D.prompt_prefix_text(n_frames)):
                ids.extend([i] * self.tpi if i == self.vocab.image else [i])
            self.prefixes[n_frames] = ids
        return self.prefixes[n_frames]

    def block(self, question, answer):
        key = (question, answer)
        if key not in self.cache:
            q = self.vocab.encode(f' {question} assistant :')
            a = self.vocab.encode(answer) + [self.vocab.eos]
            self.cache[key] = (q + a[:-1], [-100] * (len(q) - 1) + a)
        return self.cache[key]

    def build(self, qa_lists, n_frames):
        """qa_lists: per clip (all of n_frames frames), a list of (question, answer, type). Returns tensors +
        question index."""
        prefix = self.prefix(n_frames)
        P = len(prefix)
        seqs, labs, poss, blocks_all = [], [], [], []
        for qas in qa_lists:
            ids, lab, pos, blocks = list(prefix), [-100] * P, list(range(P)), []
            for q, a, t in qas:
                bi, bl = self.block(q, a)
                blocks.append((len(ids), len(bi), t))
                ids += bi
                lab += bl
                pos += list(range(P, P + len(bi)))
            seqs.append(ids)
            labs.append(lab)
            poss.append(pos)
            blocks_all.append(blocks)
        T = max(len(s) for s in seqs)
        B = len(seqs)
        input_ids = torch.full((B, T), self.vocab.pad, dtype=torch.long)
        labels = torch.full((B, T), -100, dtype=torch.long)
        position_ids = torch.zeros((B, T), dtype=torch.long)
        mask = torch.zeros((B, T, T), dtype=torch.bool)
        mask[:, :P, :P] = causal_mask(P)[0]
        qid = torch.full((B, T), -1, dtype=torch.long)  # question number per label position
        types = []
        for b in range(B):
            n = len(seqs[b])
            input_ids[b, :n] = torch.tensor(seqs[b])
            labels[b, :n] = torch.tensor(labs[b])
            position_ids[b, :n] = torch.tensor(poss[b])
            for (s, L, t) in blocks_all[b]:
                mask[b, s:s + L, :P] = True
                mask[b, s:s + L, s:s + L] = causal_mask(L)[0]
                qid[b, s:s + L] = len(types)
                types.append(t)
            mask[b, n:, 0] = True  # padding rows attend somewhere (ignored)
        return input_ids, labels, position_ids, mask, qid, types


def qa_forward(model, packer, ds, clips, qas, grad_vision, motion_head=None):
    """clips: indices of clips with the same frame count."""
    n_frames = int(ds['counts'][clips[0]])
    input_ids, labels, position_ids, mask, qid, types = packer.build(qas, n_frames)
    capture = {'layer': model.cfg['text_config']['num_hidden_layers'] // 2 - 1} if motion_head is not None else None
    rows = D.clip_frame_index(ds, clips)
    px = to_pixels(ds['frames'][rows])
    with amp():
        if grad_vision:
            feats = model.image_features(px)
        else:
            with torch.no_grad():
                feats = model.image_features(px)
        feats = feats.reshape(len(clips), -1, feats.shape[-1])
        hidden = model.forward_embeds(input_ids, feats, position_ids, mask, capture)
        sel = labels != -100
        logits = model.logits(hidden[sel]).float()
        if capture is not None:
            vis = capture['hidden'][input_ids == model.image_token_index]
            mlog = motion_head(vis).float()
    tgt = labels[sel]
    loss = F.cross_entropy(logits, tgt)
    if capture is not None:
        ids = ds['ids'][rows].reshape(len(clips), n_frames, *ds['ids'].shape[1:])
        mt = D.motion_targets(ids, ds['obj_motion'][clips], ds['obj_start'][clips], 8).reshape(-1)
        loss = loss + MOTION_WEIGHT[0] * F.cross_entropy(mlog, mt, ignore_index=-100)
    return loss, logits, tgt, qid[sel], types


def clip_questions(ds):
    by = {}
    for c, q, a, t in ds['questions']:
        by.setdefault(c, []).append((q, a, t))
    return by


def frame_buckets(ds, clips):
    """Clips grouped by frame count, each group cut into batches of at most FRAMES_PER_STEP frames."""
    groups = {}
    for c in clips:
        groups.setdefault(int(ds['counts'][c]), []).append(c)
    out = []
    for n, cs in sorted(groups.items()):
        k = max(1, FRAMES_PER_STEP // n)
        out += [cs[s:s + k] for s in range(0, len(cs), k)]
    return out


@torch.no_grad()
def qa_eval(model, packer, ds, max_clips=60):
    by = clip_questions(ds)
    clips = sorted(by)[:max_clips]
    per_type = {}
    for cs in frame_buckets(ds, clips):
        _, logits, tgt, qid, types = qa_forward(model, packer, ds, np.array(cs), [by[c] for c in cs], False)
        ok = (logits.argmax(-1) == tgt)
        for k, t in enumerate(types):
            r = per_type.setdefault(t, [0, 0])
            r[0] += int(ok[qid == k].all())
            r[1] += 1
    acc = {t: round(c / n, 4) for t, (c, n) in sorted(per_type.items())}
    total = sum(n for _, n in per_type.values())
    acc['overall'] = round(sum(c for c, _ in per_type.values()) / total, 4)
    acc['n'] = total
    return acc


# ---------------------------------------------------------------- training loop
def log(args, rec):
    rec = dict(rec, time=time.strftime('%Y-%m-%d %H:%M:%S'))
    print(json.dumps(rec), flush=True)
    with open(os.path.join(args.state, 'log.jsonl'), 'a') as f:
        f.write(json.dumps(rec) + '\n')


def lr_at(base, step, frac, warm=100):
    w = min(1.0, (step + 1) / warm)
    if frac < 0.6:
        return base * w
    return base * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.6) / 0.4))))


def qa_batch(ds, rng, by_frames, anchor_p):
    """Clips of one frame count, as many as FRAMES_PER_STEP frames allow; the count is the one of an anchor
    clip drawn with probability anchor_p (None: uniformly, i.e. with the split's own mix of counts)."""
    anchor = int(rng.choice(len(ds['counts']), p=anchor_p))
    pool = by_frames[int(ds['counts'][anchor])]
    k = max(1, FRAMES_PER_STEP // int(ds['counts'][anchor]))
    return np.array([anchor] + [pool[i] for i in rng.integers(0, len(pool), k - 1)], np.int64)


def run_stage(args, stage, model, head, motion_head, train, val, packer, cls_head):
    ck = os.path.join(args.state, f'{stage}.pt')
    budget = {'vision': args.vision_min, 'decoder': args.decoder_min, 'joint': args.joint_min}[stage] * 60
    if stage == 'vision':
        params = (list(model.vision_tower.parameters()) + list(model.multi_modal_projector.parameters())
                  + list(head.parameters()) + list(cls_head.parameters()))
        groups = [dict(params=params, lr=args.vision_lr)]
    elif stage == 'decoder':
        groups = [dict(params=list(model.language_model.parameters()), lr=args.decoder_lr),
                  dict(params=list(motion_head.parameters()), lr=args.decoder_lr)]
    else:
        vis = (list(model.vision_tower.parameters()) + list(model.multi_modal_projector.parameters())
               + list(head.parameters()) + list(cls_head.parameters()))
        groups = [dict(params=vis, lr=args.joint_vision_lr), dict(params=list(motion_head.parameters()), lr=args.joint_lr),
                  dict(params=list(model.language_model.parameters()), lr=args.joint_lr)]
    for g in groups:
        g['base'] = g['lr']
    opt = torch.optim.AdamW(groups, weight_decay=0.01, betas=(0.9, 0.98))
    step, elapsed, warm_from = 0, 0.0, 0
    if os.path.exists(ck):
        st = torch.load(ck)
        model.load_state_dict(st['model'])
        head.load_state_dict(st['head'])
        if 'motion_head' in st:
            motion_head.load_state_dict(st['motion_head'])
        if 'cls_head' in st:
            cls_head.load_state_dict(st['cls_head'])
        try:
            opt.load_state_dict(st['opt'])
        except ValueError as e:  # parameter groups changed (e.g. a new head): fresh optimizer state
            print(f'optimizer state not restored: {e}', flush=True)
            warm_from = step
        step, elapsed = st['step'], st['elapsed']
        if st.get('done'):
            print(f'stage {stage} already done', flush=True)
            return
        print(f'resuming {stage} at step {step}, {elapsed / 60:.1f} min', flush=True)
    rng = np.random.default_rng(args.seed + step + hash(stage) % 1000)
    by = clip_questions(train)
    by_frames = {}
    for c in range(len(train['counts'])):
        by_frames.setdefault(int(train['counts'][c]), []).append(c)
    # A step holds FRAMES_PER_STEP frames, so a uniform anchor gives a 4-frame clip's questions 8× the weight
    # of a 32-frame clip's. Weighting anchors by frames**w (w = 1) evens the questions out over frame counts.
    anchor_p = train['counts'].astype(np.float64) ** args.frames_weight
    anchor_p = anchor_p / anchor_p.sum()
    t_last_ck = t_last_eval = time.time()
    t0 = time.time() - elapsed
    run_loss = None

    def save(done=False):
        tmp = ck + '.tmp'
        torch.save(dict(model=model.state_dict(), head=head.state_dict(), motion_head=motion_head.state_dict(),
                        cls_head=cls_head.state_dict(), opt=opt.state_dict(), step=step,
                        elapsed=time.time() - t0, done=done), tmp)
        os.replace(tmp, ck)
        os.makedirs(args.out, exist_ok=True)
        shutil.copy(os.path.join(args.state, 'log.jsonl'), os.path.join(args.out, 'training_log.jsonl'))

    for p in model.parameters():
        p.requires_grad_(False)
    for g in groups:
        for p in g['params']:
            p.requires_grad_(True)
    model.train()
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        for g in groups:
            g['lr'] = lr_at(g['base'], step - warm_from, frac)
        if stage == 'vision':
            px, tgt = vision_batch(train, *random_frames(train, rng, args.vision_batch))
            loss = vision_step_loss(model, head, cls_head, px, tgt)
        else:
            clips = qa_batch(train, rng, by_frames, anchor_p)
            qas = [by[c] for c in clips]
            loss, *_ = qa_forward(model, packer, train, clips, qas, stage == 'joint',
                                  motion_head if MOTION_WEIGHT[0] > 0 else None)
            if stage == 'joint' and args.joint_vision_weight > 0:
                px, tgt = vision_batch(train, *random_frames(train, rng, 16))
                loss = loss + args.joint_vision_weight * vision_step_loss(model, head, cls_head, px, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g['params']], 1.0)
        opt.step()
        step += 1
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 50 == 0:
            log(args, dict(stage=stage, step=step, minutes=round((time.time() - t0) / 60, 2), loss=round(run_loss, 4),
                           lr=groups[-1]['lr']))
        if time.time() - t_last_eval > args.eval_every * 60:
            model.eval()
            ev = vision_eval(model, head, val) if stage == 'vision' else qa_eval(model, packer, val)
            model.train()
            log(args, dict(stage=stage, step=step, minutes=round((time.time() - t0) / 60, 2), val=ev))
            t_last_eval = time.time()
        if time.time() - t_last_ck > args.ckpt_every * 60:
            save()
            t_last_ck = time.time()
    model.eval()
    ev = vision_eval(model, head, val) if stage == 'vision' else qa_eval(model, packer, val, max_clips=300)
    log(args, dict(stage=stage, step=step, minutes=round((time.time() - t0) / 60, 2), val=ev, final=True))
    save(done=True)


def load_model(args, vocab):
    cfg = model_config(len(vocab), vocab.image, args)
    torch.manual_seed(args.seed)
    model = Llava(cfg)
    head = VisionHead(cfg['text_config']['hidden_size'])
    return cfg, model, head


def init_from(model, checkpoint_dir):
    """Starts from a trained checkpoint (e.g. the shipped v1). A deeper decoder interleaves each trained
    layer with a copy whose output projections are zero: the copy adds nothing at first (the model computes
    exactly what the checkpoint did) and learns from there."""
    src = load_safetensors(os.path.join(checkpoint_dir, 'model.safetensors'))
    prefix = 'language_model.model.layers.'
    n_src = 1 + max(int(k[len(prefix):].split('.')[0]) for k in src if k.startswith(prefix))
    n_dst = len(model.language_model.model.layers)
    if n_dst % n_src:
        raise SystemExit(f'--t-layers {n_dst} is not a multiple of the checkpoint\'s {n_src} decoder layers')
    rep = n_dst // n_src
    out = {}
    for k, v in src.items():
        if not k.startswith(prefix):
            out[k] = v
            continue
        i, rest = k[len(prefix):].split('.', 1)
        for r in range(rep):
            zero = r > 0 and rest in ('self_attn.o_proj.weight', 'mlp.down_proj.weight')
            out[f'{prefix}{int(i) * rep + r}.{rest}'] = torch.zeros_like(v) if zero else v.clone()
    model.load_state_dict(out, strict=True)
    print(f'initialised from {checkpoint_dir} ({n_src} → {n_dst} decoder layers)', flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default='/root/vlm-sieve-train/data')
    ap.add_argument('--train-dirs', default='train0,train2')
    ap.add_argument('--state', default='/root/vlm-sieve-train/state')
    ap.add_argument('--stages', default='vision,decoder,joint,export')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--bf16', choices=['on', 'off'], default='on')
    ap.add_argument('--v-hidden', type=int, default=128)
    ap.add_argument('--v-layers', type=int, default=4)
    ap.add_argument('--v-heads', type=int, default=4)
    ap.add_argument('--t-hidden', type=int, default=96)
    ap.add_argument('--t-inter', type=int, default=256)
    ap.add_argument('--t-layers', type=int, default=8)
    ap.add_argument('--t-heads', type=int, default=4)
    ap.add_argument('--t-kv', type=int, default=2)
    ap.add_argument('--vision-min', type=float, default=12)
    ap.add_argument('--decoder-min', type=float, default=65)
    ap.add_argument('--joint-min', type=float, default=45)
    ap.add_argument('--vision-lr', type=float, default=1e-3)
    ap.add_argument('--decoder-lr', type=float, default=1e-3)
    ap.add_argument('--joint-lr', type=float, default=2e-4)
    ap.add_argument('--joint-vision-lr', type=float, default=5e-5)
    ap.add_argument('--joint-vision-weight', type=float, default=0.3)
    ap.add_argument('--motion-weight', type=float, default=0.5)
    ap.add_argument('--cls-weight', type=float, default=0.0, help='CLS presence objective (0 = off, as in v1)')
    ap.add_argument('--cls-attn-weight', type=float, default=0.0,
                    help='pull the class token\'s attention at the feature layer onto object patches (0 = off)')
    ap.add_argument('--frames-weight', type=float, default=0.0,
                    help='draw QA steps by clip frames**w (0 = the split\'s own mix, as in v1; 1 = even per question)')
    ap.add_argument('--init-from', help='start from this checkpoint folder (its decoder may be shallower)')
    ap.add_argument('--vision-batch', type=int, default=64)
    ap.add_argument('--qa-batch', type=int, default=4)
    ap.add_argument('--eval-every', type=float, default=8)
    ap.add_argument('--ckpt-every', type=float, default=3)
    ap.add_argument('--export-from', choices=['vision', 'decoder', 'joint'], help='checkpoint to export (default: latest stage)')
    ap.add_argument('--out', default=os.path.join(REPO, 'models', 'demo'))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    BF16[0] = args.bf16 == 'on'
    os.makedirs(args.state, exist_ok=True)
    tok_dir = os.path.join(args.state, 'tokenizer')
    if not os.path.exists(os.path.join(tok_dir, 'tokenizer.json')):
        subprocess.run(['node', os.environ.get('SIEVE_TOOLS_DIST', os.path.join(REPO, 'dist')) + '/tools/train/write-tokenizer.js', tok_dir], check=True)
    vocab = D.Vocab(os.path.join(tok_dir, 'tokenizer.json'))
    cfg, model, head = load_model(args, vocab)
    motion_head = MotionHead(cfg['text_config']['hidden_size'])
    cls_head = ClsHead(cfg['vision_config']['hidden_size'])
    MOTION_WEIGHT[0] = args.motion_weight
    CLS_WEIGHT[0] = args.cls_weight
    CLS_ATTN_WEIGHT[0] = args.cls_attn_weight
    if args.init_from and not any(os.path.exists(os.path.join(args.state, f'{s}.pt')) for s in ('vision', 'decoder', 'joint')):
        init_from(model, args.init_from)
    tpi = (64 // 8) ** 2
    packer = Packer(vocab, tpi)
    stages = args.stages.split(',')
    cache = os.path.join(args.state, 'cache')
    val = D.load_split(os.path.join(args.data, 'val'), 'val', cache)
    train = None
    if any(s in stages for s in ('vision', 'decoder', 'joint')):
        parts = [D.load_split(os.path.join(args.data, d), 'train', cache) for d in args.train_dirs.split(',')]
        train = D.concat_splits(parts)
        print(f'train: {len(train["counts"])} clips, {len(train["questions"])} questions', flush=True)
    prev = None
    for stage in ('vision', 'decoder', 'joint'):
        if prev and os.path.exists(os.path.join(args.state, f'{prev}.pt')) and not os.path.exists(os.path.join(args.state, f'{stage}.pt')):
            st = torch.load(os.path.join(args.state, f'{prev}.pt'))
            model.load_state_dict(st['model'])
            head.load_state_dict(st['head'])
            if 'motion_head' in st:
                motion_head.load_state_dict(st['motion_head'])
            if 'cls_head' in st:
                cls_head.load_state_dict(st['cls_head'])
        if stage in stages:
            run_stage(args, stage, model, head, motion_head, train, val, packer, cls_head)
        prev = stage
    if 'export' in stages:
        import export
        for s in ([args.export_from] if args.export_from else ['joint', 'decoder', 'vision']):
            p = os.path.join(args.state, f'{s}.pt')
            if os.path.exists(p):
                model.load_state_dict(torch.load(p)['model'])
                print(f'exporting from {s}.pt', flush=True)
                break
        export.export(model, cfg, vocab, tok_dir, args.out, val, packer, lambda m: qa_eval(m, packer, val, max_clips=300),
                      mean=MEAN, std=STD, examples_dir=os.path.join(args.out, 'examples'))


if __name__ == '__main__':
    main()
