"""An eighth set of hand-written attention models, written to be run once before any change for it. Each follows one
public original in how it writes attention: MPT (mosaicml/llm-foundry attention.py: one fused `Wqkv` split by
rearrange "b s (t hd) -> b s t hd" and unbind, `n_heads`, ALiBi slopes from gen_slopes, k rearranged straight to
"b h d s", a float16 tril causal mask sliced [-s_q:, -s_k:], tied output embedding), AlphaFold 2 as in
aqlaboratory/openfold (primitives.Attention: linear_q/k/v/o, `no_heads`, `c_hidden`, q /= sqrt(c_hidden), a
sigmoid `linear_g` gate, biases added in a loop; the per-head pair bias from `linear_b` over a relpos pair
representation; proteins), DINOv2 (facebookresearch/dinov2 layers/attention.py and block.py: qkv reshaped to
(B, N, 3, num_heads, C // num_heads) and permuted (2, 0, 3, 1, 4), LayerScale ls1/ls2, register tokens), Swin
Transformer V2 (microsoft/Swin-Transformer swin_transformer_v2.py: cosine attention with a per-head clamped
`logit_scale`, a 2-layer `cpb_mlp` over a log-spaced relative_coords_table giving 16 * sigmoid bias, q_bias / v_bias
concatenated around zeros, shifted windows with a -100 mask, res-post-norm), ConViT (facebookresearch/convit:
GPSA with `qk` and `v` linears, `pos_proj` over rel_indices, per-head `gating_param` mixing patch and positional
softmaxes, renormalised by in-place division, local_init; then a class token and MHSA), CrossViT
(IBM/CrossViT: two branches at two patch sizes, the projected class token of one branch queries the patch tokens
of the other through `wq`, `wk`, `wv`, reverted projections, averaged heads), the Temporal Fusion Transformer as in
jdb78/pytorch-forecasting (InterpretableMultiHeadAttention: per-head q/k linears in ModuleLists, one shared
`v_layer`, torch.bmm attention, heads stacked and averaged, GRN / GateAddNorm around it; time series
classification), Megatron-LM (legacy ParallelAttention / CoreAttention: fused `query_key_value` viewed as
(sq, b, np, 3 * hn) and split along the last dim, [s, b, h] layout, baddbmm into a preallocated buffer with beta=0,
query-key layer scaling, masked_fill_ of -10000, skip_bias_add linears and bias_dropout_add), Music Transformer
(jason9693/MusicTransformer-pytorch RelativeGlobalAttention: `h`, Wq/Wk/Wv, a relative embedding `E` sliced from
the left, einsum 'bhld,md->bhlm', _qe_masking and the pad + reshape skewing trick; music tokens), and Branchformer
(espnet branchformer_encoder_layer.py: a MultiHeadedAttention branch with `h` and `d_k` beside a cgMLP branch whose
ConvolutionalSpatialGatingUnit chunks channels and gates with a depthwise Conv1d, merged by concat + merge_proj;
speech features with lengths). Tiny sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


# --- 1. MPT (mosaicml/llm-foundry attention.py): fused Wqkv, rearrange + unbind, ALiBi, tied head --------------------

def gen_slopes(n_heads, alibi_bias_max=8, device=None):
    _n_heads = 2 ** math.ceil(math.log2(n_heads))
    m = torch.arange(1, _n_heads + 1, dtype=torch.float32, device=device)
    m = m.mul(alibi_bias_max / _n_heads)
    slopes = 1.0 / torch.pow(2, m)
    if _n_heads != n_heads:
        slopes = torch.concat([slopes[1::2], slopes[::2]])[:n_heads]
    return slopes.view(1, n_heads, 1, 1)


def build_alibi_bias(n_heads, seq_len, full=False, alibi_bias_max=8, device=None, dtype=None):
    alibi_bias = torch.arange(1 - seq_len, 1, dtype=torch.int32, device=device).view(1, 1, 1, seq_len)
    if full:
        alibi_bias = alibi_bias - torch.arange(1 - seq_len, 1, dtype=torch.int32, device=device).view(1, 1, seq_len, 1)
        alibi_bias = alibi_bias.abs().mul(-1)
    slopes = gen_slopes(n_heads, alibi_bias_max, device=device)
    alibi_bias = alibi_bias * slopes
    return alibi_bias.to(dtype=dtype)


def scaled_multihead_dot_product_attention(query, key, value, n_heads, softmax_scale=None, attn_bias=None,
                                           key_padding_mask=None, is_causal=False, dropout_p=0.0, training=False,
                                           needs_weights=False, multiquery=False):
    q = rearrange(query, 'b s (h d) -> b h s d', h=n_heads)
    kv_n_heads = 1 if multiquery else n_heads
    k = rearrange(key, 'b s (h d) -> b h d s', h=kv_n_heads)
    v = rearrange(value, 'b s (h d) -> b h s d', h=kv_n_heads)
    (b, _, s_q, d) = q.shape
    s_k = k.size(-1)
    if softmax_scale is None:
        softmax_scale = 1 / math.sqrt(d)
    attn_weight = q.matmul(k) * softmax_scale
    if attn_bias is not None:
        _s_q = max(0, attn_bias.size(2) - s_q)
        _s_k = max(0, attn_bias.size(3) - s_k)
        attn_bias = attn_bias[:, :, _s_q:, _s_k:]
        attn_weight = attn_weight + attn_bias
    min_val = torch.finfo(q.dtype).min
    if key_padding_mask is not None:
        attn_weight = attn_weight.masked_fill(~key_padding_mask.view((b, 1, 1, s_k)), min_val)
    if is_causal and (not q.size(2) == 1):
        s = max(s_q, s_k)
        causal_mask = attn_weight.new_ones(s, s, dtype=torch.float16)
        causal_mask = causal_mask.tril()
        causal_mask = causal_mask.to(torch.bool)
        causal_mask = ~causal_mask
        causal_mask = causal_mask[-s_q:, -s_k:]
        attn_weight = attn_weight.masked_fill(causal_mask.view(1, 1, s_q, s_k), min_val)
    attn_weight = torch.softmax(attn_weight, dim=-1)
    if dropout_p:
        attn_weight = torch.nn.functional.dropout(attn_weight, p=dropout_p, training=training, inplace=True)
    out = attn_weight.to(v.dtype).matmul(v)
    out = rearrange(out, 'b h s d -> b s (h d)')
    if needs_weights:
        return (out, attn_weight)
    return (out, None)


class MPTMultiheadAttention(nn.Module):
    """Multi-head self attention using torch or triton attention (here: the torch path)."""

    def __init__(self, d_model: int, n_heads: int, clip_qkv=None, softmax_scale=None, attn_pdrop: float = 0.0):
        super().__init__()
        self.clip_qkv = clip_qkv
        self.d_model = d_model
        self.n_heads = n_heads
        self.softmax_scale = softmax_scale
        if self.softmax_scale is None:
            self.softmax_scale = 1 / math.sqrt(self.d_model / self.n_heads)
        self.attn_dropout_p = attn_pdrop
        self.Wqkv = nn.Linear(self.d_model, 3 * self.d_model)
        fuse_splits = (d_model, 2 * d_model)
        self.Wqkv._fused = (0, fuse_splits)
        self.attn_fn = scaled_multihead_dot_product_attention
        self.out_proj = nn.Linear(self.d_model, self.d_model)
        self.out_proj._is_residual = True

    def forward(self, x, attn_bias=None, attention_mask=None, is_causal=True, needs_weights=False):
        qkv = self.Wqkv(x)
        if self.clip_qkv:
            qkv = qkv.clamp(min=-self.clip_qkv, max=self.clip_qkv)
        qkv = rearrange(qkv, 'b s (t hd) -> b s t hd', t=3)
        (query, key, value) = qkv.unbind(dim=2)
        key_padding_mask = attention_mask
        (context, attn_weights) = self.attn_fn(query, key, value, self.n_heads, softmax_scale=self.softmax_scale,
                                               attn_bias=attn_bias, key_padding_mask=key_padding_mask,
                                               is_causal=is_causal, dropout_p=self.attn_dropout_p,
                                               training=self.training, needs_weights=needs_weights)
        return (self.out_proj(context), attn_weights)


class MPTMLP(nn.Module):
    def __init__(self, d_model: int, expansion_ratio: int):
        super().__init__()
        self.up_proj = nn.Linear(d_model, expansion_ratio * d_model)
        self.act = nn.GELU(approximate='none')
        self.down_proj = nn.Linear(expansion_ratio * d_model, d_model)
        self.down_proj._is_residual = True

    def forward(self, x):
        return self.down_proj(self.act(self.up_proj(x)))


class MPTBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, expansion_ratio: int, resid_pdrop: float = 0.0):
        super().__init__()
        self.norm_1 = nn.LayerNorm(d_model)
        self.attn = MPTMultiheadAttention(d_model=d_model, n_heads=n_heads)
        self.norm_2 = nn.LayerNorm(d_model)
        self.ffn = MPTMLP(d_model=d_model, expansion_ratio=expansion_ratio)
        self.resid_attn_dropout = nn.Dropout(resid_pdrop)
        self.resid_ffn_dropout = nn.Dropout(resid_pdrop)

    def forward(self, x, attn_bias=None, attention_mask=None, is_causal=True):
        a = self.norm_1(x)
        (b, attn_weights) = self.attn(a, attn_bias=attn_bias, attention_mask=attention_mask, is_causal=is_causal)
        x = x + self.resid_attn_dropout(b)
        m = self.norm_2(x)
        n = self.ffn(m)
        x = x + self.resid_ffn_dropout(n)
        return x


class MPTForCausalLM(nn.Module):
    def __init__(self, d_model=64, n_heads=8, n_layers=2, expansion_ratio=4, max_seq_len=32, vocab_size=160,
                 alibi_bias_max=8):
        super().__init__()
        self.d_model = d_model
        self.n_heads = n_heads
        self.max_seq_len = max_seq_len
        self.wte = nn.Embedding(vocab_size, d_model)
        self.emb_drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList([MPTBlock(d_model, n_heads, expansion_ratio) for _ in range(n_layers)])
        self.norm_f = nn.LayerNorm(d_model)
        # the attn_bias is built once (MPTModel._attn_bias caches it); here it is a buffer made at construction
        self.register_buffer('attn_bias', build_alibi_bias(n_heads, max_seq_len, full=False,
                                                           alibi_bias_max=alibi_bias_max, dtype=torch.float32),
                             persistent=False)

    def forward(self, input_ids, attention_mask=None):
        S = input_ids.size(1)
        assert S <= self.max_seq_len, f'Cannot forward input with seq_len={S}, this model only supports seq_len<={self.max_seq_len}'
        x = self.wte(input_ids)
        x = self.emb_drop(x)
        attn_bias = self.attn_bias.to(dtype=x.dtype)
        if attention_mask is not None:
            s_k = attention_mask.shape[-1]
            _s_k = max(0, attn_bias.size(-1) - s_k)
            attn_bias = attn_bias[:, :, :, _s_k:]
            min_val = torch.finfo(attn_bias.dtype).min
            attn_bias = attn_bias.masked_fill(~attention_mask.view(-1, 1, 1, s_k), min_val)
        for block in self.blocks:
            x = block(x, attn_bias=attn_bias, attention_mask=attention_mask, is_causal=True)
        x = self.norm_f(x)
        logits = F.linear(x, self.wte.weight)
        return logits


def _mpt_inputs():
    input_ids = torch.randint(0, 160, (3, 24))
    attention_mask = torch.ones(3, 24, dtype=torch.bool)
    attention_mask[1, 18:] = False  # right padding
    attention_mask[2, 11:] = False
    return (input_ids, attention_mask)


# --- 2. AlphaFold 2 / OpenFold (primitives.Attention): gated attention with a per-head pair bias --------------------

def permute_final_dims(tensor: torch.Tensor, inds):
    zero_index = -1 * len(inds)
    first_inds = list(range(len(tensor.shape[:zero_index])))
    return tensor.permute(first_inds + [zero_index + i for i in inds])


def flatten_final_dims(t: torch.Tensor, no_dims: int):
    return t.reshape(t.shape[:-no_dims] + (-1,))


def softmax_no_cast(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = torch.nn.functional.softmax(t, dim=dim)
    return s


def _attention(query, key, value, biases):
    # [*, H, C_hidden, K]
    key = permute_final_dims(key, (1, 0))
    # [*, H, Q, K]
    a = torch.matmul(query, key)
    for b in biases:
        a += b
    a = softmax_no_cast(a, -1)
    # [*, H, Q, C_hidden]
    a = torch.matmul(a, value)
    return a


class OpenFoldLinear(nn.Linear):
    def __init__(self, in_dim, out_dim, bias=True, init="default"):
        super().__init__(in_dim, out_dim, bias=bias)
        with torch.no_grad():
            if init == "gating":
                self.weight.fill_(0.0)
                if bias:
                    self.bias.fill_(1.0)
            elif init == "glorot":
                nn.init.xavier_uniform_(self.weight, gain=1)
            if bias and init != "gating":
                self.bias.fill_(0.0)


class OpenFoldAttention(nn.Module):
    """Standard multi-head attention using AlphaFold's default layer initialization. Allows multiple bias vectors."""

    def __init__(self, c_q, c_k, c_v, c_hidden, no_heads, gating=True):
        super().__init__()
        self.c_q = c_q
        self.c_k = c_k
        self.c_v = c_v
        self.c_hidden = c_hidden
        self.no_heads = no_heads
        self.gating = gating
        self.linear_q = OpenFoldLinear(self.c_q, self.c_hidden * self.no_heads, bias=False, init="glorot")
        self.linear_k = OpenFoldLinear(self.c_k, self.c_hidden * self.no_heads, bias=False, init="glorot")
        self.linear_v = OpenFoldLinear(self.c_v, self.c_hidden * self.no_heads, bias=False, init="glorot")
        self.linear_o = OpenFoldLinear(self.c_hidden * self.no_heads, self.c_q)
        self.linear_g = None
        if self.gating:
            self.linear_g = OpenFoldLinear(self.c_q, self.c_hidden * self.no_heads, init="gating")
        self.sigmoid = nn.Sigmoid()

    def _prep_qkv(self, q_x, kv_x):
        # [*, Q/K/V, H * C_hidden]
        q = self.linear_q(q_x)
        k = self.linear_k(kv_x)
        v = self.linear_v(kv_x)
        # [*, Q/K, H, C_hidden]
        q = q.view(q.shape[:-1] + (self.no_heads, -1))
        k = k.view(k.shape[:-1] + (self.no_heads, -1))
        v = v.view(v.shape[:-1] + (self.no_heads, -1))
        # [*, H, Q/K, C_hidden]
        q = q.transpose(-2, -3)
        k = k.transpose(-2, -3)
        v = v.transpose(-2, -3)
        q /= math.sqrt(self.c_hidden)
        return q, k, v

    def _wrap_up(self, o, q_x):
        if self.linear_g is not None:
            g = self.sigmoid(self.linear_g(q_x))
            # [*, Q, H, C_hidden]
            g = g.view(g.shape[:-1] + (self.no_heads, -1))
            o = o * g
        # [*, Q, H * C_hidden]
        o = flatten_final_dims(o, 2)
        # [*, Q, C_q]
        o = self.linear_o(o)
        return o

    def forward(self, q_x, kv_x, biases=None):
        if biases is None:
            biases = []
        q, k, v = self._prep_qkv(q_x, kv_x)
        o = _attention(q, k, v, biases)
        o = o.transpose(-2, -3)
        o = self._wrap_up(o, q_x)
        return o


