"""Attention written by hand, as in users' own code (no registered form): importable as
``own_attention_models:<factory>`` once this folder is on sys.path, as pytest puts it."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class InputWidthAttention(nn.Module):
    """The ViT attention copied into countless projects: the head size is the input's width over ``num_heads``,
    and the output is reshaped back to that width, so heads and the residual width must shrink together."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class WideHeadsAttention(nn.Module):
    """Heads of their own size (``dim_head``), inner width unlike the input's, chunked q/k/v: vit-pytorch's layout."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = torch.matmul(torch.matmul(q, k.transpose(-1, -2)).mul(self.scale).softmax(-1), v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GroupedQueryAttention(nn.Module):
    """Separate projections, fewer key/value heads than query heads, ``repeat_kv`` by expand: Meta's Llama."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.n_rep = n_heads, n_kv_heads, n_heads // n_kv_heads
        self.head_dim = dim // n_heads
        self.wq = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = (self._repeat(p(x).view(b, t, self.n_kv_heads, self.head_dim)).transpose(1, 2) for p in (self.wk, self.wv))
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        out = torch.matmul(F.softmax(scores.float(), dim=-1), v)
        return self.wo(out.transpose(1, 2).contiguous().view(b, t, -1))

    def _repeat(self, x: torch.Tensor) -> torch.Tensor:
        b, t, kv, d = x.shape
        return x[:, :, :, None, :].expand(b, t, kv, self.n_rep, d).reshape(b, t, kv * self.n_rep, d)


class MultiQueryAttention(nn.Module):
    """One key/value head expanded to ``n_heads`` query heads by hand."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * self.head_dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = (p.unsqueeze(1).expand(-1, self.n_heads, -1, -1) for p in self.kv(x).split(self.head_dim, dim=-1))
        return self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, -1))


class SdpaGroupedAttention(nn.Module):
    """Hugging Face's projection names (a registered form matches them) with head counts of its own names, grouped
    key/values through SDPA's ``enable_gqa``."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, dim // num_heads
        self.q_proj = nn.Linear(dim, num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * self.head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


class AnnotatedAttention(nn.Module):
    """The Annotated Transformer's: four linears in a list, the head count in ``h``."""

    def __init__(self, d_model: int, h: int) -> None:
        super().__init__()
        self.d_k, self.h = d_model // h, h
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        q, k, v = [lin(x).view(n, -1, self.h, self.d_k).transpose(1, 2) for lin in self.linears[:3]]
        attn = (torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)).softmax(dim=-1)
        return self.linears[-1](torch.matmul(attn, v).transpose(1, 2).contiguous().view(n, -1, self.h * self.d_k))


class InnerWidthAttention(nn.Module):
    """BERT's layout copied with names of its own: heads merged back to ``self.inner_dim``."""

    def __init__(self, dim: int, n_heads: int, d_head: int = 16) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.inner_dim = n_heads, d_head, n_heads * d_head
        self.query, self.key, self.value = (nn.Linear(dim, self.inner_dim) for _ in range(3))
        self.out = nn.Linear(self.inner_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.n_heads, self.d_head).permute(0, 2, 1, 3) for p in (self.query, self.key, self.value))
        a = torch.softmax(q @ k.transpose(-1, -2) / self.d_head ** 0.5, -1) @ v
        return self.out(a.permute(0, 2, 1, 3).contiguous().view(b, t, self.inner_dim))


