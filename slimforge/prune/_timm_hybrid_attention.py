"""More timm attention forms (see :mod:`slimforge.prune._timm_attention`): XCiT, DaViT, ConViT, GCViT,
EdgeNeXt, CoaT, FastViT, NesT and Swin v2 (stand-in forwards); EfficientFormer, TinyViT and timm's
MaxViT / CoAtNet (their own forwards read the head count)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slimforge.prune._timm_attention import TimmFamily, _attend, _fused_qkv, _int, _merge_heads, _split_qkv, is_timm, register_timm_family
from slimforge.prune.attention import AttentionForm, register_attention_form

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

# ----------------------------------------------------------------------------- ConViT


def _gpsa_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.convit.GPSA.forward: content attention and a learned positional attention per
    head, mixed by a gate per head. x: (B, N, dim) -> (B, N, dim)."""
    B, N, _ = x.shape
    if self.rel_indices is None or self.rel_indices.shape[1] != N:
        self.rel_indices = self.get_rel_indices(N)
    qk = self.qk(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    q, k = qk[0], qk[1]
    pos_score = self.pos_proj(self.rel_indices.expand(B, -1, -1, -1)).permute(0, 3, 1, 2)
    patch_score = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
    gating = self.gating_param.view(1, -1, 1, 1)
    attn = (1. - torch.sigmoid(gating)) * patch_score + torch.sigmoid(gating) * pos_score.softmax(dim=-1)
    attn = self.attn_drop(attn / attn.sum(dim=-1).unsqueeze(-1))
    v = self.v(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    return _merge_heads(self, attn @ v)


register_timm_family("timm-convit-gpsa", TimmFamily("models.convit", "GPSA", query="qk", per_head=2, forward=_gpsa_forward),
                     "timm ConViT GPSA (gated positional self-attention: pos_proj rows and a gate per head)")


def _convit_mhsa_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.convit.MHSA.forward. x: (B, N, dim) -> (B, N, dim)."""
    q, k, v = _split_qkv(self, self.qkv(x))
    attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
    return _merge_heads(self, attn @ v)


register_timm_family("timm-convit-mhsa", TimmFamily("models.convit", "MHSA", forward=_convit_mhsa_forward),
                     "timm ConViT MHSA")

# ----------------------------------------------------------------------------- GCViT, EdgeNeXt


def _gcvit_forward(self: nn.Module, x: torch.Tensor, q_global: torch.Tensor | None = None) -> torch.Tensor:
    """timm.models.gcvit.WindowAttentionGlobal.forward: queries from the global context when given.
    x: (B*windows, N, dim) -> same."""
    B, N, _ = x.shape
    if self.use_global and q_global is not None:
        k, v = self.qkv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q = q_global.repeat_interleave(B // q_global.shape[0], dim=0)
        q = q.reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    else:
        q, k, v = _split_qkv(self, self.qkv(x))
    attn = (q * self.scale) @ k.transpose(-2, -1).contiguous()
    attn = self.attn_drop(self.rel_pos(attn).softmax(dim=-1))
    return _merge_heads(self, attn @ v)


register_timm_family(
    "timm-gcvit-attention",
    TimmFamily("models.gcvit", "WindowAttentionGlobal", forward=_gcvit_forward,
               heads=lambda m: m.rel_pos.relative_position_bias_table.shape[-1]),
    "timm GCViT WindowAttentionGlobal (global queries, relative position bias per head)",
)


def _edgenext_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.edgenext.CrossCovarianceAttn.forward (XCiT-style, a temperature per head). x: (B, N, dim) -> same."""
    B, N, _ = x.shape
    q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 4, 1).unbind(0)
    attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
    x = self.attn_drop(attn.softmax(dim=-1)) @ v
    return self.proj_drop(self.proj(x.permute(0, 3, 1, 2).reshape(B, N, -1)))


register_timm_family("timm-edgenext-attention", TimmFamily("models.edgenext", "CrossCovarianceAttn", forward=_edgenext_forward),
                     "timm EdgeNeXt CrossCovarianceAttn (a temperature per head)")

# ----------------------------------------------------------------------------- CoaT


def _coat_forward(self: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """timm.models.coat.FactorAttnConvRelPosEnc.forward: factorized attention plus a convolutional
    relative position encoding (``crpe``, shared by a stage's blocks). x: (B, N, dim) -> (B, N, dim)."""
    q, k, v = _split_qkv(self, self.qkv(x))
    factor_att = q @ (k.softmax(dim=2).transpose(-1, -2) @ v)
    return _merge_heads(self, self.scale * factor_att + self.crpe(q, v, size=size))


register_timm_family("timm-coat-attention", TimmFamily("models.coat", "FactorAttnConvRelPosEnc", forward=_coat_forward),
                     "timm CoaT FactorAttnConvRelPosEnc (factorized attention, convolutional position encoding)")


def _crpe_sync(m: nn.Module) -> dict[str, int]:
    """CoaT's ConvRelPosEnc: one depthwise convolution per group of heads, its channel split kept in lists."""
    m.channel_splits = [conv.weight.shape[0] for conv in m.conv_list]
    m.head_splits = [c // m.head_dim for c in m.channel_splits]
    return {}


def _crpe_head_dim(m: nn.Module) -> int:
    return m.head_dim if isinstance(getattr(m, "head_dim", None), int) else m.channel_splits[0] // m.head_splits[0]


def _crpe_remember(m: nn.Module) -> None:
    m.head_dim = _crpe_head_dim(m)


register_attention_form(
    "timm-coat-conv-position",
    AttentionForm(lambda m: is_timm(m, "models.coat", "ConvRelPosEnc"), _crpe_head_dim, _crpe_sync, remember=_crpe_remember,
                  part=True, adaptive_splits=True),
    "timm CoaT ConvRelPosEnc (a part of CoaT's attention: head groups split unequally, one convolution each)",
)

# ----------------------------------------------------------------------------- FastViT, NesT, Swin v2


def _fastvit_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.fastvit.Attention.forward. x: (B, C, H, W) -> (B, C, H, W)."""
    B, C, H, W = x.shape
    x = x.flatten(2).transpose(-2, -1)
    x = _merge_heads(self, _attend(self, *_split_qkv(self, self.qkv(x))))
    return x.transpose(-2, -1).reshape(B, -1, H, W)


register_timm_family("timm-fastvit-attention", TimmFamily("models.fastvit", "Attention", forward=_fastvit_forward),
                     "timm FastViT Attention (on a (B, C, H, W) map)")


def _nest_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.nest.Attention.forward: attention inside each image block. x: (B, T, N, C) -> same."""
    B, T, N, _ = x.shape
    qkv = self.qkv(x).reshape(B, T, N, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5)
    x = _attend(self, *qkv.unbind(0))
    return self.proj_drop(self.proj(x.permute(0, 2, 3, 4, 1).reshape(B, T, N, -1)))


register_timm_family("timm-nest-attention", TimmFamily("models.nest", "Attention", forward=_nest_forward),
                     "timm NesT Attention (block-local)")


def _swinv2_forward(self: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """timm.models.swin_transformer_v2.WindowAttention.forward: cosine attention with a learned scale per
    head, a continuous position bias (an MLP with one output per head). x: (B*windows, N, dim) -> same."""
    B_, N, _ = x.shape
    qkv = _fused_qkv(self, x)
    q, k, v = qkv.reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    attn = attn * torch.clamp(self.logit_scale, max=math.log(1. / 0.01)).exp()
    table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
    area = self.window_size[0] * self.window_size[1]
    bias = table[self.relative_position_index.view(-1)].view(area, area, -1).permute(2, 0, 1).contiguous()
    attn = attn + 16 * torch.sigmoid(bias).unsqueeze(0)
    if mask is not None:
        num_win = mask.shape[0]
        attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, self.num_heads, N, N)
    x = self.attn_drop(self.softmax(attn)) @ v
    return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B_, N, -1)))