class AttentionPairBias(nn.Module):
    """Row-wise attention over the single representation with a per-head bias projected from the pair representation."""

    def __init__(self, c_s, c_z, c_hidden, no_heads, inf=1e9):
        super().__init__()
        self.c_s = c_s
        self.c_z = c_z
        self.c_hidden = c_hidden
        self.no_heads = no_heads
        self.inf = inf
        self.layer_norm_s = nn.LayerNorm(self.c_s)
        self.layer_norm_z = nn.LayerNorm(self.c_z)
        self.linear_b = OpenFoldLinear(self.c_z, self.no_heads, bias=False, init="normal")
        self.mha = OpenFoldAttention(self.c_s, self.c_s, self.c_s, self.c_hidden, self.no_heads)

    def forward(self, s, z, mask):
        s = self.layer_norm_s(s)
        # [*, 1, 1, N_res]
        mask_bias = (self.inf * (mask - 1))[..., :, None, None, :]
        z = self.layer_norm_z(z)
        # [*, N_res, N_res, no_heads] -> [*, no_heads, N_res, N_res]
        b = permute_final_dims(self.linear_b(z), (2, 0, 1))
        biases = [mask_bias, b]
        return self.mha(q_x=s, kv_x=s, biases=biases)


class OpenFoldTransition(nn.Module):
    def __init__(self, c, n=4):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c)
        self.linear_1 = OpenFoldLinear(c, n * c, init="relu")
        self.relu = nn.ReLU()
        self.linear_2 = OpenFoldLinear(n * c, c, init="final")

    def forward(self, s, mask):
        mask = mask.unsqueeze(-1)
        s = self.layer_norm(s)
        s = self.linear_1(s)
        s = self.relu(s)
        s = self.linear_2(s) * mask
        return s


class OpenFoldInputEmbedder(nn.Module):
    def __init__(self, tf_dim, c_z, c_m, relpos_k):
        super().__init__()
        self.tf_dim = tf_dim
        self.linear_tf_z_i = OpenFoldLinear(tf_dim, c_z)
        self.linear_tf_z_j = OpenFoldLinear(tf_dim, c_z)
        self.linear_tf_m = OpenFoldLinear(tf_dim, c_m)
        self.relpos_k = relpos_k
        self.no_bins = 2 * relpos_k + 1
        self.linear_relpos = OpenFoldLinear(self.no_bins, c_z)

    def relpos(self, ri: torch.Tensor):
        d = ri[..., None] - ri[..., None, :]
        boundaries = torch.arange(start=-self.relpos_k, end=self.relpos_k + 1, device=d.device)
        reshaped_bins = boundaries.view(((1,) * len(d.shape)) + (len(boundaries),))
        d = d[..., None] - reshaped_bins
        d = torch.abs(d)
        d = torch.argmin(d, dim=-1)
        d = nn.functional.one_hot(d, num_classes=len(boundaries)).float()
        d = d.to(ri.dtype)
        return self.linear_relpos(d)

    def forward(self, tf, ri):
        tf_emb_i = self.linear_tf_z_i(tf)
        tf_emb_j = self.linear_tf_z_j(tf)
        pair_emb = self.relpos(ri.type(tf_emb_i.dtype))
        pair_emb = pair_emb + tf_emb_i[..., None, :]
        pair_emb = pair_emb + tf_emb_j[..., None, :, :]
        tf_m = self.linear_tf_m(tf)
        return tf_m, pair_emb


class OpenFoldSingleTrunk(nn.Module):
    """aatype -> single + pair representations -> 2 x (pair-biased gated attention + transition) -> per-residue logits."""

    def __init__(self, tf_dim=21, c_s=48, c_z=16, c_hidden=16, no_heads=4, no_blocks=2, relpos_k=8, no_classes=8):
        super().__init__()
        self.tf_dim = tf_dim
        self.input_embedder = OpenFoldInputEmbedder(tf_dim, c_z, c_s, relpos_k)
        self.attn_blocks = nn.ModuleList([AttentionPairBias(c_s, c_z, c_hidden, no_heads) for _ in range(no_blocks)])
        self.transitions = nn.ModuleList([OpenFoldTransition(c_s) for _ in range(no_blocks)])
        self.layer_norm = nn.LayerNorm(c_s)
        self.linear = OpenFoldLinear(c_s, no_classes, init="final")

    def forward(self, aatype, seq_mask):
        tf = F.one_hot(aatype, self.tf_dim).float()
        residue_index = torch.arange(aatype.shape[-1], device=aatype.device).expand(aatype.shape)
        s, z = self.input_embedder(tf, residue_index)
        for attn, transition in zip(self.attn_blocks, self.transitions):
            s = s + attn(s, z, seq_mask)
            s = s + transition(s, seq_mask)
        return self.linear(self.layer_norm(s))


def _openfold_inputs():
    aatype = torch.randint(0, 20, (3, 24))
    seq_mask = torch.ones(3, 24)
    seq_mask[1, 20:] = 0.0
    seq_mask[2, 15:] = 0.0
    return (aatype, seq_mask)


# --- 3. DINOv2 (facebookresearch/dinov2 layers/attention.py, block.py): LayerScale ls1/ls2, register tokens ---------

class DinoPatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=96, norm_layer=None, flatten_embedding=True):
        super().__init__()
        image_HW = (img_size, img_size)
        patch_HW = (patch_size, patch_size)
        patch_grid_size = (image_HW[0] // patch_HW[0], image_HW[1] // patch_HW[1])
        self.img_size = image_HW
        self.patch_size = patch_HW
        self.patches_resolution = patch_grid_size
        self.num_patches = patch_grid_size[0] * patch_grid_size[1]
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.flatten_embedding = flatten_embedding
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_HW, stride=patch_HW)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x):
        _, _, H, W = x.shape
        patch_H, patch_W = self.patch_size
        assert H % patch_H == 0, f"Input image height {H} is not a multiple of patch height {patch_H}"
        assert W % patch_W == 0, f"Input image width {W} is not a multiple of patch width: {patch_W}"
        x = self.proj(x)  # B C H W
        H, W = x.size(2), x.size(3)
        x = x.flatten(2).transpose(1, 2)  # B HW C
        x = self.norm(x)
        if not self.flatten_embedding:
            x = x.reshape(-1, H, W, self.embed_dim)  # B H W C
        return x


class DinoAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, proj_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values=1e-5, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.gamma) if self.inplace else x * self.gamma


class DinoMlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0, bias=True):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = self.drop(x)
        return x


class DinoBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, proj_bias=True, ffn_bias=True, init_values=None,
                 act_layer=nn.GELU, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = DinoAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias)
        self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path1 = nn.Identity()
        self.norm2 = norm_layer(dim)
        mlp_hidden_dim = int(dim * mlp_ratio)
        self.mlp = DinoMlp(in_features=dim, hidden_features=mlp_hidden_dim, act_layer=act_layer, bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def attn_residual_func(x: torch.Tensor) -> torch.Tensor:
            return self.ls1(self.attn(self.norm1(x)))

        def ffn_residual_func(x: torch.Tensor) -> torch.Tensor:
            return self.ls2(self.mlp(self.norm2(x)))

        x = x + attn_residual_func(x)
        x = x + ffn_residual_func(x)
        return x


class DinoVisionTransformer(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=96, depth=2, num_heads=4, mlp_ratio=4.0,
                 init_values=0.1, num_register_tokens=2, num_classes=10, interpolate_offset=0.1):
        super().__init__()
        norm_layer = nn.LayerNorm
        self.num_features = self.embed_dim = embed_dim
        self.num_tokens = 1
        self.n_blocks = depth
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_offset = interpolate_offset
        self.patch_embed = DinoPatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                          embed_dim=embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_tokens, embed_dim))
        self.register_tokens = (nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
                                if num_register_tokens else None)
        self.blocks = nn.ModuleList([
            DinoBlock(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, init_values=init_values,
                      norm_layer=norm_layer) for _ in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.head = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        # linear-probe head on [cls, mean(patch tokens)] as in dinov2 eval/linear.py
        self.linear = nn.Linear(2 * embed_dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, x, w, h):
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed = pos_embed[:, 0]
        patch_pos_embed = pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_size
        h0 = h // self.patch_size
        M = int(math.sqrt(N))
        assert N == M * M
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2), mode="bicubic", size=(w0, h0))
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1).to(previous_dtype)

    def prepare_tokens_with_masks(self, x, masks=None):
        B, nc, w, h = x.shape
        x = self.patch_embed(x)
        if masks is not None:
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        if self.register_tokens is not None:
            x = torch.cat((x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1)
        return x

    def forward_features(self, x, masks=None):
        x = self.prepare_tokens_with_masks(x, masks)
        for blk in self.blocks:
            x = blk(x)
        x_norm = self.norm(x)
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1: self.num_register_tokens + 1],
            "x_norm_patchtokens": x_norm[:, self.num_register_tokens + 1:],
            "x_prenorm": x,
            "masks": masks,
        }

    def forward(self, x):
        ret = self.forward_features(x)
        cls_token = self.head(ret["x_norm_clstoken"])
        patch_tokens = ret["x_norm_patchtokens"]
        linear_input = torch.cat([cls_token, patch_tokens.mean(dim=1)], dim=1)
        return self.linear(linear_input)


# --- 4. Swin Transformer V2 (microsoft/Swin-Transformer): cosine attention, logit_scale, cpb_mlp, shifted windows ----

def window_partition(x, window_size):
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)
    return windows


def window_reverse(windows, window_size, H, W):
    B = int(windows.shape[0] / (H * W / window_size / window_size))
    x = windows.view(B, H // window_size, W // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)
    return x


class SwinV2Mlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = self.drop(x)
        return x


class SwinV2WindowAttention(nn.Module):
    r""" Window based multi-head self attention (W-MSA) module with continuous relative position bias."""

    def __init__(self, dim, window_size, num_heads, qkv_bias=True, attn_drop=0., proj_drop=0.,
                 pretrained_window_size=(0, 0)):
        super().__init__()
        self.dim = dim
        self.window_size = window_size  # Wh, Ww
        self.pretrained_window_size = pretrained_window_size
        self.num_heads = num_heads

        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))), requires_grad=True)

        # mlp to generate continuous relative position bias
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512, bias=True),
                                     nn.ReLU(inplace=True),
                                     nn.Linear(512, num_heads, bias=False))

        # get relative_coords_table
        relative_coords_h = torch.arange(-(self.window_size[0] - 1), self.window_size[0], dtype=torch.float32)
        relative_coords_w = torch.arange(-(self.window_size[1] - 1), self.window_size[1], dtype=torch.float32)
        relative_coords_table = torch.stack(
            torch.meshgrid([relative_coords_h, relative_coords_w], indexing="ij")).permute(
            1, 2, 0).contiguous().unsqueeze(0)  # 1, 2*Wh-1, 2*Ww-1, 2
        if pretrained_window_size[0] > 0:
            relative_coords_table[:, :, :, 0] /= (pretrained_window_size[0] - 1)
            relative_coords_table[:, :, :, 1] /= (pretrained_window_size[1] - 1)
        else:
            relative_coords_table[:, :, :, 0] /= (self.window_size[0] - 1)
            relative_coords_table[:, :, :, 1] /= (self.window_size[1] - 1)
        relative_coords_table *= 8  # normalize to -8, 8
        relative_coords_table = torch.sign(relative_coords_table) * torch.log2(
            torch.abs(relative_coords_table) + 1.0) / math.log2(8)

        self.register_buffer("relative_coords_table", relative_coords_table)

        # get pair-wise relative position index for each token inside the window
        coords_h = torch.arange(self.window_size[0])
        coords_w = torch.arange(self.window_size[1])
        coords = torch.stack(torch.meshgrid([coords_h, coords_w], indexing="ij"))  # 2, Wh, Ww
        coords_flatten = torch.flatten(coords, 1)  # 2, Wh*Ww
        relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]  # 2, Wh*Ww, Wh*Ww
        relative_coords = relative_coords.permute(1, 2, 0).contiguous()  # Wh*Ww, Wh*Ww, 2
        relative_coords[:, :, 0] += self.window_size[0] - 1  # shift to start from 0
        relative_coords[:, :, 1] += self.window_size[1] - 1
        relative_coords[:, :, 0] *= 2 * self.window_size[1] - 1
        relative_position_index = relative_coords.sum(-1)  # Wh*Ww, Wh*Ww
        self.register_buffer("relative_position_index", relative_position_index)

        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        qkv = qkv.reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # make torchscript happy (cannot use tensor as tuple)

        # cosine attention
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1))
        logit_scale = torch.clamp(self.logit_scale, max=math.log(1. / 0.01)).exp()
        attn = attn * logit_scale

        relative_position_bias_table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        relative_position_bias = relative_position_bias_table[self.relative_position_index.view(-1)].view(
            self.window_size[0] * self.window_size[1], self.window_size[0] * self.window_size[1], -1)  # Wh*Ww,Wh*Ww,nH
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()  # nH, Wh*Ww, Wh*Ww
        relative_position_bias = 16 * torch.sigmoid(relative_position_bias)
        attn = attn + relative_position_bias.unsqueeze(0)

        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
            attn = self.softmax(attn)
        else:
            attn = self.softmax(attn)

        attn = self.attn_drop(attn)

        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class SwinTransformerV2Block(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, window_size=4, shift_size=0, mlp_ratio=4., qkv_bias=True,
                 act_layer=nn.GELU, norm_layer=nn.LayerNorm, pretrained_window_size=0):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.mlp_ratio = mlp_ratio
        if min(self.input_resolution) <= self.window_size:
            # if window size is larger than input resolution, we don't partition windows
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        assert 0 <= self.shift_size < self.window_size, "shift_size must in 0-window_size"

        self.norm1 = norm_layer(dim)
        self.attn = SwinV2WindowAttention(
            dim, window_size=(self.window_size, self.window_size), num_heads=num_heads, qkv_bias=qkv_bias,
            pretrained_window_size=(pretrained_window_size, pretrained_window_size))

        self.drop_path = nn.Identity()
        self.norm2 = norm_layer(dim)
        mlp_hidden_dim = int(dim * mlp_ratio)
        self.mlp = SwinV2Mlp(in_features=dim, hidden_features=mlp_hidden_dim, act_layer=act_layer)

        if self.shift_size > 0:
            # calculate attention mask for SW-MSA
            H, W = self.input_resolution
            img_mask = torch.zeros((1, H, W, 1))  # 1 H W 1
            h_slices = (slice(0, -self.window_size),
                        slice(-self.window_size, -self.shift_size),
                        slice(-self.shift_size, None))
            w_slices = (slice(0, -self.window_size),
                        slice(-self.window_size, -self.shift_size),
                        slice(-self.shift_size, None))
            cnt = 0
            for h in h_slices:
                for w in w_slices:
                    img_mask[:, h, w, :] = cnt
                    cnt += 1

            mask_windows = window_partition(img_mask, self.window_size)  # nW, window_size, window_size, 1
            mask_windows = mask_windows.view(-1, self.window_size * self.window_size)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))
        else:
            attn_mask = None

        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x):
        H, W = self.input_resolution
        B, L, C = x.shape
        assert L == H * W, "input feature has wrong size"

        shortcut = x
        x = x.view(B, H, W, C)

        # cyclic shift
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        else:
            shifted_x = x

        # partition windows
        x_windows = window_partition(shifted_x, self.window_size)  # nW*B, window_size, window_size, C
        x_windows = x_windows.view(-1, self.window_size * self.window_size, C)  # nW*B, window_size*window_size, C

        # W-MSA/SW-MSA
        attn_windows = self.attn(x_windows, mask=self.attn_mask)  # nW*B, window_size*window_size, C

        # merge windows
        attn_windows = attn_windows.view(-1, self.window_size, self.window_size, C)
        shifted_x = window_reverse(attn_windows, self.window_size, H, W)  # B H' W' C

        # reverse cyclic shift
        if self.shift_size > 0:
            x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            x = shifted_x
        x = x.view(B, H * W, C)
        x = shortcut + self.drop_path(self.norm1(x))

        # FFN
        x = x + self.drop_path(self.norm2(self.mlp(x)))

        return x


class SwinV2PatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=4, in_chans=3, embed_dim=64, norm_layer=nn.LayerNorm):
        super().__init__()
        patches_resolution = [img_size // patch_size, img_size // patch_size]
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.patches_resolution = patches_resolution
        self.num_patches = patches_resolution[0] * patches_resolution[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x):
        B, C, H, W = x.shape
        assert H == self.img_size[0] and W == self.img_size[1], \
            f"Input image size ({H}*{W}) doesn't match model ({self.img_size[0]}*{self.img_size[1]})."
        x = self.proj(x).flatten(2).transpose(1, 2)  # B Ph*Pw C
        if self.norm is not None:
            x = self.norm(x)
        return x


class SwinTransformerV2(nn.Module):
    def __init__(self, img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=64, depth=2, num_heads=2,
                 window_size=4, mlp_ratio=4.):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.patch_embed = SwinV2PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                            embed_dim=embed_dim)
        patches_resolution = self.patch_embed.patches_resolution
        self.pos_drop = nn.Dropout(p=0.0)
        self.blocks = nn.ModuleList([
            SwinTransformerV2Block(dim=embed_dim, input_resolution=(patches_resolution[0], patches_resolution[1]),
                                   num_heads=num_heads, window_size=window_size,
                                   shift_size=0 if (i % 2 == 0) else window_size // 2, mlp_ratio=mlp_ratio)
            for i in range(depth)])
        self.norm = nn.LayerNorm(self.num_features)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)  # B L C
        x = self.avgpool(x.transpose(1, 2))  # B C 1
        x = torch.flatten(x, 1)
        return x

    def forward(self, x):
        x = self.forward_features(x)
        x = self.head(x)
        return x


# --- 5. ConViT (facebookresearch/convit): GPSA with pos_proj and gating_param, then class token + MHSA --------------

class ConViTMlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = self.drop(x)
        return x


