"""More timm attention forms (see :mod:`slimforge.prune._timm_attention`): XCiT and DaViT (stand-in
forwards), EfficientFormer, TinyViT and timm's MaxViT (their own forwards read the head count)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimforge.prune._timm_attention import TimmFamily, _attend, _merge_heads, _split_qkv, register_timm_family

# ----------------------------------------------------------------------------- XCiT


def _xca_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.xcit.XCA.forward: attention across each head's channels (head_dim x head_dim),
    one learned temperature per head. x: (B, N, dim) -> (B, N, dim)."""
    B, N, _ = x.shape
    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 4, 1)
    q, k, v = qkv.unbind(0)
    if self.fused_attn:
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        x = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    else:
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        x = self.attn_drop(attn.softmax(dim=-1)) @ v
    return self.proj_drop(self.proj(x.permute(0, 3, 1, 2).reshape(B, N, -1)))


register_timm_family("timm-xcit-attention", TimmFamily("models.xcit", "XCA", forward=_xca_forward),
                     "timm XCiT XCA (cross-covariance attention, a temperature per head)")

# ----------------------------------------------------------------------------- DaViT


def _davit_channel_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.davit.ChannelAttention.forward: attention across each head's channels. x: (B, N, dim) -> (B, N, dim)."""
    q, k, v = _split_qkv(self, self.qkv(x))
    attn = ((k * self.scale).transpose(-1, -2) @ v).softmax(dim=-1)
    return _merge_heads(self, (attn @ q.transpose(-1, -2)).transpose(-1, -2))


register_timm_family("timm-davit-channel-attention", TimmFamily("models.davit", "ChannelAttention", forward=_davit_channel_forward),
                     "timm DaViT ChannelAttention")


def _davit_window_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.davit.WindowAttention.forward (windows already partitioned). x: (B*windows, N, dim) -> same."""
    return _merge_heads(self, _attend(self, *_split_qkv(self, self.qkv(x))))


register_timm_family("timm-davit-window-attention", TimmFamily("models.davit", "WindowAttention", forward=_davit_window_forward),
                     "timm DaViT WindowAttention")

# ----------------------------------------------------------------------------- EfficientFormer, TinyViT (LeViT-like)


def _levit_like_head_dim(m: nn.Module) -> int:
    """Channels per head in qkv: key_dim query, key_dim key and val_dim value channels."""
    return 2 * m.key_dim + m.val_dim


def _efficientformer_after(m: nn.Module) -> None:
    m.key_attn_dim = m.key_dim * m.num_heads
    m.val_attn_dim = m.val_dim * m.num_heads
    m.attention_bias_cache = {}  # eval-mode cache of the biases, sized for the old head count


def _tiny_vit_after(m: nn.Module) -> None:
    m.out_dim = m.val_dim * m.num_heads
    m.attention_bias_cache = {}


register_timm_family(
    "timm-efficientformer-attention",
    TimmFamily("models.efficientformer", "Attention", per_head=1, head_dim=_levit_like_head_dim,
               heads=lambda m: m.attention_biases.shape[0], after=_efficientformer_after),
    "timm EfficientFormer Attention (key_dim/val_dim per head, attention biases per head)",
)
register_timm_family(
    "timm-tiny-vit-attention",
    TimmFamily("models.tiny_vit", "Attention", per_head=1, head_dim=_levit_like_head_dim,
               heads=lambda m: m.attention_biases.shape[0], after=_tiny_vit_after),
    "timm TinyViT Attention (key_dim/val_dim per head, attention biases per head)",
)

# ----------------------------------------------------------------------------- timm MaxViT / CoAtNet (maxxvit)


def _maxxvit_head_dim(m: nn.Module) -> int:
    """head_first layout splits qkv channels into (heads, 3 * dim_head); otherwise (3, heads, dim_head)."""
    return 3 * m.dim_head if m.head_first else m.dim_head


def _maxxvit_heads(m: nn.Module) -> int:
    return m.qkv.weight.shape[0] // (3 * m.dim_head)


for _name in ("AttentionCl", "Attention2d"):
    register_timm_family(
        f"timm-maxxvit-{_name.lower()}",
        TimmFamily("models.maxxvit", _name, head_dim=_maxxvit_head_dim, heads=_maxxvit_heads),
        f"timm MaxViT / CoAtNet {_name} (dim_head per head, relative position bias per head)",
    )