register_timm_family(
    "timm-swinv2-attention",
    TimmFamily("models.swin_transformer_v2", "WindowAttention", forward=_swinv2_forward, heads=lambda m: m.logit_scale.shape[0]),
    "timm Swin v2 WindowAttention (cosine attention, logit_scale and continuous position bias per head)",
)

# ----------------------------------------------------------------------------- MViTv2


def _mvit_after(m: nn.Module) -> None:
    m.dim_out = m.num_heads * m.head_dim  # timm reshapes the heads' output to (B, N, dim_out) before proj


register_timm_family(
    "timm-mvitv2-attention",
    TimmFamily("models.mvitv2", "MultiScaleAttention", after=_mvit_after,
               keep=("pool_q", "pool_k", "pool_v", "norm_q", "norm_k", "norm_v")),
    "timm MViTv2 MultiScaleAttention (pooled q/k/v per head, relative position along height and width)",
)

# ----------------------------------------------------------------------------- LeViT's downsampling attention


def _levit_down_after(m: nn.Module) -> None:
    m.key_attn_dim = m.key_dim * m.num_heads
    m.val_attn_dim = m.val_dim * m.num_heads
    m.attention_bias_cache = {}  # eval-mode cache of the biases, sized for the old head count


register_timm_family(
    "timm-levit-downsample-attention",
    TimmFamily("models.levit", "AttentionDownsample", query="kv.linear", per_head=1, head_dim=lambda m: m.key_dim + m.val_dim,
               heads=lambda m: m.attention_biases.shape[0], after=_levit_down_after, other_head_dims=lambda m: (m.key_dim,)),
    "timm LeViT AttentionDownsample (queries from a subsampled grid: key_dim per head; keys and values key_dim + val_dim)",
)

