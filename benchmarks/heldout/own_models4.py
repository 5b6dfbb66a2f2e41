"""A fourth set of hand-written attention models (issue 20), written after the fixes for sets 1-3 and run once before
any change for it: a ViT whose q/k/v come from one einops rearrange, Stable Diffusion's cross-attention (old diffusers,
heads into the batch), CLIP's attention pooling (F.multi_head_attention_forward with separate projections), a graph
attention network, PatchTST-style attention with value heads of another size, sliding-window attention by unfold,
Whisper's attention, a DiT block (timm's Attention inside adaLN-Zero modulation), T5's relative position buckets by
hand, RetNet's multi-scale retention. Tiny sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


# --- 1. ViT with one rearrange for q, k and v, SDPA ------------------------------------------------------------------

class OneRearrangeAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        return self.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)"))


class RearrangeViT(nn.Module):
    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, 8)
        self.pos = nn.Parameter(torch.zeros(1, 16, dim))
        self.blocks = nn.ModuleList(nn.ModuleList([nn.LayerNorm(dim), OneRearrangeAttention(dim, heads), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))])
                                    for _ in range(2))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = rearrange(self.patch(x), "b c h w -> b (h w) c") + self.pos
        for n1, a, n2, m in self.blocks:
            x = x + a(n1(x))
            x = x + m(n2(x))
        return self.head(x.mean(1))


# --- 2. Stable Diffusion's cross-attention (old diffusers: heads reshaped into the batch) ----------------------------

class SDCrossAttention(nn.Module):
    def __init__(self, query_dim, context_dim=None, heads=4, dim_head=16):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = context_dim if context_dim is not None else query_dim
        self.scale, self.heads = dim_head ** -0.5, heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(0.0))

    def reshape_heads_to_batch_dim(self, tensor):
        batch_size, seq_len, dim = tensor.shape
        head_size = self.heads
        tensor = tensor.reshape(batch_size, seq_len, head_size, dim // head_size)
        return tensor.permute(0, 2, 1, 3).reshape(batch_size * head_size, seq_len, dim // head_size)

    def reshape_batch_dim_to_heads(self, tensor):
        batch_size, seq_len, dim = tensor.shape
        head_size = self.heads
        tensor = tensor.reshape(batch_size // head_size, head_size, seq_len, dim)
        return tensor.permute(0, 2, 1, 3).reshape(batch_size // head_size, seq_len, dim * head_size)

    def forward(self, x, context=None):
        context = x if context is None else context
        q = self.reshape_heads_to_batch_dim(self.to_q(x))
        k = self.reshape_heads_to_batch_dim(self.to_k(context))
        v = self.reshape_heads_to_batch_dim(self.to_v(context))
        attn = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype), q, k.transpose(-1, -2),
                             beta=0, alpha=self.scale).softmax(dim=-1)
        return self.to_out(self.reshape_batch_dim_to_heads(torch.bmm(attn, v)))


class SpatialTransformer(nn.Module):
    def __init__(self, channels=32, context_dim=24):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.attn1, self.norm1 = SDCrossAttention(channels), nn.LayerNorm(channels)
        self.attn2, self.norm2 = SDCrossAttention(channels, context_dim), nn.LayerNorm(channels)
        self.ff, self.norm3 = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels)), nn.LayerNorm(channels)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        x_in = x
        x = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context=context)
        x = x + self.ff(self.norm3(x))
        return self.proj_out(x.reshape(b, h, w, c).permute(0, 3, 1, 2)) + x_in


class TinyUNetBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(4, 32, 3, padding=1)
        self.st = SpatialTransformer()
        self.conv_out = nn.Conv2d(32, 4, 3, padding=1)

    def forward(self, latents, context):
        return self.conv_out(F.silu(self.st(self.conv_in(latents), context)))


# --- 3. CLIP's attention pooling: F.multi_head_attention_forward with separate q/k/v projections --------------------

class AttentionPool2d(nn.Module):
    def __init__(self, spacial_dim, embed_dim, num_heads, output_dim=None):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj, self.q_proj, self.v_proj = nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x):
        x = x.flatten(start_dim=2).permute(2, 0, 1)  # NCHW -> (HW)NC
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        x, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0, out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=self.training, need_weights=False)
        return x.squeeze(0)


class CLIPishResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1),
                                  nn.BatchNorm2d(64), nn.ReLU())
        self.attnpool = AttentionPool2d(8, 64, 4, 32)

    def forward(self, x):
        return self.attnpool(self.stem(x))


# --- 4. Graph attention network (GAT): per-head attention vectors, heads concatenated -------------------------------

class GATLayer(nn.Module):
    def __init__(self, in_features, out_features, n_heads, concat=True):
        super().__init__()
        self.n_heads, self.out_features, self.concat = n_heads, out_features, concat
        self.W = nn.Linear(in_features, n_heads * out_features, bias=False)
        self.a_src = nn.Parameter(torch.randn(1, n_heads, out_features) * 0.1)
        self.a_dst = nn.Parameter(torch.randn(1, n_heads, out_features) * 0.1)

    def forward(self, h, adj):  # h (N, in), adj (N, N)
        N = h.shape[0]
        Wh = self.W(h).view(N, self.n_heads, self.out_features)
        e_src = (Wh * self.a_src).sum(-1)  # (N, heads)
        e_dst = (Wh * self.a_dst).sum(-1)
        e = F.leaky_relu(e_src.unsqueeze(1) + e_dst.unsqueeze(0), 0.2)  # (N, N, heads)
        e = e.masked_fill(adj.unsqueeze(-1) == 0, float("-inf"))
        alpha = torch.softmax(e, dim=1)
        out = torch.einsum("ijh,jhf->ihf", alpha, Wh)
        return out.reshape(N, self.n_heads * self.out_features) if self.concat else out.mean(1)


class GAT(nn.Module):
    def __init__(self, in_features=12, hidden=16, heads=4, classes=3):
        super().__init__()
        self.layer1 = GATLayer(in_features, hidden, heads)
        self.layer2 = GATLayer(hidden * heads, classes, 1, concat=False)

    def forward(self, x, adj):
        return self.layer2(F.elu(self.layer1(x, adj)), adj)


# --- 5. PatchTST-style attention: value heads of another size than query/key heads ----------------------------------

class MultiheadAttentionKV(nn.Module):
    def __init__(self, d_model, n_heads, d_k=None, d_v=None):
        super().__init__()
        d_k = d_k or d_model // n_heads
        d_v = d_v or d_model // n_heads
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.W_Q, self.W_K = nn.Linear(d_model, d_k * n_heads), nn.Linear(d_model, d_k * n_heads)
        self.W_V = nn.Linear(d_model, d_v * n_heads)
        self.scale = nn.Parameter(torch.tensor(d_k ** -0.5), requires_grad=False)
        self.to_out = nn.Linear(n_heads * d_v, d_model)

    def forward(self, Q):
        bs = Q.size(0)
        q_s = self.W_Q(Q).view(bs, -1, self.n_heads, self.d_k).transpose(1, 2)
        k_s = self.W_K(Q).view(bs, -1, self.n_heads, self.d_k).permute(0, 2, 3, 1)
        v_s = self.W_V(Q).view(bs, -1, self.n_heads, self.d_v).transpose(1, 2)
        attn = F.softmax(torch.matmul(q_s, k_s) * self.scale, dim=-1)
        out = torch.matmul(attn, v_s).transpose(1, 2).contiguous().view(bs, -1, self.n_heads * self.d_v)
        return self.to_out(out)


class PatchTSTish(nn.Module):
    def __init__(self, seq_len=64, patch_len=8, stride=8, d_model=48, n_heads=4, horizon=12):
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        n_patches = (seq_len - patch_len) // stride + 1
        self.W_P = nn.Linear(patch_len, d_model)
        self.W_pos = nn.Parameter(torch.randn(n_patches, d_model) * 0.02)
        self.layers = nn.ModuleList(nn.ModuleList([MultiheadAttentionKV(d_model, n_heads, d_k=16, d_v=8), nn.BatchNorm1d(d_model),
                                                   nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model)),
                                                   nn.BatchNorm1d(d_model)]) for _ in range(2))
        self.head = nn.Linear(n_patches * d_model, horizon)

    def forward(self, x):  # (bs, seq_len) one channel
        z = self.W_P(x.unfold(dimension=-1, size=self.patch_len, step=self.stride)) + self.W_pos
        for attn, bn1, ff, bn2 in self.layers:
            z = bn1((z + attn(z)).transpose(1, 2)).transpose(1, 2)
            z = bn2((z + ff(z)).transpose(1, 2)).transpose(1, 2)
        return self.head(z.flatten(1))


# --- 6. Sliding-window attention by unfold (each query sees its w neighbours) ---------------------------------------

class SlidingWindowAttention(nn.Module):
    def __init__(self, dim, num_heads, window=5):
        super().__init__()
        self.num_heads, self.head_dim, self.window = num_heads, dim // num_heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (b, h, n, d)
        pad = self.window // 2
        k = F.pad(k, (0, 0, pad, pad)).unfold(2, self.window, 1)  # (b, h, n, d, w)
        v = F.pad(v, (0, 0, pad, pad)).unfold(2, self.window, 1)
        attn = torch.einsum("bhnd,bhndw->bhnw", q, k).div(self.head_dim ** 0.5).softmax(-1)
        out = torch.einsum("bhnw,bhndw->bhnd", attn, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class LocalEncoder(nn.Module):
    def __init__(self, vocab=90, dim=48):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(nn.ModuleList([nn.LayerNorm(dim), SlidingWindowAttention(dim, 4), nn.LayerNorm(dim),
                                                   nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))])
                                    for _ in range(2))
        self.cls = nn.Linear(dim, 4)

    def forward(self, ids):
        x = self.emb(ids)
        for n1, a, n2, f in self.layers:
            x = x + a(n1(x))
            x = x + f(n2(x))
        return self.cls(x.mean(1))


# --- 7. Whisper's attention (openai/whisper model.py): q and k each scaled by head_dim ** -0.25 -----------------------

class WhisperMultiHeadAttention(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.n_head = n_head
        self.query, self.key, self.value = nn.Linear(n_state, n_state), nn.Linear(n_state, n_state, bias=False), nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x, xa=None, mask=None):
        q = self.query(x)
        k, v = self.key(x if xa is None else xa), self.value(x if xa is None else xa)
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        qk = q @ k
        if mask is not None:
            qk = qk + mask[:n_ctx, :n_ctx]
        w = F.softmax(qk.float(), dim=-1).to(q.dtype)
        return self.out((w @ v).permute(0, 2, 1, 3).flatten(start_dim=2))


def sinusoids(length, channels, max_timescale=10000):
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class WhisperEncoderByHand(nn.Module):
    def __init__(self, n_mels=16, n_ctx=20, n_state=48, n_head=4):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, 3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks = nn.ModuleList(nn.ModuleDict({"attn_ln": nn.LayerNorm(n_state), "attn": WhisperMultiHeadAttention(n_state, n_head),
                                                   "mlp_ln": nn.LayerNorm(n_state),
                                                   "mlp": nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))})
                                    for _ in range(2))
        self.ln_post = nn.LayerNorm(n_state)

    def forward(self, x):  # (batch, n_mels, 2 * n_ctx)
        x = F.gelu(self.conv2(F.gelu(self.conv1(x)))).permute(0, 2, 1)
        x = x + self.positional_embedding
        for b in self.blocks:
            x = x + b["attn"](b["attn_ln"](x))
            x = x + b["mlp"](b["mlp_ln"](x))
        return self.ln_post(x)


# --- 8. A DiT block: timm's Attention and Mlp inside adaLN-Zero modulation -------------------------------------------

def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        from timm.models.vision_transformer import Attention, Mlp
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads=num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(in_features=hidden_size, hidden_features=int(hidden_size * mlp_ratio), act_layer=lambda: nn.GELU(approximate="tanh"))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class TinyDiT(nn.Module):
    def __init__(self, hidden=64, heads=4, in_channels=4, patch=2, num_classes=10):
        super().__init__()
        self.x_embedder = nn.Conv2d(in_channels, hidden, patch, patch)
        self.t_embedder = nn.Sequential(nn.Linear(32, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.y_embedder = nn.Embedding(num_classes + 1, hidden)
        self.pos_embed = nn.Parameter(torch.zeros(1, 16, hidden), requires_grad=False)
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads) for _ in range(2))
        self.final_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.final_linear = nn.Linear(hidden, patch * patch * in_channels)

    def forward(self, x, t, y):
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        freqs = torch.exp(-math.log(10000) * torch.arange(16, dtype=torch.float32) / 16)
        args = t[:, None].float() * freqs[None]
        c = self.t_embedder(torch.cat([torch.cos(args), torch.sin(args)], dim=-1)) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.final_modulation(c).chunk(2, dim=1)
        return self.final_linear(modulate(self.final_norm(x), shift, scale))


# --- 9. T5's relative position buckets by hand: an Embedding(buckets, n_heads) bias ---------------------------------

def relative_position_bucket(relative_position, num_buckets=16, max_distance=32):
    ret = 0
    n = -relative_position
    num_buckets //= 2
    ret += (n < 0).to(torch.long) * num_buckets
    n = torch.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (torch.log(n.float() / max_exact + 1e-6) / math.log(max_distance / max_exact)
                                * (num_buckets - max_exact)).to(torch.long)
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
    return ret + torch.where(is_small, n, val_if_large)


class T5Attention(nn.Module):
    def __init__(self, d_model, n_heads, d_kv, has_bias):
        super().__init__()
        self.n_heads, self.d_kv = n_heads, d_kv
        self.q, self.k, self.v = (nn.Linear(d_model, n_heads * d_kv, bias=False) for _ in range(3))
        self.o = nn.Linear(n_heads * d_kv, d_model, bias=False)
        self.relative_attention_bias = nn.Embedding(16, n_heads) if has_bias else None

    def forward(self, x, position_bias=None):
        b, n, _ = x.shape
        q, k, v = (p(x).view(b, n, self.n_heads, self.d_kv).transpose(1, 2) for p in (self.q, self.k, self.v))
        if position_bias is None:
            ctx = torch.arange(n)[:, None]
            buckets = relative_position_bucket(torch.arange(n)[None, :] - ctx)
            position_bias = self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)
        scores = torch.matmul(q, k.transpose(3, 2)) + position_bias
        out = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, n, -1)
        return self.o(out), position_bias


class T5ish(nn.Module):
    def __init__(self, vocab=100, d_model=48, n_heads=4, d_kv=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(nn.ModuleList([nn.RMSNorm(d_model), T5Attention(d_model, n_heads, d_kv, i == 0), nn.RMSNorm(d_model),
                                                   nn.Sequential(nn.Linear(d_model, 2 * d_model, bias=False), nn.ReLU(),
                                                                 nn.Linear(2 * d_model, d_model, bias=False))]) for i in range(2))
        self.final = nn.RMSNorm(d_model)
        self.cls = nn.Linear(d_model, 3)

    def forward(self, ids):
        x, bias = self.embed(ids), None
        for n1, attn, n2, ff in self.layers:
            h, bias = attn(n1(x), bias)
            x = x + h
            x = x + ff(n2(x))
        return self.cls(self.final(x).mean(1))


# --- 10. RetNet's multi-scale retention: a decay per head (buffer), group norm per head, a swish gate --------------

class MultiScaleRetention(nn.Module):
    def __init__(self, hidden_size, heads):
        super().__init__()
        self.heads, self.head_size = heads, hidden_size // heads
        self.register_buffer("gammas", 1 - torch.exp(torch.linspace(math.log(1 / 32), math.log(1 / 512), heads)))
        self.W_Q, self.W_K, self.W_V = (nn.Linear(hidden_size, hidden_size, bias=False) for _ in range(3))
        self.W_G, self.W_O = nn.Linear(hidden_size, hidden_size, bias=False), nn.Linear(hidden_size, hidden_size, bias=False)
        self.group_norm = nn.GroupNorm(heads, hidden_size)

    def forward(self, X):
        b, n, _ = X.shape
        Q, K, V = (w(X).view(b, n, self.heads, self.head_size).transpose(1, 2) for w in (self.W_Q, self.W_K, self.W_V))
        idx = torch.arange(n, dtype=torch.float32)
        diff = idx[:, None] - idx[None, :]
        D = (self.gammas[:, None, None] ** diff.clamp(min=0)) * (diff >= 0)  # (heads, n, n)
        Y = ((Q @ K.transpose(-1, -2)) * D.unsqueeze(0)) @ V  # (b, heads, n, head_size)
        Y = self.group_norm(Y.transpose(1, 2).reshape(b * n, -1)).reshape(b, n, -1)
        return self.W_O(F.silu(self.W_G(X)) * Y)


class RetNetish(nn.Module):
    def __init__(self, vocab=80, hidden=64, heads=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(nn.ModuleList([nn.LayerNorm(hidden), MultiScaleRetention(hidden, heads), nn.LayerNorm(hidden),
                                                   nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))])
                                    for _ in range(2))
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids):
        x = self.emb(ids)
        for n1, r, n2, f in self.layers:
            x = x + r(n1(x))
            x = x + f(n2(x))
        return self.out(x)


def _graph():
    x = torch.randn(10, 12)
    adj = (torch.rand(10, 10) > 0.6).float()
    return x, adj + torch.eye(10)


def build(name: str) -> nn.Module:
    return MODELS[name][0]()


MODELS = {
    "ViT, one rearrange for q/k/v": (RearrangeViT, lambda: (torch.randn(2, 3, 32, 32),)),
    "Stable Diffusion cross-attention": (TinyUNetBlock, lambda: (torch.randn(2, 4, 8, 8), torch.randn(2, 7, 24))),
    "CLIP attention pooling": (CLIPishResNet, lambda: (torch.randn(2, 3, 32, 32),)),
    "graph attention network": (GAT, _graph),
    "PatchTST (value heads of other size)": (PatchTSTish, lambda: (torch.randn(2, 64),)),
    "sliding-window attention (unfold)": (LocalEncoder, lambda: (torch.randint(0, 90, (2, 14)),)),
    "Whisper encoder by hand": (WhisperEncoderByHand, lambda: (torch.randn(2, 16, 40),)),
    "DiT block (timm Attention, adaLN)": (TinyDiT, lambda: (torch.randn(2, 4, 8, 8), torch.randint(0, 1000, (2,)), torch.randint(0, 10, (2,)))),
    "T5 buckets by hand": (T5ish, lambda: (torch.randint(0, 100, (2, 12)),)),
    "RetNet retention": (RetNetish, lambda: (torch.randint(0, 80, (2, 12)),)),
}
