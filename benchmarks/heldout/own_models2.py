"""A second set of hand-written attention models (issue 20), written after ``own_models.py``'s fixes and run once
before any change for them: per-head position tables, ALiBi slopes in a buffer, talking heads, multi-query,
qk-norm, cross-attention decoders, linear attention, channel attention, torch's functional multi-head attention,
GQA through SDPA, a GPT-2-style Conv1D block, and a recommendation transformer (BST). Tiny sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- 1. Swin-style window attention by hand: a relative position bias table (positions, heads) -----------------------

class WindowAttention(nn.Module):
    def __init__(self, dim, window_size, num_heads):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * window_size - 1) ** 2, num_heads) * .02)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords_flatten = torch.flatten(coords, 1)
        relative_coords = (coords_flatten[:, :, None] - coords_flatten[:, None, :]).permute(1, 2, 0).contiguous()
        relative_coords[:, :, 0] += window_size - 1
        relative_coords[:, :, 1] += window_size - 1
        relative_coords[:, :, 0] *= 2 * window_size - 1
        self.register_buffer("relative_position_index", relative_coords.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        attn = (attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B_, N, C))


class WindowNet(nn.Module):
    def __init__(self, dim=48, heads=4, ws=4):
        super().__init__()
        self.ws = ws
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.embed(x).permute(0, 2, 3, 1)  # B H W C
        B, H, W, C = x.shape
        ws = self.ws
        w = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)
        w = w + self.attn(self.norm1(w))
        w = w + self.mlp(self.norm2(w))
        return self.head(w.mean(1).view(B, -1, C).mean(1))


# --- 2. ALiBi by hand: slopes per head in a buffer --------------------------------------------------------------------

def alibi_slopes(n):
    start = 2 ** (-(2 ** -(math.log2(n) - 3)))
    return torch.tensor([start * start ** i for i in range(n)])


class AlibiAttention(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.register_buffer("slopes", alibi_slopes(n_heads))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        pos = torch.arange(t, device=x.device)
        bias = -(pos[None, :] - pos[:, None]).abs().float() * self.slopes[:, None, None]
        mask = torch.triu(torch.full((t, t), float("-inf"), device=x.device), 1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0) + mask)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class AlibiLM(nn.Module):
    def __init__(self, vocab=90, dim=64, n_heads=8, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(nn.ModuleList([nn.LayerNorm(dim), AlibiAttention(dim, n_heads), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))])
                                    for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.lm = nn.Linear(dim, vocab)

    def forward(self, ids):
        x = self.emb(ids)
        for n1, attn, n2, mlp in self.layers:
            x = x + attn(n1(x))
            x = x + mlp(n2(x))
        return self.lm(self.ln(x))


# --- 3. Talking heads (CaiT-style): heads mixed by linear layers over the head dimension -----------------------------

class TalkingHeadAttn(nn.Module):
    def __init__(self, dim, num_heads=8):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_l = nn.Linear(num_heads, num_heads)
        self.proj_w = nn.Linear(num_heads, num_heads)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).softmax(dim=-1)
        attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class TalkingNet(nn.Module):
    def __init__(self, dim=64, heads=8):
        super().__init__()
        self.embed = nn.Linear(48, dim)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.LayerNorm(dim), TalkingHeadAttn(dim, heads), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))])
                                    for _ in range(2))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):  # x: (B, N, 48) patch features
        x = self.embed(x)
        for n1, a, n2, m in self.blocks:
            x = x + a(n1(x))
            x = x + m(n2(x))
        return self.head(x.mean(1))


# --- 4. Multi-query attention by hand (one key/value head), qk-norm per head -----------------------------------------

class MultiQueryAttention(nn.Module):
    def __init__(self, dim, n_heads, qk_norm=True):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * self.head_dim, bias=False)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_norm(self.q(x).view(b, t, self.n_heads, self.head_dim)).transpose(1, 2)
        k, v = self.kv(x).split(self.head_dim, dim=-1)
        k = self.k_norm(k).unsqueeze(1)
        v = v.unsqueeze(1)
        y = F.scaled_dot_product_attention(q, k.expand(-1, self.n_heads, -1, -1), v.expand(-1, self.n_heads, -1, -1), is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


class MQALM(nn.Module):
    def __init__(self, vocab=70, dim=64, heads=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.RMSNorm(dim), MultiQueryAttention(dim, heads), nn.RMSNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 3 * dim), nn.SiLU(), nn.Linear(3 * dim, dim))])
                                    for _ in range(2))
        self.out = nn.Linear(dim, vocab)

    def forward(self, ids):
        x = self.emb(ids)
        for n1, a, n2, m in self.blocks:
            x = x + a(n1(x))
            x = x + m(n2(x))
        return self.out(x)


# --- 5. A hand-written encoder-decoder: self-attention, cross-attention with its own key/value projection -----------

class MHA(nn.Module):
    def __init__(self, d_model, h):
        super().__init__()
        self.d_k, self.h = d_model // h, h
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])

    def forward(self, query, key, value, mask=None):
        nbatches = query.size(0)
        query, key, value = [lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
                             for lin, x in zip(self.linears, (query, key, value))]
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        x = torch.matmul(scores.softmax(dim=-1), value)
        x = x.transpose(1, 2).contiguous().view(nbatches, -1, self.h * self.d_k)
        return self.linears[-1](x)


class AnnotatedTransformer(nn.Module):
    """The Annotated Transformer's attention (four linears in a ModuleList), two layers each side."""

    def __init__(self, vocab=80, d_model=64, h=4):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(vocab, d_model), nn.Embedding(vocab, d_model)
        self.enc = nn.ModuleList(nn.ModuleList([MHA(d_model, h), nn.LayerNorm(d_model), nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, d_model)), nn.LayerNorm(d_model)]) for _ in range(2))
        self.dec = nn.ModuleList(nn.ModuleList([MHA(d_model, h), nn.LayerNorm(d_model), MHA(d_model, h), nn.LayerNorm(d_model),
                                                nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, d_model)),
                                                nn.LayerNorm(d_model)]) for _ in range(2))
        self.generator = nn.Linear(d_model, vocab)

    def forward(self, src, tgt):
        m = self.src_embed(src)
        for attn, n1, ff, n2 in self.enc:
            m = n1(m + attn(m, m, m))
            m = n2(m + ff(m))
        t = tgt.size(1)
        causal = torch.tril(torch.ones(1, 1, t, t, device=tgt.device))
        y = self.tgt_embed(tgt)
        for sa, n1, ca, n2, ff, n3 in self.dec:
            y = n1(y + sa(y, y, y, causal))
            y = n2(y + ca(y, m, m))
            y = n3(y + ff(y))
        return self.generator(y)