# ----------------------------------------------------------------------------- EfficientFormerV2


def _efficientformer_v2_after(m: nn.Module) -> None:
    m.dh = m.d * m.num_heads  # timm reshapes the heads' output to (B, dh, H, W)
    m.attention_bias_cache = {}


for _name in ("Attention2d", "Attention2dDownsample"):
    register_timm_family(
        f"timm-efficientformerv2-{_name.lower()}",
        TimmFamily("models.efficientformer_v2", _name, query="k.conv", per_head=1, head_dim=lambda m: m.key_dim,
                   heads=lambda m: m.attention_biases.shape[0], after=_efficientformer_v2_after, other_head_dims=lambda m: (m.d,)),
        f"timm EfficientFormerV2 {_name} (key_dim query/key and d value channels per head, attention biases per head"
        + (", talking heads)" if _name == "Attention2d" else ")"),
    )

# ----------------------------------------------------------------------------- VOLO


def _outlook_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.volo.OutlookAttention.forward: each position's k x k neighbourhood of values, weighted
    by attention predicted from the (pooled) position itself. x: (B, H, W, C) -> (B, H, W, C)."""
    B, H, W, _ = x.shape
    kk = self.kernel_size * self.kernel_size
    h, w = math.ceil(H / self.stride), math.ceil(W / self.stride)
    v = self.unfold(self.v(x).permute(0, 3, 1, 2))
    v = v.reshape(B, self.num_heads, self.head_dim, kk, h * w).permute(0, 1, 4, 3, 2)  # B, heads, N, kk, head_dim
    attn = self.attn(self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
    attn = attn.reshape(B, h * w, self.num_heads, kk, kk).permute(0, 2, 1, 3, 4)  # B, heads, N, kk, kk
    attn = self.attn_drop((attn * self.scale).softmax(dim=-1))
    x = (attn @ v).permute(0, 1, 4, 3, 2).reshape(B, -1, h * w)
    x = F.fold(x, output_size=(H, W), kernel_size=self.kernel_size, padding=self.padding, stride=self.stride)
    return self.proj_drop(self.proj(x.permute(0, 2, 3, 1)))


def _outlook_head_dims(m: nn.Module) -> tuple[int, ...]:
    """Unfolded values: head_dim x kk per head; attention weights: kk x kk per head."""
    kk = m.kernel_size * m.kernel_size
    return m.head_dim * kk, kk * kk


register_timm_family(
    "timm-volo-outlook-attention",
    TimmFamily("models.volo", "OutlookAttention", query="v", per_head=1, forward=_outlook_forward, other_head_dims=_outlook_head_dims),
    "timm VOLO OutlookAttention (attention over each position's unfolded k x k neighbourhood, k^4 weights per head)",
)


def _volo_attention_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.volo.Attention.forward. x: (B, H, W, C) -> (B, H, W, C)."""
    B, H, W, _ = x.shape
    x = _merge_heads(self, _attend(self, *_split_qkv(self, self.qkv(x.reshape(B, H * W, -1)))))
    return x.reshape(B, H, W, -1)


register_timm_family("timm-volo-attention", TimmFamily("models.volo", "Attention", forward=_volo_attention_forward),
                     "timm VOLO Attention (on a (B, H, W, C) map)")