class GPSA(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, attn_drop=0., proj_drop=0.,
                 locality_strength=1., use_local_init=True, num_patches=16):
        super().__init__()
        self.num_heads = num_heads
        self.dim = dim
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5

        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)

        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, num_heads)
        self.proj_drop = nn.Dropout(proj_drop)
        self.locality_strength = locality_strength
        self.gating_param = nn.Parameter(torch.ones(self.num_heads))
        self.apply(self._init_weights)
        if use_local_init:
            self.local_init(locality_strength=locality_strength)
        # the original builds rel_indices lazily in forward; here it is a buffer made at construction
        self.register_buffer("rel_indices", self.get_rel_indices(num_patches), persistent=False)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        B, N, C = x.shape
        attn = self.get_attention(x)
        v = self.v(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x

    def get_attention(self, x):
        B, N, C = x.shape
        qk = self.qk(x).reshape(B, N, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = qk[0], qk[1]
        pos_score = self.rel_indices.expand(B, -1, -1, -1)
        pos_score = self.pos_proj(pos_score).permute(0, 3, 1, 2)
        patch_score = (q @ k.transpose(-2, -1)) * self.scale
        patch_score = patch_score.softmax(dim=-1)
        pos_score = pos_score.softmax(dim=-1)

        gating = self.gating_param.view(1, -1, 1, 1)
        attn = (1. - torch.sigmoid(gating)) * patch_score + torch.sigmoid(gating) * pos_score
        attn /= attn.sum(dim=-1).unsqueeze(-1)
        attn = self.attn_drop(attn)
        return attn

    def local_init(self, locality_strength=1.):
        with torch.no_grad():
            self.v.weight.data.copy_(torch.eye(self.dim))
            locality_distance = 1  # max(1,1/locality_strength**.5)

            kernel_size = int(self.num_heads ** .5)
            center = (kernel_size - 1) / 2 if kernel_size % 2 == 0 else kernel_size // 2
            for h1 in range(kernel_size):
                for h2 in range(kernel_size):
                    position = h1 + kernel_size * h2
                    self.pos_proj.weight.data[position, 2] = -1
                    self.pos_proj.weight.data[position, 1] = 2 * (h1 - center) * locality_distance
                    self.pos_proj.weight.data[position, 0] = 2 * (h2 - center) * locality_distance
            self.pos_proj.weight.data *= locality_strength

    @staticmethod
    def get_rel_indices(num_patches):
        img_size = int(num_patches ** .5)
        rel_indices = torch.zeros(1, num_patches, num_patches, 3)
        ind = torch.arange(img_size).view(1, -1) - torch.arange(img_size).view(-1, 1)
        indx = ind.repeat(img_size, img_size)
        indy = ind.repeat_interleave(img_size, dim=0).repeat_interleave(img_size, dim=1)
        indd = indx ** 2 + indy ** 2
        rel_indices[:, :, :, 2] = indd.unsqueeze(0)
        rel_indices[:, :, :, 1] = indy.unsqueeze(0)
        rel_indices[:, :, :, 0] = indx.unsqueeze(0)
        return rel_indices


class MHSA(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, attn_drop=0., proj_drop=0.):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class ConViTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, qk_scale=None, drop=0., attn_drop=0.,
                 act_layer=nn.GELU, norm_layer=nn.LayerNorm, use_gpsa=True, **kwargs):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.use_gpsa = use_gpsa
        if self.use_gpsa:
            self.attn = GPSA(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                             proj_drop=drop, **kwargs)
        else:
            self.attn = MHSA(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                             proj_drop=drop)
        self.drop_path = nn.Identity()
        self.norm2 = norm_layer(dim)
        mlp_hidden_dim = int(dim * mlp_ratio)
        self.mlp = ConViTMlp(in_features=dim, hidden_features=mlp_hidden_dim, act_layer=act_layer, drop=drop)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class ConViT(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=48, depth=2, num_heads=4,
                 mlp_ratio=4., qkv_bias=False, local_up_to_layer=1, locality_strength=1., use_pos_embed=True):
        super().__init__()
        self.num_classes = num_classes
        self.local_up_to_layer = local_up_to_layer
        self.num_features = self.embed_dim = embed_dim
        self.locality_strength = locality_strength
        self.use_pos_embed = use_pos_embed
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        num_patches = (img_size // patch_size) ** 2
        self.num_patches = num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_drop = nn.Dropout(p=0.0)
        if self.use_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=.02)
        self.blocks = nn.ModuleList([
            ConViTBlock(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, use_gpsa=True,
                        locality_strength=locality_strength, num_patches=num_patches)
            if i < local_up_to_layer else
            ConViTBlock(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, use_gpsa=False)
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.trunc_normal_(self.cls_token, std=.02)

    def forward_features(self, x):
        B = x.shape[0]
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls_tokens = self.cls_token.expand(B, -1, -1)
        if self.use_pos_embed:
            x = x + self.pos_embed
        x = self.pos_drop(x)
        for u, blk in enumerate(self.blocks):
            if u == self.local_up_to_layer:
                x = torch.cat((cls_tokens, x), dim=1)
            x = blk(x)
        x = self.norm(x)
        return x[:, 0]

    def forward(self, x):
        x = self.forward_features(x)
        x = self.head(x)
        return x


# --- 6. CrossViT (IBM/CrossViT crossvit.py): cls token of one branch queries the other through wq / wk / wv ---------

class CrossViTMlp(ConViTMlp):
    pass


class CrossViTAttention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, attn_drop=0., proj_drop=0.):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class CrossViTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, qk_scale=None, act_layer=nn.GELU,
                 norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = CrossViTAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale)
        self.drop_path = nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = CrossViTMlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class CrossAttention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, attn_drop=0., proj_drop=0.):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        # NOTE scale factor was wrong in my original version, can set manually to be compat with prev weights
        self.scale = qk_scale or head_dim ** -0.5

        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        q = self.wq(x[:, 0:1, ...]).reshape(B, 1, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)  # B1C -> B1H(C/H) -> BH1(C/H)
        k = self.wk(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)  # BNC -> BNH(C/H) -> BHN(C/H)
        v = self.wv(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)  # BNC -> BNH(C/H) -> BHN(C/H)

        attn = (q @ k.transpose(-2, -1)) * self.scale  # BH1(C/H) @ BH(C/H)N -> BH1N
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)

        x = (attn @ v).transpose(1, 2).reshape(B, 1, C)  # (BH1N @ BHN(C/H)) -> BH1(C/H) -> B1H(C/H) -> B1C
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class CrossAttentionBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, qk_scale=None, act_layer=nn.GELU,
                 norm_layer=nn.LayerNorm, has_mlp=True):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = CrossAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale)
        self.drop_path = nn.Identity()
        self.has_mlp = has_mlp
        if has_mlp:
            self.norm2 = norm_layer(dim)
            mlp_hidden_dim = int(dim * mlp_ratio)
            self.mlp = CrossViTMlp(in_features=dim, hidden_features=mlp_hidden_dim, act_layer=act_layer)

    def forward(self, x):
        x = x[:, 0:1, ...] + self.drop_path(self.attn(self.norm1(x)))
        if self.has_mlp:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class MultiScaleBlock(nn.Module):
    def __init__(self, dim, depth, num_heads, mlp_ratio, qkv_bias=False, qk_scale=None, act_layer=nn.GELU,
                 norm_layer=nn.LayerNorm):
        super().__init__()
        num_branches = len(dim)
        self.num_branches = num_branches
        # different branch could have different embedding size, the first one is the base
        self.blocks = nn.ModuleList()
        for d in range(num_branches):
            tmp = []
            for i in range(depth[d]):
                tmp.append(CrossViTBlock(dim=dim[d], num_heads=num_heads[d], mlp_ratio=mlp_ratio[d],
                                         qkv_bias=qkv_bias, norm_layer=norm_layer))
            if len(tmp) != 0:
                self.blocks.append(nn.Sequential(*tmp))
        if len(self.blocks) == 0:
            self.blocks = None

        self.projs = nn.ModuleList()
        for d in range(num_branches):
            if dim[d] == dim[(d + 1) % num_branches] and False:
                tmp = [nn.Identity()]
            else:
                tmp = [norm_layer(dim[d]), act_layer(), nn.Linear(dim[d], dim[(d + 1) % num_branches])]
            self.projs.append(nn.Sequential(*tmp))

        self.fusion = nn.ModuleList()
        for d in range(num_branches):
            d_ = (d + 1) % num_branches
            nh = num_heads[d_]
            if depth[-1] == 0:  # backward capability:
                self.fusion.append(CrossAttentionBlock(dim=dim[d_], num_heads=nh, mlp_ratio=mlp_ratio[d],
                                                       qkv_bias=qkv_bias, qk_scale=qk_scale, norm_layer=norm_layer,
                                                       has_mlp=False))
            else:
                tmp = []
                for _ in range(depth[-1]):
                    tmp.append(CrossAttentionBlock(dim=dim[d_], num_heads=nh, mlp_ratio=mlp_ratio[d],
                                                   qkv_bias=qkv_bias, qk_scale=qk_scale, norm_layer=norm_layer,
                                                   has_mlp=False))
                self.fusion.append(nn.Sequential(*tmp))

        self.revert_projs = nn.ModuleList()
        for d in range(num_branches):
            if dim[(d + 1) % num_branches] == dim[d] and False:
                tmp = [nn.Identity()]
            else:
                tmp = [norm_layer(dim[(d + 1) % num_branches]), act_layer(),
                       nn.Linear(dim[(d + 1) % num_branches], dim[d])]
            self.revert_projs.append(nn.Sequential(*tmp))

    def forward(self, x):
        outs_b = [block(x_) for x_, block in zip(x, self.blocks)]
        # only take the cls token out
        proj_cls_token = [proj(x[:, 0:1]) for x, proj in zip(outs_b, self.projs)]
        # cross attention
        outs = []
        for i in range(self.num_branches):
            tmp = torch.cat((proj_cls_token[i], outs_b[(i + 1) % self.num_branches][:, 1:, ...]), dim=1)
            tmp = self.fusion[i](tmp)
            reverted_proj_cls_token = self.revert_projs[i](tmp[:, 0:1, ...])
            tmp = torch.cat((reverted_proj_cls_token, outs_b[i][:, 1:, ...]), dim=1)
            outs.append(tmp)
        return outs


class CrossViTPatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=48):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.num_patches = (img_size // patch_size) * (img_size // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        B, C, H, W = x.shape
        x = self.proj(x).flatten(2).transpose(1, 2)
        return x


class CrossVisionTransformer(nn.Module):
    """Vision Transformer with support for patch or hybrid CNN input stage"""

    def __init__(self, img_size=(32, 32), patch_size=(8, 16), in_chans=3, num_classes=10, embed_dim=(48, 96),
                 depth=((1, 1, 0), (1, 1, 0)), num_heads=(4, 4), mlp_ratio=(2., 2., 1.), qkv_bias=True):
        super().__init__()
        self.num_classes = num_classes
        self.img_size = img_size
        num_patches = [(i // p) * (i // p) for i, p in zip(img_size, patch_size)]
        self.num_branches = len(patch_size)

        self.patch_embed = nn.ModuleList()
        self.pos_embed = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, 1 + num_patches[i], embed_dim[i])) for i in range(self.num_branches)])
        for im_s, p, d in zip(img_size, patch_size, embed_dim):
            self.patch_embed.append(CrossViTPatchEmbed(img_size=im_s, patch_size=p, in_chans=in_chans, embed_dim=d))

        self.cls_token = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, 1, embed_dim[i])) for i in range(self.num_branches)])
        self.pos_drop = nn.Dropout(p=0.0)

        self.blocks = nn.ModuleList()
        for idx, block_cfg in enumerate(depth):
            blk = MultiScaleBlock(embed_dim, block_cfg, num_heads, mlp_ratio, qkv_bias=qkv_bias)
            self.blocks.append(blk)

        self.norm = nn.ModuleList([nn.LayerNorm(embed_dim[i]) for i in range(self.num_branches)])
        self.head = nn.ModuleList([nn.Linear(embed_dim[i], num_classes) if num_classes > 0 else nn.Identity()
                                   for i in range(self.num_branches)])

        for i in range(self.num_branches):
            if self.pos_embed[i].requires_grad:
                nn.init.trunc_normal_(self.pos_embed[i], std=.02)
            nn.init.trunc_normal_(self.cls_token[i], std=.02)

    def forward_features(self, x):
        B, C, H, W = x.shape
        xs = []
        for i in range(self.num_branches):
            x_ = torch.nn.functional.interpolate(x, size=(self.img_size[i], self.img_size[i]), mode='bicubic') \
                if H != self.img_size[i] else x
            tmp = self.patch_embed[i](x_)
            cls_tokens = self.cls_token[i].expand(B, -1, -1)  # stole cls_tokens impl from Phil Wang, thanks
            tmp = torch.cat((cls_tokens, tmp), dim=1)
            tmp = tmp + self.pos_embed[i]
            tmp = self.pos_drop(tmp)
            xs.append(tmp)

        for blk in self.blocks:
            xs = blk(xs)

        # NOTE: was before branch token section, move to here to assure all branch token are before layer norm
        xs = [self.norm[i](x) for i, x in enumerate(xs)]
        out = [x[:, 0] for x in xs]
        return out

    def forward(self, x):
        xs = self.forward_features(x)
        ce_logits = [self.head[i](x) for i, x in enumerate(xs)]
        ce_logits = torch.mean(torch.stack(ce_logits, dim=0), dim=0)
        return ce_logits


