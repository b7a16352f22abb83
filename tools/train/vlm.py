"""A LLaVA model (CLIP vision tower, MLP projector, Llama decoder) in plain PyTorch, matching the math
of Hugging Face transformers' LlavaForConditionalGeneration (CLIPVisionModel + LlamaForCausalLM), with
the same parameter names, so state_dict() is exactly what save_pretrained writes to model.safetensors.
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def act_fn(name):
    if name == 'gelu':
        return lambda x: F.gelu(x)
    if name == 'quick_gelu':
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == 'silu':
        return F.silu
    raise ValueError(name)


# ---------------------------------------------------------------- CLIP vision tower
class ClipEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.patch_embedding = nn.Conv2d(c['num_channels'], d, c['patch_size'], c['patch_size'], bias=False)
        n = (c['image_size'] // c['patch_size']) ** 2 + 1
        self.position_embedding = nn.Embedding(n, d)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        p = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        x = torch.cat([cls, p], dim=1)
        return x + self.position_embedding.weight[None]


class ClipAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.h = c['num_attention_heads']
        self.hd = d // self.h
        self.scale = self.hd ** -0.5
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.keep_cls_row = False  # training only: keep the class token's attention row (cls_row [B, heads, T])

    def forward(self, x):
        b, t, d = x.shape
        q = (self.q_proj(x) * self.scale).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        a = torch.softmax((q @ k.transpose(-1, -2)).float(), dim=-1)
        if self.keep_cls_row:
            self.cls_row = a[:, :, 0]
        a = a.to(v.dtype)
        return self.out_proj((a @ v).transpose(1, 2).reshape(b, t, d))


class ClipMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c['hidden_size'], c['intermediate_size'])
        self.fc2 = nn.Linear(c['intermediate_size'], c['hidden_size'])
        self.act = act_fn(c['hidden_act'])

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ClipLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c['hidden_size'], c['layer_norm_eps']
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.self_attn = ClipAttention(c)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = ClipMlp(c)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([ClipLayer(c) for _ in range(c['num_hidden_layers'])])


class ClipVisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.embeddings = ClipEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(d, eps=c['layer_norm_eps'])
        self.encoder = ClipEncoder(c)
        self.post_layernorm = nn.LayerNorm(d, eps=c['layer_norm_eps'])

    def hidden_state(self, pixel_values, layer):
        """hidden_states[layer] as HF counts them (0 = pre_layrnorm output, negative from the end)."""
        n = len(self.encoder.layers)
        if layer < 0:
            layer = n + 1 + layer
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        for blk in self.encoder.layers[:layer]:
            x = blk(x)
        return x


class ClipVisionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vision_model = ClipVisionTransformer(c)


# ---------------------------------------------------------------- projector
class LlavaProjector(nn.Module):
    def __init__(self, dv, dt, act):
        super().__init__()
        self.linear_1 = nn.Linear(dv, dt)
        self.linear_2 = nn.Linear(dt, dt)
        self.act = act_fn(act)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


# ---------------------------------------------------------------- Llama decoder
class RmsNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dt)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.h = c['num_attention_heads']
        self.kv = c['num_key_value_heads']
        self.hd = c.get('head_dim') or d // self.h
        self.q_proj = nn.Linear(d, self.h * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        cos = cos[:, None].to(q.dtype)
        sin = sin[:, None].to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.h // self.kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.hd)
        s = s.masked_fill(~mask[:, None], float('-inf'))
        a = torch.softmax(s, dim=-1).to(v.dtype)
        return self.o_proj((a @ v).transpose(1, 2).reshape(b, t, self.h * self.hd))


class LlamaMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, i = c['hidden_size'], c['intermediate_size']
        self.gate_proj = nn.Linear(d, i, bias=False)
        self.up_proj = nn.Linear(d, i, bias=False)
        self.down_proj = nn.Linear(i, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMlp(c)
        self.input_layernorm = RmsNorm(c['hidden_size'], c['rms_norm_eps'])
        self.post_attention_layernorm = RmsNorm(c['hidden_size'], c['rms_norm_eps'])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        self.layers = nn.ModuleList([LlamaLayer(c) for _ in range(c['num_hidden_layers'])])
        self.norm = RmsNorm(c['hidden_size'], c['rms_norm_eps'])
        hd = c.get('head_dim') or c['hidden_size'] // c['num_attention_heads']
        inv = 1.0 / (c['rope_theta'] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        self.register_buffer('inv_freq', inv, persistent=False)

    def forward(self, embeds, position_ids, mask, capture=None):
        """capture: optional dict {'layer': k}; receives 'hidden' = output of decoder layer k (training only)."""
        freqs = position_ids[..., None].float() * self.inv_freq[None, None]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = embeds
        for i, blk in enumerate(self.layers):
            x = blk(x, cos, sin, mask)
            if capture is not None and i == capture['layer']:
                capture['hidden'] = x
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c['hidden_size'], c['vocab_size'], bias=False)


# ---------------------------------------------------------------- LLaVA
class Llava(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        vc, tc = cfg['vision_config'], cfg['text_config']
        self.vision_tower = ClipVisionModel(vc)
        self.multi_modal_projector = LlavaProjector(vc['hidden_size'], tc['hidden_size'], cfg['projector_hidden_act'])
        self.language_model = LlamaForCausalLM(tc)
        self.image_token_index = cfg['image_token_index']

    def image_features(self, pixel_values):
        """[frames, 3, H, W] → projected visual tokens [frames, N, d_text] (CLS dropped)."""
        return self.image_features_and_cls(pixel_values)[0]

    def image_features_and_cls(self, pixel_values):
        """Projected visual tokens and the CLS token's hidden state at the feature layer [frames, d_vision]."""
        h = self.vision_tower.vision_model.hidden_state(pixel_values, self.cfg['vision_feature_layer'])
        return self.multi_modal_projector(h[:, 1:]), h[:, 0]

    def cls_saliency(self, pixel_values):
        """image_features_and_cls plus what ViTCoP's Stage I and VisionZip rank patches by: the attention each
        patch receives from the class token in the block that computes the feature layer, summed over heads
        [frames, N] (src/onnx/vision-tower.ts computes the same in the exported graph)."""
        blocks = self.vision_tower.vision_model.encoder.layers
        layer = self.cfg['vision_feature_layer']
        attn = blocks[(len(blocks) + 1 + layer if layer < 0 else layer) - 1].self_attn
        attn.keep_cls_row = True
        try:
            feats, cls = self.image_features_and_cls(pixel_values)
        finally:
            attn.keep_cls_row = False
        row = attn.cls_row
        del attn.cls_row
        return feats, cls, row[:, :, 1:].sum(1)

    def forward_embeds(self, input_ids, image_feats, position_ids, mask, capture=None):
        """input_ids [B, T]; image_feats [B, n_img_tokens, d] in prompt order. Returns final hidden [B, T, d]."""
        emb = self.language_model.model.embed_tokens(input_ids)
        sel = input_ids == self.image_token_index
        emb = emb.masked_scatter(sel[..., None], image_feats.to(emb.dtype).reshape(-1, emb.shape[-1]))
        return self.language_model.model(emb, position_ids, mask, capture)

    def logits(self, hidden):
        return self.language_model.lm_head(hidden)


def causal_mask(t, device=None):
    return torch.tril(torch.ones(t, t, dtype=torch.bool, device=device))[None]


# ---------------------------------------------------------------- safetensors (no extra package)
def save_safetensors(tensors, path, dtype=torch.float32):
    names = sorted(tensors)
    header, off, blobs = {}, 0, []
    tag = {torch.float32: 'F32', torch.float16: 'F16'}[dtype]
    for n in names:
        a = tensors[n].detach().to(torch.float32).to(dtype).contiguous().cpu().numpy()
        b = a.tobytes()
        header[n] = {'dtype': tag, 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        dt = {'F32': np.float32, 'F16': np.float16}[v['dtype']]
        s, e = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(data[s:e], dtype=dt).reshape(v['shape']).astype(np.float32))
    return out