class PiecesAttention(nn.Module):
    """Heads split off as pieces and concatenated along the batch (the Set Transformer's layout), the piece size
    computed from a width attribute; rotary positions from ``torch.outer``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.dim_v, self.num_heads = dim, num_heads
        self.fc_q, self.fc_k, self.fc_v, self.fc_o = (nn.Linear(dim, dim) for _ in range(4))
        self.register_buffer("inv_freq", 1.0 / 100 ** (torch.arange(0, 4, 2).float() / 4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.dim_v // self.num_heads
        q, k, v = (torch.cat(p(x).split(split, 2), 0) for p in (self.fc_q, self.fc_k, self.fc_v))
        angles = torch.outer(torch.arange(x.shape[1], dtype=torch.float32), self.inv_freq)  # (tokens, 2)
        q = q * (1 + 0.1 * angles.cos().sum(-1, keepdim=True))
        a = torch.softmax(q.bmm(k.transpose(1, 2)) / math.sqrt(split), 2)
        return self.fc_o(torch.cat(a.bmm(v).split(x.size(0), 0), 2))


class StackedHeadsAttention(nn.Module):
    """Weights as parameters read by ``tensordot``, heads stacked from split pieces and concatenated back from
    pieces of one (DeepCTR's AutoInt), the head count in ``head_num``."""

    def __init__(self, dim: int, head_num: int) -> None:
        super().__init__()
        self.head_num, self.size = head_num, dim // head_num
        self.W_Query, self.W_key, self.W_Value = (nn.Parameter(torch.randn(dim, dim) * 0.2) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (torch.stack(torch.split(torch.tensordot(x, w, dims=([-1], [0])), self.size, dim=2))
                   for w in (self.W_Query, self.W_key, self.W_Value))
        r = torch.matmul(F.softmax(torch.einsum("bnik,bnjk->bnij", q, k), dim=-1), v)
        return self.proj(torch.cat(torch.split(r, 1), dim=-1).squeeze(0))


class RetentionLike(nn.Module):
    """Heads normalised by ``GroupNorm(heads, width)`` (RetNet's multi-scale retention), heads into the batch for a
    ``baddbmm`` onto ``torch.empty`` (old diffusers' cross-attention)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_size = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.group_norm = nn.GroupNorm(heads, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (p(x).reshape(b, n, self.heads, self.head_size).permute(0, 2, 1, 3).reshape(b * self.heads, n, self.head_size)
                   for p in (self.q, self.k, self.v))
        a = torch.baddbmm(torch.empty(q.shape[0], n, n), q, k.transpose(1, 2), beta=0, alpha=self.head_size ** -0.5).softmax(-1)
        y = torch.bmm(a, v).reshape(b, self.heads, n, self.head_size).permute(0, 2, 1, 3).reshape(b * n, -1)
        return self.o(self.group_norm(y).reshape(b, n, -1))


class KeyDimAttention(nn.Module):
    """RetNet's retention projections (torchscale's MultiScaleRetention): ``q_proj``/``k_proj``/``v_proj``/``out_proj``
    like Llama's, but queries and keys of ``key_dim`` per head beside values of ``head_dim`` (twice as wide), and a
    swish gate on the values' width."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.key_dim, self.head_dim = num_heads, dim // num_heads, 2 * dim // num_heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.v_proj, self.g_proj = nn.Linear(dim, 2 * dim, bias=False), nn.Linear(dim, 2 * dim, bias=False)
        self.out_proj = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.key_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_heads, self.key_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        y = ((q @ k.transpose(-1, -2)) * self.key_dim ** -0.5).softmax(-1) @ v
        y = y.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.out_proj(nn.functional.silu(self.g_proj(x)) * y)


class LatentAttention(nn.Module):
    """DeepSeek-V2's multi-head latent attention as its remote code writes it: low-rank queries (``q_lora_rank``) and
    keys/values (``kv_lora_rank``, of the same value), the latent split from one shared rotary key by the two
    attributes, queries and keys assembled in ``new_empty`` fills by slice assignment, and a ``max_position_embeddings``
    that happens to equal the width."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.hidden_size, self.num_heads, self.max_position_embeddings = dim, num_heads, dim
        self.q_lora_rank = self.kv_lora_rank = dim // 2
        self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim = 8, 8, 8
        self.q_head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
        self.q_a_proj = nn.Linear(dim, self.q_lora_rank, bias=False)
        self.q_b_proj = nn.Linear(self.q_lora_rank, num_heads * self.q_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(dim, self.kv_lora_rank + self.qk_rope_head_dim, bias=False)
        self.kv_b_proj = nn.Linear(self.kv_lora_rank, num_heads * (self.qk_nope_head_dim + self.v_head_dim), bias=False)
        self.o_proj = nn.Linear(num_heads * self.v_head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.size()
        q = self.q_b_proj(self.q_a_proj(x)).view(b, n, self.num_heads, self.q_head_dim).transpose(1, 2)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        compressed_kv, k_pe = torch.split(self.kv_a_proj_with_mqa(x), [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = k_pe.view(b, n, 1, self.qk_rope_head_dim).transpose(1, 2)
        kv = self.kv_b_proj(compressed_kv).view(b, n, self.num_heads, self.qk_nope_head_dim + self.v_head_dim).transpose(1, 2)
        k_nope, v = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        query = k_pe.new_empty(b, self.num_heads, n, self.q_head_dim)
        query[:, :, :, :self.qk_nope_head_dim] = q_nope
        query[:, :, :, self.qk_nope_head_dim:] = q_pe
        key = k_pe.new_empty(b, self.num_heads, n, self.q_head_dim)
        key[:, :, :, :self.qk_nope_head_dim] = k_nope
        key[:, :, :, self.qk_nope_head_dim:] = k_pe
        y = ((query @ key.transpose(2, 3)) * self.q_head_dim ** -0.5).softmax(-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(b, n, self.num_heads * self.v_head_dim))


class StreamAttention(nn.Module):
    """One stream's projections in SD3's MMDiT (Stability-AI/sd3.5 mmditx.py): ``pre_attention`` and ``post_attention``
    methods, no forward; the joint block around it runs the attention itself."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def pre_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, -1, self.head_dim).movedim(2, 0)
        return q.reshape(x.shape[0], x.shape[1], -1), k.reshape(x.shape[0], x.shape[1], -1), v


class JointStreams(nn.Module):
    """SD3's joint block: both streams' queries, keys and values concatenated along the tokens, attention with the
    image stream's ``num_heads`` in the block's own code, and each stream's part projected back by its own layer."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.context, self.image = StreamAttention(dim, num_heads), StreamAttention(dim, num_heads)

    def forward(self, c: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (cq, ck, cv), (xq, xk, xv) = self.context.pre_attention(c), self.image.pre_attention(x)
        q, k = torch.cat([cq, xq], 1), torch.cat([ck, xk], 1)
        b, heads = q.shape[0], self.image.num_heads
        q, k = (t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k))
        v = torch.cat([cv, xv], 1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, q.shape[2], -1)
        return c + self.context.proj(out[:, :c.shape[1]]), x + self.image.proj(out[:, c.shape[1]:])


class JointStreamNet(nn.Module):
    """Image patches and context tokens through joint blocks; the model keeps its own ``num_heads`` (its
    configuration, which the reshape of its output to patches matches by chance)."""

    def __init__(self, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.embed, self.context = nn.Conv2d(3, dim, 4, 4), nn.Parameter(torch.randn(1, 5, dim))
        self.blocks = nn.ModuleList(JointStreams(dim, num_heads) for _ in range(2))
        self.out = nn.Linear(dim, 4 * 4 * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        c = self.context.expand(x.shape[0], -1, -1)
        for block in self.blocks:
            c, x = block(c, x)
        p = self.out(x).reshape(x.shape[0], 4, 4, 4, 4, 3)  # unpatchify: (h, w, p, p, channels)
        return torch.einsum("nhwpqc->nchpwq", p).reshape(x.shape[0], 3, 16, 16)


def joint_stream_net() -> nn.Module:
    return JointStreamNet()


class FunctionalAttention(nn.Module):
    """``F.multi_head_attention_forward`` with a packed ``in_proj`` and the module's own ``embed_dim`` (which the
    function checks against its input's width and divides by ``num_heads`` for the head size)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.embed_dim, self.num_heads = dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * dim, dim) * dim ** -0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)
        out, _ = F.multi_head_attention_forward(x, x, x, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
                                                None, None, False, 0.0, self.out_proj.weight, self.out_proj.bias,
                                                training=self.training, need_weights=False)
        return out.transpose(0, 1)


class PackedGroupedAttention(nn.Module):
    """gemma_pytorch's layout: one packed projection split by sizes it keeps (``q_size``, ``kv_size``), key/value
    heads repeated by ``repeat_interleave``, and a ``type_as`` whose other tensor has another shape."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, dim // num_heads
        self.num_queries_per_kv = num_heads // num_kv_heads
        self.q_size, self.kv_size = num_heads * self.head_dim, num_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(dim, self.q_size + 2 * self.kv_size, bias=False)
        self.o_proj = nn.Linear(self.q_size, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv_proj(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = q.view(b, n, self.num_heads, self.head_dim).float().type_as(x)
        k = torch.repeat_interleave(k.view(b, n, self.num_kv_heads, self.head_dim), self.num_queries_per_kv, dim=2)
        v = torch.repeat_interleave(v.view(b, n, self.num_kv_heads, self.head_dim), self.num_queries_per_kv, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = torch.matmul((torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5).softmax(-1), v)
        return self.o_proj(out.transpose(1, 2).contiguous().view(b, n, -1))


class FairseqAttention(nn.Module):
    """fairseq's (and ESM's) ``MultiheadAttention``: q/k/v/out_proj, ``num_heads`` and ``head_dim`` as a registered
    form has them, but its forward asserts its input's width equals ``self.embed_dim``, time first."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(embed_dim, embed_dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = x.transpose(0, 1)
        tgt_len, bsz, embed_dim = query.size()
        assert embed_dim == self.embed_dim
        q = self.q_proj(query)
        q *= self.scaling
        q = q.contiguous().view(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        k = self.k_proj(query).contiguous().view(-1, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        v = self.v_proj(query).contiguous().view(-1, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        attn = torch.bmm(torch.bmm(q, k.transpose(1, 2)).softmax(-1), v)
        return self.out_proj(attn.transpose(0, 1).contiguous().view(tgt_len, bsz, embed_dim)).transpose(0, 1)


class CascadedAttention(nn.Module):
    """EfficientViT's cascaded group attention, on tokens: the input chunked into ``num_heads`` pieces, each fed to
    a projection of its own (the previous head's output added), so its heads are layers, not channels."""

    def __init__(self, dim: int, num_heads: int, key_dim: int = 8) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.qkvs = nn.ModuleList(nn.Linear(dim // num_heads, 2 * key_dim + dim // num_heads) for _ in range(num_heads))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats_in, feats_out = x.chunk(len(self.qkvs), dim=-1), []
        feat = feats_in[0]
        for i, qkv in enumerate(self.qkvs):
            if i > 0:
                feat = feat + feats_in[i]
            q, k, v = qkv(feat).split([self.key_dim, self.key_dim, feat.shape[-1]], dim=-1)
            feat = (q @ k.transpose(-2, -1) * self.key_dim ** -0.5).softmax(-1) @ v
            feats_out.append(feat)
        return self.proj(torch.cat(feats_out, -1))


class ConvAttention(nn.Module):
    """Heads over a feature map from 1x1 convolutions (BoTNet-like, by hand)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.heads, self.head_dim, h * w).unbind(1)
        attn = ((q.transpose(-2, -1) @ k) * self.head_dim ** -0.5).softmax(dim=-1)
        return self.proj((v @ attn.transpose(-2, -1)).reshape(b, self.heads * self.head_dim, h, w))


class TokenNet(nn.Module):
    """Patches -> pre-norm blocks of ``attention`` + MLP -> class scores; ``norms=False`` drops the norms
    (so a residual channel whose weights are zero carries zero, for the function-preserving tests)."""

    def __init__(self, attention: str = "input_width", dim: int = 32, heads: int = 4, depth: int = 2, norms: bool = True) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        make = {"input_width": lambda: InputWidthAttention(dim, heads), "wide": lambda: WideHeadsAttention(dim, heads, 16),
                "grouped": lambda: GroupedQueryAttention(dim, heads, heads // 2),
                "multi_query": lambda: MultiQueryAttention(dim, heads), "sdpa_grouped": lambda: SdpaGroupedAttention(dim, heads, heads // 2),
                "annotated": lambda: AnnotatedAttention(dim, heads), "inner_width": lambda: InnerWidthAttention(dim, heads),
                "pieces": lambda: PiecesAttention(dim, heads), "stacked": lambda: StackedHeadsAttention(dim, heads),
                "retention": lambda: RetentionLike(dim, heads), "functional": lambda: FunctionalAttention(dim, heads),
                "packed_grouped": lambda: PackedGroupedAttention(dim, heads, heads // 2), "fairseq": lambda: FairseqAttention(dim, heads),
                "cascaded": lambda: CascadedAttention(dim, heads),
                "grouped_fused": lambda: GroupedFusedAttention(dim, 2 * heads, heads // 2), "two_module": lambda: TwoModuleAttention(dim, heads),
                "speech": lambda: SpeechAttention(dim, heads), "bloom_named": lambda: BloomAttention(dim, heads),
                "projected_keys": lambda: ProjectedKeysAttention(dim, heads), "one_derived_head": lambda: OneDerivedHead(dim),
                "key_dim": lambda: KeyDimAttention(dim, heads), "latent": lambda: LatentAttention(dim, heads)}[attention]
        norm = (lambda: nn.LayerNorm(dim)) if norms else nn.Identity
        self.blocks = nn.ModuleList(nn.ModuleDict({"norm1": norm(), "attn": make(), "norm2": norm(),
                                                   "mlp": nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))})
                                    for _ in range(depth))
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        for blk in self.blocks:
            x = x + blk["attn"](blk["norm1"](x))
            x = x + blk["mlp"](blk["norm2"](x))
        return self.head(x.mean(1))


class ConvAttentionNet(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.ReLU())
        self.attn = ConvAttention(dim, heads)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.attn(x)
        return self.head(x.mean((2, 3)))


def token_net(attention: str = "input_width", norms: bool = True, dim: int = 32) -> nn.Module:
    return TokenNet(attention, dim=dim, norms=norms)


def conv_attention_net() -> nn.Module:
    return ConvAttentionNet()


class TranslationModel(nn.Module):
    """``nn.Transformer`` between two embeddings (PyTorch's translation tutorial): its forward checks its inputs'
    width against ``d_model``, and its causal-mask check branches on data."""

    def __init__(self, vocab: int = 40, d_model: int = 32) -> None:
        super().__init__()
        self.src, self.tgt = nn.Embedding(vocab, d_model), nn.Embedding(vocab, d_model)
        self.transformer = nn.Transformer(d_model, 4, 1, 1, 64, dropout=0.0, batch_first=True)
        self.generator = nn.Linear(d_model, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(1))
        return self.generator(self.transformer(self.src(src), self.tgt(tgt), tgt_mask=mask))


def translation_model() -> nn.Module:
    return TranslationModel()


class TokenizedRows(nn.Module):
    """FT-Transformer's tokenizer: a bias row of zeros made in the forward, sized from the bias, concatenated with it."""

    def __init__(self, n: int = 5, width: int = 32) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(n + 1, width)), nn.Parameter(torch.randn(n, width))
        self.mlp = nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, width))
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, n) numbers
        x = torch.cat([torch.ones(len(x), 1), x], dim=1)
        tokens = self.weight[None] * x[:, :, None]
        tokens = tokens + torch.cat([torch.zeros(1, self.bias.shape[1]), self.bias])[None]
        return self.head((tokens + self.mlp(tokens)).mean(1))


def tokenized_rows() -> nn.Module:
    return TokenizedRows()


class FunctionalPool(nn.Module):
    """CLIP's attention pooling: ``F.multi_head_attention_forward`` with separate projections, whose head size is the
    input's width over ``num_heads`` and whose heads it merges with the batch."""

    def __init__(self, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.q_proj, self.k_proj, self.v_proj, self.c_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.num_heads = num_heads
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).permute(2, 0, 1)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=self.training, need_weights=False)
        return self.head(x.squeeze(0))


def functional_pool() -> nn.Module:
    return FunctionalPool()


class GroupedFusedAttention(nn.Module):
    """Falcon's new decoder layout by hand: one projection whose rows are (key/value groups, queries per group + 2,
    head_dim), the queries of a group flattened into ``self.num_heads`` heads, the group's key and value broadcast.
    (Queries per group + 2 must not equal a head count, as in Falcon's own sizes: the view's factor of that size would
    be taken for the heads.)"""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, dim // num_heads
        self.query_key_value = nn.Linear(dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=False)
        self.dense = nn.Linear(num_heads * self.head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        qkv = self.query_key_value(x).view(b, s, -1, self.num_heads // self.num_kv_heads + 2, self.head_dim)
        q, k, v = qkv[:, :, :, :-2], torch.broadcast_to(qkv[:, :, :, [-2]], qkv[:, :, :, :-2].shape), \
            torch.broadcast_to(qkv[:, :, :, [-1]], qkv[:, :, :, :-2].shape)
        q, k, v = (t.flatten(2, 3).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.dense(out.transpose(1, 2).reshape(b, s, self.num_heads * self.head_dim))


class SpeechAttention(nn.Module):
    """wav2vec 2.0's attention copied into a project: q/k/v/out_proj, ``num_heads`` and ``head_dim`` as a registered
    form has them, and its output reshaped to ``self.embed_dim``, the heads' merged width."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(embed_dim, embed_dim) for _ in range(4))

    def _shape(self, tensor: torch.Tensor, seq_len: int, bsz: int) -> torch.Tensor:
        return tensor.view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz, tgt_len, _ = x.size()
        proj_shape = (bsz * self.num_heads, -1, self.head_dim)
        q = self._shape(self.q_proj(x) * self.head_dim ** -0.5, tgt_len, bsz).view(*proj_shape)
        k = self._shape(self.k_proj(x), -1, bsz).reshape(*proj_shape)
        v = self._shape(self.v_proj(x), -1, bsz).reshape(*proj_shape)
        out = torch.bmm(torch.bmm(q, k.transpose(1, 2)).softmax(-1), v)
        out = out.view(bsz, self.num_heads, tgt_len, self.head_dim).transpose(1, 2)
        return self.out_proj(out.reshape(bsz, tgt_len, self.embed_dim))


class BloomAttention(nn.Module):
    """A user's class named as transformers' BLOOM attention (its fused (heads, 3, head_dim) rows), with a forward of
    its own: not transformers' class, so not given that class's stand-in forward."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.query_key_value = nn.Linear(dim, 3 * dim)
        self.dense = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = self.query_key_value(x).view(b, s, self.num_heads, 3, self.head_dim).unbind(3)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.dense(out.transpose(1, 2).reshape(b, s, -1))


class ProjectedKeysAttention(nn.Module):
    """Linformer's: one key/value head of ``dim_head`` channels, its keys and values projected along the sequence to
    ``self.k`` positions by parameters, viewed by attributes (``reshape(b, k, -1, d_h)``) and expanded to the query
    heads. The single head's channels are a head's, fixed in size; ``self.k`` follows the positions kept."""

    def __init__(self, dim: int, heads: int, seq_len: int = 16, k: int = 8) -> None:
        super().__init__()
        self.heads, self.dim_head, self.k = heads, dim // heads, k
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, self.dim_head, bias=False)
        self.to_v = nn.Linear(dim, self.dim_head, bias=False)
        self.proj_k = nn.Parameter(torch.randn(seq_len, k) / seq_len ** 0.5)
        self.proj_v = nn.Parameter(torch.randn(seq_len, k) / seq_len ** 0.5)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        d_h, h, k = self.dim_head, self.heads, self.k
        keys = torch.einsum("bnd,nk->bkd", self.to_k(x), self.proj_k)
        values = torch.einsum("bnd,nk->bkd", self.to_v(x), self.proj_v)
        q = self.to_q(x).reshape(b, n, h, -1).transpose(1, 2)
        keys, values = (t.reshape(b, k, -1, d_h).transpose(1, 2).expand(-1, h, -1, -1) for t in (keys, values))
        attn = (torch.einsum("bhnd,bhkd->bhnk", q, keys) * d_h ** -0.5).softmax(dim=-1)
        out = torch.einsum("bhnk,bhkd->bhnd", attn, values)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class OneDerivedHead(nn.Module):
    """A Perceiver's single cross-attention head, its size derived by the view (``view(b, n, self.heads, -1)``, no
    attribute holds it): the head's channels may shrink."""

    def __init__(self, dim: int, heads: int = 1) -> None:
        super().__init__()
        self.heads = 1
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (p(x).view(b, n, self.heads, -1).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v))
        return self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))