# --- 7. Temporal Fusion Transformer (pytorch-forecasting): InterpretableMultiHeadAttention, GRN, GateAddNorm --------

class ScaledDotProductAttention(nn.Module):
    def __init__(self, dropout: float = None, scale: bool = True):
        super(ScaledDotProductAttention, self).__init__()
        if dropout is None:
            self.dropout = dropout
        else:
            self.dropout = nn.Dropout(p=dropout)
        self.softmax = nn.Softmax(dim=2)
        self.scale = scale

    def forward(self, q, k, v, mask=None):
        attn = torch.bmm(q, k.permute(0, 2, 1))  # query-key overlap

        if self.scale:
            dimension = torch.as_tensor(k.size(-1), dtype=attn.dtype, device=attn.device).sqrt()
            attn = attn / dimension

        if mask is not None:
            attn = attn.masked_fill(mask, -1e9)
        attn = self.softmax(attn)

        if self.dropout is not None:
            attn = self.dropout(attn)
        output = torch.bmm(attn, v)
        return output, attn


class InterpretableMultiHeadAttention(nn.Module):
    def __init__(self, n_head: int, d_model: int, dropout: float = 0.0):
        super(InterpretableMultiHeadAttention, self).__init__()

        self.n_head = n_head
        self.d_model = d_model
        self.d_k = self.d_q = self.d_v = d_model // n_head
        self.dropout = nn.Dropout(p=dropout)

        self.v_layer = nn.Linear(self.d_model, self.d_v)
        self.q_layers = nn.ModuleList([nn.Linear(self.d_model, self.d_q) for _ in range(self.n_head)])
        self.k_layers = nn.ModuleList([nn.Linear(self.d_model, self.d_k) for _ in range(self.n_head)])
        self.attention = ScaledDotProductAttention()
        self.w_h = nn.Linear(self.d_v, self.d_model, bias=False)

        self.init_weights()

    def init_weights(self):
        for name, p in self.named_parameters():
            if "bias" not in name:
                torch.nn.init.xavier_uniform_(p)
            else:
                torch.nn.init.zeros_(p)

    def forward(self, q, k, v, mask=None):
        heads = []
        attns = []
        vs = self.v_layer(v)
        for i in range(self.n_head):
            qs = self.q_layers[i](q)
            ks = self.k_layers[i](k)
            head, attn = self.attention(qs, ks, vs, mask)
            head_dropout = self.dropout(head)
            heads.append(head_dropout)
            attns.append(attn)

        head = torch.stack(heads, dim=2) if self.n_head > 1 else heads[0]
        attn = torch.stack(attns, dim=2)

        outputs = torch.mean(head, dim=2) if self.n_head > 1 else head
        outputs = self.w_h(outputs)
        outputs = self.dropout(outputs)

        return outputs, attn


class GatedLinearUnit(nn.Module):
    """Gated Linear Unit"""

    def __init__(self, input_size: int, hidden_size: int = None, dropout: float = None):
        super().__init__()
        if dropout is not None:
            self.dropout = nn.Dropout(dropout)
        else:
            self.dropout = dropout
        self.hidden_size = hidden_size or input_size
        self.fc = nn.Linear(input_size, self.hidden_size * 2)

    def forward(self, x):
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.fc(x)
        x = F.glu(x, dim=-1)
        return x


class AddNorm(nn.Module):
    def __init__(self, input_size: int, skip_size: int = None, trainable_add: bool = True):
        super().__init__()
        self.input_size = input_size
        self.trainable_add = trainable_add
        self.skip_size = skip_size or input_size
        if self.trainable_add:
            self.mask = nn.Parameter(torch.zeros(self.input_size, dtype=torch.float))
            self.gate = nn.Sigmoid()
        self.norm = nn.LayerNorm(self.input_size)

    def forward(self, x: torch.Tensor, skip: torch.Tensor):
        if self.trainable_add:
            skip = skip * self.gate(self.mask) * 2.0
        output = self.norm(x + skip)
        return output


class GateAddNorm(nn.Module):
    def __init__(self, input_size: int, hidden_size: int = None, skip_size: int = None, trainable_add: bool = False,
                 dropout: float = None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size or input_size
        self.skip_size = skip_size or self.hidden_size
        self.dropout = dropout
        self.glu = GatedLinearUnit(self.input_size, hidden_size=self.hidden_size, dropout=self.dropout)
        self.add_norm = AddNorm(self.hidden_size, skip_size=self.skip_size, trainable_add=trainable_add)

    def forward(self, x, skip):
        output = self.glu(x)
        output = self.add_norm(output, skip)
        return output


class GatedResidualNetwork(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float = 0.1,
                 context_size: int = None, residual: bool = False):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.context_size = context_size
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.residual = residual

        if self.input_size != self.output_size and not self.residual:
            # stands in for ResampleNorm: a projection of the residual to the output width
            self.resample_norm = nn.Linear(self.input_size, self.output_size)

        self.fc1 = nn.Linear(self.input_size, self.hidden_size)
        self.elu = nn.ELU()

        if self.context_size is not None:
            self.context = nn.Linear(self.context_size, self.hidden_size, bias=False)

        self.fc2 = nn.Linear(self.hidden_size, self.hidden_size)
        self.gate_norm = GateAddNorm(input_size=self.hidden_size, skip_size=self.output_size,
                                     hidden_size=self.output_size, dropout=self.dropout, trainable_add=False)

    def forward(self, x, context=None, residual=None):
        if residual is None:
            residual = x

        if self.input_size != self.output_size and not self.residual:
            residual = self.resample_norm(residual)

        x = self.fc1(x)
        if context is not None:
            context = self.context(context)
            x = x + context
        x = self.elu(x)
        x = self.fc2(x)
        x = self.gate_norm(x, residual)
        return x


class VariableSelectionNetwork(nn.Module):
    def __init__(self, num_inputs: int, hidden_size: int, dropout: float = 0.1, context_size: int = None):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_inputs = num_inputs
        self.prescalers = nn.ModuleList([nn.Linear(1, hidden_size) for _ in range(num_inputs)])
        self.flattened_grn = GatedResidualNetwork(num_inputs * hidden_size, min(hidden_size, num_inputs),
                                                  num_inputs, dropout, context_size, residual=False)
        self.single_variable_grns = nn.ModuleList(
            [GatedResidualNetwork(hidden_size, min(hidden_size, hidden_size), output_size=hidden_size,
                                  dropout=dropout) for _ in range(num_inputs)])
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor, context: torch.Tensor = None):
        var_outputs = []
        weight_inputs = []
        for i in range(self.num_inputs):
            variable_embedding = self.prescalers[i](x[..., i:i + 1])
            weight_inputs.append(variable_embedding)
            var_outputs.append(self.single_variable_grns[i](variable_embedding))
        var_outputs = torch.stack(var_outputs, dim=-1)
        flat_embedding = torch.cat(weight_inputs, dim=-1)
        sparse_weights = self.flattened_grn(flat_embedding, context)
        sparse_weights = self.softmax(sparse_weights).unsqueeze(-2)
        outputs = var_outputs * sparse_weights
        outputs = outputs.sum(dim=-1)
        return outputs, sparse_weights


class TFTAttentionLayer(nn.Module):
    """static enrichment -> interpretable attention -> post_attn_gate_norm -> pos_wise_ff -> pre_output_gate_norm"""

    def __init__(self, hidden_size, n_head, dropout=0.1):
        super().__init__()
        self.static_enrichment = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout=dropout,
                                                      context_size=hidden_size)
        self.multihead_attn = InterpretableMultiHeadAttention(d_model=hidden_size, n_head=n_head, dropout=dropout)
        self.post_attn_gate_norm = GateAddNorm(hidden_size, dropout=dropout, trainable_add=False)
        self.pos_wise_ff = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout=dropout)
        self.pre_output_gate_norm = GateAddNorm(hidden_size, dropout=None, trainable_add=False)

    def forward(self, x, static_context_enrichment, mask):
        attn_input = self.static_enrichment(x, static_context_enrichment[:, None].expand(-1, x.size(1), -1))
        attn_output, attn_output_weights = self.multihead_attn(q=attn_input, k=attn_input, v=attn_input, mask=mask)
        attn_output = self.post_attn_gate_norm(attn_output, attn_input)
        output = self.pos_wise_ff(attn_output)
        output = self.pre_output_gate_norm(output, x)
        return output


class TemporalFusionTransformer(nn.Module):
    def __init__(self, num_reals=6, num_static_categories=7, hidden_size=32, attention_head_size=4, n_layers=2,
                 n_classes=5, dropout=0.1):
        super().__init__()
        self.hidden_size = hidden_size
        self.static_embedding = nn.Embedding(num_static_categories, hidden_size)
        self.static_context_variable_selection = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout)
        self.static_context_enrichment = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout)
        self.encoder_variable_selection = VariableSelectionNetwork(num_reals, hidden_size, dropout,
                                                                   context_size=hidden_size)
        self.layers = nn.ModuleList([TFTAttentionLayer(hidden_size, attention_head_size, dropout)
                                     for _ in range(n_layers)])
        self.output_layer = nn.Linear(hidden_size, n_classes)

    def get_attention_mask(self, decoder_length: int, device):
        # do not attend to steps to self or after prediction
        return torch.triu(torch.ones(decoder_length, decoder_length, dtype=torch.bool, device=device), diagonal=1)

    def forward(self, x_cont, x_static):
        static_embedding = self.static_embedding(x_static)
        static_context_variable_selection = self.static_context_variable_selection(static_embedding)
        timesteps = x_cont.size(1)
        embeddings_varying, _ = self.encoder_variable_selection(
            x_cont, static_context_variable_selection[:, None].expand(-1, timesteps, -1))
        static_context_enrichment = self.static_context_enrichment(static_embedding)
        mask = self.get_attention_mask(timesteps, x_cont.device).unsqueeze(0)
        x = embeddings_varying
        for layer in self.layers:
            x = layer(x, static_context_enrichment, mask)
        return self.output_layer(x[:, -1])


def _tft_inputs():
    return (torch.randn(3, 24, 6), torch.randint(0, 7, (3,)))


# --- 8. Megatron-LM (legacy ParallelAttention / CoreAttention): fused query_key_value, [s, b, h] layout --------------

def divide(numerator, denominator):
    assert numerator % denominator == 0, '{} is not divisible by {}'.format(numerator, denominator)
    return numerator // denominator


def split_tensor_along_last_dim(tensor, num_partitions, contiguous_split_chunks=False):
    # Get the size and dimension.
    last_dim = tensor.dim() - 1
    last_dim_size = divide(tensor.size()[last_dim], num_partitions)
    # Split.
    tensor_list = torch.split(tensor, last_dim_size, dim=last_dim)
    # Note: torch.split does not create contiguous tensors by default.
    if contiguous_split_chunks:
        return tuple(chunk.contiguous() for chunk in tensor_list)
    return tensor_list


def attention_mask_func(attention_scores, attention_mask):
    attention_scores.masked_fill_(attention_mask, -10000.0)
    return attention_scores


def init_method_normal(sigma):
    def init_(tensor):
        return torch.nn.init.normal_(tensor, mean=0.0, std=sigma)
    return init_


def bias_dropout_add(x, bias, residual, prob, training):
    out = torch.nn.functional.dropout(x + bias, p=prob, training=training)
    out = residual + out
    return out