# --- 6. Linear attention (elu + 1 feature map), heads folded into einsum ----------------------------------------------

class LinearAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=16):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_k = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_v = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, n, self.heads, -1) for f in (self.to_q, self.to_k, self.to_v))
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = torch.einsum("bnhd,bnhe->bhde", k, v)
        z = 1 / (torch.einsum("bnhd,bhd->bnh", q, k.sum(dim=1)) + 1e-6)
        out = torch.einsum("bnhd,bhde,bnh->bnhe", q, kv, z)
        return self.to_out(out.reshape(b, n, -1))


class LinearNet(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.inp = nn.Linear(20, dim)
        self.layers = nn.ModuleList(nn.ModuleList([nn.LayerNorm(dim), LinearAttention(dim), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))])
                                    for _ in range(2))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.inp(x)
        for n1, a, n2, f in self.layers:
            x = x + a(n1(x))
            x = x + f(n2(x))
        return self.head(x.mean(1))


# --- 7. Cross-covariance (channel) attention, XCiT-style, with a learned temperature per head ------------------------

class XCA(nn.Module):
    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.proj((attn @ v).permute(0, 3, 1, 2).reshape(B, N, C))


class XCANet(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.LayerNorm(dim), XCA(dim), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))])
                                    for _ in range(2))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        for n1, a, n2, m in self.blocks:
            x = x + a(n1(x))
            x = x + m(n2(x))
        return self.head(x.mean(1))


# --- 8. torch's functional multi-head attention with the module's own packed weights ---------------------------------

class FunctionalMHA(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * embed_dim, embed_dim) * embed_dim ** -0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x):  # x: (L, B, E)
        out, _ = F.multi_head_attention_forward(x, x, x, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
                                                None, None, False, 0.0, self.out_proj.weight, self.out_proj.bias,
                                                training=self.training, need_weights=False)
        return out


class FunctionalNet(nn.Module):
    def __init__(self, vocab=60, dim=64, heads=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.attn = FunctionalMHA(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.cls = nn.Linear(dim, 2)

    def forward(self, ids):
        x = self.emb(ids).transpose(0, 1)
        x = self.norm(x + self.attn(x))
        return self.cls(x.mean(0))


# --- 9. Grouped-query attention through SDPA's enable_gqa ------------------------------------------------------------

class GQASDPA(nn.Module):
    def __init__(self, dim, num_heads, num_kv_heads):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, dim // num_heads
        self.q_proj = nn.Linear(dim, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, dim, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


class GQALM(nn.Module):
    def __init__(self, vocab=100, dim=64):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.RMSNorm(dim), GQASDPA(dim, 8, 2), nn.RMSNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 3 * dim), nn.SiLU(), nn.Linear(3 * dim, dim))])
                                    for _ in range(2))
        self.norm = nn.RMSNorm(dim)
        self.out = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        x = self.emb(ids)
        for n1, a, n2, m in self.blocks:
            x = x + a(n1(x))
            x = x + m(n2(x))
        return self.out(self.norm(x))


# --- 10. GPT-2 style by hand: Conv1D (weight (in, out), addmm), split_heads / merge_heads helpers ---------------------