class _Landmarks(nn.Module):
    """The inner kernel of a two-module attention (the Nyströmformer's): heads split in the module around it, its own
    ``self.num_head`` in a reshape that keeps them."""

    def __init__(self, num_head: int, head_dim: int) -> None:
        super().__init__()
        self.num_head, self.head_dim = num_head, head_dim
        self.conv = nn.Conv2d(num_head, num_head, (3, 1), padding=(1, 0), bias=False, groups=num_head)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        k_landmarks = k.reshape(-1, self.num_head, 4, k.shape[2] // 4, self.head_dim).mean(dim=-2)
        attn = torch.matmul(q, k_landmarks.transpose(-1, -2)).softmax(-1)
        return torch.matmul(attn, k_landmarks) + self.conv(v)


class TwoModuleAttention(nn.Module):
    def __init__(self, dim: int, num_head: int) -> None:
        super().__init__()
        self.num_head, self.head_dim = num_head, dim // num_head
        self.W_q, self.W_k, self.W_v = (nn.Linear(dim, dim) for _ in range(3))
        self.attn = _Landmarks(num_head, self.head_dim)
        self.ff = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (w(x).reshape(b, n, self.num_head, self.head_dim).transpose(1, 2) for w in (self.W_q, self.W_k, self.W_v))
        return self.ff(self.attn(q, k, v).transpose(1, 2).reshape(b, n, -1))


class ColumnTable(nn.Module):
    """SAINT's embedding of continuous columns: ``torch.empty(b, n, self.dim)`` filled column by column by a small
    MLP each, concatenated with the categorical embeddings; a model-level ``self.heads`` (its configuration) and a
    GEGLU feed-forward whose ``chunk(2)`` is not a split into heads; padded rows zeroed by a mask repeated to the width."""

    def __init__(self, dim: int = 32, heads: int = 2, columns: int = 3) -> None:
        super().__init__()
        self.dim, self.heads, self.columns = dim, heads, columns
        self.embeds = nn.Embedding(10, dim)
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, dim)) for _ in range(columns))
        self.attn = InputWidthAttention(dim, heads)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), _GEGLU(), nn.Linear(2 * dim, dim))
        self.out = nn.Linear(dim, 2)

    def forward(self, categ: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        x_cont = torch.empty(cont.shape[0], self.columns, self.dim)
        for i in range(self.columns):
            x_cont[:, i, :] = self.mlps[i](cont[:, i:i + 1])
        x = torch.cat((self.embeds(categ), x_cont), dim=1)
        keep = torch.ones(x.shape[0], x.shape[1], dtype=torch.bool)
        x[~keep.unsqueeze(-1).repeat(1, 1, x.shape[2])] = 0
        x = x + self.attn(x)
        x = x + self.ff(x)
        return self.out(x.mean(1))


class _GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


def column_table() -> nn.Module:
    torch.manual_seed(0)
    return ColumnTable()


class _ScaledDotProduct(nn.Module):
    """BERT4Rec's attention kernel: a module of its own, without weights, handed the heads."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(q, k.transpose(-2, -1)).softmax(-1), v)


class DirectForwardAttention(nn.Module):
    """mistral-src / BERT4Rec style: heads viewed with ``self.d_k`` (the first size -1), a kernel module, and the
    block calling ``self.attention.forward(...)`` directly rather than ``self.attention(...)``."""

    def __init__(self, dim: int, h: int) -> None:
        super().__init__()
        self.h, self.d_k = h, dim // h
        self.linear_layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.output_linear = nn.Linear(dim, dim)
        self.attention = _ScaledDotProduct()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        q, k, v = (lin(x).view(b, -1, self.h, self.d_k).transpose(1, 2) for lin in self.linear_layers)
        out = self.attention.forward(q, k, v)
        return self.output_linear(out.transpose(1, 2).contiguous().view(b, -1, self.h * self.d_k))


class DirectForwardNet(nn.Module):
    def __init__(self, dim: int = 32, h: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.attn = DirectForwardAttention(dim, h)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = x + self.attn.forward(x)
        x = x + self.mlp(x)
        return self.head(x.mean(1))


def direct_forward_net() -> nn.Module:
    torch.manual_seed(0)
    return DirectForwardNet()


class MovedMaskBlock(nn.Module):
    """OpenAI CLIP's ResidualAttentionBlock: a causal mask kept as a plain attribute that its forward moves to the
    input's device and dtype (``self.attn_mask = self.attn_mask.to(...)``)."""

    def __init__(self, dim: int = 32, heads: int = 4, length: int = 16) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads)
        self.attn_mask = torch.full((length, length), float("-inf")).triu_(1)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).permute(2, 0, 1)  # LND
        self.attn_mask = self.attn_mask.to(dtype=x.dtype, device=x.device)
        x = x + self.attn(x, x, x, need_weights=False, attn_mask=self.attn_mask)[0]
        x = x + self.mlp(x)
        return self.head(x.mean(0))


