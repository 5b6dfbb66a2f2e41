"""A third set of hand-written attention models (issue 20), written after the fixes for sets 1 and 2 and run once
before any change for it: MobileViT-style patches, Shaw relative positions, a DETR decoder, GPT-NeoX rotary by hand,
the Set Transformer, FT-Transformer (tabular), a Conformer block, old-style GPT-2 with a causal-mask buffer,
Restormer's transposed attention, AutoInt (recommendation). Tiny sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- 1. MobileViT-style: convolutions, unfold into patches, attention over patches, fold back -------------------------

class PatchAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=8):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x):  # (b, p, n, d)
        b, p, n, _ = x.shape
        q, k, v = (t.reshape(b, p, n, self.heads, -1).permute(0, 1, 3, 2, 4) for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(-1)
        return self.to_out((attn @ v).permute(0, 1, 3, 2, 4).reshape(b, p, n, -1))


class MobileViTBlock(nn.Module):
    def __init__(self, channels=32, dim=48, ph=2, pw=2):
        super().__init__()
        self.ph, self.pw = ph, pw
        self.conv1 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.SiLU())
        self.conv2 = nn.Conv2d(channels, dim, 1)
        self.norm1, self.attn = nn.LayerNorm(dim), PatchAttention(dim)
        self.norm2, self.ff = nn.LayerNorm(dim), nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        self.conv3 = nn.Conv2d(dim, channels, 1)
        self.conv4 = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.SiLU())

    def forward(self, x):
        y = x
        x = self.conv2(self.conv1(x))
        b, d, h, w = x.shape
        x = x.reshape(b, d, h // self.ph, self.ph, w // self.pw, self.pw).permute(0, 3, 5, 2, 4, 1).reshape(b, self.ph * self.pw, -1, d)
        x = x + self.attn(self.norm1(x))
        x = x + self.ff(self.norm2(x))
        x = x.reshape(b, self.ph, self.pw, h // self.ph, w // self.pw, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, h, w)
        return self.conv4(torch.cat((self.conv3(x), y), 1))


class MobileViTish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.SiLU())
        self.block = MobileViTBlock()
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


# --- 2. Shaw et al. relative positions: a (positions, head_dim) table shared by the heads ----------------------------

class RelPosAttention(nn.Module):
    def __init__(self, dim, n_heads, max_rel=4):
        super().__init__()
        self.n_heads, self.d_head, self.max_rel = n_heads, dim // n_heads, max_rel
        self.qkv = nn.Linear(dim, 3 * dim)
        self.rel_k = nn.Embedding(2 * max_rel + 1, self.d_head)
        self.o = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        idx = torch.arange(n, device=x.device)
        rel = (idx[None, :] - idx[:, None]).clamp(-self.max_rel, self.max_rel) + self.max_rel
        r = self.rel_k(rel)  # (n, n, d_head)
        scores = (q @ k.transpose(-1, -2) + torch.einsum("bhid,ijd->bhij", q, r)) / math.sqrt(self.d_head)
        out = scores.softmax(-1) @ v
        return self.o(out.transpose(1, 2).reshape(b, n, -1))


class RelPosEncoder(nn.Module):
    def __init__(self, vocab=50, dim=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(nn.ModuleList([RelPosAttention(dim, 4), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim)),
                                                   nn.LayerNorm(dim)]) for _ in range(2))
        self.cls = nn.Linear(dim, 2)

    def forward(self, ids):
        x = self.emb(ids)
        for a, n1, f, n2 in self.layers:
            x = n1(x + a(x))
            x = n2(x + f(x))
        return self.cls(x[:, 0])


# --- 3. DETR-style decoder: learned object queries, positions added to queries and keys, nn.MultiheadAttention -----

class DETRDecoderLayer(nn.Module):
    def __init__(self, d_model=64, nhead=4):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.linear1, self.linear2 = nn.Linear(d_model, 2 * d_model), nn.Linear(2 * d_model, d_model)

    def forward(self, tgt, memory, pos, query_pos):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt)[0])
        tgt = self.norm2(tgt + self.cross_attn(tgt + query_pos, memory + pos, value=memory)[0])
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MiniDETR(nn.Module):
    def __init__(self, num_queries=6, d_model=64, num_classes=5):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU())
        self.input_proj = nn.Conv2d(64, d_model, 1)
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.row_embed, self.col_embed = nn.Parameter(torch.rand(16, d_model // 2)), nn.Parameter(torch.rand(16, d_model // 2))
        self.layers = nn.ModuleList(DETRDecoderLayer(d_model) for _ in range(2))
        self.class_embed, self.bbox_embed = nn.Linear(d_model, num_classes + 1), nn.Linear(d_model, 4)

    def forward(self, x):
        h = self.input_proj(self.backbone(x))
        b, c, H, W = h.shape
        pos = torch.cat([self.col_embed[:W].unsqueeze(0).repeat(H, 1, 1), self.row_embed[:H].unsqueeze(1).repeat(1, W, 1)],
                        dim=-1).flatten(0, 1).unsqueeze(1)
        memory = h.flatten(2).permute(2, 0, 1)
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, b, 1)
        tgt = torch.zeros_like(query_pos)
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
        return self.class_embed(tgt), self.bbox_embed(tgt).sigmoid()


# --- 4. GPT-NeoX rotary by hand: rotate_half, partial rotary, heads in num_attention_heads / head_size --------------

def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class NeoXAttention(nn.Module):
    def __init__(self, hidden, num_attention_heads, rotary_pct=0.5):
        super().__init__()
        self.num_attention_heads, self.head_size = num_attention_heads, hidden // num_attention_heads
        self.rotary_ndims = int(self.head_size * rotary_pct)
        self.query_key_value = nn.Linear(hidden, 3 * hidden)
        self.dense = nn.Linear(hidden, hidden)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.rotary_ndims, 2).float() / self.rotary_ndims))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x):
        b, t, _ = x.shape
        qkv = self.query_key_value(x).view(b, t, self.num_attention_heads, 3 * self.head_size).permute(0, 2, 1, 3)
        q, k, v = qkv[..., :self.head_size], qkv[..., self.head_size:2 * self.head_size], qkv[..., 2 * self.head_size:]
        freqs = torch.outer(torch.arange(t, device=x.device).float(), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        qr, qp = q[..., :self.rotary_ndims], q[..., self.rotary_ndims:]
        kr, kp = k[..., :self.rotary_ndims], k[..., self.rotary_ndims:]
        q = torch.cat((qr * cos + rotate_half(qr) * sin, qp), dim=-1)
        k = torch.cat((kr * cos + rotate_half(kr) * sin, kp), dim=-1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.dense(y.permute(0, 2, 1, 3).reshape(b, t, -1))


class NeoXByHand(nn.Module):
    def __init__(self, vocab=120, hidden=64):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(nn.ModuleDict({"input_layernorm": nn.LayerNorm(hidden), "post_attention_layernorm": nn.LayerNorm(hidden),
                                                   "attention": NeoXAttention(hidden, 8),
                                                   "mlp": nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))})
                                    for _ in range(2))
        self.final_layer_norm = nn.LayerNorm(hidden)
        self.embed_out = nn.Linear(hidden, vocab, bias=False)

    def forward(self, ids):
        x = self.embed_in(ids)
        for layer in self.layers:  # parallel residual
            x = x + layer["attention"](layer["input_layernorm"](x)) + layer["mlp"](layer["post_attention_layernorm"](x))
        return self.embed_out(self.final_layer_norm(x))


# --- 5. Set Transformer (Lee et al.): heads split off and concatenated along the batch ------------------------------

class MAB(nn.Module):
    def __init__(self, dim_Q, dim_K, dim_V, num_heads, ln=False):
        super().__init__()
        self.dim_V, self.num_heads = dim_V, num_heads
        self.fc_q, self.fc_k, self.fc_v = nn.Linear(dim_Q, dim_V), nn.Linear(dim_K, dim_V), nn.Linear(dim_K, dim_V)
        if ln:
            self.ln0, self.ln1 = nn.LayerNorm(dim_V), nn.LayerNorm(dim_V)
        self.fc_o = nn.Linear(dim_V, dim_V)

    def forward(self, Q, K):
        Q = self.fc_q(Q)
        K, V = self.fc_k(K), self.fc_v(K)
        dim_split = self.dim_V // self.num_heads
        Q_, K_, V_ = torch.cat(Q.split(dim_split, 2), 0), torch.cat(K.split(dim_split, 2), 0), torch.cat(V.split(dim_split, 2), 0)
        A = torch.softmax(Q_.bmm(K_.transpose(1, 2)) / math.sqrt(self.dim_V), 2)
        O = torch.cat((Q_ + A.bmm(V_)).split(Q.size(0), 0), 2)
        O = O if getattr(self, "ln0", None) is None else self.ln0(O)
        O = O + F.relu(self.fc_o(O))
        return O if getattr(self, "ln1", None) is None else self.ln1(O)


class SAB(nn.Module):
    def __init__(self, dim_in, dim_out, num_heads, ln=False):
        super().__init__()
        self.mab = MAB(dim_in, dim_in, dim_out, num_heads, ln=ln)

    def forward(self, X):
        return self.mab(X, X)


class PMA(nn.Module):
    def __init__(self, dim, num_heads, num_seeds, ln=False):
        super().__init__()
        self.S = nn.Parameter(torch.randn(1, num_seeds, dim) * 0.1)
        self.mab = MAB(dim, dim, dim, num_heads, ln=ln)

    def forward(self, X):
        return self.mab(self.S.repeat(X.size(0), 1, 1), X)


class SetTransformer(nn.Module):
    def __init__(self, dim_input=3, num_outputs=1, dim_output=4, dim_hidden=64, num_heads=4, ln=True):
        super().__init__()
        self.enc = nn.Sequential(SAB(dim_input, dim_hidden, num_heads, ln=ln), SAB(dim_hidden, dim_hidden, num_heads, ln=ln))
        self.dec = nn.Sequential(PMA(dim_hidden, num_heads, num_outputs, ln=ln), SAB(dim_hidden, dim_hidden, num_heads, ln=ln),
                                 nn.Linear(dim_hidden, dim_output))

    def forward(self, X):
        return self.dec(self.enc(X))


# --- 6. FT-Transformer (tabular): feature tokenizer, heads reshaped into the batch ----------------------------------

class FTMultiheadAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.W_q, self.W_k, self.W_v, self.W_out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.n_heads = n_heads

    def _reshape(self, x):
        batch_size, n_tokens, d = x.shape
        d_head = d // self.n_heads
        return x.reshape(batch_size, n_tokens, self.n_heads, d_head).transpose(1, 2).reshape(batch_size * self.n_heads, n_tokens, d_head)

    def forward(self, x_q, x_kv):
        q, k, v = self.W_q(x_q), self.W_k(x_kv), self.W_v(x_kv)
        batch_size, n_q_tokens = len(q), q.shape[1]
        d_head_key, d_head_value = k.shape[-1] // self.n_heads, v.shape[-1] // self.n_heads
        attention = F.softmax(self._reshape(q) @ self._reshape(k).transpose(1, 2) / math.sqrt(d_head_key), dim=-1)
        x = attention @ self._reshape(v)
        x = x.reshape(batch_size, self.n_heads, n_q_tokens, d_head_value).transpose(1, 2).reshape(batch_size, n_q_tokens, self.n_heads * d_head_value)
        return self.W_out(x)


class FTTransformer(nn.Module):
    def __init__(self, n_num=6, cat_cardinalities=(5, 7), d_token=32, n_heads=4, n_blocks=2, d_out=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_num + 1, d_token) * 0.1)
        self.bias = nn.Parameter(torch.randn(n_num, d_token) * 0.1)
        self.register_buffer("category_offsets", torch.tensor([0, *cat_cardinalities[:-1]]).cumsum(0))
        self.category_embeddings = nn.Embedding(sum(cat_cardinalities), d_token)
        self.blocks = nn.ModuleList(nn.ModuleDict({"attention": FTMultiheadAttention(d_token, n_heads), "norm0": nn.LayerNorm(d_token),
                                                   "linear0": nn.Linear(d_token, 2 * d_token), "linear1": nn.Linear(d_token, d_token),
                                                   "norm1": nn.LayerNorm(d_token)}) for _ in range(n_blocks))
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, d_out))

    def forward(self, x_num, x_cat):
        x_num = torch.cat([torch.ones(len(x_num), 1, device=x_num.device), x_num], dim=1)
        x = self.weight[None] * x_num[:, :, None]
        x = torch.cat([x, self.category_embeddings(x_cat + self.category_offsets[None])], dim=1)
        x = x + torch.cat([torch.zeros(1, self.bias.shape[1], device=x.device), self.bias, torch.zeros(x_cat.shape[1], self.bias.shape[1], device=x.device)])[None]
        for blk in self.blocks:
            h = blk["norm0"](x)
            x = x + blk["attention"](h, h)
            h = blk["norm1"](x)
            a, b = blk["linear0"](h).chunk(2, dim=-1)  # ReGLU
            x = x + blk["linear1"](a * F.relu(b))
        return self.head(x[:, 0])


# --- 7. Conformer block: half-step feed-forwards, multi-head self-attention, depthwise convolution module ----------

class ConformerBlock(nn.Module):
    def __init__(self, d=64, heads=4, kernel=7):
        super().__init__()
        self.ff1 = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.ln_att, self.att = nn.LayerNorm(d), nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_conv, self.pw1 = nn.LayerNorm(d), nn.Conv1d(d, 2 * d, 1)
        self.dw, self.bn, self.pw2 = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d), nn.BatchNorm1d(d), nn.Conv1d(d, d, 1)
        self.ff2 = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.ln_out = nn.LayerNorm(d)

    def forward(self, x):
        x = x + 0.5 * self.ff1(x)
        h = self.ln_att(x)
        x = x + self.att(h, h, h, need_weights=False)[0]
        h = F.glu(self.pw1(self.ln_conv(x).transpose(1, 2)), dim=1)
        x = x + self.pw2(F.silu(self.bn(self.dw(h)))).transpose(1, 2)
        return self.ln_out(x + 0.5 * self.ff2(x))


class TinyConformer(nn.Module):
    def __init__(self, n_mels=20, d=64, n_tokens=30):
        super().__init__()
        self.subsample = nn.Sequential(nn.Conv2d(1, 16, 3, 2), nn.ReLU(), nn.Conv2d(16, 16, 3, 2), nn.ReLU())
        self.proj = nn.Linear(16 * (((n_mels - 1) // 2 - 1) // 2), d)
        self.blocks = nn.ModuleList(ConformerBlock(d) for _ in range(2))
        self.out = nn.Linear(d, n_tokens)

    def forward(self, mels):  # (b, time, n_mels)
        x = self.subsample(mels.unsqueeze(1))
        b, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        for blk in self.blocks:
            x = blk(x)
        return self.out(x).log_softmax(-1)


# --- 8. Old-style GPT-2 by hand: a registered causal-mask buffer, masked_fill, separate head helpers ----------------

class OldCausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.key, self.query, self.value = nn.Linear(n_embd, n_embd), nn.Linear(n_embd, n_embd), nn.Linear(n_embd, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))
        self.n_head = n_head

    def forward(self, x):
        B, T, C = x.size()
        k = self.key(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = self.query(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MinGPT(nn.Module):
    def __init__(self, vocab=64, n_embd=48, n_head=4, block_size=16):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.blocks = nn.ModuleList(nn.ModuleDict({"ln1": nn.LayerNorm(n_embd), "attn": OldCausalSelfAttention(n_embd, n_head, block_size),
                                                   "ln2": nn.LayerNorm(n_embd),
                                                   "mlp": nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))})
                                    for _ in range(2))
        self.ln_f, self.head = nn.LayerNorm(n_embd), nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb[:, :idx.size(1), :]
        for blk in self.blocks:
            x = x + blk["attn"](blk["ln1"](x))
            x = x + blk["mlp"](blk["ln2"](x))
        return self.head(self.ln_f(x))


# --- 9. Restormer's transposed attention (MDTA): depthwise-convolved q/k/v, attention across channels ---------------

class MDTA(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q = q.reshape(b, self.num_heads, -1, h * w)
        k = k.reshape(b, self.num_heads, -1, h * w)
        v = v.reshape(b, self.num_heads, -1, h * w)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, -1, h, w))


class TinyRestormer(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList(nn.ModuleDict({"norm1": nn.GroupNorm(1, dim), "attn": MDTA(dim, 4), "norm2": nn.GroupNorm(1, dim),
                                                   "ffn": nn.Sequential(nn.Conv2d(dim, 2 * dim, 1), nn.GELU(), nn.Conv2d(2 * dim, dim, 1))})
                                    for _ in range(2))
        self.output = nn.Conv2d(dim, 3, 3, 1, 1)

    def forward(self, img):
        x = self.embed(img)
        for blk in self.blocks:
            x = x + blk["attn"](blk["norm1"](x))
            x = x + blk["ffn"](blk["norm2"](x))
        return self.output(x) + img


# --- 10. AutoInt (recommendation): multi-head self-attention over field embeddings, DeepCTR's layout ---------------

class InteractingLayer(nn.Module):
    def __init__(self, embedding_size, head_num=2, use_res=True, scaling=False):
        super().__init__()
        self.att_embedding_size = embedding_size // head_num
        self.head_num, self.use_res, self.scaling = head_num, use_res, scaling
        self.W_Query = nn.Parameter(torch.randn(embedding_size, embedding_size) * 0.05)
        self.W_key = nn.Parameter(torch.randn(embedding_size, embedding_size) * 0.05)
        self.W_Value = nn.Parameter(torch.randn(embedding_size, embedding_size) * 0.05)
        if use_res:
            self.W_Res = nn.Parameter(torch.randn(embedding_size, embedding_size) * 0.05)

    def forward(self, inputs):
        querys = torch.tensordot(inputs, self.W_Query, dims=([-1], [0]))
        keys = torch.tensordot(inputs, self.W_key, dims=([-1], [0]))
        values = torch.tensordot(inputs, self.W_Value, dims=([-1], [0]))
        querys = torch.stack(torch.split(querys, self.att_embedding_size, dim=2))
        keys = torch.stack(torch.split(keys, self.att_embedding_size, dim=2))
        values = torch.stack(torch.split(values, self.att_embedding_size, dim=2))
        inner_product = torch.einsum("bnik,bnjk->bnij", querys, keys)
        if self.scaling:
            inner_product /= self.att_embedding_size ** 0.5
        result = torch.matmul(F.softmax(inner_product, dim=-1), values)
        result = torch.cat(torch.split(result, 1), dim=-1)
        result = torch.squeeze(result, dim=0)
        if self.use_res:
            result += torch.tensordot(inputs, self.W_Res, dims=([-1], [0]))
        return F.relu(result)


class AutoInt(nn.Module):
    def __init__(self, field_dims=(20, 30, 15, 40), embed_dim=16, att_layers=2, head_num=2):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in field_dims)
        self.int_layers = nn.ModuleList(InteractingLayer(embed_dim, head_num) for _ in range(att_layers))
        self.dnn = nn.Sequential(nn.Linear(len(field_dims) * embed_dim, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.dnn_linear = nn.Linear(len(field_dims) * embed_dim + 32, 1, bias=False)

    def forward(self, fields):  # (b, n_fields) of ids
        att_input = torch.stack([emb(fields[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)
        dnn_input = att_input.flatten(1)
        for layer in self.int_layers:
            att_input = layer(att_input)
        att_output = torch.flatten(att_input, start_dim=1)
        return torch.sigmoid(self.dnn_linear(torch.cat([att_output, self.dnn(dnn_input)], dim=-1)))


def build(name: str) -> nn.Module:
    return MODELS[name][0]()


MODELS = {
    "MobileViT-style patches": (MobileViTish, lambda: (torch.randn(2, 3, 32, 32),)),
    "Shaw relative positions": (RelPosEncoder, lambda: (torch.randint(0, 50, (2, 10)),)),
    "DETR decoder (nn.MultiheadAttention)": (MiniDETR, lambda: (torch.randn(2, 3, 32, 32),)),
    "GPT-NeoX rotary by hand": (NeoXByHand, lambda: (torch.randint(0, 120, (2, 12)),)),
    "Set Transformer": (SetTransformer, lambda: (torch.randn(2, 9, 3),)),
    "FT-Transformer (tabular)": (FTTransformer, lambda: (torch.randn(2, 6), torch.stack([torch.randint(0, 5, (2,)), torch.randint(0, 7, (2,))], 1))),
    "Conformer": (TinyConformer, lambda: (torch.randn(2, 40, 20),)),
    "minGPT (mask buffer)": (MinGPT, lambda: (torch.randint(0, 64, (2, 16)),)),
    "Restormer MDTA": (TinyRestormer, lambda: (torch.randn(2, 3, 16, 16),)),
    "AutoInt (recommendation)": (AutoInt, lambda: (torch.stack([torch.randint(0, n, (2,)) for n in (20, 30, 15, 40)], 1),)),
}