def get_bias_dropout_add(training):
    def _bias_dropout_add(x, bias, residual, prob):
        return bias_dropout_add(x, bias, residual, prob, training)
    return _bias_dropout_add


class ColumnParallelLinear(nn.Module):
    """Y = XA + b with A split along its second dimension (one partition here: world size 1)."""

    def __init__(self, input_size, output_size, bias=True, gather_output=True, init_method=None,
                 skip_bias_add=False):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.gather_output = gather_output
        world_size = 1
        self.output_size_per_partition = divide(output_size, world_size)
        self.skip_bias_add = skip_bias_add
        self.weight = nn.Parameter(torch.empty(self.output_size_per_partition, self.input_size))
        (init_method or init_method_normal(0.02))(self.weight)
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.output_size_per_partition))
        else:
            self.register_parameter('bias', None)

    def forward(self, input_):
        bias = self.bias if not self.skip_bias_add else None
        input_parallel = input_  # copy_to_tensor_model_parallel_region: identity on one rank
        output_parallel = F.linear(input_parallel, self.weight, bias)
        output = output_parallel  # gather_from_tensor_model_parallel_region: identity on one rank
        output_bias = self.bias if self.skip_bias_add else None
        return output, output_bias


class RowParallelLinear(nn.Module):
    """Y = XA + b with A split along its first dimension (one partition here: world size 1)."""

    def __init__(self, input_size, output_size, bias=True, input_is_parallel=False, init_method=None,
                 skip_bias_add=False):
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.input_is_parallel = input_is_parallel
        world_size = 1
        self.input_size_per_partition = divide(input_size, world_size)
        self.skip_bias_add = skip_bias_add
        self.weight = nn.Parameter(torch.empty(self.output_size, self.input_size_per_partition))
        (init_method or init_method_normal(0.02))(self.weight)
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.output_size))
        else:
            self.register_parameter('bias', None)

    def forward(self, input_):
        input_parallel = input_
        output_parallel = F.linear(input_parallel, self.weight)
        output_ = output_parallel  # reduce_from_tensor_model_parallel_region: identity on one rank
        if not self.skip_bias_add:
            output = output_ + self.bias if self.bias is not None else output_
            output_bias = None
        else:
            output = output_
            output_bias = self.bias
        return output, output_bias


class FusedScaleMaskSoftmax(nn.Module):
    """fused operation: scaling + mask + softmax (the torch fallback path)"""

    def __init__(self, input_in_fp16, input_in_bf16, attn_mask_type, scaled_masked_softmax_fusion, mask_func,
                 softmax_in_fp32, scale):
        super().__init__()
        self.input_in_fp16 = input_in_fp16
        self.input_in_bf16 = input_in_bf16
        self.input_in_float16 = self.input_in_fp16 or self.input_in_bf16
        self.attn_mask_type = attn_mask_type
        self.scaled_masked_softmax_fusion = scaled_masked_softmax_fusion
        self.mask_func = mask_func
        self.softmax_in_fp32 = softmax_in_fp32
        self.scale = scale
        assert self.scale is None or softmax_in_fp32, "softmax should be in fp32 when scaled"

    def forward(self, input, mask):
        assert input.dim() == 4
        return self.forward_torch_softmax(input, mask)

    def forward_torch_softmax(self, input, mask):
        if self.input_in_float16 and self.softmax_in_fp32:
            input = input.float()
        if self.scale is not None:
            input = input * self.scale
        mask_output = self.mask_func(input, mask) if mask is not None else input
        probs = torch.nn.Softmax(dim=-1)(mask_output)
        if self.input_in_float16 and self.softmax_in_fp32:
            if self.input_in_fp16:
                probs = probs.half()
            else:
                probs = probs.bfloat16()
        return probs


class CoreAttention(nn.Module):
    def __init__(self, layer_number, hidden_size, num_attention_heads, attention_dropout=0.0,
                 apply_query_key_layer_scaling=True, attention_softmax_in_fp32=True):
        super().__init__()
        self.apply_query_key_layer_scaling = apply_query_key_layer_scaling
        self.attention_softmax_in_fp32 = attention_softmax_in_fp32
        if self.apply_query_key_layer_scaling:
            self.attention_softmax_in_fp32 = True
        self.layer_number = max(1, layer_number)
        projection_size = hidden_size
        # Per attention head and per partition values.
        world_size = 1
        self.hidden_size_per_partition = divide(projection_size, world_size)
        self.hidden_size_per_attention_head = divide(projection_size, num_attention_heads)
        self.num_attention_heads_per_partition = divide(num_attention_heads, world_size)

        coeff = None
        self.norm_factor = math.sqrt(self.hidden_size_per_attention_head)
        if self.apply_query_key_layer_scaling:
            coeff = self.layer_number
            self.norm_factor *= coeff

        self.scale_mask_softmax = FusedScaleMaskSoftmax(False, False, "causal", False, attention_mask_func,
                                                        self.attention_softmax_in_fp32, coeff)
        self.attention_dropout = torch.nn.Dropout(attention_dropout)

    def forward(self, query_layer, key_layer, value_layer, attention_mask):
        # ===================================
        # Raw attention scores. [b, np, s, s]
        # ===================================
        # [b, np, sq, sk]
        output_size = (query_layer.size(1), query_layer.size(2), query_layer.size(0), key_layer.size(0))

        # [sq, b, np, hn] -> [sq, b * np, hn]
        query_layer = query_layer.reshape(output_size[2], output_size[0] * output_size[1], -1)
        # [sk, b, np, hn] -> [sk, b * np, hn]
        key_layer = key_layer.reshape(output_size[3], output_size[0] * output_size[1], -1)

        # preallocting input tensor: [b * np, sq, sk]
        matmul_input_buffer = torch.empty((output_size[0] * output_size[1], output_size[2], output_size[3]),
                                           dtype=query_layer.dtype, device=query_layer.device)

        # Raw attention scores. [b * np, sq, sk]
        matmul_result = torch.baddbmm(
            matmul_input_buffer,
            query_layer.transpose(0, 1),  # [b * np, sq, hn]
            key_layer.transpose(0, 1).transpose(1, 2),  # [b * np, hn, sk]
            beta=0.0, alpha=(1.0 / self.norm_factor))

        # change view to [b, np, sq, sk]
        attention_scores = matmul_result.view(*output_size)

        # ===========================
        # Attention probs and dropout
        # ===========================
        # attention scores and attention mask [b, np, sq, sk]
        attention_probs = self.scale_mask_softmax(attention_scores, attention_mask)
        attention_probs = self.attention_dropout(attention_probs)

        # =========================
        # Context layer. [sq, b, hp]
        # =========================
        # [sk, b, np, hn] --> [b, np, sq, hn]
        output_size = (value_layer.size(1), value_layer.size(2), query_layer.size(0), value_layer.size(3))

        # change view [sk, b * np, hn]
        value_layer = value_layer.reshape(value_layer.size(0), output_size[0] * output_size[1], -1)

        # change view [b * np, sq, sk]
        attention_probs = attention_probs.view(output_size[0] * output_size[1], output_size[2], -1)

        # matmul: [b * np, sq, hn]
        context_layer = torch.bmm(attention_probs, value_layer.transpose(0, 1))

        # change view [b, np, sq, hn]
        context_layer = context_layer.view(*output_size)

        # [b, np, sq, hn] --> [sq, b, np, hn]
        context_layer = context_layer.permute(2, 0, 1, 3).contiguous()

        # [sq, b, np, hn] --> [sq, b, hp]
        new_context_layer_shape = context_layer.size()[:-2] + (self.hidden_size_per_partition,)
        context_layer = context_layer.view(*new_context_layer_shape)

        return context_layer


class ParallelAttention(nn.Module):
    """Parallel self-attention layer abstract class. Self-attention layer takes input with size [s, b, h] and returns
    output of the same size."""

    def __init__(self, layer_number, hidden_size, num_attention_heads):
        super().__init__()
        self.layer_number = max(1, layer_number)
        projection_size = hidden_size
        world_size = 1
        self.hidden_size_per_attention_head = divide(projection_size, num_attention_heads)
        self.num_attention_heads_per_partition = divide(num_attention_heads, world_size)
        self.query_key_value = ColumnParallelLinear(hidden_size, 3 * projection_size, bias=True, gather_output=False)
        self.core_attention = CoreAttention(self.layer_number, hidden_size, num_attention_heads)
        # Output.
        self.dense = RowParallelLinear(projection_size, hidden_size, bias=True, input_is_parallel=True,
                                       skip_bias_add=True)

    def forward(self, hidden_states, attention_mask):
        # hidden_states: [sq, b, h]
        # =====================
        # Query, Key, and Value
        # =====================
        # Attention heads [sq, b, h] --> [sq, b, (np * 3 * hn)]
        mixed_x_layer, _ = self.query_key_value(hidden_states)

        # [sq, b, (np * 3 * hn)] --> [sq, b, np, 3 * hn]
        new_tensor_shape = mixed_x_layer.size()[:-1] + \
            (self.num_attention_heads_per_partition, 3 * self.hidden_size_per_attention_head)
        mixed_x_layer = mixed_x_layer.view(*new_tensor_shape)

        # [sq, b, np, 3 * hn] --> 3 [sq, b, np, hn]
        (query_layer, key_layer, value_layer) = split_tensor_along_last_dim(mixed_x_layer, 3)

        # ==================================
        # core attention computation
        # ==================================
        context_layer = self.core_attention(query_layer, key_layer, value_layer, attention_mask)

        # =================
        # Output. [sq, b, h]
        # =================
        output, bias = self.dense(context_layer)
        return output, bias


class ParallelMLP(nn.Module):
    def __init__(self, hidden_size, ffn_hidden_size):
        super().__init__()
        # Project to 4h.
        self.dense_h_to_4h = ColumnParallelLinear(hidden_size, ffn_hidden_size, gather_output=False,
                                                  skip_bias_add=True)
        self.bias_gelu_fusion = False
        self.activation_func = F.gelu
        # Project back to h.
        self.dense_4h_to_h = RowParallelLinear(ffn_hidden_size, hidden_size, input_is_parallel=True,
                                               skip_bias_add=True)

    def forward(self, hidden_states):
        # [s, b, 4hp]
        intermediate_parallel, bias_parallel = self.dense_h_to_4h(hidden_states)
        intermediate_parallel = self.activation_func(intermediate_parallel + bias_parallel)
        # [s, b, h]
        output, output_bias = self.dense_4h_to_h(intermediate_parallel)
        return output, output_bias


class ParallelTransformerLayer(nn.Module):
    def __init__(self, layer_number, hidden_size, num_attention_heads, ffn_hidden_size, hidden_dropout=0.0,
                 apply_residual_connection_post_layernorm=False, layernorm_epsilon=1e-5):
        super().__init__()
        self.layer_number = layer_number
        self.apply_residual_connection_post_layernorm = apply_residual_connection_post_layernorm
        self.input_layernorm = nn.LayerNorm(hidden_size, eps=layernorm_epsilon)
        self.self_attention = ParallelAttention(layer_number, hidden_size, num_attention_heads)
        self.hidden_dropout = hidden_dropout
        self.post_attention_layernorm = nn.LayerNorm(hidden_size, eps=layernorm_epsilon)
        self.mlp = ParallelMLP(hidden_size, ffn_hidden_size)

    def forward(self, hidden_states, attention_mask):
        # hidden_states: [s, b, h]
        # Layer norm at the beginning of the transformer layer.
        layernorm_output = self.input_layernorm(hidden_states)
        # Self attention.
        attention_output, attention_bias = self.self_attention(layernorm_output, attention_mask)

        # Residual connection.
        if self.apply_residual_connection_post_layernorm:
            residual = layernorm_output
        else:
            residual = hidden_states

        bias_dropout_add_func = get_bias_dropout_add(self.training)
        layernorm_input = bias_dropout_add_func(attention_output, attention_bias.expand_as(residual), residual,
                                                self.hidden_dropout)

        # Layer norm post the self attention.
        layernorm_output = self.post_attention_layernorm(layernorm_input)

        # MLP.
        mlp_output, mlp_bias = self.mlp(layernorm_output)

        # Second residual connection.
        if self.apply_residual_connection_post_layernorm:
            residual = layernorm_output
        else:
            residual = layernorm_input

        output = bias_dropout_add_func(mlp_output, mlp_bias.expand_as(residual), residual, self.hidden_dropout)
        return output


