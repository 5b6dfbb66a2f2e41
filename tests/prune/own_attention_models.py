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
                "retention": lambda: RetentionLike(dim, heads)}[attention]
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