register_timm_family("timm-volo-class-attention", TimmFamily("models.volo", "ClassAttention", query="q", per_head=1),
                     "timm VOLO ClassAttention (the class token attends to all tokens; head_dim of its own)")

# ----------------------------------------------------------------------------- Next-ViT


def _next_vit_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.nextvit.EfficientAttention.forward: keys and values from an average-pooled sequence
    when ``sr_ratio`` > 1. x: (B, N, dim) -> (B, N, out_dim)."""
    B, N, _ = x.shape
    q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    if self.sr is not None:
        x = self.norm(self.sr(x.transpose(1, 2))).transpose(1, 2)
    k = self.k(x).reshape(B, -1, self.num_heads, self.head_dim).transpose(1, 2)
    v = self.v(x).reshape(B, -1, self.num_heads, self.head_dim).transpose(1, 2)
    return _merge_heads(self, _attend(self, q, k, v))


register_timm_family("timm-nextvit-attention",
                     TimmFamily("models.nextvit", "EfficientAttention", query="q", per_head=1, forward=_next_vit_forward),
                     "timm Next-ViT EfficientAttention (pooled keys and values)")

# ----------------------------------------------------------------------------- EfficientViT (MSRA)


def _head_sizes(m: nn.Module, head: int) -> list[int]:
    """Query, key and value channels of one head of a CascadedGroupAttention, from its layers."""
    key = m.dws[head].conv.weight.shape[0]
    return [key, key, m.qkvs[head].conv.weight.shape[0] - 2 * key]


def _cascaded_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.efficientvit_msra.CascadedGroupAttention.forward with each head's query/key and value
    sizes read from its own layers (pruning may leave heads of different sizes). x: (B, C, H, W) -> same."""
    B, _, H, W = x.shape
    feats_in = x.chunk(len(self.qkvs), dim=1)
    feats_out = []
    feat = feats_in[0]
    attn_bias = self.get_attention_biases(x.device)
    for head_idx, (qkv, dws) in enumerate(zip(self.qkvs, self.dws)):
        if head_idx > 0:
            feat = feat + feats_in[head_idx]
        q, k, v = qkv(feat).view(B, -1, H, W).split(_head_sizes(self, head_idx), dim=1)
        q = dws(q).flatten(2) * self.scale
        k, v = k.flatten(2), v.flatten(2)
        attn = (q.transpose(-2, -1) @ k + attn_bias[head_idx]).softmax(dim=-1)
        feat = (v @ attn.transpose(-2, -1)).view(B, -1, H, W)
        feats_out.append(feat)
    return self.proj(torch.cat(feats_out, 1))


def _cascaded_own_fits(m: nn.Module) -> bool:
    return all(_head_sizes(m, i) == [m.key_dim, m.key_dim, m.val_dim] for i in range(len(m.qkvs)))


register_timm_family(
    "timm-efficientvit-cascaded-attention",
    TimmFamily("models.efficientvit_msra", "CascadedGroupAttention", query="qkvs.0.conv", per_head=1, forward=_cascaded_forward,
               # a head's whole q/k/v width: no piece of its split is that wide, so none is kept whole as "one head"
               head_dim=lambda m: 2 * m.key_dim + m.val_dim, heads=lambda m: len(m.qkvs), adaptive_splits=True,
               own_fits=_cascaded_own_fits),
    "timm EfficientViT (MSRA) CascadedGroupAttention: its heads are modules in a cascade and stay; each head's "
    "query/key and value channels are pruned",
)

# ----------------------------------------------------------------------------- EfficientViT (MIT)


def _lite_mla(m: nn.Module) -> bool:
    """timm.models.efficientvit_mit.LiteMLA: a fused ``qkv`` convolution, multi-scale aggregations (a depthwise
    convolution, then a 1x1 convolution in ``3 * heads`` groups of ``dim`` channels) and a linear attention over
    ``reshape(B, -1, 3 * dim, H * W)``: the heads are read off the width (-1), each ``3 * dim`` channels."""
    return (is_timm(m, "models.efficientvit_mit", "LiteMLA") and _int(m, "dim")
            and isinstance(getattr(getattr(m, "qkv", None), "conv", None), nn.Conv2d) and isinstance(getattr(m, "aggreg", None), nn.ModuleList))