class MegatronEmbedding(nn.Module):
    def __init__(self, hidden_size, vocab_size, max_sequence_length, embedding_dropout_prob=0.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        init_method_normal(0.02)(self.word_embeddings.weight)
        self.position_embeddings = nn.Embedding(max_sequence_length, hidden_size)
        init_method_normal(0.02)(self.position_embeddings.weight)
        self.embedding_dropout = nn.Dropout(embedding_dropout_prob)

    def forward(self, input_ids, position_ids):
        words_embeddings = self.word_embeddings(input_ids)
        position_embeddings = self.position_embeddings(position_ids)
        embeddings = words_embeddings + position_embeddings
        # Data format change to avoid explicit tranposes : [b s h] --> [s b h].
        embeddings = embeddings.transpose(0, 1).contiguous()
        embeddings = self.embedding_dropout(embeddings)
        return embeddings


def parallel_lm_logits(input_, word_embeddings_weight, parallel_output, bias=None):
    input_parallel = input_
    logits_parallel = F.linear(input_parallel, word_embeddings_weight, bias)
    return logits_parallel


class MegatronGPTModel(nn.Module):
    def __init__(self, num_layers=2, hidden_size=96, num_attention_heads=8, vocab_size=192, max_position_embeddings=32):
        super().__init__()
        self.embedding = MegatronEmbedding(hidden_size, vocab_size, max_position_embeddings)
        self.layers = nn.ModuleList([ParallelTransformerLayer(i + 1, hidden_size, num_attention_heads,
                                                              4 * hidden_size) for i in range(num_layers)])
        self.final_layernorm = nn.LayerNorm(hidden_size, eps=1e-5)

    @staticmethod
    def get_ltor_masks_and_position_ids(data):
        micro_batch_size, seq_length = data.size()
        att_mask_batch = 1
        attention_mask = torch.tril(torch.ones((att_mask_batch, seq_length, seq_length), device=data.device)).view(
            att_mask_batch, 1, seq_length, seq_length)
        position_ids = torch.arange(seq_length, dtype=torch.long, device=data.device)
        position_ids = position_ids.unsqueeze(0).expand_as(data)
        # Convert attention mask to binary:
        attention_mask = (attention_mask < 0.5)
        return attention_mask, position_ids

    def forward(self, input_ids):
        attention_mask, position_ids = self.get_ltor_masks_and_position_ids(input_ids)
        hidden_states = self.embedding(input_ids, position_ids)
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask)
        hidden_states = self.final_layernorm(hidden_states)
        output = parallel_lm_logits(hidden_states, self.embedding.word_embeddings.weight, True)
        # [s b h] --> [b s h]
        return output.transpose(0, 1).contiguous()


# --- 9. Music Transformer (jason9693/MusicTransformer-pytorch): relative attention with E and the skewing trick -----

def sequence_mask(length, max_length=None):
    if max_length is None:
        max_length = length.max()
    x = torch.arange(max_length, dtype=length.dtype, device=length.device)
    return x.unsqueeze(0) < length.unsqueeze(1)


def get_look_ahead_mask_with_pad(size, trg, pad_token):
    trg = trg[:, None, None, :]
    trg_pad_tensor = torch.ones_like(trg).to(trg.device.type) * pad_token
    dec_trg_mask = trg == trg_pad_tensor
    # boolean reversing i.e) True * -1 + 1 = False
    seq_mask = ~sequence_mask(torch.arange(1, size + 1).to(trg.device), size)
    look_ahead_mask = dec_trg_mask | seq_mask
    return look_ahead_mask


class DynamicPositionEmbedding(nn.Module):
    def __init__(self, embedding_dim, max_seq=2048):
        super().__init__()
        embed_sinusoid_list = torch.tensor([[[
            math.sin(
                pos * math.exp(-math.log(10000) * i / embedding_dim) *
                math.exp(math.log(10000) / embedding_dim * (i % 2)) + 0.5 * math.pi * (i % 2)
            )
            for i in range(embedding_dim)
        ] for pos in range(max_seq)]], dtype=torch.float32)
        self.register_buffer("positional_embedding", embed_sinusoid_list, persistent=False)

    def forward(self, x):
        x = x + self.positional_embedding[:, :x.size(1), :].to(x.device, dtype=x.dtype)
        return x


class RelativeGlobalAttention(nn.Module):
    """from Music Transformer ( Huang et al, 2018 ) [paper link](https://arxiv.org/pdf/1809.04281.pdf)"""

    def __init__(self, h=4, d=256, add_emb=False, max_seq=2048, **kwargs):
        super().__init__()
        self.len_k = None
        self.max_seq = max_seq
        self.E = None
        self.h = h
        self.d = d
        self.dh = d // h
        self.Wq = nn.Linear(self.d, self.d)
        self.Wk = nn.Linear(self.d, self.d)
        self.Wv = nn.Linear(self.d, self.d)
        self.fc = nn.Linear(d, d)
        self.additional = add_emb
        self.E = nn.Parameter(torch.randn([self.max_seq, int(self.dh)]))
        if self.additional:
            self.Radd = None

    def forward(self, inputs, mask=None, **kwargs):
        """
        :param inputs: a list of tensors. i.e) [Q, K, V]
        :param mask: mask tensor
        :param kwargs:
        :return: final tensor ( output of attention )
        """
        q = inputs[0]
        q = self.Wq(q)
        q = torch.reshape(q, (q.size(0), q.size(1), self.h, -1))
        q = q.permute(0, 2, 1, 3)  # batch, h, seq, dh

        k = inputs[1]
        k = self.Wk(k)
        k = torch.reshape(k, (k.size(0), k.size(1), self.h, -1))
        k = k.permute(0, 2, 1, 3)

        v = inputs[2]
        v = self.Wv(v)
        v = torch.reshape(v, (v.size(0), v.size(1), self.h, -1))
        v = v.permute(0, 2, 1, 3)

        self.len_k = k.size(2)
        self.len_q = q.size(2)

        E = self._get_left_embedding(self.len_q, self.len_k).to(q.device)
        QE = torch.einsum('bhld,md->bhlm', [q, E])
        QE = self._qe_masking(QE)
        Srel = self._skewing(QE)

        Kt = k.permute(0, 1, 3, 2)
        QKt = torch.matmul(q, Kt)
        logits = QKt + Srel
        logits = logits / math.sqrt(self.dh)

        if mask is not None:
            logits += (mask.to(torch.int64) * -1e9).to(logits.dtype)

        attention_weights = F.softmax(logits, -1)
        attention = torch.matmul(attention_weights, v)

        out = attention.permute(0, 2, 1, 3)
        out = torch.reshape(out, (out.size(0), -1, self.d))

        out = self.fc(out)
        return out, attention_weights

    def _get_left_embedding(self, len_q, len_k):
        starting_point = max(0, self.max_seq - len_q)
        e = self.E[starting_point:, :]
        return e

    def _skewing(self, tensor: torch.Tensor):
        padded = F.pad(tensor, [1, 0, 0, 0, 0, 0, 0, 0])
        reshaped = torch.reshape(padded, shape=[padded.size(0), padded.size(1), padded.size(-1), padded.size(-2)])
        Srel = reshaped[:, :, 1:, :]
        if self.len_k > self.len_q:
            Srel = F.pad(Srel, [0, 0, 0, 0, 0, 0, 0, self.len_k - self.len_q])
        elif self.len_k < self.len_q:
            Srel = Srel[:, :, :, :self.len_k]
        return Srel

    @staticmethod
    def _qe_masking(qe):
        mask = sequence_mask(
            torch.arange(qe.size()[-1] - 1, qe.size()[-1] - qe.size()[-2] - 1, -1).to(qe.device),
            qe.size()[-1])
        mask = ~mask.to(mask.device)
        return mask.to(qe.dtype) * qe