class RandomFeatures(nn.Module):
    """Performer-style: a factory that needs data while it builds (``.item()`` of a QR of random features), so it
    cannot be built on the meta device."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(8, 8))
        self.register_buffer("projection", q * float(q.abs().sum().item() > 0))
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 5)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.embed(img).flatten(2).transpose(1, 2)
        x = x + self.mlp(x)
        return self.head(x.mean(1)) + (img.flatten(1)[:, :8] @ self.projection).sum(-1, keepdim=True)


def random_features() -> nn.Module:
    torch.manual_seed(0)
    return RandomFeatures()


class UnnamedCountAttention(nn.Module):
    """Heads counted under a name no rule reads (``self.parts``), viewed with a leading -1 (so a narrower width
    changes the token count, not an error), handed to a kernel module."""

    def __init__(self, dim: int = 32, parts: int = 4) -> None:
        super().__init__()
        self.parts, self.width = parts, dim // parts
        self.qkv = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.kernel = _ScaledDotProduct()
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        q, k, v = (lin(x).view(b, -1, self.parts, self.width).transpose(1, 2) for lin in self.qkv)
        return self.out(self.kernel(q, k, v).transpose(1, 2).reshape(b, x.size(1), -1))


class UnnamedCountNet(DirectForwardNet):
    def __init__(self) -> None:
        super().__init__()
        self.attn = UnnamedCountAttention()


class ClassTokenByFill(nn.Module):
    """OpenAI CLIP's vision tower: its class token made as ``class_embedding + torch.zeros(b, 1, x.shape[-1])``."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, dim, 4, 4, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(dim))
        self.ln_pre = nn.LayerNorm(dim)
        self.attn = InputWidthAttention(dim, 4)
        self.head = nn.Linear(dim, 5)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.conv1(img).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1)
        x = self.ln_pre(x)
        x = x + self.attn(x)
        return self.head(x[:, 0])