class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, nx, n_head):
        super().__init__()
        self.n_head, self.split_size = n_head, nx
        self.c_attn = Conv1D(3 * nx, nx)
        self.c_proj = Conv1D(nx, nx)

    def split_heads(self, x, k=False):
        new_x_shape = x.size()[:-1] + (self.n_head, x.size(-1) // self.n_head)
        x = x.view(*new_x_shape)
        return x.permute(0, 2, 3, 1) if k else x.permute(0, 2, 1, 3)

    def merge_heads(self, x):
        x = x.permute(0, 2, 1, 3).contiguous()
        return x.view(*x.size()[:-2], x.size(-2) * x.size(-1))

    def forward(self, x):
        query, key, value = self.c_attn(x).split(self.split_size, dim=2)
        query, key, value = self.split_heads(query), self.split_heads(key, k=True), self.split_heads(value)
        w = torch.matmul(query, key) / math.sqrt(value.size(-1))
        nd, ns = w.size(-2), w.size(-1)
        b = torch.tril(torch.ones(ns, ns, device=x.device))[ns - nd:ns, :ns]
        w = (w * b - 1e4 * (1 - b)).softmax(dim=-1)
        return self.c_proj(self.merge_heads(torch.matmul(w, value)))


class GPT2ByHand(nn.Module):
    def __init__(self, vocab=100, n_embd=64, n_head=4, n_ctx=32):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, n_embd), nn.Embedding(n_ctx, n_embd)
        self.h = nn.ModuleList(nn.ModuleDict({"ln_1": nn.LayerNorm(n_embd), "attn": GPT2Attention(n_embd, n_head),
                                              "ln_2": nn.LayerNorm(n_embd), "c_fc": Conv1D(4 * n_embd, n_embd),
                                              "c_proj": Conv1D(n_embd, 4 * n_embd)}) for _ in range(2))
        self.ln_f = nn.LayerNorm(n_embd)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.size(1), device=ids.device))
        for blk in self.h:
            x = x + blk["attn"](blk["ln_1"](x))
            x = x + blk["c_proj"](F.gelu(blk["c_fc"](blk["ln_2"](x))))
        return F.linear(self.ln_f(x), self.wte.weight)


# --- 11. Behavior Sequence Transformer (recommendation): target item appended to the history, MLP over the output ---

class BSTAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.W_Q, self.W_K, self.W_V = (nn.Linear(d, d, bias=False) for _ in range(3))

    def forward(self, x):
        b, L, d = x.shape
        h = self.n_heads
        Q = self.W_Q(x).view(b, L, h, d // h).transpose(1, 2)
        K = self.W_K(x).view(b, L, h, d // h).transpose(1, 2)
        V = self.W_V(x).view(b, L, h, d // h).transpose(1, 2)
        att = F.softmax(Q @ K.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        return (att @ V).transpose(1, 2).reshape(b, L, d)


class BST(nn.Module):
    def __init__(self, n_items=500, n_users=100, d=32, seq=8, heads=4):
        super().__init__()
        self.item_emb, self.pos_emb, self.user_emb = nn.Embedding(n_items, d), nn.Embedding(seq + 1, d), nn.Embedding(n_users, 16)
        self.attn, self.ln1 = BSTAttention(d, heads), nn.LayerNorm(d)
        self.ffn, self.ln2 = nn.Sequential(nn.Linear(d, 2 * d), nn.LeakyReLU(), nn.Linear(2 * d, d)), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear((seq + 1) * d + 16, 128), nn.LeakyReLU(), nn.Linear(128, 64), nn.LeakyReLU(), nn.Linear(64, 1))

    def forward(self, history, target, user):
        seq = torch.cat([history, target[:, None]], dim=1)
        x = self.item_emb(seq) + self.pos_emb(torch.arange(seq.size(1), device=seq.device))
        x = self.ln1(x + self.attn(x))
        x = self.ln2(x + self.ffn(x))
        return self.mlp(torch.cat([x.flatten(1), self.user_emb(user)], dim=1)).squeeze(-1)


def build(name: str) -> nn.Module:
    return MODELS[name][0]()


MODELS = {
    "Swin-style window attention": (WindowNet, lambda: (torch.randn(2, 3, 32, 32),)),
    "ALiBi slopes buffer": (AlibiLM, lambda: (torch.randint(0, 90, (2, 12)),)),
    "talking heads": (TalkingNet, lambda: (torch.randn(2, 16, 48),)),
    "multi-query + qk-norm": (MQALM, lambda: (torch.randint(0, 70, (2, 12)),)),
    "Annotated Transformer": (AnnotatedTransformer, lambda: (torch.randint(0, 80, (2, 10)), torch.randint(0, 80, (2, 7)))),
    "linear attention": (LinearNet, lambda: (torch.randn(2, 24, 20),)),
    "XCiT channel attention": (XCANet, lambda: (torch.randn(2, 3, 32, 32),)),
    "F.multi_head_attention_forward": (FunctionalNet, lambda: (torch.randint(0, 60, (2, 11)),)),
    "GQA via SDPA enable_gqa": (GQALM, lambda: (torch.randint(0, 100, (2, 12)),)),
    "GPT-2 by hand (Conv1D)": (GPT2ByHand, lambda: (torch.randint(0, 100, (2, 12)),)),
    "BST (recommendation)": (BST, lambda: (torch.randint(0, 500, (2, 8)), torch.randint(0, 500, (2,)), torch.randint(0, 100, (2,)))),
}