class MusicDecoderLayer(nn.Module):
    def __init__(self, d_model, rate=0.1, h=16, additional=False, max_seq=2048):
        super().__init__()
        self.d_model = d_model
        self.rga = RelativeGlobalAttention(h=h, d=d_model, max_seq=max_seq, add_emb=additional)
        self.FFN_pre = nn.Linear(self.d_model, self.d_model // 2)
        self.FFN_suf = nn.Linear(self.d_model // 2, self.d_model)
        self.layernorm1 = nn.LayerNorm(self.d_model, eps=1e-6)
        self.layernorm2 = nn.LayerNorm(self.d_model, eps=1e-6)
        self.dropout1 = nn.Dropout(rate)
        self.dropout2 = nn.Dropout(rate)

    def forward(self, x, mask=None, **kwargs):
        attn_out, w = self.rga([x, x, x], mask)
        attn_out = self.dropout1(attn_out)
        out1 = self.layernorm1(attn_out + x)

        ffn_out = F.relu(self.FFN_pre(out1))
        ffn_out = self.FFN_suf(ffn_out)
        ffn_out = self.dropout2(ffn_out)
        out2 = self.layernorm2(out1 + ffn_out)
        return out2, w


class MusicEncoder(nn.Module):
    def __init__(self, num_layers, d_model, input_vocab_size, rate=0.1, max_len=None, h=4):
        super().__init__()
        self.d_model = d_model
        self.num_layers = num_layers
        self.embedding = nn.Embedding(num_embeddings=input_vocab_size, embedding_dim=d_model)
        self.pos_encoding = DynamicPositionEmbedding(self.d_model, max_seq=max_len)
        self.enc_layers = nn.ModuleList([MusicDecoderLayer(d_model, rate, h=h, additional=False, max_seq=max_len)
                                         for _ in range(num_layers)])
        self.dropout = nn.Dropout(rate)

    def forward(self, x, mask=None):
        weights = []
        # adding embedding and position encoding.
        x = self.embedding(x)  # (batch_size, input_seq_len, d_model)
        x *= math.sqrt(self.d_model)
        x = self.pos_encoding(x)
        x = self.dropout(x)
        for i in range(self.num_layers):
            x, w = self.enc_layers[i](x, mask)
            weights.append(w)
        return x, weights  # (batch_size, input_seq_len, d_model)


class MusicTransformer(nn.Module):
    def __init__(self, embedding_dim=64, vocab_size=240, num_layer=2, max_seq=32, dropout=0.2, num_heads=4):
        super().__init__()
        self.max_seq = max_seq
        self.num_layer = num_layer
        self.embedding_dim = embedding_dim
        self.vocab_size = vocab_size
        self.pad_token = vocab_size - 1
        self.Decoder = MusicEncoder(num_layers=self.num_layer, d_model=self.embedding_dim,
                                    input_vocab_size=self.vocab_size, rate=dropout, max_len=max_seq, h=num_heads)
        self.fc = nn.Linear(self.embedding_dim, self.vocab_size)

    def forward(self, x):
        look_ahead_mask = get_look_ahead_mask_with_pad(self.max_seq if x.size(1) > self.max_seq else x.size(1), x,
                                                       self.pad_token)
        decoder, w = self.Decoder(x, mask=look_ahead_mask)
        fc = self.fc(decoder)
        return fc.contiguous()


def _music_inputs():
    x = torch.randint(0, 239, (3, 24))
    x[1, 20:] = 239  # pad_token at the end
    x[2, 14:] = 239
    return (x,)


# --- 10. Branchformer (espnet branchformer_encoder_layer.py, cgmlp.py): attention branch + cgMLP branch -------------

def make_pad_mask(lengths, maxlen):
    bs = lengths.size(0)
    seq_range = torch.arange(0, maxlen, dtype=torch.int64, device=lengths.device)
    seq_range_expand = seq_range.unsqueeze(0).expand(bs, maxlen)
    seq_length_expand = lengths.unsqueeze(-1)
    mask = seq_range_expand >= seq_length_expand
    return mask


class EspnetPositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout_rate, max_len=64):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(self.d_model)
        self.dropout = nn.Dropout(p=dropout_rate)
        pe = torch.zeros(max_len, self.d_model)
        position = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(
            torch.arange(0, self.d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / self.d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self, x):
        x = x * self.xscale + self.pe[:, : x.size(1)]
        return self.dropout(x)


class EspnetMultiHeadedAttention(nn.Module):
    """Multi-Head Attention layer."""

    def __init__(self, n_head, n_feat, dropout_rate):
        super().__init__()
        assert n_feat % n_head == 0
        # We assume d_v always equals d_k
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout = nn.Dropout(p=dropout_rate)

    def forward_qkv(self, query, key, value):
        n_batch = query.size(0)
        q = self.linear_q(query).view(n_batch, -1, self.h, self.d_k)
        k = self.linear_k(key).view(n_batch, -1, self.h, self.d_k)
        v = self.linear_v(value).view(n_batch, -1, self.h, self.d_k)
        q = q.transpose(1, 2)  # (batch, head, time1, d_k)
        k = k.transpose(1, 2)  # (batch, head, time2, d_k)
        v = v.transpose(1, 2)  # (batch, head, time2, d_k)
        return q, k, v

    def forward_attention(self, value, scores, mask):
        n_batch = value.size(0)
        if mask is not None:
            mask = mask.unsqueeze(1).eq(0)  # (batch, 1, *, time2)
            min_value = torch.finfo(scores.dtype).min
            scores = scores.masked_fill(mask, min_value)
            attn = torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)  # (batch, head, time1, time2)
        else:
            attn = torch.softmax(scores, dim=-1)  # (batch, head, time1, time2)
        p_attn = self.dropout(attn)
        x = torch.matmul(p_attn, value)  # (batch, head, time1, d_k)
        x = x.transpose(1, 2).contiguous().view(n_batch, -1, self.h * self.d_k)  # (batch, time1, d_model)
        return self.linear_out(x)  # (batch, time1, d_model)

    def forward(self, query, key, value, mask):
        q, k, v = self.forward_qkv(query, key, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)


class ConvolutionalSpatialGatingUnit(nn.Module):
    """Convolutional Spatial Gating Unit (CSGU)."""

    def __init__(self, size: int, kernel_size: int, dropout_rate: float, use_linear_after_conv: bool,
                 gate_activation: str):
        super().__init__()
        n_channels = size // 2  # split input channels
        self.norm = nn.LayerNorm(n_channels)
        self.conv = nn.Conv1d(n_channels, n_channels, kernel_size, 1, (kernel_size - 1) // 2, groups=n_channels)
        if use_linear_after_conv:
            self.linear = nn.Linear(n_channels, n_channels)
        else:
            self.linear = None
        if gate_activation == "identity":
            self.act = nn.Identity()
        else:
            self.act = {"gelu": nn.GELU(), "swish": nn.SiLU(), "relu": nn.ReLU()}[gate_activation]
        self.dropout = nn.Dropout(dropout_rate)

    def espnet_initialization_fn(self):
        nn.init.normal_(self.conv.weight, std=1e-6)
        nn.init.ones_(self.conv.bias)
        if self.linear is not None:
            nn.init.normal_(self.linear.weight, std=1e-6)
            nn.init.ones_(self.linear.bias)

    def forward(self, x, gate_add=None):
        x_r, x_g = x.chunk(2, dim=-1)
        x_g = self.norm(x_g)  # (N, T, D/2)
        x_g = self.conv(x_g.transpose(1, 2)).transpose(1, 2)  # (N, T, D/2)
        if self.linear is not None:
            x_g = self.linear(x_g)
        if gate_add is not None:
            x_g = x_g + gate_add
        x_g = self.act(x_g)
        out = x_r * x_g  # (N, T, D/2)
        out = self.dropout(out)
        return out


class ConvolutionalGatingMLP(nn.Module):
    """Convolutional Gating MLP (cgMLP)."""

    def __init__(self, size: int, linear_units: int, kernel_size: int, dropout_rate: float,
                 use_linear_after_conv: bool, gate_activation: str):
        super().__init__()
        self.channel_proj1 = nn.Sequential(nn.Linear(size, linear_units), nn.GELU())
        self.csgu = ConvolutionalSpatialGatingUnit(size=linear_units, kernel_size=kernel_size,
                                                   dropout_rate=dropout_rate,
                                                   use_linear_after_conv=use_linear_after_conv,
                                                   gate_activation=gate_activation)
        self.channel_proj2 = nn.Linear(linear_units // 2, size)

    def forward(self, x, mask):
        if isinstance(x, tuple):
            xs_pad, pos_emb = x
        else:
            xs_pad, pos_emb = x, None
        xs_pad = self.channel_proj1(xs_pad)  # size -> linear_units
        xs_pad = self.csgu(xs_pad)  # linear_units -> linear_units/2
        xs_pad = self.channel_proj2(xs_pad)  # linear_units/2 -> size
        if pos_emb is not None:
            out = (xs_pad, pos_emb)
        else:
            out = xs_pad
        return out


class BranchformerEncoderLayer(nn.Module):
    """Branchformer encoder layer module (merge_method="concat")."""

    def __init__(self, size: int, attn: nn.Module, cgmlp: nn.Module, dropout_rate: float,
                 merge_method: str = "concat", cgmlp_weight: float = 0.5, attn_branch_drop_rate: float = 0.0,
                 stochastic_depth_rate: float = 0.0):
        super().__init__()
        assert (attn is not None) or (cgmlp is not None), "At least one branch should be valid"
        self.size = size
        self.attn = attn
        self.cgmlp = cgmlp
        self.merge_method = merge_method
        self.cgmlp_weight = cgmlp_weight
        self.attn_branch_drop_rate = attn_branch_drop_rate
        self.stochastic_depth_rate = stochastic_depth_rate
        self.use_two_branches = (attn is not None) and (cgmlp is not None)
        if attn is not None:
            self.norm_mha = nn.LayerNorm(size)  # for the MHA module
        if cgmlp is not None:
            self.norm_mlp = nn.LayerNorm(size)  # for the MLP module
        self.norm_final = nn.LayerNorm(size)  # for the final output of the block
        self.dropout = nn.Dropout(dropout_rate)
        if self.use_two_branches:
            if merge_method == "concat":
                self.merge_proj = nn.Linear(size + size, size)
            else:
                raise ValueError(f"unknown merge method: {merge_method}")
        else:
            self.merge_proj = nn.Identity()

    def forward(self, x_input, mask, cache=None):
        if cache is not None:
            raise NotImplementedError("cache is not None, which is not tested")
        if isinstance(x_input, tuple):
            x, pos_emb = x_input[0], x_input[1]
        else:
            x, pos_emb = x_input, None

        stoch_layer_coeff = 1.0
        # Two branches
        x1 = x
        x2 = x

        # Branch 1: multi-headed attention module
        if self.attn is not None:
            x1 = self.norm_mha(x1)
            if pos_emb is not None:
                x_att = self.attn(x1, x1, x1, pos_emb, mask)
            else:
                x_att = self.attn(x1, x1, x1, mask)
            x1 = self.dropout(x_att)

        # Branch 2: convolutional gating mlp
        if self.cgmlp is not None:
            x2 = self.norm_mlp(x2)
            if pos_emb is not None:
                x2 = (x2, pos_emb)
            x2 = self.cgmlp(x2, mask)
            if isinstance(x2, tuple):
                x2 = x2[0]
            x2 = self.dropout(x2)

        # Merge two branches
        if self.use_two_branches:
            if self.merge_method == "concat":
                x = x + stoch_layer_coeff * self.dropout(self.merge_proj(torch.cat([x1, x2], dim=-1)))
        else:
            x = x + stoch_layer_coeff * self.merge_proj(x1 if self.attn is not None else x2)

        x = self.norm_final(x)

        if pos_emb is not None:
            return (x, pos_emb), mask
        return x, mask


class BranchformerEncoder(nn.Module):
    """Branchformer encoder on fbank features (input_layer="linear"), frame-level CTC-style logits."""

    def __init__(self, input_size=40, output_size=72, attention_heads=3, cgmlp_linear_units=144, cgmlp_conv_kernel=7,
                 use_linear_after_conv=False, gate_activation="identity", num_blocks=2, dropout_rate=0.1,
                 positional_dropout_rate=0.1, attention_dropout_rate=0.0, vocab_size=50):
        super().__init__()
        self._output_size = output_size
        self.embed = nn.Sequential(
            nn.Linear(input_size, output_size),
            nn.LayerNorm(output_size),
            nn.Dropout(dropout_rate),
            EspnetPositionalEncoding(output_size, positional_dropout_rate),
        )
        self.encoders = nn.ModuleList([
            BranchformerEncoderLayer(
                output_size,
                EspnetMultiHeadedAttention(attention_heads, output_size, attention_dropout_rate),
                ConvolutionalGatingMLP(output_size, cgmlp_linear_units, cgmlp_conv_kernel, dropout_rate,
                                       use_linear_after_conv, gate_activation),
                dropout_rate, merge_method="concat")
            for _ in range(num_blocks)])
        self.after_norm = nn.LayerNorm(output_size)
        self.ctc_lo = nn.Linear(output_size, vocab_size)

    def forward(self, xs_pad, ilens):
        masks = (~make_pad_mask(ilens, xs_pad.size(1))[:, None, :])
        xs_pad = self.embed(xs_pad)
        for layer in self.encoders:
            xs_pad, masks = layer(xs_pad, masks)
        xs_pad = self.after_norm(xs_pad)
        return self.ctc_lo(xs_pad)


def _branchformer_inputs():
    return (torch.randn(3, 32, 40), torch.tensor([32, 27, 20], dtype=torch.long))


def build(name: str) -> nn.Module:
    return MODELS[name][0]()


MODELS = {
    "MPT fused Wqkv + ALiBi": (MPTForCausalLM, _mpt_inputs),
    "OpenFold gated attention + pair bias (proteins)": (OpenFoldSingleTrunk, _openfold_inputs),
    "DINOv2 LayerScale + registers": (DinoVisionTransformer, lambda: (torch.randn(3, 3, 32, 32),)),
    "Swin V2 cosine attention + cpb_mlp": (SwinTransformerV2, lambda: (torch.randn(3, 3, 32, 32),)),
    "ConViT GPSA": (ConViT, lambda: (torch.randn(3, 3, 32, 32),)),
    "CrossViT cross-attention": (CrossVisionTransformer, lambda: (torch.randn(3, 3, 32, 32),)),
    "TFT interpretable attention (time series)": (TemporalFusionTransformer, _tft_inputs),
    "Megatron ParallelAttention [s, b, h]": (MegatronGPTModel, lambda: (torch.randint(0, 192, (3, 24)),)),
    "Music Transformer relative attention (music)": (MusicTransformer, _music_inputs),
    "Branchformer attention + cgMLP (speech)": (BranchformerEncoder, _branchformer_inputs),
}
