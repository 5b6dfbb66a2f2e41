"""A ninth set of hand-written attention models (issue 20), written to be run once before any change for it (session 33).
Each follows one public original in how it writes attention: DiT (facebookresearch/DiT models.py: adaLN-Zero, a
Linear(c, 6 * hidden) chunked into shift/scale/gate for attention and MLP, timm's Attention inside, a final layer with
its own modulation and an unpatchify), RetNet (microsoft/torchscale multiscale_retention.py: per-head decays from
the head count in a buffer, a swish gate, GroupNorm-free head-wise RMS norm, retention as a masked decay matrix),
Whisper (openai/whisper model.py: MultiHeadAttention with `query`/`key`/`value`/`out`, key without bias, q and k each
scaled by (n_state // n_head) ** -0.25, a conv front end, sinusoids in a buffer), SAM's mask decoder (facebookresearch/
segment-anything transformer.py: TwoWayTransformer with Attention(downsample_rate=2): internal_dim = embedding_dim //
2, _separate_heads / _recombine_heads, token-to-image and image-to-token cross attention), fairseq's
MultiheadAttention as ESM uses it (facebookresearch/esm multihead_attention.py: q/k/v_proj, q scaled by head_dim **
-0.5, heads folded into the batch with view(tgt_len, bsz * num_heads, head_dim).transpose(0, 1), bmm, rotary by hand;
proteins), x-transformers (lucidrains: Attention with `heads`, `dim_head`, `to_q`, `to_kv` chunked, learned memory
key/values `mem_k`/`mem_v` of shape (heads, num_mem_kv, dim_head) concatenated to the keys), Perceiver IO
(deepmind perceiver: latents attend to the inputs with qk_channels and v_channels per head set apart, then latent
self-attention, then output queries), and the MAE (facebookresearch/mae models_mae.py: a ViT encoder on the visible
patches, decoder_embed to a narrower decoder, mask tokens, decoder position embeddings, a pixel head). Tiny sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- 1. DiT (facebookresearch/DiT): adaLN-Zero modulation around timm-style attention ---------------------------------

def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTAttention(nn.Module):
    def __init__(self, dim, num_heads=4, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=32):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half).to(device=t.device)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t):
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size))


class DiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = DiTAttention(hidden_size, num_heads=num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden_dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_hidden_dim, hidden_size))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class DiT(nn.Module):
    def __init__(self, input_size=16, patch_size=4, in_channels=4, hidden_size=64, depth=2, num_heads=4, num_classes=10):
        super().__init__()
        self.in_channels, self.out_channels, self.patch_size = in_channels, in_channels, patch_size
        self.x_embedder = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = nn.Embedding(num_classes + 1, hidden_size)
        num_patches = (input_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches, hidden_size) * 0.02, requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * self.out_channels, bias=True)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def unpatchify(self, x):
        c, p = self.out_channels, self.patch_size
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(shape=(x.shape[0], c, h * p, h * p))

    def forward(self, x, t, y):
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.final_modulation(c).chunk(2, dim=1)
        return self.unpatchify(self.linear(modulate(self.norm_final(x), shift, scale)))


# --- 2. RetNet (microsoft/torchscale): multi-scale retention with per-head decays ------------------------------------

class RetNetRelPos(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        angle = 1.0 / (10000 ** torch.linspace(0, 1, embed_dim // num_heads // 2))
        angle = angle.unsqueeze(-1).repeat(1, 2).flatten()
        decay = torch.log(1 - 2 ** (-5 - torch.arange(num_heads, dtype=torch.float)))
        self.register_buffer("angle", angle)
        self.register_buffer("decay", decay)

    def forward(self, slen):
        index = torch.arange(slen).to(self.decay)
        sin = torch.sin(index[:, None] * self.angle[None, :])
        cos = torch.cos(index[:, None] * self.angle[None, :])
        mask = torch.tril(torch.ones(slen, slen).to(self.decay))
        mask = torch.masked_fill(index[:, None] - index[None, :], ~mask.bool(), float("inf"))
        mask = torch.exp(mask * self.decay[:, None, None])
        mask = torch.nan_to_num(mask)
        mask = mask / mask.sum(dim=-1, keepdim=True).sqrt()
        return (sin, cos), mask


def rotate_every_two(x):
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def theta_shift(x, sin, cos):
    return (x * cos) + (rotate_every_two(x) * sin)


class MultiScaleRetention(nn.Module):
    def __init__(self, embed_dim, value_dim, num_heads):
        super().__init__()
        self.embed_dim, self.value_dim, self.num_heads = embed_dim, value_dim, num_heads
        self.head_dim = value_dim // num_heads
        self.key_dim = embed_dim // num_heads
        self.scaling = self.key_dim ** -0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, value_dim, bias=False)
        self.g_proj = nn.Linear(embed_dim, value_dim, bias=False)
        self.out_proj = nn.Linear(value_dim, embed_dim, bias=False)
        self.group_norm_eps = 1e-6

    def forward(self, x, rel_pos):
        bsz, tgt_len, _ = x.size()
        (sin, cos), inner_mask = rel_pos
        q, k, v, g = self.q_proj(x), self.k_proj(x) * self.scaling, self.v_proj(x), self.g_proj(x)
        q = q.view(bsz, tgt_len, self.num_heads, self.key_dim).transpose(1, 2)
        k = k.view(bsz, tgt_len, self.num_heads, self.key_dim).transpose(1, 2)
        qr, kr = theta_shift(q, sin, cos), theta_shift(k, sin, cos)
        v = v.view(bsz, tgt_len, self.num_heads, self.head_dim).transpose(1, 2)
        qk_mat = qr @ kr.transpose(-1, -2)
        qk_mat = qk_mat * inner_mask
        qk_mat = qk_mat / qk_mat.detach().abs().sum(dim=-1, keepdim=True).clamp(min=1, max=5e4)
        output = torch.matmul(qk_mat, v).transpose(1, 2)  # (b, n, h, d)
        output = output * torch.rsqrt(output.pow(2).mean(-1, keepdim=True) + self.group_norm_eps)  # head-wise RMS norm
        output = output.reshape(bsz, tgt_len, self.head_dim * self.num_heads)
        return self.out_proj(F.silu(g) * output)


class RetNetDecoder(nn.Module):
    def __init__(self, vocab=128, embed_dim=64, value_dim=128, heads=4, layers=2, ffn=128):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, embed_dim)
        self.retnet_rel_pos = RetNetRelPos(embed_dim, heads)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(nn.ModuleDict({
                "retention_layer_norm": nn.LayerNorm(embed_dim), "retention": MultiScaleRetention(embed_dim, value_dim, heads),
                "final_layer_norm": nn.LayerNorm(embed_dim),
                "ffn": nn.Sequential(nn.Linear(embed_dim, ffn), nn.GELU(), nn.Linear(ffn, embed_dim))}))
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.output_projection = nn.Linear(embed_dim, vocab, bias=False)

    def forward(self, tokens):
        x = self.embed_tokens(tokens)
        rel_pos = self.retnet_rel_pos(tokens.size(1))
        for layer in self.layers:
            x = x + layer["retention"](layer["retention_layer_norm"](x), rel_pos)
            x = x + layer["ffn"](layer["final_layer_norm"](x))
        return self.output_projection(self.layer_norm(x))


# --- 3. Whisper (openai/whisper model.py) ------------------------------------------------------------------------------

def sinusoids(length, channels, max_timescale=10000):
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class WhisperMultiHeadAttention(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x, xa=None, mask=None):
        q = self.query(x)
        k = self.key(x if xa is None else xa)
        v = self.value(x if xa is None else xa)
        wv = self.qkv_attention(q, k, v, mask)
        return self.out(wv)

    def qkv_attention(self, q, k, v, mask=None):
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        qk = q @ k
        if mask is not None:
            qk = qk + mask[:n_ctx, :n_ctx]
        w = F.softmax(qk.float(), dim=-1).to(q.dtype)
        return (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state, n_head, cross_attention=False):
        super().__init__()
        self.attn = WhisperMultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = WhisperMultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = nn.LayerNorm(n_state) if cross_attention else None
        n_mlp = n_state * 4
        self.mlp = nn.Sequential(nn.Linear(n_state, n_mlp), nn.GELU(), nn.Linear(n_mlp, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x, xa=None, mask=None):
        x = x + self.attn(self.attn_ln(x), mask=mask)
        if self.cross_attn:
            x = x + self.cross_attn(self.cross_attn_ln(x), xa)
        return x + self.mlp(self.mlp_ln(x))


class Whisper(nn.Module):
    def __init__(self, n_mels=16, n_audio_ctx=16, n_state=64, n_head=4, n_layer=2, n_vocab=128, n_text_ctx=16):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_audio_ctx, n_state))
        self.encoder_blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
        self.ln_post = nn.LayerNorm(n_state)
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.text_positional_embedding = nn.Parameter(torch.empty(n_text_ctx, n_state).normal_(0, 0.02))
        self.decoder_blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer)])
        self.ln = nn.LayerNorm(n_state)
        self.register_buffer("mask", torch.empty(n_text_ctx, n_text_ctx).fill_(-float("inf")).triu_(1), persistent=False)

    def forward(self, mel, tokens):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).permute(0, 2, 1)
        x = (x + self.positional_embedding[: x.shape[1]]).to(x.dtype)
        for block in self.encoder_blocks:
            x = block(x)
        xa = self.ln_post(x)
        y = self.token_embedding(tokens) + self.text_positional_embedding[: tokens.shape[-1]]
        for block in self.decoder_blocks:
            y = block(y, xa, mask=self.mask)
        y = self.ln(y)
        return (y @ torch.transpose(self.token_embedding.weight.to(y.dtype), 0, 1)).float()


# --- 4. SAM's mask decoder transformer (facebookresearch/segment-anything transformer.py) ------------------------------

class SAMAttention(nn.Module):
    def __init__(self, embedding_dim, num_heads, downsample_rate=1):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        assert self.internal_dim % num_heads == 0, "num_heads must divide embedding_dim."
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _separate_heads(self, x, num_heads):
        b, n, c = x.shape
        x = x.reshape(b, n, num_heads, c // num_heads)
        return x.transpose(1, 2)

    def _recombine_heads(self, x):
        b, n_heads, n_tokens, c_per_head = x.shape
        x = x.transpose(1, 2)
        return x.reshape(b, n_tokens, n_heads * c_per_head)

    def forward(self, q, k, v):
        q, k, v = self.q_proj(q), self.k_proj(k), self.v_proj(v)
        q, k, v = (self._separate_heads(t, self.num_heads) for t in (q, k, v))
        _, _, _, c_per_head = q.shape
        attn = q @ k.permute(0, 1, 3, 2)
        attn = torch.softmax(attn / math.sqrt(c_per_head), dim=-1)
        return self.out_proj(self._recombine_heads(attn @ v))


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, embedding_dim, num_heads, mlp_dim=128, attention_downsample_rate=2, skip_first_layer_pe=False):
        super().__init__()
        self.self_attn = SAMAttention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = SAMAttention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, embedding_dim))
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = SAMAttention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=k, v=keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=k, k=q, v=queries))
        return queries, keys


class SAMMaskDecoderTransformer(nn.Module):
    """The TwoWayTransformer with the prompt and image embeddings it reads made inside (tokens from an embedding,
    the image map from a patch convolution), and a mask head on the output tokens."""

    def __init__(self, embedding_dim=64, num_heads=4, depth=2, image_size=32, patch=8):
        super().__init__()
        self.image_encoder = nn.Conv2d(3, embedding_dim, patch, patch)
        self.pe = nn.Parameter(torch.randn(1, embedding_dim, image_size // patch, image_size // patch) * 0.02)
        self.iou_token = nn.Embedding(1, embedding_dim)
        self.mask_tokens = nn.Embedding(4, embedding_dim)
        self.layers = nn.ModuleList([TwoWayAttentionBlock(embedding_dim, num_heads, skip_first_layer_pe=(i == 0)) for i in range(depth)])
        self.final_attn_token_to_image = SAMAttention(embedding_dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)
        self.iou_prediction_head = nn.Linear(embedding_dim, 4)

    def forward(self, image, point_embedding):
        image_embedding = self.image_encoder(image)
        bs = image.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0).unsqueeze(0).expand(bs, -1, -1)
        tokens = torch.cat((output_tokens, point_embedding), dim=1)
        image_embedding = image_embedding.flatten(2).permute(0, 2, 1)
        image_pe = self.pe.expand(bs, -1, -1, -1).flatten(2).permute(0, 2, 1)
        queries, keys = tokens, image_embedding
        for layer in self.layers:
            queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=image_pe)
        q, k = queries + tokens, keys + image_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q=q, k=k, v=keys))
        return self.iou_prediction_head(queries[:, 0, :])


# --- 5. fairseq MultiheadAttention as ESM uses it (heads folded into the batch, rotary by hand) ----------------------

def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    def __init__(self, dim):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, q, k):
        t = torch.arange(k.shape[-2], device=k.device).type_as(self.inv_freq)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, :, :], emb.sin()[None, :, :]
        return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


class FairseqMultiheadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, bias=True, use_rotary_embeddings=True):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        assert self.head_dim * num_heads == self.embed_dim, "embed_dim must be divisible by num_heads"
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.rot_emb = RotaryEmbedding(dim=self.head_dim) if use_rotary_embeddings else None

    def forward(self, query, key_padding_mask=None):
        tgt_len, bsz, embed_dim = query.size()
        q = self.q_proj(query) * self.scaling
        k = self.k_proj(query)
        v = self.v_proj(query)
        q = q.contiguous().view(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        v = v.contiguous().view(-1, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        src_len = k.size(1)
        if self.rot_emb:
            q, k = self.rot_emb(q, k)
        attn_weights = torch.bmm(q, k.transpose(1, 2))
        if key_padding_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len)
            attn_weights = attn_weights.masked_fill(key_padding_mask.unsqueeze(1).unsqueeze(2).to(torch.bool), float("-inf"))
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        attn_probs = F.softmax(attn_weights, dim=-1)
        attn = torch.bmm(attn_probs, v)
        attn = attn.transpose(0, 1).contiguous().view(tgt_len, bsz, embed_dim)
        return self.out_proj(attn)


class ESMTransformerLayer(nn.Module):
    def __init__(self, embed_dim, ffn_embed_dim, attention_heads):
        super().__init__()
        self.self_attn = FairseqMultiheadAttention(embed_dim, attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, ffn_embed_dim)
        self.fc2 = nn.Linear(ffn_embed_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)

    def forward(self, x, self_attn_padding_mask=None):
        residual = x
        x = self.self_attn(self.self_attn_layer_norm(x), key_padding_mask=self_attn_padding_mask)
        x = residual + x
        residual = x
        x = self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        return residual + x


class ESM2(nn.Module):
    def __init__(self, num_layers=2, embed_dim=64, attention_heads=4, alphabet_size=33, padding_idx=1):
        super().__init__()
        self.padding_idx = padding_idx
        self.embed_scale = 1
        self.embed_tokens = nn.Embedding(alphabet_size, embed_dim, padding_idx=padding_idx)
        self.layers = nn.ModuleList([ESMTransformerLayer(embed_dim, 4 * embed_dim, attention_heads) for _ in range(num_layers)])
        self.emb_layer_norm_after = nn.LayerNorm(embed_dim)
        self.lm_dense = nn.Linear(embed_dim, embed_dim)
        self.lm_layer_norm = nn.LayerNorm(embed_dim)
        self.lm_bias = nn.Parameter(torch.zeros(alphabet_size))

    def forward(self, tokens):
        padding_mask = tokens.eq(self.padding_idx)
        x = self.embed_scale * self.embed_tokens(tokens)
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)  # (B, T, E) => (T, B, E)
        for layer in self.layers:
            x = layer(x, self_attn_padding_mask=padding_mask)
        x = self.emb_layer_norm_after(x).transpose(0, 1)
        x = self.lm_layer_norm(F.gelu(self.lm_dense(x)))
        return F.linear(x, self.embed_tokens.weight) + self.lm_bias


# --- 6. x-transformers (lucidrains): learned memory key/values per head ---------------------------------------------

class XAttention(nn.Module):
    def __init__(self, dim, dim_head=16, heads=4, num_mem_kv=2):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads
        inner_dim = dim_head * heads
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.num_mem_kv = num_mem_kv
        self.mem_k = nn.Parameter(torch.randn(heads, num_mem_kv, dim_head))
        self.mem_v = nn.Parameter(torch.randn(heads, num_mem_kv, dim_head))
        self.to_out = nn.Linear(inner_dim, dim)

    def forward(self, x):
        b, n, _, h = *x.shape, self.heads
        q = self.to_q(x)
        k, v = self.to_kv(x).chunk(2, dim=-1)
        q, k, v = (t.reshape(b, n, h, -1).transpose(1, 2) for t in (q, k, v))
        mem_k, mem_v = (t.unsqueeze(0).expand(b, -1, -1, -1) for t in (self.mem_k, self.mem_v))
        k, v = torch.cat((mem_k, k), dim=-2), torch.cat((mem_v, v), dim=-2)
        dots = torch.einsum("b h i d, b h j d -> b h i j", q, k) * self.scale
        i, j = dots.shape[-2:]
        causal = torch.ones((i, j), dtype=torch.bool, device=x.device).triu(j - i + 1)
        dots = dots.masked_fill(causal, -torch.finfo(dots.dtype).max)
        out = torch.einsum("b h i j, b h j d -> b h i d", dots.softmax(dim=-1), v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class XTransformerLM(nn.Module):
    def __init__(self, num_tokens=128, dim=64, depth=2, heads=4, max_seq_len=32):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = nn.Embedding(max_seq_len, dim)
        self.layers = nn.ModuleList([])
        for _ in range(depth):
            self.layers.append(nn.ModuleList([nn.LayerNorm(dim), XAttention(dim, heads=heads), nn.LayerNorm(dim),
                                              nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))]))
        self.norm = nn.LayerNorm(dim)
        self.to_logits = nn.Linear(dim, num_tokens)

    def forward(self, x):
        x = self.token_emb(x) + self.pos_emb(torch.arange(x.shape[1], device=x.device))
        for norm1, attn, norm2, ff in self.layers:
            x = x + attn(norm1(x))
            x = x + ff(norm2(x))
        return self.to_logits(self.norm(x))


# --- 7. Perceiver IO (deepmind/perceiver, in PyTorch): separate qk and v channels ------------------------------------

class PerceiverAttention(nn.Module):
    def __init__(self, q_dim, kv_dim, qk_channels, v_channels, num_heads, output_channels):
        super().__init__()
        self.num_heads = num_heads
        self.qk_channels_per_head = qk_channels // num_heads
        self.v_channels_per_head = v_channels // num_heads
        self.q_norm, self.kv_norm = nn.LayerNorm(q_dim), nn.LayerNorm(kv_dim)
        self.query = nn.Linear(q_dim, qk_channels)
        self.key = nn.Linear(kv_dim, qk_channels)
        self.value = nn.Linear(kv_dim, v_channels)
        self.output = nn.Linear(v_channels, output_channels)

    def forward(self, inputs_q, inputs_kv):
        q, k, v = self.query(self.q_norm(inputs_q)), self.key(self.kv_norm(inputs_kv)), self.value(self.kv_norm(inputs_kv))
        batch, q_len, _ = q.shape
        kv_len = k.shape[1]
        q = q.reshape(batch, q_len, self.num_heads, self.qk_channels_per_head)
        k = k.reshape(batch, kv_len, self.num_heads, self.qk_channels_per_head)
        v = v.reshape(batch, kv_len, self.num_heads, self.v_channels_per_head)
        attention = torch.einsum("bthd,bThd->bhtT", q, k) / math.sqrt(self.qk_channels_per_head)
        attention = torch.softmax(attention, dim=-1)
        summed = torch.einsum("bhtT,bThd->bthd", attention, v)
        return self.output(summed.reshape(batch, q_len, self.num_heads * self.v_channels_per_head))


class PerceiverBlock(nn.Module):
    def __init__(self, q_dim, kv_dim, qk_channels, v_channels, heads, widening=2, residual=True):
        super().__init__()
        self.attention = PerceiverAttention(q_dim, kv_dim, qk_channels, v_channels, heads, q_dim)
        self.norm = nn.LayerNorm(q_dim)
        self.mlp = nn.Sequential(nn.Linear(q_dim, q_dim * widening), nn.GELU(), nn.Linear(q_dim * widening, q_dim))
        self.residual = residual

    def forward(self, x, inputs_kv):
        attn = self.attention(x, inputs_kv)
        x = x + attn if self.residual else attn
        return x + self.mlp(self.norm(x))


class PerceiverIO(nn.Module):
    def __init__(self, input_dim=16, num_latents=8, latent_dim=64, num_classes=5):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim) * 0.02)
        self.encoder = PerceiverBlock(latent_dim, input_dim, qk_channels=32, v_channels=64, heads=2)
        self.process = nn.ModuleList([PerceiverBlock(latent_dim, latent_dim, qk_channels=64, v_channels=64, heads=4) for _ in range(2)])
        self.output_query = nn.Parameter(torch.randn(1, 32) * 0.02)
        self.decoder = PerceiverBlock(32, latent_dim, qk_channels=32, v_channels=32, heads=1, residual=False)
        self.head = nn.Linear(32, num_classes)

    def forward(self, inputs):
        b = inputs.shape[0]
        z = self.latents.unsqueeze(0).expand(b, -1, -1)
        z = self.encoder(z, inputs)
        for block in self.process:
            z = block(z, z)
        out = self.decoder(self.output_query.unsqueeze(0).expand(b, -1, -1), z)
        return self.head(out[:, 0])


# --- 8. MAE (facebookresearch/mae models_mae.py): encoder on visible patches, narrower decoder ------------------------

class MAEBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = DiTAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoderViT(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=64, depth=2, num_heads=4,
                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2):
        super().__init__()
        self.patch_size = patch_size
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * 0.02, requires_grad=False)
        self.blocks = nn.ModuleList([MAEBlock(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, decoder_embed_dim) * 0.02, requires_grad=False)
        self.decoder_blocks = nn.ModuleList([MAEBlock(decoder_embed_dim, decoder_num_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)

    def forward(self, imgs, noise):
        x = self.patch_embed(imgs).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:, :]
        N, L, D = x.shape
        len_keep = L // 2
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x))
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]


# --- registry ----------------------------------------------------------------------------------------------------------

def build(name: str) -> nn.Module:
    return MODELS[name][0]()


def _dit_inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, 16, 16, generator=g), torch.randint(0, 1000, (3,), generator=g), torch.randint(0, 10, (3,), generator=g)


def _sam_inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, 32, 32, generator=g), torch.randn(3, 2, 64, generator=g)


def _esm_inputs():
    tokens = torch.randint(4, 30, (3, 12), generator=torch.Generator().manual_seed(0))
    tokens[0, -2:] = 1  # padding
    return (tokens,)


MODELS = {
    "DiT adaLN-Zero (diffusion)": (DiT, _dit_inputs),
    "RetNet multi-scale retention": (RetNetDecoder, lambda: (torch.randint(0, 128, (3, 12), generator=torch.Generator().manual_seed(0)),)),
    "Whisper (openai) encoder-decoder (speech)": (Whisper, lambda: (torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(0)),
                                                                    torch.randint(0, 128, (3, 10), generator=torch.Generator().manual_seed(1)))),
    "SAM two-way transformer (downsampled cross-attention)": (SAMMaskDecoderTransformer, _sam_inputs),
    "ESM-2 fairseq attention, heads in the batch (proteins)": (ESM2, _esm_inputs),
    "x-transformers memory key/values": (XTransformerLM, lambda: (torch.randint(0, 128, (3, 12), generator=torch.Generator().manual_seed(0)),)),
    "Perceiver IO (qk and v channels apart)": (PerceiverIO, lambda: (torch.randn(3, 20, 16, generator=torch.Generator().manual_seed(0)),)),
    "MAE encoder-decoder (masked patches)": (MaskedAutoencoderViT, lambda: (torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
                                                                            torch.rand(3, 16, generator=torch.Generator().manual_seed(1)))),
}