def _lite_mla_sync(m: nn.Module) -> dict[str, int]:
    """Timm's own forward runs with fewer heads; each aggregation's grouped convolution keeps one group per query, key
    or value of a head, so its ``groups`` follows the heads left (the tracer took whole groups, see ``_conv``)."""
    for branch in m.aggreg:
        grouped = branch[1]  # weight (groups * dim, dim, 1, 1)
        grouped.out_channels, grouped.groups = grouped.weight.shape[0], grouped.weight.shape[0] // m.dim
        grouped.in_channels = grouped.weight.shape[1] * grouped.groups
    return {}


register_attention_form("timm-lite-mla", AttentionForm(_lite_mla, lambda m: 3 * m.dim, _lite_mla_sync, grouped_heads=True),
                        "timm EfficientViT (MIT) LiteMLA: multi-scale linear attention, heads of 3 x dim channels")

# ----------------------------------------------------------------------------- Swin v2 CR


def _swinv2_cr_forward(self: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """timm.models.swin_transformer_v2_cr.WindowMultiHeadAttention.forward: scaled cosine attention with a
    logit scale per head and a position-bias MLP with one output per head. x: (B*windows, N, dim) -> same."""
    Bw, L, _ = x.shape
    q, k, v = _split_qkv(self, self.qkv(x))
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    attn = attn * torch.clamp(self.logit_scale.reshape(1, self.num_heads, 1, 1), max=math.log(1. / 0.01)).exp()
    attn = attn + self._relative_positional_encodings()
    if mask is not None:
        num_win = mask.shape[0]
        attn = attn.view(Bw // num_win, num_win, self.num_heads, L, L) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, self.num_heads, L, L)
    return _merge_heads(self, self.attn_drop(attn.softmax(dim=-1)) @ v)


register_timm_family(
    "timm-swinv2-cr-attention",
    TimmFamily("models.swin_transformer_v2_cr", "WindowMultiHeadAttention", forward=_swinv2_cr_forward,
               heads=lambda m: m.logit_scale.shape[0]),
    "timm Swin v2 CR WindowMultiHeadAttention (scaled cosine attention, logit_scale and position-bias MLP output per head)",
)

# ----------------------------------------------------------------------------- lambda layer (LambdaResNet)


def _lambda_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.layers.lambda_layer.LambdaLayer.forward, with the output reshaped to its heads' width (timm's
    reshapes it to the input's). Queries per head; keys and values shared by all heads. x: (B, C, H, W) -> same."""
    B, _, H, W = x.shape
    M = H * W
    q, k, v = torch.split(self.qkv(x), [self.num_heads * self.dim_qk, self.dim_qk, self.dim_v], dim=1)
    q = self.norm_q(q).reshape(B, self.num_heads, self.dim_qk, M).transpose(-1, -2)
    v = self.norm_v(v).reshape(B, self.dim_v, M).transpose(-1, -2)
    k = F.softmax(k.reshape(B, self.dim_qk, M), dim=-1)
    content_out = q @ (k @ v).unsqueeze(1)
    if self.pos_emb is None:
        position_lam = self.conv_lambda(v.reshape(B, 1, H, W, self.dim_v))
        position_lam = position_lam.reshape(B, 1, self.dim_qk, H * W, self.dim_v).transpose(2, 3)
    else:
        pos_emb = self.pos_emb[self.rel_pos_indices[0], self.rel_pos_indices[1]].expand(B, -1, -1, -1)
        position_lam = (pos_emb.transpose(-1, -2) @ v.unsqueeze(1)).unsqueeze(1)
    position_out = (q.unsqueeze(-2) @ position_lam).squeeze(-2)
    return self.pool((content_out + position_out).transpose(-1, -2).reshape(B, -1, H, W))


register_timm_family(
    "timm-lambda-layer",
    TimmFamily("layers.lambda_layer", "LambdaLayer", per_head=1, forward=_lambda_forward, head_dim=lambda m: m.dim_qk,
               heads=lambda m: m.norm_q.weight.shape[0] // m.dim_qk, adaptive_splits=True, keep=("norm_v",),
               own_fits=lambda m: m.qkv.weight.shape[1] == m.num_heads * m.dim_v),
    "timm LambdaLayer (LambdaResNet: queries per head, keys and values shared by all heads, which stay whole)",
)
