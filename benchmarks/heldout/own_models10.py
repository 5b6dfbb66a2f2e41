"""A tenth set of hand-written attention models (issue 20), written in session 34 (2026-12-07) to be run once before any
change for it. Each follows one public original in how it writes attention: DeepSeek-V2's multi-head latent attention
(deepseek-ai/DeepSeek-V2 modeling_deepseek.py: q_a_proj / q_a_layernorm / q_b_proj, kv_a_proj_with_mqa split into a
compressed kv and one decoupled rotary key shared by every head, kv_b_proj, q_head_dim = nope + rope, query_states and
key_states built by new_empty + slice assignment, the rotary pairs de-interleaved by view / transpose / reshape, a
rotary cache re-registered in forward because __init__ sets max_seq_len_cached = None; dense MLPs on both layers),
Mask2Former's masked attention (facebookresearch/Mask2Former mask2former_transformer_decoder.py: nn.MultiheadAttention in
[len, batch] layout, cross-attention first with a boolean attn_mask from the previous layer's sigmoid masks, interpolated,
repeated over heads and flattened to (b * heads, q, hw), fully masked rows cleared by attn_mask[torch.where(...)] = False,
one feature level per layer in turn, empty nn.Sequential input projections; a small conv FPN stands in for the
MSDeformAttn pixel decoder), Deformable DETR (fundamentalvision/Deformable-DETR ms_deform_attn.py and
deformable_transformer.py: MSDeformAttn with sampling_offsets / attention_weights / value_proj / output_proj,
n_heads, n_levels, n_points, the pure-PyTorch ms_deform_attn_core_pytorch by F.grid_sample per level, value.split by the
spatial_shapes tensor, reference points from linspace meshgrids, an nn.MultiheadAttention self-attention in the decoder,
class_embed / bbox_embed repeated as one module in a ModuleList), BLIP-2's Q-Former (salesforce/LAVIS
blip2_models/Qformer.py and blip2_qformer.py: BERT-style transpose_for_scores attention, learned query_tokens
concatenated before the text, cross-attention with key / value from encoder_width only every cross_attention_freq
layers and only on the first query_length tokens, separate intermediate_query / output_query FFNs, -10000 extended
masks, an ITM head and an ITC vision_proj; multimodal), Stable Diffusion 3.5's MMDiT (Stability-AI/sd3.5 mmditx.py:
JointBlock with a context_block and an x_block, pre_attention split_qkv by reshape + movedim, per-head RMS ln_q / ln_k,
block_mixing concatenates the two streams' q, k, v for one SDPA and splits them back, the last context block pre_only
with no proj and 2 modulations, cropped_pos_embed from a larger buffer grid), Point Transformer (POSTECH-CVLab/
point-transformer pointtransformer_seg.py: PointTransformerLayer vector attention with linear_q / k / v, a linear_p
position MLP and a linear_w weight MLP with BatchNorm1d applied through transposes, share_planes weights broadcast
over channel groups, pointops.queryandgroup written by hand as a knn over offset-delimited clouds, TransitionUp's
per-cloud global feature by looping over the offsets; point clouds), Crossformer (Thinklab-SJTU/Crossformer
cross_models: DSW segment embedding, TwoStageAttentionLayer with time_attention then a learned `router` aggregating
over variates through dim_sender / dim_receiver, einops rearranges between (b ts_d) and (b seg_num) batches,
SegMerging, a decoder summing per-scale predictions; time series), ETA (reczoo/FuxiCTR model_zoo/ETA:
MultiHeadTargetAttention with W_q / W_k / W_v / W_o and num_heads over a short sequence, SimHash top-k retrieval of a
long sequence by a frozen random_rotations parameter, sign and hamming distance, gather, then target attention again;
recommendation), WavLM (microsoft/unilm wavlm/WavLM.py and modules.py: a conv feature extractor with Fp32GroupNorm and
GradMultiply, a weight-normed grouped positional conv, fairseq MultiheadAttention in [T, B, C] calling
F.multi_head_attention_forward with separate projection weights, a bucketed relative position bias made only in the
first layer and passed on, gated by grep_linear over the raw input split into heads and grep_a; speech), and FLASH
(lucidrains/FLASH-pytorch flash_pytorch.py: one shared qk projection offset-scaled into four "heads" quad_q / lin_q /
quad_k / lin_k, token shift by F.pad with a negative pad, sequence padded to and grouped by group_size, relu-squared
quadratic attention inside groups plus causal linear attention across groups by an exclusive cumsum, a T5 bias,
rotary on the first 32 channels from one shared RotaryEmbedding with a frozen freqs parameter; text). Tiny sizes, random
init: the originals' zero or empty initialisations (MSDeformAttn's sampling_offsets / attention_weights weights, the DETR
box head's last layer, mmditx's RMSNorm weight and pos_embed buffer) are small random values or ones here, so that
every output depends on the input. torch.export (strict=False) captures eight of them; Deformable DETR (linspace with
steps from the spatial_shapes tensor) and Point Transformer (slices by the offsets tensor) stop on data-dependent sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat


# --- 1. DeepSeek-V2 (deepseek-ai/DeepSeek-V2 modeling_deepseek.py): multi-head latent attention ----------------------

class DeepseekV2Config:
    def __init__(self, vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
                 max_position_embeddings=64, rope_theta=10000.0, attention_bias=False, rms_norm_eps=1e-6):
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.q_lora_rank, self.kv_lora_rank = q_lora_rank, kv_lora_rank
        self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim = qk_nope_head_dim, qk_rope_head_dim, v_head_dim
        self.max_position_embeddings, self.rope_theta = max_position_embeddings, rope_theta
        self.attention_bias, self.rms_norm_eps = attention_bias, rms_norm_eps
        self.rope_scaling = None


class DeepseekV2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class DeepseekV2RotaryEmbedding(nn.Module):
    def __init__(self, dim, max_position_embeddings=2048, base=10000, device=None):
        super().__init__()
        self.dim = dim
        self.max_position_embeddings = max_position_embeddings
        self.base = base
        inv_freq = 1.0 / (self.base ** (torch.arange(0, self.dim, 2).float().to(device) / self.dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # Build here to make `torch.jit.trace` work.
        self._set_cos_sin_cache(seq_len=max_position_embeddings, device=self.inv_freq.device, dtype=torch.get_default_dtype())
        self.max_seq_len_cached = None

    def _set_cos_sin_cache(self, seq_len, device, dtype):
        self.max_seq_len_cached = seq_len
        t = torch.arange(self.max_seq_len_cached, device=device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq.to(t.device))
        # Different from paper, but it uses a different permutation in order to obtain the same calculation
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin_cached", emb.sin().to(dtype), persistent=False)

    def forward(self, x, seq_len=None):
        # x: [bs, num_attention_heads, seq_len, head_size]
        if self.max_seq_len_cached is None or seq_len > self.max_seq_len_cached:
            self._set_cos_sin_cache(seq_len=seq_len, device=x.device, dtype=x.dtype)
        return (self.cos_cached[:seq_len].to(dtype=x.dtype), self.sin_cached[:seq_len].to(dtype=x.dtype))


def deepseek_rotate_half(x):
    """Rotates half the hidden dims of the input."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def deepseek_apply_rotary_pos_emb(q, k, cos, sin, position_ids, unsqueeze_dim=1):
    cos = cos[position_ids].unsqueeze(unsqueeze_dim)
    sin = sin[position_ids].unsqueeze(unsqueeze_dim)
    b, h, s, d = q.shape
    q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = k.shape
    k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    q_embed = (q * cos) + (deepseek_rotate_half(q) * sin)
    k_embed = (k * cos) + (deepseek_rotate_half(k) * sin)
    return q_embed, k_embed


class DeepseekV2MLP(nn.Module):
    def __init__(self, config, hidden_size=None, intermediate_size=None):
        super().__init__()
        self.hidden_size = config.hidden_size if hidden_size is None else hidden_size
        self.intermediate_size = config.intermediate_size if intermediate_size is None else intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class DeepseekV2Attention(nn.Module):
    """Multi-headed attention from 'Attention Is All You Need' paper"""

    def __init__(self, config, layer_idx=None):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.max_position_embeddings = config.max_position_embeddings
        self.rope_theta = config.rope_theta
        self.q_lora_rank = config.q_lora_rank
        self.qk_rope_head_dim = config.qk_rope_head_dim
        self.kv_lora_rank = config.kv_lora_rank
        self.v_head_dim = config.v_head_dim
        self.qk_nope_head_dim = config.qk_nope_head_dim
        self.q_head_dim = config.qk_nope_head_dim + config.qk_rope_head_dim
        self.is_causal = True
        if self.q_lora_rank is None:
            self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.q_head_dim, bias=False)
        else:
            self.q_a_proj = nn.Linear(self.hidden_size, config.q_lora_rank, bias=config.attention_bias)
            self.q_a_layernorm = DeepseekV2RMSNorm(config.q_lora_rank)
            self.q_b_proj = nn.Linear(config.q_lora_rank, self.num_heads * self.q_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(self.hidden_size, config.kv_lora_rank + config.qk_rope_head_dim,
                                            bias=config.attention_bias)
        self.kv_a_layernorm = DeepseekV2RMSNorm(config.kv_lora_rank)
        self.kv_b_proj = nn.Linear(config.kv_lora_rank,
                                   self.num_heads * (self.q_head_dim - self.qk_rope_head_dim + self.v_head_dim), bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.v_head_dim, self.hidden_size, bias=config.attention_bias)
        self.rotary_emb = DeepseekV2RotaryEmbedding(self.qk_rope_head_dim, max_position_embeddings=self.max_position_embeddings,
                                                    base=self.rope_theta)
        self.softmax_scale = self.q_head_dim ** (-0.5)

    def forward(self, hidden_states, attention_mask=None, position_ids=None):
        bsz, q_len, _ = hidden_states.size()
        if self.q_lora_rank is None:
            q = self.q_proj(hidden_states)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(hidden_states)))
        q = q.view(bsz, q_len, self.num_heads, self.q_head_dim).transpose(1, 2)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)

        compressed_kv = self.kv_a_proj_with_mqa(hidden_states)
        compressed_kv, k_pe = torch.split(compressed_kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = k_pe.view(bsz, q_len, 1, self.qk_rope_head_dim).transpose(1, 2)
        kv = (self.kv_b_proj(self.kv_a_layernorm(compressed_kv))
              .view(bsz, q_len, self.num_heads, self.qk_nope_head_dim + self.v_head_dim)
              .transpose(1, 2))
        k_nope, value_states = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        kv_seq_len = value_states.shape[-2]
        cos, sin = self.rotary_emb(value_states, seq_len=kv_seq_len)
        q_pe, k_pe = deepseek_apply_rotary_pos_emb(q_pe, k_pe, cos, sin, position_ids)

        query_states = k_pe.new_empty(bsz, self.num_heads, q_len, self.q_head_dim)
        query_states[:, :, :, : self.qk_nope_head_dim] = q_nope
        query_states[:, :, :, self.qk_nope_head_dim:] = q_pe

        key_states = k_pe.new_empty(bsz, self.num_heads, q_len, self.q_head_dim)
        key_states[:, :, :, : self.qk_nope_head_dim] = k_nope
        key_states[:, :, :, self.qk_nope_head_dim:] = k_pe

        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.softmax_scale
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        # upcast attention to fp32
        attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(bsz, q_len, self.num_heads * self.v_head_dim)
        return self.o_proj(attn_output)


class DeepseekV2DecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.self_attn = DeepseekV2Attention(config=config, layer_idx=layer_idx)
        self.mlp = DeepseekV2MLP(config)
        self.input_layernorm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, attention_mask=None, position_ids=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states=hidden_states, attention_mask=attention_mask, position_ids=position_ids)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


def _make_causal_mask(input_ids_shape, dtype, device, past_key_values_length=0):
    """Make causal mask used for uni-directional self-attention (the older transformers helper)."""
    bsz, tgt_len = input_ids_shape
    mask = torch.full((tgt_len, tgt_len), torch.finfo(dtype).min, device=device)
    mask_cond = torch.arange(mask.size(-1), device=device)
    mask.masked_fill_(mask_cond < (mask_cond + 1).view(mask.size(-1), 1), 0)
    mask = mask.to(dtype)
    return mask[None, None, :, :].expand(bsz, 1, tgt_len, tgt_len + past_key_values_length)


class DeepseekV2ForCausalLM(nn.Module):
    def __init__(self, config=None):
        super().__init__()
        config = config or DeepseekV2Config()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([DeepseekV2DecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)])
        self.norm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.weight.data.normal_(mean=0.0, std=0.02)
            elif isinstance(module, nn.Embedding):
                module.weight.data.normal_(mean=0.0, std=0.02)

    def forward(self, input_ids):
        batch_size, seq_length = input_ids.shape[:2]
        position_ids = torch.arange(0, seq_length, dtype=torch.long, device=input_ids.device).unsqueeze(0)
        inputs_embeds = self.embed_tokens(input_ids)
        attention_mask = _make_causal_mask((batch_size, seq_length), inputs_embeds.dtype, inputs_embeds.device)
        hidden_states = inputs_embeds
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(hidden_states, attention_mask=attention_mask, position_ids=position_ids)
        hidden_states = self.norm(hidden_states)
        return self.lm_head(hidden_states).float()


# --- 2. Mask2Former (facebookresearch/Mask2Former): masked cross-attention from the previous layer's masks -----------

class PositionEmbeddingSine(nn.Module):
    """The DETR sine embedding as Mask2Former copies it (normalize=True, no -0.5 offset)."""

    def __init__(self, num_pos_feats=64, temperature=10000, normalize=False, scale=None):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        if scale is not None and normalize is False:
            raise ValueError("normalize should be True if scale is passed")
        if scale is None:
            scale = 2 * math.pi
        self.scale = scale

    def forward(self, x, mask=None):
        if mask is None:
            mask = torch.zeros((x.size(0), x.size(2), x.size(3)), device=x.device, dtype=torch.bool)
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class SelfAttentionLayer(nn.Module):
    def __init__(self, d_model, nhead, dropout=0.0, normalize_before=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def with_pos_embed(self, tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward_post(self, tgt, tgt_mask=None, tgt_key_padding_mask=None, query_pos=None):
        q = k = self.with_pos_embed(tgt, query_pos)
        tgt2 = self.self_attn(q, k, value=tgt, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask)[0]
        tgt = tgt + self.dropout(tgt2)
        return self.norm(tgt)

    def forward(self, tgt, tgt_mask=None, tgt_key_padding_mask=None, query_pos=None):
        return self.forward_post(tgt, tgt_mask, tgt_key_padding_mask, query_pos)


class CrossAttentionLayer(nn.Module):
    def __init__(self, d_model, nhead, dropout=0.0, normalize_before=False):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def with_pos_embed(self, tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward_post(self, tgt, memory, memory_mask=None, memory_key_padding_mask=None, pos=None, query_pos=None):
        tgt2 = self.multihead_attn(query=self.with_pos_embed(tgt, query_pos), key=self.with_pos_embed(memory, pos), value=memory,
                                   attn_mask=memory_mask, key_padding_mask=memory_key_padding_mask)[0]
        tgt = tgt + self.dropout(tgt2)
        return self.norm(tgt)

    def forward(self, tgt, memory, memory_mask=None, memory_key_padding_mask=None, pos=None, query_pos=None):
        return self.forward_post(tgt, memory, memory_mask, memory_key_padding_mask, pos, query_pos)


class FFNLayer(nn.Module):
    def __init__(self, d_model, dim_feedforward=2048, dropout=0.0, normalize_before=False):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.activation = F.relu
        self.normalize_before = normalize_before

    def forward(self, tgt):
        tgt2 = self.linear2(self.dropout(self.activation(self.linear1(tgt))))
        tgt = tgt + self.dropout(tgt2)
        return self.norm(tgt)


class MLP(nn.Module):
    """Very simple multi-layer perceptron (also called FFN)"""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class MultiScaleMaskedTransformerDecoder(nn.Module):
    def __init__(self, in_channels=64, num_classes=5, hidden_dim=64, num_queries=8, nheads=4, dim_feedforward=128,
                 dec_layers=3, pre_norm=False, mask_dim=64, enforce_input_project=False):
        super().__init__()
        N_steps = hidden_dim // 2
        self.pe_layer = PositionEmbeddingSine(N_steps, normalize=True)
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.transformer_self_attention_layers = nn.ModuleList()
        self.transformer_cross_attention_layers = nn.ModuleList()
        self.transformer_ffn_layers = nn.ModuleList()
        for _ in range(self.num_layers):
            self.transformer_self_attention_layers.append(SelfAttentionLayer(d_model=hidden_dim, nhead=nheads, dropout=0.0,
                                                                             normalize_before=pre_norm))
            self.transformer_cross_attention_layers.append(CrossAttentionLayer(d_model=hidden_dim, nhead=nheads, dropout=0.0,
                                                                               normalize_before=pre_norm))
            self.transformer_ffn_layers.append(FFNLayer(d_model=hidden_dim, dim_feedforward=dim_feedforward, dropout=0.0,
                                                        normalize_before=pre_norm))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.num_queries = num_queries
        # learnable query features
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        # learnable query p.e.
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        # level embedding (we always use 3 scales)
        self.num_feature_levels = 3
        self.level_embed = nn.Embedding(self.num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(self.num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                self.input_proj.append(nn.Conv2d(in_channels, hidden_dim, kernel_size=1))
            else:
                self.input_proj.append(nn.Sequential())
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def forward(self, x, mask_features, mask=None):
        # x is a list of multi-scale feature
        assert len(x) == self.num_feature_levels
        src = []
        pos = []
        size_list = []
        # disable mask, it does not affect performance
        del mask
        for i in range(self.num_feature_levels):
            size_list.append(x[i].shape[-2:])
            pos.append(self.pe_layer(x[i], None).flatten(2))
            src.append(self.input_proj[i](x[i]).flatten(2) + self.level_embed.weight[i][None, :, None])
            # flatten NxCxHxW to HWxNxC
            pos[-1] = pos[-1].permute(2, 0, 1)
            src[-1] = src[-1].permute(2, 0, 1)
        _, bs, _ = src[0].shape
        # QxNxC
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)
        predictions_class = []
        predictions_mask = []
        # prediction heads on learnable query features
        outputs_class, outputs_mask, attn_mask = self.forward_prediction_heads(output, mask_features, attn_mask_target_size=size_list[0])
        predictions_class.append(outputs_class)
        predictions_mask.append(outputs_mask)
        for i in range(self.num_layers):
            level_index = i % self.num_feature_levels
            attn_mask[torch.where(attn_mask.sum(-1) == attn_mask.shape[-1])] = False
            # attention: cross-attention first
            output = self.transformer_cross_attention_layers[i](output, src[level_index], memory_mask=attn_mask,
                                                                memory_key_padding_mask=None,  # here we do not apply masking on padded region
                                                                pos=pos[level_index], query_pos=query_embed)
            output = self.transformer_self_attention_layers[i](output, tgt_mask=None, tgt_key_padding_mask=None, query_pos=query_embed)
            # FFN
            output = self.transformer_ffn_layers[i](output)
            outputs_class, outputs_mask, attn_mask = self.forward_prediction_heads(
                output, mask_features, attn_mask_target_size=size_list[(i + 1) % self.num_feature_levels])
            predictions_class.append(outputs_class)
            predictions_mask.append(outputs_mask)
        assert len(predictions_class) == self.num_layers + 1
        return {"pred_logits": predictions_class[-1], "pred_masks": predictions_mask[-1]}

    def forward_prediction_heads(self, output, mask_features, attn_mask_target_size):
        decoder_output = self.decoder_norm(output)
        decoder_output = decoder_output.transpose(0, 1)
        outputs_class = self.class_embed(decoder_output)
        mask_embed = self.mask_embed(decoder_output)
        outputs_mask = torch.einsum("bqc,bchw->bqhw", mask_embed, mask_features)
        # NOTE: prediction is of higher-resolution
        # [B, Q, H, W] -> [B, Q, H*W] -> [B, h, Q, H*W] -> [B*h, Q, HW]
        attn_mask = F.interpolate(outputs_mask, size=attn_mask_target_size, mode="bilinear", align_corners=False)
        # must use bool type
        # If a BoolTensor is provided, positions with ``True`` are not allowed to attend while ``False`` values will be unchanged.
        attn_mask = (attn_mask.sigmoid().flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5).bool()
        attn_mask = attn_mask.detach()
        return outputs_class, outputs_mask, attn_mask


class TinyPixelDecoder(nn.Module):
    """Stands in for the backbone + MSDeformAttnPixelDecoder: strided convs and an FPN top-down path giving mask_features at
    1/4 and three multi-scale features (1/32, 1/16, 1/8, low resolution first) at conv_dim channels."""

    def __init__(self, conv_dim=64, mask_dim=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(inplace=True))
        self.res2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(inplace=True))
        self.res3 = nn.Sequential(nn.Conv2d(32, 48, 3, 2, 1), nn.ReLU(inplace=True))
        self.res4 = nn.Sequential(nn.Conv2d(48, 64, 3, 2, 1), nn.ReLU(inplace=True))
        self.res5 = nn.Sequential(nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(inplace=True))
        self.lateral_convs = nn.ModuleList([nn.Conv2d(c, conv_dim, 1) for c in (64, 64, 48, 32)])
        self.output_convs = nn.ModuleList([nn.Sequential(nn.Conv2d(conv_dim, conv_dim, 3, 1, 1), nn.GroupNorm(32, conv_dim), nn.ReLU())
                                           for _ in range(4)])
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)

    def forward(self, images):
        c2 = self.res2(self.stem(images))
        c3 = self.res3(c2)
        c4 = self.res4(c3)
        c5 = self.res5(c4)
        multi_scale_features = []
        y = None
        for idx, f in enumerate((c5, c4, c3, c2)):
            cur = self.lateral_convs[idx](f)
            y = cur if y is None else cur + F.interpolate(y, size=cur.shape[-2:], mode="nearest")
            y = self.output_convs[idx](y)
            if idx < 3:
                multi_scale_features.append(y)
        return self.mask_features(y), multi_scale_features


class Mask2FormerTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.pixel_decoder = TinyPixelDecoder()
        self.predictor = MultiScaleMaskedTransformerDecoder()

    def forward(self, images):
        mask_features, multi_scale_features = self.pixel_decoder(images)
        return self.predictor(multi_scale_features, mask_features)


# --- 3. Deformable DETR (fundamentalvision/Deformable-DETR): multi-scale deformable attention by grid_sample ----------

def ms_deform_attn_core_pytorch(value, value_spatial_shapes, sampling_locations, attention_weights):
    # for debug and test only,
    # need to use cuda version instead
    N_, S_, M_, D_ = value.shape
    _, Lq_, M_, L_, P_, _ = sampling_locations.shape
    value_list = value.split([H_ * W_ for H_, W_ in value_spatial_shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampling_value_list = []
    for lid_, (H_, W_) in enumerate(value_spatial_shapes):
        # N_, H_*W_, M_, D_ -> N_, H_*W_, M_*D_ -> N_, M_*D_, H_*W_ -> N_*M_, D_, H_, W_
        value_l_ = value_list[lid_].flatten(2).transpose(1, 2).reshape(N_ * M_, D_, H_, W_)
        # N_, Lq_, M_, P_, 2 -> N_, M_, Lq_, P_, 2 -> N_*M_, Lq_, P_, 2
        sampling_grid_l_ = sampling_grids[:, :, :, lid_].transpose(1, 2).flatten(0, 1)
        # N_*M_, D_, Lq_, P_
        sampling_value_l_ = F.grid_sample(value_l_, sampling_grid_l_, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampling_value_list.append(sampling_value_l_)
    # (N_, Lq_, M_, L_, P_) -> (N_, M_, Lq_, L_, P_) -> (N_, M_, 1, Lq_, L_*P_)
    attention_weights = attention_weights.transpose(1, 2).reshape(N_ * M_, 1, Lq_, L_ * P_)
    output = (torch.stack(sampling_value_list, dim=-2).flatten(-2) * attention_weights).sum(-1).view(N_, M_ * D_, Lq_)
    return output.transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    def __init__(self, d_model=256, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError("d_model must be divisible by n_heads, but got {} and {}".format(d_model, n_heads))
        self.im2col_step = 64
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        # the original zeroes sampling_offsets.weight and attention_weights.weight (a trained model's are not zero): small
        # random values here so that offsets and weights depend on the query at random init
        nn.init.normal_(self.sampling_offsets.weight.data, std=0.02)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid_init = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid_init = (grid_init / grid_init.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid_init[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias = nn.Parameter(grid_init.view(-1))
        nn.init.normal_(self.attention_weights.weight.data, std=0.02)
        nn.init.constant_(self.attention_weights.bias.data, 0.)
        nn.init.xavier_uniform_(self.value_proj.weight.data)
        nn.init.constant_(self.value_proj.bias.data, 0.)
        nn.init.xavier_uniform_(self.output_proj.weight.data)
        nn.init.constant_(self.output_proj.bias.data, 0.)

    def forward(self, query, reference_points, input_flatten, input_spatial_shapes, input_level_start_index, input_padding_mask=None):
        N, Len_q, _ = query.shape
        N, Len_in, _ = input_flatten.shape
        assert (input_spatial_shapes[:, 0] * input_spatial_shapes[:, 1]).sum() == Len_in
        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], float(0))
        value = value.view(N, Len_in, self.n_heads, self.d_model // self.n_heads)
        sampling_offsets = self.sampling_offsets(query).view(N, Len_q, self.n_heads, self.n_levels, self.n_points, 2)
        attention_weights = self.attention_weights(query).view(N, Len_q, self.n_heads, self.n_levels * self.n_points)
        attention_weights = F.softmax(attention_weights, -1).view(N, Len_q, self.n_heads, self.n_levels, self.n_points)
        # N, Len_q, n_heads, n_levels, n_points, 2
        if reference_points.shape[-1] == 2:
            offset_normalizer = torch.stack([input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1)
            sampling_locations = reference_points[:, :, None, :, None, :] + sampling_offsets / offset_normalizer[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            sampling_locations = reference_points[:, :, None, :, None, :2] \
                + sampling_offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5
        else:
            raise ValueError("Last dim of reference_points must be 2 or 4, but get {} instead.".format(reference_points.shape[-1]))
        # MSDeformAttnFunction.apply(...) is the CUDA kernel; on CPU the reference implementation is what runs
        output = ms_deform_attn_core_pytorch(value, input_spatial_shapes, sampling_locations, attention_weights)
        return self.output_proj(output)


class DeformablePositionEmbeddingSine(PositionEmbeddingSine):
    """Deformable DETR's copy: the same sine embedding with the -0.5 offset before normalising."""

    def forward(self, x, mask=None):
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class DeformableTransformerEncoderLayer(nn.Module):
    def __init__(self, d_model=256, d_ffn=1024, dropout=0.1, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        # self attention
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        # ffn
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = F.relu
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    @staticmethod
    def with_pos_embed(tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward_ffn(self, src):
        src2 = self.linear2(self.dropout2(self.activation(self.linear1(src))))
        src = src + self.dropout3(src2)
        return self.norm2(src)

    def forward(self, src, pos, reference_points, spatial_shapes, level_start_index, padding_mask=None):
        src2 = self.self_attn(self.with_pos_embed(src, pos), reference_points, src, spatial_shapes, level_start_index, padding_mask)
        src = src + self.dropout1(src2)
        src = self.norm1(src)
        return self.forward_ffn(src)


class DeformableTransformerEncoder(nn.Module):
    def __init__(self, encoder_layer_args, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([DeformableTransformerEncoderLayer(*encoder_layer_args) for _ in range(num_layers)])
        self.num_layers = num_layers

    @staticmethod
    def get_reference_points(spatial_shapes, valid_ratios, device):
        reference_points_list = []
        for lvl, (H_, W_) in enumerate(spatial_shapes):
            ref_y, ref_x = torch.meshgrid(torch.linspace(0.5, H_ - 0.5, H_, dtype=torch.float32, device=device),
                                          torch.linspace(0.5, W_ - 0.5, W_, dtype=torch.float32, device=device), indexing="ij")
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * H_)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * W_)
            ref = torch.stack((ref_x, ref_y), -1)
            reference_points_list.append(ref)
        reference_points = torch.cat(reference_points_list, 1)
        return reference_points[:, :, None] * valid_ratios[:, None]

    def forward(self, src, spatial_shapes, level_start_index, valid_ratios, pos=None, padding_mask=None):
        output = src
        reference_points = self.get_reference_points(spatial_shapes, valid_ratios, device=src.device)
        for _, layer in enumerate(self.layers):
            output = layer(output, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return output


class DeformableTransformerDecoderLayer(nn.Module):
    def __init__(self, d_model=256, d_ffn=1024, dropout=0.1, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        # cross attention
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        # self attention
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        # ffn
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = F.relu
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    @staticmethod
    def with_pos_embed(tensor, pos):
        return tensor if pos is None else tensor + pos

    def forward_ffn(self, tgt):
        tgt2 = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
        tgt = tgt + self.dropout4(tgt2)
        return self.norm3(tgt)

    def forward(self, tgt, query_pos, reference_points, src, src_spatial_shapes, level_start_index, src_padding_mask=None):
        # self attention
        q = k = self.with_pos_embed(tgt, query_pos)
        tgt2 = self.self_attn(q.transpose(0, 1), k.transpose(0, 1), tgt.transpose(0, 1))[0].transpose(0, 1)
        tgt = tgt + self.dropout2(tgt2)
        tgt = self.norm2(tgt)
        # cross attention
        tgt2 = self.cross_attn(self.with_pos_embed(tgt, query_pos), reference_points, src, src_spatial_shapes, level_start_index,
                               src_padding_mask)
        tgt = tgt + self.dropout1(tgt2)
        tgt = self.norm1(tgt)
        return self.forward_ffn(tgt)


class DeformableTransformerDecoder(nn.Module):
    def __init__(self, decoder_layer_args, num_layers, return_intermediate=False):
        super().__init__()
        self.layers = nn.ModuleList([DeformableTransformerDecoderLayer(*decoder_layer_args) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.return_intermediate = return_intermediate
        # hack implementation for iterative bounding box refinement and two-stage Deformable DETR
        self.bbox_embed = None
        self.class_embed = None

    def forward(self, tgt, reference_points, src, src_spatial_shapes, src_level_start_index, src_valid_ratios, query_pos=None,
                src_padding_mask=None):
        output = tgt
        intermediate = []
        intermediate_reference_points = []
        for lid, layer in enumerate(self.layers):
            if reference_points.shape[-1] == 4:
                reference_points_input = reference_points[:, :, None] * torch.cat([src_valid_ratios, src_valid_ratios], -1)[:, None]
            else:
                assert reference_points.shape[-1] == 2
                reference_points_input = reference_points[:, :, None] * src_valid_ratios[:, None]
            output = layer(output, query_pos, reference_points_input, src, src_spatial_shapes, src_level_start_index, src_padding_mask)
            if self.return_intermediate:
                intermediate.append(output)
                intermediate_reference_points.append(reference_points)
        if self.return_intermediate:
            return torch.stack(intermediate), torch.stack(intermediate_reference_points)
        return output, reference_points


class DeformableTransformer(nn.Module):
    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=1024, dropout=0.1,
                 return_intermediate_dec=False, num_feature_levels=4, dec_n_points=4, enc_n_points=4):
        super().__init__()
        self.d_model = d_model
        self.nhead = nhead
        self.encoder = DeformableTransformerEncoder((d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points),
                                                    num_encoder_layers)
        self.decoder = DeformableTransformerDecoder((d_model, dim_feedforward, dropout, num_feature_levels, nhead, dec_n_points),
                                                    num_decoder_layers, return_intermediate_dec)
        self.level_embed = nn.Parameter(torch.Tensor(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        nn.init.xavier_uniform_(self.reference_points.weight.data, gain=1.0)
        nn.init.constant_(self.reference_points.bias.data, 0.)
        nn.init.normal_(self.level_embed)

    @staticmethod
    def get_valid_ratio(mask):
        _, H, W = mask.shape
        valid_H = torch.sum(~mask[:, :, 0], 1)
        valid_W = torch.sum(~mask[:, 0, :], 1)
        valid_ratio_h = valid_H.float() / H
        valid_ratio_w = valid_W.float() / W
        return torch.stack([valid_ratio_w, valid_ratio_h], -1)

    def forward(self, srcs, masks, pos_embeds, query_embed=None):
        # prepare input for encoder
        src_flatten = []
        mask_flatten = []
        lvl_pos_embed_flatten = []
        spatial_shapes = []
        for lvl, (src, mask, pos_embed) in enumerate(zip(srcs, masks, pos_embeds)):
            bs, c, h, w = src.shape
            spatial_shape = (h, w)
            spatial_shapes.append(spatial_shape)
            src = src.flatten(2).transpose(1, 2)
            mask = mask.flatten(1)
            pos_embed = pos_embed.flatten(2).transpose(1, 2)
            lvl_pos_embed = pos_embed + self.level_embed[lvl].view(1, 1, -1)
            lvl_pos_embed_flatten.append(lvl_pos_embed)
            src_flatten.append(src)
            mask_flatten.append(mask)
        src_flatten = torch.cat(src_flatten, 1)
        mask_flatten = torch.cat(mask_flatten, 1)
        lvl_pos_embed_flatten = torch.cat(lvl_pos_embed_flatten, 1)
        spatial_shapes = torch.as_tensor(spatial_shapes, dtype=torch.long, device=src_flatten.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([self.get_valid_ratio(m) for m in masks], 1)
        # encoder
        memory = self.encoder(src_flatten, spatial_shapes, level_start_index, valid_ratios, lvl_pos_embed_flatten, mask_flatten)
        # prepare input for decoder
        bs, _, c = memory.shape
        query_embed, tgt = torch.split(query_embed, c, dim=1)
        query_embed = query_embed.unsqueeze(0).expand(bs, -1, -1)
        tgt = tgt.unsqueeze(0).expand(bs, -1, -1)
        reference_points = self.reference_points(query_embed).sigmoid()
        init_reference_out = reference_points
        # decoder
        hs, inter_references = self.decoder(tgt, reference_points, memory, spatial_shapes, level_start_index, valid_ratios,
                                            query_embed, mask_flatten)
        return hs, init_reference_out, inter_references


def inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(min=0, max=1)
    x1 = x.clamp(min=eps)
    x2 = (1 - x).clamp(min=eps)
    return torch.log(x1 / x2)


class DeformableDETR(nn.Module):
    """Deformable DETR without box refinement or two-stage: two backbone levels (8x8 and 4x4 from 32x32 images), d_model 64,
    4 heads, 2 sampling points, 2 encoder and 2 decoder layers, 10 queries."""

    def __init__(self, num_classes=5, num_queries=10, hidden_dim=64, nheads=4, num_feature_levels=2):
        super().__init__()
        self.num_queries = num_queries
        self.transformer = DeformableTransformer(d_model=hidden_dim, nhead=nheads, num_encoder_layers=2, num_decoder_layers=2,
                                                 dim_feedforward=128, dropout=0.0, return_intermediate_dec=True,
                                                 num_feature_levels=num_feature_levels, dec_n_points=2, enc_n_points=2)
        self.class_embed = nn.Linear(hidden_dim, num_classes)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        self.num_feature_levels = num_feature_levels
        self.query_embed = nn.Embedding(num_queries, hidden_dim * 2)
        # the backbone (a small stand-in for ResNet's layer3 / layer4 outputs) and its position encoding
        self.backbone = nn.ModuleList([nn.Sequential(nn.Conv2d(3, 32, 4, 4), nn.ReLU()), nn.Sequential(nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU())])
        self.position_embedding = DeformablePositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.input_proj = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, hidden_dim, kernel_size=1), nn.GroupNorm(32, hidden_dim))
                                         for in_channels in (32, 64)])
        prior_prob = 0.01
        bias_value = -math.log((1 - prior_prob) / prior_prob)
        self.class_embed.bias.data = torch.ones(num_classes) * bias_value
        # (the original also zeroes bbox_embed's last layer, which would make the boxes input-independent at random init)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        num_pred = self.transformer.decoder.num_layers
        nn.init.constant_(self.bbox_embed.layers[-1].bias.data[2:], -2.0)
        self.class_embed = nn.ModuleList([self.class_embed for _ in range(num_pred)])
        self.bbox_embed = nn.ModuleList([self.bbox_embed for _ in range(num_pred)])
        self.transformer.decoder.bbox_embed = None

    def forward(self, samples):
        # nested_tensor_from_tensor_list on same-size images: no padding anywhere
        m = torch.zeros(samples.shape[0], samples.shape[2], samples.shape[3], dtype=torch.bool, device=samples.device)
        srcs, masks, pos = [], [], []
        x = samples
        for l, body in enumerate(self.backbone):
            x = body(x)
            mask = F.interpolate(m[None].float(), size=x.shape[-2:]).to(torch.bool)[0]
            pos.append(self.position_embedding(x, mask).to(x.dtype))
            srcs.append(self.input_proj[l](x))
            masks.append(mask)
        query_embeds = self.query_embed.weight
        hs, init_reference, inter_references = self.transformer(srcs, masks, pos, query_embeds)
        outputs_classes = []
        outputs_coords = []
        for lvl in range(hs.shape[0]):
            if lvl == 0:
                reference = init_reference
            else:
                reference = inter_references[lvl - 1]
            reference = inverse_sigmoid(reference)
            outputs_class = self.class_embed[lvl](hs[lvl])
            tmp = self.bbox_embed[lvl](hs[lvl])
            if reference.shape[-1] == 4:
                tmp += reference
            else:
                assert reference.shape[-1] == 2
                tmp[..., :2] += reference
            outputs_coord = tmp.sigmoid()
            outputs_classes.append(outputs_class)
            outputs_coords.append(outputs_coord)
        outputs_class = torch.stack(outputs_classes)
        outputs_coord = torch.stack(outputs_coords)
        return {"pred_logits": outputs_class[-1], "pred_boxes": outputs_coord[-1]}


# --- 4. BLIP-2 Q-Former (salesforce/LAVIS Qformer.py): learned queries, cross-attention every other layer --------------

class QformerConfig:
    def __init__(self, vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=32, layer_norm_eps=1e-12,
                 pad_token_id=0, encoder_width=48, add_cross_attention=True, cross_attention_freq=2, query_length=8,
                 initializer_range=0.02):
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.hidden_dropout_prob, self.attention_probs_dropout_prob = hidden_dropout_prob, attention_probs_dropout_prob
        self.max_position_embeddings, self.layer_norm_eps, self.pad_token_id = max_position_embeddings, layer_norm_eps, pad_token_id
        self.encoder_width, self.add_cross_attention = encoder_width, add_cross_attention
        self.cross_attention_freq, self.query_length = cross_attention_freq, query_length
        self.initializer_range = initializer_range
        self.position_embedding_type = "absolute"


class QformerBertEmbeddings(nn.Module):
    """Construct the embeddings from word and position embeddings."""

    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # position_ids (1, len position emb) is contiguous in memory and exported when serialized
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)))
        self.position_embedding_type = getattr(config, "position_embedding_type", "absolute")
        self.config = config

    def forward(self, input_ids=None, position_ids=None, query_embeds=None, past_key_values_length=0):
        if input_ids is not None:
            seq_length = input_ids.size()[1]
        else:
            seq_length = 0
        if position_ids is None:
            position_ids = self.position_ids[:, past_key_values_length: seq_length + past_key_values_length].clone()
        if input_ids is not None:
            embeddings = self.word_embeddings(input_ids)
            if self.position_embedding_type == "absolute":
                position_embeddings = self.position_embeddings(position_ids)
                embeddings = embeddings + position_embeddings
            if query_embeds is not None:
                embeddings = torch.cat((query_embeds, embeddings), dim=1)
        else:
            embeddings = query_embeds
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)


class QformerBertSelfAttention(nn.Module):
    def __init__(self, config, is_cross_attention):
        super().__init__()
        self.config = config
        if config.hidden_size % config.num_attention_heads != 0:
            raise ValueError("The hidden size (%d) is not a multiple of the number of attention heads (%d)"
                             % (config.hidden_size, config.num_attention_heads))
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = int(config.hidden_size / config.num_attention_heads)
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        if is_cross_attention:
            self.key = nn.Linear(config.encoder_width, self.all_head_size)
            self.value = nn.Linear(config.encoder_width, self.all_head_size)
        else:
            self.key = nn.Linear(config.hidden_size, self.all_head_size)
            self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.position_embedding_type = getattr(config, "position_embedding_type", "absolute")
        self.save_attention = False

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        x = x.view(*new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None, encoder_attention_mask=None):
        # If this is instantiated as a cross-attention module, the keys
        # and values come from an encoder; the attention mask needs to be
        # such that the encoder's padding tokens are not attended to.
        is_cross_attention = encoder_hidden_states is not None
        if is_cross_attention:
            key_layer = self.transpose_for_scores(self.key(encoder_hidden_states))
            value_layer = self.transpose_for_scores(self.value(encoder_hidden_states))
            attention_mask = encoder_attention_mask
        else:
            key_layer = self.transpose_for_scores(self.key(hidden_states))
            value_layer = self.transpose_for_scores(self.value(hidden_states))
        mixed_query_layer = self.query(hidden_states)
        query_layer = self.transpose_for_scores(mixed_query_layer)
        past_key_value = (key_layer, value_layer)
        # Take the dot product between "query" and "key" to get the raw attention scores.
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            # Apply the attention mask is (precomputed for all layers in BertModel forward() function)
            attention_scores = attention_scores + attention_mask
        # Normalize the attention scores to probabilities.
        attention_probs = nn.Softmax(dim=-1)(attention_scores)
        # This is actually dropping out entire tokens to attend to, which might
        # seem a bit unusual, but is taken from the original Transformer paper.
        attention_probs_dropped = self.dropout(attention_probs)
        if head_mask is not None:
            attention_probs_dropped = attention_probs_dropped * head_mask
        context_layer = torch.matmul(attention_probs_dropped, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
        context_layer = context_layer.view(*new_context_layer_shape)
        return (context_layer, past_key_value)


class QformerBertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        return self.LayerNorm(hidden_states + input_tensor)


class QformerBertAttention(nn.Module):
    def __init__(self, config, is_cross_attention=False):
        super().__init__()
        self.self = QformerBertSelfAttention(config, is_cross_attention)
        self.output = QformerBertSelfOutput(config)
        self.pruned_heads = set()

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None, encoder_attention_mask=None):
        self_outputs = self.self(hidden_states, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask)
        attention_output = self.output(self_outputs[0], hidden_states)
        outputs = (attention_output,) + self_outputs[1:]  # add attentions if we output them
        return outputs


class QformerBertIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class QformerBertOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        return self.LayerNorm(hidden_states + input_tensor)


class QformerBertLayer(nn.Module):
    def __init__(self, config, layer_num):
        super().__init__()
        self.config = config
        self.seq_len_dim = 1
        self.attention = QformerBertAttention(config)
        self.layer_num = layer_num
        if self.config.add_cross_attention and layer_num % self.config.cross_attention_freq == 0:
            self.crossattention = QformerBertAttention(config, is_cross_attention=self.config.add_cross_attention)
            self.has_cross_attention = True
        else:
            self.has_cross_attention = False
        self.intermediate = QformerBertIntermediate(config)
        self.output = QformerBertOutput(config)
        self.intermediate_query = QformerBertIntermediate(config)
        self.output_query = QformerBertOutput(config)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                query_length=0):
        self_attention_outputs = self.attention(hidden_states, attention_mask, head_mask)
        attention_output = self_attention_outputs[0]
        if query_length > 0:
            query_attention_output = attention_output[:, :query_length, :]
            if self.has_cross_attention:
                assert encoder_hidden_states is not None, "encoder_hidden_states must be given for cross-attention layers"
                cross_attention_outputs = self.crossattention(query_attention_output, attention_mask, head_mask,
                                                              encoder_hidden_states, encoder_attention_mask)
                query_attention_output = cross_attention_outputs[0]
            layer_output = self.feed_forward_chunk_query(query_attention_output)
            if attention_output.shape[1] > query_length:
                layer_output_text = self.feed_forward_chunk(attention_output[:, query_length:, :])
                layer_output = torch.cat([layer_output, layer_output_text], dim=1)
        else:
            layer_output = self.feed_forward_chunk(attention_output)
        return (layer_output,)

    def feed_forward_chunk(self, attention_output):
        intermediate_output = self.intermediate(attention_output)
        return self.output(intermediate_output, attention_output)

    def feed_forward_chunk_query(self, attention_output):
        intermediate_output = self.intermediate_query(attention_output)
        return self.output_query(intermediate_output, attention_output)


class QformerBertModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = QformerBertEmbeddings(config)
        self.layer = nn.ModuleList([QformerBertLayer(config, i) for i in range(config.num_hidden_layers)])

    @staticmethod
    def get_extended_attention_mask(attention_mask):
        # [batch_size, seq_length] -> [batch_size, 1, 1, seq_length], then 0.0 for positions we want to attend and -10000.0
        # for masked positions
        extended_attention_mask = attention_mask[:, None, None, :]
        return (1.0 - extended_attention_mask) * -10000.0

    def forward(self, input_ids=None, attention_mask=None, query_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None):
        query_length = query_embeds.shape[1] if query_embeds is not None else 0
        embedding_output = self.embeddings(input_ids=input_ids, query_embeds=query_embeds)
        input_shape = embedding_output.size()[:-1]
        batch_size, seq_length = input_shape
        device = embedding_output.device
        if attention_mask is None:
            attention_mask = torch.ones(((batch_size, seq_length)), device=device)
        extended_attention_mask = self.get_extended_attention_mask(attention_mask.to(embedding_output.dtype))
        if encoder_hidden_states is not None:
            encoder_batch_size, encoder_sequence_length, _ = encoder_hidden_states.size()
            if encoder_attention_mask is None:
                encoder_attention_mask = torch.ones((encoder_batch_size, encoder_sequence_length), device=device)
            encoder_extended_attention_mask = self.get_extended_attention_mask(encoder_attention_mask.to(embedding_output.dtype))
        else:
            encoder_extended_attention_mask = None
        hidden_states = embedding_output
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, extended_attention_mask, None, encoder_hidden_states,
                                         encoder_extended_attention_mask, query_length)[0]
        return hidden_states


class Blip2Qformer(nn.Module):
    """BLIP-2 stage 1 (lavis blip2_qformer.py) on a tiny patch-embedding image encoder (standing in for the frozen EVA ViT):
    image_feats for ITC from the queries alone, and ITM logits from queries + text with the text's padding mask."""

    def __init__(self, img_size=32, patch_size=8, vision_width=48, num_query_token=8, embed_dim=32):
        super().__init__()
        self.visual_encoder = nn.Conv2d(3, vision_width, patch_size, patch_size)
        self.visual_pos_embed = nn.Parameter(torch.randn(1, (img_size // patch_size) ** 2, vision_width) * 0.02)
        self.ln_vision = nn.LayerNorm(vision_width)
        encoder_config = QformerConfig(encoder_width=vision_width, query_length=num_query_token)
        self.Qformer = QformerBertModel(encoder_config)
        self.query_tokens = nn.Parameter(torch.zeros(1, num_query_token, encoder_config.hidden_size))
        self.query_tokens.data.normal_(mean=0.0, std=encoder_config.initializer_range)
        self.vision_proj = nn.Linear(encoder_config.hidden_size, embed_dim)
        self.itm_head = nn.Linear(encoder_config.hidden_size, 2)
        self.temp = nn.Parameter(0.07 * torch.ones([]))

    def forward(self, image, text_ids, text_atts):
        image_embeds = self.ln_vision(self.visual_encoder(image).flatten(2).transpose(1, 2) + self.visual_pos_embed)
        image_atts = torch.ones(image_embeds.size()[:-1], dtype=torch.long).to(image.device)
        query_tokens = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        query_output = self.Qformer(query_embeds=query_tokens, encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        image_feats = F.normalize(self.vision_proj(query_output), dim=-1)
        # Image-text Matching
        query_atts_itm = torch.ones(query_tokens.size()[:-1], dtype=torch.long).to(image.device)
        attention_mask_all = torch.cat([query_atts_itm, text_atts], dim=1)
        output_itm = self.Qformer(text_ids, query_embeds=query_tokens, attention_mask=attention_mask_all,
                                  encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts)
        vl_embeddings = output_itm[:, : query_tokens.size(1), :]
        vl_output = self.itm_head(vl_embeddings)
        logits = vl_output.mean(dim=1)
        return logits, image_feats


# --- 5. Stable Diffusion 3.5 MMDiT (Stability-AI/sd3.5 mmditx.py): joint attention over two streams -----------------

def mmdit_modulate(x, shift, scale):
    if shift is None:
        shift = torch.zeros_like(scale)
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def mmdit_attention(q, k, v, heads, mask=None):
    """Convenience wrapper around a basic attention operation"""
    b, _, dim_head = q.shape
    dim_head //= heads
    q, k, v = map(lambda t: t.view(b, -1, heads, dim_head).transpose(1, 2), (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(b, -1, heads * dim_head)


class MMDiTPatchEmbed(nn.Module):
    """2D Image to Patch Embedding"""

    def __init__(self, img_size=16, patch_size=4, in_chans=4, embed_dim=64, flatten=True, bias=True, strict_img_size=True):
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.img_size = (img_size, img_size)
        self.grid_size = tuple([s // p for s, p in zip(self.img_size, self.patch_size)])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten = flatten
        self.strict_img_size = strict_img_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x):
        x = self.proj(x)
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)  # NCHW -> NLC
        return x


class MMDiTTimestepEmbedder(nn.Module):
    """Embeds scalar timesteps into vector representations."""

    def __init__(self, hidden_size, frequency_embedding_size=64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half).to(device=t.device)
        args = t[:, None].float() * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        if torch.is_floating_point(t):
            embedding = embedding.to(dtype=t.dtype)
        return embedding

    def forward(self, t, dtype, **kwargs):
        t_freq = self.timestep_embedding(t, self.frequency_embedding_size).to(dtype)
        return self.mlp(t_freq)


class MMDiTVectorEmbedder(nn.Module):
    """Embeds a flat vector of dimension input_dim"""

    def __init__(self, input_dim, hidden_size):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(input_dim, hidden_size, bias=True), nn.SiLU(), nn.Linear(hidden_size, hidden_size, bias=True))

    def forward(self, x):
        return self.mlp(x)


def split_qkv(qkv, head_dim):
    qkv = qkv.reshape(qkv.shape[0], qkv.shape[1], 3, -1, head_dim).movedim(2, 0)
    return qkv[0], qkv[1], qkv[2]


class MMDiTRMSNorm(nn.Module):
    def __init__(self, dim, elementwise_affine=False, eps=1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.learnable_scale = elementwise_affine
        if self.learnable_scale:
            # torch.empty in the original (the checkpoint fills it); ones here so random-init runs are deterministic
            self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        x = self._norm(x)
        if self.learnable_scale:
            return x * self.weight.to(device=x.device, dtype=x.dtype)
        return x


class MMDiTSelfAttention(nn.Module):
    ATTENTION_MODES = ("xformers", "torch", "torch-hb", "math", "debug")

    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None, attn_mode="torch", pre_only=False, qk_norm=None, rmsnorm=False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if not pre_only:
            self.proj = nn.Linear(dim, dim)
        assert attn_mode in self.ATTENTION_MODES
        self.attn_mode = attn_mode
        self.pre_only = pre_only
        if qk_norm == "rms":
            self.ln_q = MMDiTRMSNorm(self.head_dim, elementwise_affine=True, eps=1.0e-6)
            self.ln_k = MMDiTRMSNorm(self.head_dim, elementwise_affine=True, eps=1.0e-6)
        elif qk_norm == "ln":
            self.ln_q = nn.LayerNorm(self.head_dim, elementwise_affine=True, eps=1.0e-6)
            self.ln_k = nn.LayerNorm(self.head_dim, elementwise_affine=True, eps=1.0e-6)
        elif qk_norm is None:
            self.ln_q = nn.Identity()
            self.ln_k = nn.Identity()
        else:
            raise ValueError(qk_norm)

    def pre_attention(self, x):
        B, L, C = x.shape
        qkv = self.qkv(x)
        q, k, v = split_qkv(qkv, self.head_dim)
        q = self.ln_q(q).reshape(q.shape[0], q.shape[1], -1)
        k = self.ln_k(k).reshape(q.shape[0], q.shape[1], -1)
        return (q, k, v)

    def post_attention(self, x):
        assert not self.pre_only
        return self.proj(x)


class MMDiTMlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, bias=True):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DismantledBlock(nn.Module):
    """A DiT block with gated adaptive layer norm (adaLN) conditioning."""

    ATTENTION_MODES = ("xformers", "torch", "torch-hb", "math", "debug")

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, attn_mode="torch", qkv_bias=False, pre_only=False, rmsnorm=False,
                 scale_mod_only=False, swiglu=False, qk_norm=None):
        super().__init__()
        assert attn_mode in self.ATTENTION_MODES
        if not rmsnorm:
            self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        else:
            self.norm1 = MMDiTRMSNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = MMDiTSelfAttention(dim=hidden_size, num_heads=num_heads, qkv_bias=qkv_bias, attn_mode=attn_mode, pre_only=pre_only,
                                       qk_norm=qk_norm, rmsnorm=rmsnorm)
        if not pre_only:
            if not rmsnorm:
                self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
            else:
                self.norm2 = MMDiTRMSNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        mlp_hidden_dim = int(hidden_size * mlp_ratio)
        if not pre_only:
            self.mlp = MMDiTMlp(in_features=hidden_size, hidden_features=mlp_hidden_dim, act_layer=nn.GELU(approximate="tanh"))
        self.scale_mod_only = scale_mod_only
        if not scale_mod_only:
            n_mods = 6 if not pre_only else 2
        else:
            n_mods = 4 if not pre_only else 1
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, n_mods * hidden_size, bias=True))
        self.pre_only = pre_only

    def pre_attention(self, x, c):
        assert x is not None, "pre_attention called with None input"
        if not self.pre_only:
            if not self.scale_mod_only:
                shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
            else:
                shift_msa = None
                shift_mlp = None
                scale_msa, gate_msa, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(4, dim=1)
            qkv = self.attn.pre_attention(mmdit_modulate(self.norm1(x), shift_msa, scale_msa))
            return qkv, (x, gate_msa, shift_mlp, scale_mlp, gate_mlp)
        if not self.scale_mod_only:
            shift_msa, scale_msa = self.adaLN_modulation(c).chunk(2, dim=1)
        else:
            shift_msa = None
            scale_msa = self.adaLN_modulation(c)
        qkv = self.attn.pre_attention(mmdit_modulate(self.norm1(x), shift_msa, scale_msa))
        return qkv, None

    def post_attention(self, attn, x, gate_msa, shift_mlp, scale_mlp, gate_mlp):
        assert not self.pre_only
        x = x + gate_msa.unsqueeze(1) * self.attn.post_attention(attn)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(mmdit_modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


def block_mixing(context, x, context_block, x_block, c):
    assert context is not None, "block_mixing called with None context"
    context_qkv, context_intermediates = context_block.pre_attention(context, c)
    x_qkv, x_intermediates = x_block.pre_attention(x, c)
    o = []
    for t in range(3):
        o.append(torch.cat((context_qkv[t], x_qkv[t]), dim=1))
    q, k, v = tuple(o)
    attn = mmdit_attention(q, k, v, x_block.attn.num_heads)
    context_attn, x_attn = (attn[:, : context_qkv[0].shape[1]], attn[:, context_qkv[0].shape[1]:])
    if not context_block.pre_only:
        context = context_block.post_attention(context_attn, *context_intermediates)
    else:
        context = None
    x = x_block.post_attention(x_attn, *x_intermediates)
    return context, x


class JointBlock(nn.Module):
    """just a small wrapper to serve as a fsdp unit"""

    def __init__(self, *args, **kwargs):
        super().__init__()
        pre_only = kwargs.pop("pre_only")
        qk_norm = kwargs.pop("qk_norm", None)
        self.context_block = DismantledBlock(*args, pre_only=pre_only, qk_norm=qk_norm, **kwargs)
        self.x_block = DismantledBlock(*args, pre_only=False, qk_norm=qk_norm, **kwargs)

    def forward(self, *args, **kwargs):
        return block_mixing(*args, context_block=self.context_block, x_block=self.x_block, **kwargs)


class MMDiTFinalLayer(nn.Module):
    """The final layer of DiT."""

    def __init__(self, hidden_size, patch_size, out_channels, total_out_channels=None):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = (nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True) if total_out_channels is None
                       else nn.Linear(hidden_size, total_out_channels, bias=True))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        x = mmdit_modulate(self.norm_final(x), shift, scale)
        return self.linear(x)


class MMDiTX(nn.Module):
    """Diffusion model with a Transformer backbone: 16x16x4 latents in 4x4 patches (16 tokens), 8 context tokens of width 48,
    a pooled vector of 32, hidden_size = 32 * depth = 64 (64 * depth in the original), 4 heads of 16."""

    def __init__(self, input_size=16, patch_size=4, in_channels=4, depth=2, mlp_ratio=4.0, adm_in_channels=32,
                 context_dim=48, pos_embed_max_size=6, qk_norm="rms", num_heads=4):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.patch_size = patch_size
        self.pos_embed_max_size = pos_embed_max_size
        hidden_size = 32 * depth
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.x_embedder = MMDiTPatchEmbed(input_size, patch_size, in_channels, hidden_size, bias=True, strict_img_size=False)
        self.t_embedder = MMDiTTimestepEmbedder(hidden_size)
        self.y_embedder = MMDiTVectorEmbedder(adm_in_channels, hidden_size)
        self.context_embedder = nn.Linear(context_dim, hidden_size)
        self.register_length = 0
        num_patches = pos_embed_max_size * pos_embed_max_size
        # zeros in the original until the checkpoint's sincos table loads; random here so positions matter at random init
        self.register_buffer("pos_embed", torch.randn(1, num_patches, self.hidden_size) * 0.02)
        self.joint_blocks = nn.ModuleList([JointBlock(self.hidden_size, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, attn_mode="torch",
                                                      pre_only=i == depth - 1, rmsnorm=False, scale_mod_only=False, swiglu=False,
                                                      qk_norm=qk_norm) for i in range(depth)])
        self.final_layer = MMDiTFinalLayer(self.hidden_size, patch_size, self.out_channels)

    def cropped_pos_embed(self, hw):
        assert self.pos_embed_max_size is not None
        p = self.x_embedder.patch_size[0]
        h, w = hw
        # patched size
        h = h // p
        w = w // p
        assert h <= self.pos_embed_max_size, (h, self.pos_embed_max_size)
        assert w <= self.pos_embed_max_size, (w, self.pos_embed_max_size)
        top = (self.pos_embed_max_size - h) // 2
        left = (self.pos_embed_max_size - w) // 2
        spatial_pos_embed = rearrange(self.pos_embed, "1 (h w) c -> 1 h w c", h=self.pos_embed_max_size, w=self.pos_embed_max_size)
        spatial_pos_embed = spatial_pos_embed[:, top: top + h, left: left + w, :]
        return rearrange(spatial_pos_embed, "1 h w c -> 1 (h w) c")

    def unpatchify(self, x, hw=None):
        c = self.out_channels
        p = self.x_embedder.patch_size[0]
        if hw is None:
            h = w = int(x.shape[1] ** 0.5)
        else:
            h, w = hw
            h = h // p
            w = w // p
        assert h * w == x.shape[1]
        x = x.reshape(shape=(x.shape[0], h, w, p, p, c))
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(shape=(x.shape[0], c, h * p, w * p))

    def forward_core_with_concat(self, x, c_mod, context=None):
        for block in self.joint_blocks:
            context, x = block(context, x, c=c_mod)
        return self.final_layer(x, c_mod)  # (N, T, patch_size ** 2 * out_channels)

    def forward(self, x, t, y, context):
        hw = x.shape[-2:]
        x = self.x_embedder(x) + self.cropped_pos_embed(hw)
        c = self.t_embedder(t, dtype=x.dtype)  # (N, D)
        if y is not None:
            y = self.y_embedder(y)  # (N, D)
            c = c + y  # (N, D)
        context = self.context_embedder(context)
        x = self.forward_core_with_concat(x, c, context)
        return self.unpatchify(x, hw=hw)  # (N, out_channels, H, W)


# --- 6. Point Transformer (POSTECH-CVLab/point-transformer): vector attention over k nearest neighbours -------------

def knnquery(nsample, xyz, new_xyz, offset, new_offset):
    """pointops.knnquery (a CUDA op) by hand: distances within each offset-delimited cloud, other clouds at infinity."""
    batch = torch.bucketize(torch.arange(xyz.shape[0], device=xyz.device), offset.long(), right=True)
    new_batch = torch.bucketize(torch.arange(new_xyz.shape[0], device=new_xyz.device), new_offset.long(), right=True)
    dist2 = (new_xyz.unsqueeze(1) - xyz.unsqueeze(0)).pow(2).sum(-1)  # (m, n)
    dist2 = dist2.masked_fill(new_batch.unsqueeze(1) != batch.unsqueeze(0), float("inf"))
    dist2, idx = torch.topk(dist2, nsample, dim=1, largest=False, sorted=True)
    return idx.int(), dist2.sqrt()


def queryandgroup(nsample, xyz, new_xyz, feat, idx, offset, new_offset, use_xyz=True):
    """
    input: xyz: (n, 3), new_xyz: (m, 3), feat: (n, c), idx: (m, nsample), offset: (b), new_offset: (b)
    output: new_feat: (m, c+3, nsample), grouped_idx: (m, nsample)
    """
    assert xyz.is_contiguous() and new_xyz.is_contiguous() and feat.is_contiguous()
    if new_xyz is None:
        new_xyz = xyz
    if idx is None:
        idx, _ = knnquery(nsample, xyz, new_xyz, offset, new_offset)  # (m, nsample)
    n, m, c = xyz.shape[0], new_xyz.shape[0], feat.shape[1]
    grouped_xyz = xyz[idx.view(-1).long(), :].view(m, nsample, 3)  # (m, nsample, 3)
    grouped_xyz -= new_xyz.unsqueeze(1)  # (m, nsample, 3)
    grouped_feat = feat[idx.view(-1).long(), :].view(m, nsample, c)  # (m, nsample, c)
    if use_xyz:
        return torch.cat((grouped_xyz, grouped_feat), -1)  # (m, nsample, 3+c)
    return grouped_feat


class PointTransformerLayer(nn.Module):
    def __init__(self, in_planes, out_planes, share_planes=8, nsample=16):
        super().__init__()
        self.mid_planes = mid_planes = out_planes // 1
        self.out_planes = out_planes
        self.share_planes = share_planes
        self.nsample = nsample
        self.linear_q = nn.Linear(in_planes, mid_planes)
        self.linear_k = nn.Linear(in_planes, mid_planes)
        self.linear_v = nn.Linear(in_planes, out_planes)
        self.linear_p = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.ReLU(inplace=True), nn.Linear(3, out_planes))
        self.linear_w = nn.Sequential(nn.BatchNorm1d(mid_planes), nn.ReLU(inplace=True),
                                      nn.Linear(mid_planes, mid_planes // share_planes),
                                      nn.BatchNorm1d(mid_planes // share_planes), nn.ReLU(inplace=True),
                                      nn.Linear(out_planes // share_planes, out_planes // share_planes))
        self.softmax = nn.Softmax(dim=1)

    def forward(self, pxo):
        p, x, o = pxo  # (n, 3), (n, c), (b)
        x_q, x_k, x_v = self.linear_q(x), self.linear_k(x), self.linear_v(x)  # (n, c)
        x_k = queryandgroup(self.nsample, p, p, x_k, None, o, o, use_xyz=True)  # (n, nsample, 3+c)
        x_v = queryandgroup(self.nsample, p, p, x_v, None, o, o, use_xyz=False)  # (n, nsample, c)
        p_r, x_k = x_k[:, :, 0:3], x_k[:, :, 3:]
        for i, layer in enumerate(self.linear_p):
            p_r = layer(p_r.transpose(1, 2).contiguous()).transpose(1, 2).contiguous() if i == 1 else layer(p_r)  # (n, nsample, c)
        w = x_k - x_q.unsqueeze(1) + p_r.view(p_r.shape[0], p_r.shape[1], self.out_planes // self.mid_planes, self.mid_planes).sum(2)
        for i, layer in enumerate(self.linear_w):
            w = layer(w.transpose(1, 2).contiguous()).transpose(1, 2).contiguous() if i % 3 == 0 else layer(w)
        w = self.softmax(w)  # (n, nsample, c)
        n, nsample, c = x_v.shape
        s = self.share_planes
        x = ((x_v + p_r).view(n, nsample, s, c // s) * w.unsqueeze(2)).sum(1).view(n, c)
        return x


class TransitionDown(nn.Module):
    """stride 1 only: pointops.furthestsampling is the CUDA op this one-stage model leaves out."""

    def __init__(self, in_planes, out_planes, stride=1, nsample=16):
        super().__init__()
        assert stride == 1
        self.stride, self.nsample = stride, nsample
        self.linear = nn.Linear(in_planes, out_planes, bias=False)
        self.bn = nn.BatchNorm1d(out_planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, pxo):
        p, x, o = pxo  # (n, 3), (n, c), (b)
        x = self.relu(self.bn(self.linear(x)))
        return [p, x, o]


class TransitionUp(nn.Module):
    """out_planes None: the head of the decoder, each point concatenated with its own cloud's mean feature."""

    def __init__(self, in_planes, out_planes=None):
        super().__init__()
        assert out_planes is None
        self.linear1 = nn.Sequential(nn.Linear(2 * in_planes, in_planes), nn.BatchNorm1d(in_planes), nn.ReLU(inplace=True))
        self.linear2 = nn.Sequential(nn.Linear(in_planes, in_planes), nn.ReLU(inplace=True))

    def forward(self, pxo1, pxo2=None):
        _, x, o = pxo1  # (n, 3), (n, c), (b)
        x_tmp = []
        for i in range(o.shape[0]):
            if i == 0:
                s_i, e_i, cnt = 0, o[0], o[0]
            else:
                s_i, e_i, cnt = o[i - 1], o[i], o[i] - o[i - 1]
            x_b = x[s_i:e_i, :]
            x_b = torch.cat((x_b, self.linear2(x_b.sum(0, True) / cnt).repeat(cnt, 1)), 1)
            x_tmp.append(x_b)
        x = torch.cat(x_tmp, 0)
        return self.linear1(x)


class PointTransformerBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, share_planes=8, nsample=16):
        super().__init__()
        self.linear1 = nn.Linear(in_planes, planes, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.transformer2 = PointTransformerLayer(planes, planes, share_planes, nsample)
        self.bn2 = nn.BatchNorm1d(planes)
        self.linear3 = nn.Linear(planes, planes * self.expansion, bias=False)
        self.bn3 = nn.BatchNorm1d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, pxo):
        p, x, o = pxo  # (n, 3), (n, c), (b)
        identity = x
        x = self.relu(self.bn1(self.linear1(x)))
        x = self.relu(self.bn2(self.transformer2([p, x, o])))
        x = self.bn3(self.linear3(x))
        x += identity
        x = self.relu(x)
        return [p, x, o]


class PointTransformerSeg(nn.Module):
    """One stage of pointtransformer_seg.py (enc1 at stride 1, dec with the global TransitionUp head), planes 32,
    share_planes 8, nsample 8, per-point logits over 5 classes; points of the batch flattened with offsets."""

    def __init__(self, c=6, k=5, planes=32, share_planes=8, nsample=8):
        super().__init__()
        self.c = c
        self.in_planes = c
        self.enc1 = self._make_enc(planes, share_planes, stride=1, nsample=nsample)
        self.dec1 = self._make_dec(planes, share_planes, nsample=nsample)
        self.cls = nn.Sequential(nn.Linear(planes, planes), nn.BatchNorm1d(planes), nn.ReLU(inplace=True), nn.Linear(planes, k))

    def _make_enc(self, planes, share_planes=8, stride=1, nsample=16):
        layers = [TransitionDown(self.in_planes, planes * PointTransformerBlock.expansion, stride, nsample)]
        self.in_planes = planes * PointTransformerBlock.expansion
        layers.append(PointTransformerBlock(self.in_planes, self.in_planes, share_planes, nsample=nsample))
        return nn.Sequential(*layers)

    def _make_dec(self, planes, share_planes=8, nsample=16):
        layers = [TransitionUp(self.in_planes, None)]
        self.in_planes = planes * PointTransformerBlock.expansion
        layers.append(PointTransformerBlock(self.in_planes, self.in_planes, share_planes, nsample=nsample))
        return nn.Sequential(*layers)

    def forward(self, p0, x0, o0):
        x0 = p0 if self.c == 3 else torch.cat((p0, x0), 1)
        p1, x1, o1 = self.enc1([p0, x0, o0])
        x1 = self.dec1[1:]([p1, self.dec1[0]([p1, x1, o1]), o1])[1]
        return self.cls(x1)


# --- 7. Crossformer (Thinklab-SJTU/Crossformer): two-stage attention, time then a router over variates ---------------

class CrossFullAttention(nn.Module):
    """The Attention operation"""

    def __init__(self, scale=None, attention_dropout=0.1):
        super().__init__()
        self.scale = scale
        self.dropout = nn.Dropout(attention_dropout)

    def forward(self, queries, keys, values):
        B, L, H, E = queries.shape
        _, S, _, D = values.shape
        scale = self.scale or 1. / math.sqrt(E)
        scores = torch.einsum("blhe,bshe->bhls", queries, keys)
        A = self.dropout(torch.softmax(scale * scores, dim=-1))
        V = torch.einsum("bhls,bshd->blhd", A, values)
        return V.contiguous()


class CrossAttentionLayerTS(nn.Module):
    """The Multi-head Self-Attention (MSA) Layer (Crossformer's AttentionLayer)"""

    def __init__(self, d_model, n_heads, d_keys=None, d_values=None, dropout=0.1):
        super().__init__()
        d_keys = d_keys or (d_model // n_heads)
        d_values = d_values or (d_model // n_heads)
        self.inner_attention = CrossFullAttention(scale=None, attention_dropout=dropout)
        self.query_projection = nn.Linear(d_model, d_keys * n_heads)
        self.key_projection = nn.Linear(d_model, d_keys * n_heads)
        self.value_projection = nn.Linear(d_model, d_values * n_heads)
        self.out_projection = nn.Linear(d_values * n_heads, d_model)
        self.n_heads = n_heads

    def forward(self, queries, keys, values):
        B, L, _ = queries.shape
        _, S, _ = keys.shape
        H = self.n_heads
        queries = self.query_projection(queries).view(B, L, H, -1)
        keys = self.key_projection(keys).view(B, S, H, -1)
        values = self.value_projection(values).view(B, S, H, -1)
        out = self.inner_attention(queries, keys, values)
        out = out.view(B, L, -1)
        return self.out_projection(out)


class TwoStageAttentionLayer(nn.Module):
    """
    The Two Stage Attention (TSA) Layer
    input/output shape: [batch_size, Data_dim(D), Seg_num(L), d_model]
    """

    def __init__(self, seg_num, factor, d_model, n_heads, d_ff=None, dropout=0.1):
        super().__init__()
        d_ff = d_ff or 4 * d_model
        self.time_attention = CrossAttentionLayerTS(d_model, n_heads, dropout=dropout)
        self.dim_sender = CrossAttentionLayerTS(d_model, n_heads, dropout=dropout)
        self.dim_receiver = CrossAttentionLayerTS(d_model, n_heads, dropout=dropout)
        self.router = nn.Parameter(torch.randn(seg_num, factor, d_model))
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.norm4 = nn.LayerNorm(d_model)
        self.MLP1 = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.MLP2 = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x):
        # Cross Time Stage: Directly apply MSA to each dimension
        batch = x.shape[0]
        time_in = rearrange(x, "b ts_d seg_num d_model -> (b ts_d) seg_num d_model")
        time_enc = self.time_attention(time_in, time_in, time_in)
        dim_in = time_in + self.dropout(time_enc)
        dim_in = self.norm1(dim_in)
        dim_in = dim_in + self.dropout(self.MLP1(dim_in))
        dim_in = self.norm2(dim_in)
        # Cross Dimension Stage: use a small set of learnable vectors to aggregate and distribute messages to build the
        # D-to-D connection
        dim_send = rearrange(dim_in, "(b ts_d) seg_num d_model -> (b seg_num) ts_d d_model", b=batch)
        batch_router = repeat(self.router, "seg_num factor d_model -> (repeat seg_num) factor d_model", repeat=batch)
        dim_buffer = self.dim_sender(batch_router, dim_send, dim_send)
        dim_receive = self.dim_receiver(dim_send, dim_buffer, dim_buffer)
        dim_enc = dim_send + self.dropout(dim_receive)
        dim_enc = self.norm3(dim_enc)
        dim_enc = dim_enc + self.dropout(self.MLP2(dim_enc))
        dim_enc = self.norm4(dim_enc)
        return rearrange(dim_enc, "(b seg_num) ts_d d_model -> b ts_d seg_num d_model", b=batch)


class DSW_embedding(nn.Module):
    def __init__(self, seg_len, d_model):
        super().__init__()
        self.seg_len = seg_len
        self.linear = nn.Linear(seg_len, d_model)

    def forward(self, x):
        batch, ts_len, ts_dim = x.shape
        x_segment = rearrange(x, "b (seg_num seg_len) d -> (b d seg_num) seg_len", seg_len=self.seg_len)
        x_embed = self.linear(x_segment)
        return rearrange(x_embed, "(b d seg_num) d_model -> b d seg_num d_model", b=batch, d=ts_dim)


class SegMerging(nn.Module):
    """
    Segment Merging Layer.
    The adjacent `win_size' segments in each dimension will be merged into one segment to
    get representation of a coarser scale
    """

    def __init__(self, d_model, win_size, norm_layer=nn.LayerNorm):
        super().__init__()
        self.d_model = d_model
        self.win_size = win_size
        self.linear_trans = nn.Linear(win_size * d_model, d_model)
        self.norm = norm_layer(win_size * d_model)

    def forward(self, x):
        batch_size, ts_d, seg_num, d_model = x.shape
        pad_num = seg_num % self.win_size
        if pad_num != 0:
            pad_num = self.win_size - pad_num
            x = torch.cat((x, x[:, :, -pad_num:, :]), dim=-2)
        seg_to_merge = []
        for i in range(self.win_size):
            seg_to_merge.append(x[:, :, i::self.win_size, :])
        x = torch.cat(seg_to_merge, -1)  # [B, ts_d, seg_num/win_size, win_size*d_model]
        x = self.norm(x)
        return self.linear_trans(x)


class scale_block(nn.Module):
    def __init__(self, win_size, d_model, n_heads, d_ff, depth, dropout, seg_num=10, factor=10):
        super().__init__()
        if win_size > 1:
            self.merge_layer = SegMerging(d_model, win_size, nn.LayerNorm)
        else:
            self.merge_layer = None
        self.encode_layers = nn.ModuleList()
        for i in range(depth):
            self.encode_layers.append(TwoStageAttentionLayer(seg_num, factor, d_model, n_heads, d_ff, dropout))

    def forward(self, x):
        _, ts_dim, _, _ = x.shape
        if self.merge_layer is not None:
            x = self.merge_layer(x)
        for layer in self.encode_layers:
            x = layer(x)
        return x


class CrossformerEncoder(nn.Module):
    def __init__(self, e_blocks, win_size, d_model, n_heads, d_ff, block_depth, dropout, in_seg_num=10, factor=10):
        super().__init__()
        self.encode_blocks = nn.ModuleList()
        self.encode_blocks.append(scale_block(1, d_model, n_heads, d_ff, block_depth, dropout, in_seg_num, factor))
        for i in range(1, e_blocks):
            self.encode_blocks.append(scale_block(win_size, d_model, n_heads, d_ff, block_depth, dropout,
                                                  math.ceil(in_seg_num / win_size ** i), factor))

    def forward(self, x):
        encode_x = []
        encode_x.append(x)
        for block in self.encode_blocks:
            x = block(x)
            encode_x.append(x)
        return encode_x


class CrossformerDecoderLayer(nn.Module):
    """The decoder layer of Crossformer, each layer will make a prediction at its scale"""

    def __init__(self, seg_len, d_model, n_heads, d_ff=None, dropout=0.1, out_seg_num=10, factor=10):
        super().__init__()
        self.self_attention = TwoStageAttentionLayer(out_seg_num, factor, d_model, n_heads, d_ff, dropout)
        self.cross_attention = CrossAttentionLayerTS(d_model, n_heads, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.MLP1 = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.linear_pred = nn.Linear(d_model, seg_len)

    def forward(self, x, cross):
        batch = x.shape[0]
        x = self.self_attention(x)
        x = rearrange(x, "b ts_d out_seg_num d_model -> (b ts_d) out_seg_num d_model")
        cross = rearrange(cross, "b ts_d in_seg_num d_model -> (b ts_d) in_seg_num d_model")
        tmp = self.cross_attention(x, cross, cross)
        x = x + self.dropout(tmp)
        y = x = self.norm1(x)
        y = self.MLP1(y)
        dec_output = self.norm2(x + y)
        dec_output = rearrange(dec_output, "(b ts_d) seg_dec_num d_model -> b ts_d seg_dec_num d_model", b=batch)
        layer_predict = self.linear_pred(dec_output)
        layer_predict = rearrange(layer_predict, "b out_d seg_num seg_len -> b (out_d seg_num) seg_len")
        return dec_output, layer_predict


class CrossformerDecoder(nn.Module):
    def __init__(self, seg_len, d_layers, d_model, n_heads, d_ff, dropout, router=False, out_seg_num=10, factor=10):
        super().__init__()
        self.router = router
        self.decode_layers = nn.ModuleList()
        for i in range(d_layers):
            self.decode_layers.append(CrossformerDecoderLayer(seg_len, d_model, n_heads, d_ff, dropout, out_seg_num, factor))

    def forward(self, x, cross):
        final_predict = None
        i = 0
        ts_d = x.shape[1]
        for layer in self.decode_layers:
            cross_enc = cross[i]
            x, layer_predict = layer(x, cross_enc)
            if final_predict is None:
                final_predict = layer_predict
            else:
                final_predict = final_predict + layer_predict
            i += 1
        return rearrange(final_predict, "b (out_d seg_num) seg_len -> b (seg_num seg_len) out_d", out_d=ts_d)


class Crossformer(nn.Module):
    """5 variates, 22 input steps (padded to 24 by repeating the first), 12 predicted, segments of 6, d_model 32, 4 heads,
    router factor 3, e_layers 2 (so 3 decoder layers), merge window 2."""

    def __init__(self, data_dim=5, in_len=22, out_len=12, seg_len=6, win_size=2, factor=3, d_model=32, d_ff=64, n_heads=4,
                 e_layers=2, dropout=0.0, baseline=False):
        super().__init__()
        self.data_dim = data_dim
        self.in_len = in_len
        self.out_len = out_len
        self.seg_len = seg_len
        self.merge_win = win_size
        self.baseline = baseline
        # The padding operation to handle invisible segment length
        self.pad_in_len = math.ceil(1.0 * in_len / seg_len) * seg_len
        self.pad_out_len = math.ceil(1.0 * out_len / seg_len) * seg_len
        self.in_len_add = self.pad_in_len - self.in_len
        # Embedding
        self.enc_value_embedding = DSW_embedding(seg_len, d_model)
        self.enc_pos_embedding = nn.Parameter(torch.randn(1, data_dim, (self.pad_in_len // seg_len), d_model))
        self.pre_norm = nn.LayerNorm(d_model)
        # Encoder
        self.encoder = CrossformerEncoder(e_layers, win_size, d_model, n_heads, d_ff, block_depth=1, dropout=dropout,
                                          in_seg_num=(self.pad_in_len // seg_len), factor=factor)
        # Decoder
        self.dec_pos_embedding = nn.Parameter(torch.randn(1, data_dim, (self.pad_out_len // seg_len), d_model))
        self.decoder = CrossformerDecoder(seg_len, e_layers + 1, d_model, n_heads, d_ff, dropout,
                                          out_seg_num=(self.pad_out_len // seg_len), factor=factor)

    def forward(self, x_seq):
        if self.baseline:
            base = x_seq.mean(dim=1, keepdim=True)
        else:
            base = 0
        batch_size = x_seq.shape[0]
        if self.in_len_add != 0:
            x_seq = torch.cat((x_seq[:, :1, :].expand(-1, self.in_len_add, -1), x_seq), dim=1)
        x_seq = self.enc_value_embedding(x_seq)
        x_seq += self.enc_pos_embedding
        x_seq = self.pre_norm(x_seq)
        enc_out = self.encoder(x_seq)
        dec_in = repeat(self.dec_pos_embedding, "b ts_d l d -> (repeat b) ts_d l d", repeat=batch_size)
        predict_y = self.decoder(dec_in, enc_out)
        return base + predict_y[:, :self.out_len, :]


# --- 8. ETA (reczoo/FuxiCTR model_zoo/ETA): SimHash top-k retrieval, then multi-head target attention -----------------

class ScaledDotProductAttention(nn.Module):
    """Scaled Dot-Product Attention (FuxiCTR layers/attentions/dot_product_attention.py)"""

    def __init__(self, dropout_rate=0.):
        super().__init__()
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else None

    def forward(self, Q, K, V, scale=None, mask=None):
        # mask: 0 for masked positions
        scores = torch.matmul(Q, K.transpose(-1, -2))
        if scale:
            scores = scores / scale
        if mask is not None:
            mask = mask.view_as(scores)
            scores = scores.masked_fill_(mask.float() == 0, -1.e9)  # fill -inf if mask=0
        attention = scores.softmax(dim=-1)
        if self.dropout is not None:
            attention = self.dropout(attention)
        output = torch.matmul(attention, V)
        return output, attention


class MultiHeadTargetAttention(nn.Module):
    def __init__(self, input_dim=64, attention_dim=64, num_heads=1, dropout_rate=0, use_scale=True, use_qkvo=True):
        super().__init__()
        if not use_qkvo:
            attention_dim = input_dim
        assert attention_dim % num_heads == 0, "attention_dim={} is not divisible by num_heads={}".format(attention_dim, num_heads)
        self.num_heads = num_heads
        self.head_dim = attention_dim // num_heads
        self.scale = self.head_dim ** 0.5 if use_scale else None
        self.use_qkvo = use_qkvo
        if use_qkvo:
            self.W_q = nn.Linear(input_dim, attention_dim, bias=False)
            self.W_k = nn.Linear(input_dim, attention_dim, bias=False)
            self.W_v = nn.Linear(input_dim, attention_dim, bias=False)
            self.W_o = nn.Linear(attention_dim, input_dim, bias=False)
        self.dot_attention = ScaledDotProductAttention(dropout_rate)

    def forward(self, target_item, history_sequence, mask=None):
        """
        target_item: b x emd
        history_sequence: b x len x emb
        mask: mask of history_sequence, 0 for masked positions
        """
        # linear projection
        if self.use_qkvo:
            query = self.W_q(target_item)
            key = self.W_k(history_sequence)
            value = self.W_v(history_sequence)
        else:
            query, key, value = target_item, history_sequence, history_sequence
        # split by heads
        batch_size = query.size(0)
        query = query.view(batch_size, 1, self.num_heads, self.head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2)
        if mask is not None:
            mask = mask.view(batch_size, 1, 1, -1).expand(-1, self.num_heads, -1, -1)
        # scaled dot product attention
        output, _ = self.dot_attention(query, key, value, scale=self.scale, mask=mask)
        # concat heads
        output = output.transpose(1, 2).contiguous().view(-1, self.num_heads * self.head_dim)
        if self.use_qkvo:
            output = self.W_o(output)
        return output


class ETA(nn.Module):
    """ETA with a hand-made feature map: user_id, item_id, cate_id, a long click/cate history of 24 (sharing the item and
    cate embedding tables, padding id 0) and a short one of 6; embedding_dim 16, attention_dim 32, 2 heads, 16 hash bits,
    top 8. Inputs are positional tensors instead of FuxiCTR's batch dict."""

    FEATURES = ("user_id", "item_id", "cate_id", "click_history", "cate_history", "short_click_history", "short_cate_history")
    SHARE = {"click_history": "item_id", "cate_history": "cate_id", "short_click_history": "item_id", "short_cate_history": "cate_id"}

    def __init__(self, vocab=None, embedding_dim=16, attention_dim=32, num_heads=2, attention_dropout=0, use_scale=True,
                 reuse_hash=True, hash_bits=16, topk=8, dnn_hidden_units=(64, 32),
                 short_target_field=(("item_id", "cate_id"),), short_sequence_field=(("short_click_history", "short_cate_history"),),
                 long_target_field=(("item_id", "cate_id"),), long_sequence_field=(("click_history", "cate_history"),)):
        super().__init__()
        vocab = vocab or {"user_id": 50, "item_id": 200, "cate_id": 20}
        self.short_target_field = list(short_target_field)
        self.short_sequence_field = list(short_sequence_field)
        self.long_target_field = list(long_target_field)
        self.long_sequence_field = list(long_sequence_field)
        self.embedding_dim = embedding_dim
        self.reuse_hash = reuse_hash
        self.hash_bits = hash_bits
        self.topk = topk
        self.embedding_layers = nn.ModuleDict({name: nn.Embedding(size, embedding_dim, padding_idx=0) for name, size in vocab.items()})
        self.short_attention = nn.ModuleList()
        for target_field in self.short_target_field:
            input_dim = embedding_dim * len(target_field) if type(target_field) == tuple else embedding_dim
            self.short_attention.append(MultiHeadTargetAttention(input_dim, attention_dim, num_heads, attention_dropout, use_scale))
        self.long_attention = nn.ModuleList()
        self.random_rotations = nn.ParameterList()
        for target_field in self.long_target_field:
            input_dim = embedding_dim * len(target_field) if type(target_field) == tuple else embedding_dim
            self.random_rotations.append(nn.Parameter(torch.randn(input_dim, self.hash_bits), requires_grad=False))
            self.long_attention.append(MultiHeadTargetAttention(input_dim, attention_dim, num_heads, attention_dropout, use_scale))
        layers, in_dim = [], embedding_dim * len(self.FEATURES)
        for units in dnn_hidden_units:
            layers += [nn.Linear(in_dim, units), nn.ReLU()]
            in_dim = units
        self.dnn = nn.Sequential(*layers, nn.Linear(in_dim, 1), nn.Sigmoid())

    def embedding_layer(self, X):
        feature_emb_dict = {}
        for feature in self.FEATURES:
            feature_emb_dict[feature] = self.embedding_layers[self.SHARE.get(feature, feature)](X[feature])
        return feature_emb_dict

    def forward(self, user_id, item_id, cate_id, click_history, cate_history, short_click_history, short_cate_history):
        X = {"user_id": user_id, "item_id": item_id, "cate_id": cate_id, "click_history": click_history,
             "cate_history": cate_history, "short_click_history": short_click_history, "short_cate_history": short_cate_history}
        feature_emb_dict = self.embedding_layer(X)
        # short interest attention
        for idx, (target_field, sequence_field) in enumerate(zip(self.short_target_field, self.short_sequence_field)):
            target_emb = self.concat_embedding(target_field, feature_emb_dict)
            sequence_emb = self.concat_embedding(sequence_field, feature_emb_dict)
            seq_field = list(sequence_field)[0]  # pick the first sequence field
            mask = X[seq_field].long() != 0  # padding_idx = 0 required in input data
            short_interest_emb = self.short_attention[idx](target_emb, sequence_emb, mask)
            for field, field_emb in zip(list(sequence_field), short_interest_emb.split(self.embedding_dim, dim=-1)):
                feature_emb_dict[field] = field_emb
        # long interest attention
        for idx, (target_field, sequence_field) in enumerate(zip(self.long_target_field, self.long_sequence_field)):
            target_emb = self.concat_embedding(target_field, feature_emb_dict)
            sequence_emb = self.concat_embedding(sequence_field, feature_emb_dict)
            seq_field = list(sequence_field)[0]  # pick the first sequence field
            mask = X[seq_field].long() != 0  # padding_idx = 0 required in input data
            topk_emb, topk_mask, _ = self.topk_retrieval(self.random_rotations[idx], target_emb, sequence_emb, mask, self.topk)
            long_interest_emb = self.long_attention[idx](target_emb, topk_emb, topk_mask)
            for field, field_emb in zip(list(sequence_field), long_interest_emb.split(self.embedding_dim, dim=-1)):
                feature_emb_dict[field] = field_emb
        feature_emb = torch.cat([feature_emb_dict[f] for f in self.FEATURES], dim=-1)
        y_pred = self.dnn(feature_emb)
        return {"y_pred": y_pred}

    def concat_embedding(self, field, feature_emb_dict):
        if type(field) == tuple:
            emb_list = [feature_emb_dict[f] for f in field]
            return torch.cat(emb_list, dim=-1)
        return feature_emb_dict[field]

    def topk_retrieval(self, random_rotations, target_item, history_sequence, mask, topk=5):
        if not self.reuse_hash:
            random_rotations = torch.randn(target_item.size(1), self.hash_bits, device=target_item.device)
        target_hash = self.lsh_hash(target_item.unsqueeze(1), random_rotations)
        sequence_hash = self.lsh_hash(history_sequence, random_rotations)
        hash_sim = -torch.abs(sequence_hash - target_hash).sum(dim=-1)
        hash_sim = hash_sim.masked_fill_(mask.float() == 0, -(self.hash_bits + 1))
        topk = min(topk, hash_sim.shape[1])  # make sure input seq_len >= topk
        topk_index = hash_sim.topk(topk, dim=1, largest=True, sorted=True)[1]
        topk_index = topk_index.sort(-1)[0]
        topk_emb = torch.gather(history_sequence, 1, topk_index.unsqueeze(-1).expand(-1, -1, history_sequence.shape[-1]))
        topk_mask = torch.gather(mask, 1, topk_index)
        return topk_emb, topk_mask, topk_index

    def lsh_hash(self, vecs, random_rotations):
        """ See the tensorflow-lsh-functions for reference:
            https://github.com/brc7/tensorflow-lsh-functions/blob/main/lsh_functions.py

            Input: vecs, with shape B x seq_len x d
        """
        rotated_vecs = torch.einsum("bld,dh->blh", vecs, random_rotations)  # B x seq_len x num_hashes
        hash_code = torch.relu(torch.sign(rotated_vecs))
        return hash_code


# --- 9. WavLM (microsoft/unilm wavlm): gated relative position bias into F.multi_head_attention_forward --------------

class GradMultiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        res = x.new(x)
        return res

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class Fp32GroupNorm(nn.GroupNorm):
    def forward(self, input):
        output = F.group_norm(input.float(), self.num_groups, self.weight.float() if self.weight is not None else None,
                              self.bias.float() if self.bias is not None else None, self.eps)
        return output.type_as(input)


class SamePad(nn.Module):
    def __init__(self, kernel_size, causal=False):
        super().__init__()
        if causal:
            self.remove = kernel_size - 1
        else:
            self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x):
        if self.remove > 0:
            x = x[:, :, : -self.remove]
        return x


class ConvFeatureExtractionModel(nn.Module):
    def __init__(self, conv_layers, dropout=0.0, mode="default", conv_bias=False):
        super().__init__()
        assert mode in {"default", "layer_norm"}

        def block(n_in, n_out, k, stride, is_group_norm=False, conv_bias=False):
            def make_conv():
                conv = nn.Conv1d(n_in, n_out, k, stride=stride, bias=conv_bias)
                nn.init.kaiming_normal_(conv.weight)
                return conv
            if is_group_norm:
                return nn.Sequential(make_conv(), nn.Dropout(p=dropout), Fp32GroupNorm(n_out, n_out, affine=True), nn.GELU())
            return nn.Sequential(make_conv(), nn.Dropout(p=dropout), nn.GELU())

        in_d = 1
        self.conv_layers = nn.ModuleList()
        for i, cl in enumerate(conv_layers):
            assert len(cl) == 3, "invalid conv definition: " + str(cl)
            (dim, k, stride) = cl
            self.conv_layers.append(block(in_d, dim, k, stride, is_group_norm=mode == "default" and i == 0, conv_bias=conv_bias))
            in_d = dim

    def forward(self, x, mask=None):
        # BxT -> BxCxT
        x = x.unsqueeze(1)
        for conv in self.conv_layers:
            x = conv(x)
        return x


class WavLMMultiheadAttention(nn.Module):
    """Multi-headed attention (wavlm/modules.py MultiheadAttention, the F.multi_head_attention_forward path)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, self_attention=False, has_relative_attention_bias=False,
                 num_buckets=32, max_distance=128, gru_rel_pos=False, rescale_init=False):
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = embed_dim
        self.vdim = embed_dim
        self.qkv_same_dim = True
        self.num_heads = num_heads
        self.dropout_module = nn.Dropout(dropout)
        self.has_relative_attention_bias = has_relative_attention_bias
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        if self.has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)
        self.head_dim = embed_dim // num_heads
        self.q_head_dim = self.head_dim
        self.k_head_dim = self.head_dim
        assert self.head_dim * num_heads == self.embed_dim, "embed_dim must be divisible by num_heads"
        self.scaling = self.head_dim ** -0.5
        self.self_attention = self_attention
        k_bias = True
        if rescale_init:
            k_bias = False
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=k_bias)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        self.gru_rel_pos = gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.q_head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        self.reset_parameters()

    def reset_parameters(self):
        if self.qkv_same_dim:
            # Empirically observed the convergence to be much better with
            # the scaled initialization
            nn.init.xavier_uniform_(self.k_proj.weight, gain=1 / math.sqrt(2))
            nn.init.xavier_uniform_(self.v_proj.weight, gain=1 / math.sqrt(2))
            nn.init.xavier_uniform_(self.q_proj.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out_proj.weight)
        if self.out_proj.bias is not None:
            nn.init.constant_(self.out_proj.bias, 0.0)
        if self.has_relative_attention_bias:
            nn.init.xavier_normal_(self.relative_attention_bias.weight)

    def _relative_positions_bucket(self, relative_positions, bidirectional=True):
        num_buckets = self.num_buckets
        max_distance = self.max_distance
        relative_buckets = 0
        if bidirectional:
            num_buckets = num_buckets // 2
            relative_buckets += (relative_positions > 0).to(torch.long) * num_buckets
            relative_positions = torch.abs(relative_positions)
        else:
            relative_positions = -torch.min(relative_positions, torch.zeros_like(relative_positions))
        max_exact = num_buckets // 2
        is_small = relative_positions < max_exact
        relative_postion_if_large = max_exact + (torch.log(relative_positions.float() / max_exact)
                                                 / math.log(max_distance / max_exact) * (num_buckets - max_exact)).to(torch.long)
        relative_postion_if_large = torch.min(relative_postion_if_large, torch.full_like(relative_postion_if_large, num_buckets - 1))
        relative_buckets += torch.where(is_small, relative_positions, relative_postion_if_large)
        return relative_buckets

    def compute_bias(self, query_length, key_length):
        context_position = torch.arange(query_length, dtype=torch.long)[:, None]
        memory_position = torch.arange(key_length, dtype=torch.long)[None, :]
        relative_position = memory_position - context_position
        relative_position_bucket = self._relative_positions_bucket(relative_position, bidirectional=True)
        relative_position_bucket = relative_position_bucket.to(self.relative_attention_bias.weight.device)
        values = self.relative_attention_bias(relative_position_bucket)
        values = values.permute([2, 0, 1])
        return values

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, position_bias=None):
        tgt_len, bsz, embed_dim = query.size()
        src_len = tgt_len
        assert embed_dim == self.embed_dim
        if key is not None:
            src_len, key_bsz, _ = key.size()
        if self.has_relative_attention_bias and position_bias is None:
            position_bias = self.compute_bias(tgt_len, src_len)
            position_bias = position_bias.unsqueeze(0).repeat(bsz, 1, 1, 1).view(bsz * self.num_heads, tgt_len, src_len)
        assert key is not None and value is not None
        assert attn_mask is None
        attn_mask_rel_pos = None
        if position_bias is not None:
            attn_mask_rel_pos = position_bias
            if self.gru_rel_pos:
                query_layer = query.transpose(0, 1)
                new_x_shape = query_layer.size()[:-1] + (self.num_heads, -1)
                query_layer = query_layer.view(*new_x_shape)
                query_layer = query_layer.permute(0, 2, 1, 3)
                _B, _H, _L, __ = query_layer.size()
                gate_a, gate_b = torch.sigmoid(self.grep_linear(query_layer).view(_B, _H, _L, 2, 4).sum(-1, keepdim=False)).chunk(2, dim=-1)
                gate_a_1 = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
                attn_mask_rel_pos = gate_a_1.view(bsz * self.num_heads, -1, 1) * position_bias
            attn_mask_rel_pos = attn_mask_rel_pos.view((-1, tgt_len, tgt_len))
        k_proj_bias = self.k_proj.bias
        if k_proj_bias is None:
            k_proj_bias = torch.zeros_like(self.q_proj.bias)
        x, attn = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, torch.empty([0]),
            torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias)),
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout_module.p, self.out_proj.weight, self.out_proj.bias,
            self.training, key_padding_mask, need_weights, attn_mask_rel_pos,
            use_separate_proj_weight=True, q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight)
        return x, attn, position_bias


class TransformerSentenceEncoderLayer(nn.Module):
    def __init__(self, embedding_dim=768, ffn_embedding_dim=3072, num_attention_heads=8, dropout=0.1, attention_dropout=0.1,
                 activation_dropout=0.1, layer_norm_first=False, has_relative_attention_bias=False, num_buckets=0,
                 max_distance=0, rescale_init=False, gru_rel_pos=False):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.activation_dropout = activation_dropout
        self.activation_fn = F.gelu
        self.self_attn = WavLMMultiheadAttention(self.embedding_dim, num_attention_heads, dropout=attention_dropout, self_attention=True,
                                                 has_relative_attention_bias=has_relative_attention_bias, num_buckets=num_buckets,
                                                 max_distance=max_distance, rescale_init=rescale_init, gru_rel_pos=gru_rel_pos)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(self.activation_dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.layer_norm_first = layer_norm_first
        self.self_attn_layer_norm = nn.LayerNorm(self.embedding_dim)
        self.fc1 = nn.Linear(self.embedding_dim, ffn_embedding_dim)
        self.fc2 = nn.Linear(ffn_embedding_dim, self.embedding_dim)
        self.final_layer_norm = nn.LayerNorm(self.embedding_dim)

    def forward(self, x, self_attn_mask=None, self_attn_padding_mask=None, need_weights=False, pos_bias=None):
        residual = x
        if self.layer_norm_first:
            x = self.self_attn_layer_norm(x)
            x, attn, pos_bias = self.self_attn(query=x, key=x, value=x, key_padding_mask=self_attn_padding_mask, need_weights=False,
                                               attn_mask=self_attn_mask, position_bias=pos_bias)
            x = self.dropout1(x)
            x = residual + x
            residual = x
            x = self.final_layer_norm(x)
            x = self.activation_fn(self.fc1(x))
            x = self.dropout2(x)
            x = self.fc2(x)
            x = self.dropout3(x)
            x = residual + x
        else:
            x, attn, pos_bias = self.self_attn(query=x, key=x, value=x, key_padding_mask=self_attn_padding_mask,
                                               need_weights=need_weights, attn_mask=self_attn_mask, position_bias=pos_bias)
            x = self.dropout1(x)
            x = residual + x
            x = self.self_attn_layer_norm(x)
            residual = x
            x = self.activation_fn(self.fc1(x))
            x = self.dropout2(x)
            x = self.fc2(x)
            x = self.dropout3(x)
            x = residual + x
            x = self.final_layer_norm(x)
        return x, attn, pos_bias


class WavLMTransformerEncoder(nn.Module):
    def __init__(self, embedding_dim=64, ffn_embedding_dim=128, heads=4, layers=2, conv_pos=8, conv_pos_groups=4, dropout=0.0,
                 layer_norm_first=False, num_buckets=32, max_distance=64, gru_rel_pos=True):
        super().__init__()
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.pos_conv = nn.Conv1d(self.embedding_dim, self.embedding_dim, kernel_size=conv_pos, padding=conv_pos // 2, groups=conv_pos_groups)
        std = math.sqrt((4 * (1.0 - dropout)) / (conv_pos * self.embedding_dim))
        nn.init.normal_(self.pos_conv.weight, mean=0, std=std)
        nn.init.constant_(self.pos_conv.bias, 0)
        self.pos_conv = nn.utils.weight_norm(self.pos_conv, name="weight", dim=2)
        self.pos_conv = nn.Sequential(self.pos_conv, SamePad(conv_pos), nn.GELU())
        self.relative_position_embedding = True
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.layers = nn.ModuleList([
            TransformerSentenceEncoderLayer(embedding_dim=self.embedding_dim, ffn_embedding_dim=ffn_embedding_dim, num_attention_heads=heads,
                                            dropout=self.dropout, attention_dropout=0.0, activation_dropout=0.0,
                                            layer_norm_first=layer_norm_first,
                                            has_relative_attention_bias=(self.relative_position_embedding and i == 0),
                                            num_buckets=self.num_buckets, max_distance=self.max_distance, gru_rel_pos=gru_rel_pos)
            for i in range(layers)])
        self.layer_norm_first = layer_norm_first
        self.layer_norm = nn.LayerNorm(self.embedding_dim)
        self.layerdrop = 0.0

    def forward(self, x, padding_mask=None):
        if padding_mask is not None:
            x[padding_mask] = 0
        x_conv = self.pos_conv(x.transpose(1, 2))
        x_conv = x_conv.transpose(1, 2)
        x = x + x_conv
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        # B x T x C -> T x B x C
        x = x.transpose(0, 1)
        pos_bias = None
        for i, layer in enumerate(self.layers):
            x, z, pos_bias = layer(x, self_attn_padding_mask=padding_mask, need_weights=False, pos_bias=pos_bias)
        # T x B x C -> B x T x C
        return x.transpose(0, 1)


class WavLMForClassification(nn.Module):
    """WavLM Base layout (default-mode extractor, post-norm layers, gru_rel_pos) on 640-sample waveforms: three convs of 32
    channels to 31 frames, encoder 64 wide, 4 heads, 2 layers; mean-pooled utterance logits over 5 classes."""

    def __init__(self, conv_feature_layers=((32, 10, 5), (32, 3, 2), (32, 2, 2)), encoder_embed_dim=64, feature_grad_mult=0.1,
                 num_classes=5):
        super().__init__()
        feature_enc_layers = list(conv_feature_layers)
        self.embed = feature_enc_layers[-1][0]
        self.feature_extractor = ConvFeatureExtractionModel(conv_layers=feature_enc_layers, dropout=0.0, mode="default", conv_bias=False)
        self.post_extract_proj = nn.Linear(self.embed, encoder_embed_dim) if self.embed != encoder_embed_dim else None
        self.dropout_input = nn.Dropout(0.0)
        self.feature_grad_mult = feature_grad_mult
        self.layer_norm = nn.LayerNorm(self.embed)
        self.encoder = WavLMTransformerEncoder(embedding_dim=encoder_embed_dim)
        self.classifier = nn.Linear(encoder_embed_dim, num_classes)

    def extract_features(self, source, padding_mask=None):
        if self.feature_grad_mult > 0:
            features = self.feature_extractor(source)
            if self.feature_grad_mult != 1.0:
                features = GradMultiply.apply(features, self.feature_grad_mult)
        else:
            with torch.no_grad():
                features = self.feature_extractor(source)
        features = features.transpose(1, 2)
        features = self.layer_norm(features)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        features = self.dropout_input(features)
        return self.encoder(features, padding_mask=padding_mask)

    def forward(self, source):
        x = self.extract_features(source)
        return self.classifier(x.mean(dim=1))


# --- 10. FLASH (lucidrains/FLASH-pytorch): grouped quadratic + linear gated attention units ---------------------------

def exists(val):
    return val is not None


def default(val, d):
    return val if exists(val) else d


def padding_to_multiple_of(n, mult):
    remainder = n % mult
    if remainder == 0:
        return 0
    return mult - remainder


class ScaleNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x):
        norm = torch.norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class ScaledSinuEmbedding(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1,))
        inv_freq = 1. / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, x):
        n, device = x.shape[1], x.device
        t = torch.arange(n, device=device).type_as(self.inv_freq)
        sinu = torch.einsum("i , j -> i j", t, self.inv_freq)
        emb = torch.cat((sinu.sin(), sinu.cos()), dim=-1)
        return emb * self.scale


class FlashT5RelativePositionBias(nn.Module):
    def __init__(self, scale, causal=False, num_buckets=32, max_distance=128):
        super().__init__()
        self.scale = scale
        self.causal = causal
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, 1)

    @staticmethod
    def _relative_position_bucket(relative_position, causal=True, num_buckets=32, max_distance=128):
        ret = 0
        n = -relative_position
        if not causal:
            num_buckets //= 2
            ret += (n < 0).long() * num_buckets
            n = torch.abs(n)
        else:
            n = torch.max(n, torch.zeros_like(n))
        max_exact = num_buckets // 2
        is_small = n < max_exact
        val_if_large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
        val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
        ret += torch.where(is_small, n, val_if_large)
        return ret

    def forward(self, x):
        i, j, device = *x.shape[-2:], x.device
        q_pos = torch.arange(i, dtype=torch.long, device=device)
        k_pos = torch.arange(j, dtype=torch.long, device=device)
        rel_pos = rearrange(k_pos, "j -> 1 j") - rearrange(q_pos, "i -> i 1")
        rp_bucket = self._relative_position_bucket(rel_pos, causal=self.causal, num_buckets=self.num_buckets, max_distance=self.max_distance)
        values = self.relative_attention_bias(rp_bucket)
        bias = rearrange(values, "i j 1 -> i j")
        return bias * self.scale


class OffsetScale(nn.Module):
    def __init__(self, dim, heads=1):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(heads, dim))
        self.beta = nn.Parameter(torch.zeros(heads, dim))
        nn.init.normal_(self.gamma, std=0.02)

    def forward(self, x):
        out = torch.einsum("... d, h d -> ... h d", x, self.gamma) + self.beta
        return out.unbind(dim=-2)


class ReLUSquared(nn.Module):
    def forward(self, x):
        return F.relu(x) ** 2


def rotary_rotate_half(x):
    """rotary_embedding_torch's interleaved rotate_half"""
    x = rearrange(x, "... (d r) -> ... d r", r=2)
    x1, x2 = x.unbind(dim=-1)
    x = torch.stack((-x2, x1), dim=-1)
    return rearrange(x, "... d r -> ... (d r)")


def apply_rotary_emb(freqs, t, start_index=0, scale=1., seq_dim=-2):
    if t.ndim == 3:
        seq_len = t.shape[seq_dim]
        freqs = freqs[-seq_len:].to(t)
    rot_dim = freqs.shape[-1]
    end_index = start_index + rot_dim
    assert rot_dim <= t.shape[-1], f"feature dimension {t.shape[-1]} is not of sufficient size to rotate in all the positions {rot_dim}"
    t_left, t, t_right = t[..., :start_index], t[..., start_index:end_index], t[..., end_index:]
    t = (t * freqs.cos() * scale) + (rotary_rotate_half(t) * freqs.sin() * scale)
    return torch.cat((t_left, t, t_right), dim=-1)


class RotaryEmbedding(nn.Module):
    """rotary_embedding_torch.RotaryEmbedding, language frequencies, not learned (freqs a frozen nn.Parameter)."""

    def __init__(self, dim, theta=10000, learned_freq=False, interpolate_factor=1.):
        super().__init__()
        freqs = 1. / (theta ** (torch.arange(0, dim, 2)[:(dim // 2)].float() / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=learned_freq)
        self.learned_freq = learned_freq
        self.default_seq_dim = -2
        self.interpolate_factor = interpolate_factor

    def get_seq_pos(self, seq_len, device, dtype, offset=0):
        return (torch.arange(seq_len, device=device, dtype=dtype) + offset) / self.interpolate_factor

    def rotate_queries_or_keys(self, t, seq_dim=None, offset=0, scale=None):
        seq_dim = default(seq_dim, self.default_seq_dim)
        device, dtype, seq_len = t.device, t.dtype, t.shape[seq_dim]
        seq = self.get_seq_pos(seq_len, device=device, dtype=dtype, offset=offset)
        freqs = self.forward(seq, seq_len=seq_len, offset=offset)
        if seq_dim == -3:
            freqs = rearrange(freqs, "n d -> n 1 d")
        return apply_rotary_emb(freqs, t, scale=default(scale, 1.), seq_dim=seq_dim)

    def forward(self, t, seq_len=None, offset=0):
        freqs = self.freqs
        freqs = torch.einsum("..., f -> ... f", t.type(freqs.dtype), freqs)
        return repeat(freqs, "... n -> ... (n r)", r=2)


class FLASH(nn.Module):
    def __init__(self, *, dim, group_size=256, query_key_dim=128, expansion_factor=2., causal=False, dropout=0., rotary_pos_emb=None,
                 norm_klass=nn.LayerNorm, shift_tokens=False, laplace_attn_fn=False, reduce_group_non_causal_attn=True):
        super().__init__()
        hidden_dim = int(dim * expansion_factor)
        self.group_size = group_size
        self.causal = causal
        self.shift_tokens = shift_tokens
        assert not laplace_attn_fn
        self.attn_fn = ReLUSquared()
        # positional embeddings
        self.rotary_pos_emb = rotary_pos_emb
        self.rel_pos_bias = FlashT5RelativePositionBias(query_key_dim ** 0.5, causal=causal)
        # norm
        self.norm = norm_klass(dim)
        self.dropout = nn.Dropout(dropout)
        # whether to reduce groups in non causal linear attention
        self.reduce_group_non_causal_attn = reduce_group_non_causal_attn
        # projections
        self.to_hidden = nn.Sequential(nn.Linear(dim, hidden_dim * 2), nn.SiLU())
        self.to_qk = nn.Sequential(nn.Linear(dim, query_key_dim), nn.SiLU())
        self.qk_offset_scale = OffsetScale(query_key_dim, heads=4)
        self.to_out = nn.Linear(hidden_dim, dim)

    def forward(self, x, mask=None):
        """
        b - batch
        n - sequence length (within groups)
        g - group dimension
        d - feature dimension (keys)
        e - feature dimension (values)
        i - sequence dimension (source)
        j - sequence dimension (target)
        """
        b, n, device, g = x.shape[0], x.shape[-2], x.device, self.group_size
        # prenorm
        normed_x = self.norm(x)
        # do token shift - a great, costless trick from an independent AI researcher in Shenzhen
        if self.shift_tokens:
            x_shift, x_pass = normed_x.chunk(2, dim=-1)
            x_shift = F.pad(x_shift, (0, 0, 1, -1), value=0.)
            normed_x = torch.cat((x_shift, x_pass), dim=-1)
        # initial projections
        v, gate = self.to_hidden(normed_x).chunk(2, dim=-1)
        qk = self.to_qk(normed_x)
        # offset and scale
        quad_q, lin_q, quad_k, lin_k = self.qk_offset_scale(qk)
        # mask out linear attention keys
        if exists(mask):
            lin_mask = rearrange(mask, "... -> ... 1")
            lin_k = lin_k.masked_fill(~lin_mask, 0.)
        # rotate queries and keys
        if exists(self.rotary_pos_emb):
            quad_q, lin_q, quad_k, lin_k = map(self.rotary_pos_emb.rotate_queries_or_keys, (quad_q, lin_q, quad_k, lin_k))
        # padding for groups
        padding = padding_to_multiple_of(n, g)
        if padding > 0:
            quad_q, quad_k, lin_q, lin_k, v = map(lambda t: F.pad(t, (0, 0, 0, padding), value=0.), (quad_q, quad_k, lin_q, lin_k, v))
            mask = default(mask, torch.ones((b, n), device=device, dtype=torch.bool))
            mask = F.pad(mask, (0, padding), value=False)
        # group along sequence
        quad_q, quad_k, lin_q, lin_k, v = map(lambda t: rearrange(t, "b (n g) d -> b n g d", g=self.group_size),
                                              (quad_q, quad_k, lin_q, lin_k, v))
        if exists(mask):
            mask = rearrange(mask, "b (g j) -> b g 1 j", j=g)
        # calculate quadratic attention output
        sim = torch.einsum("... i d, ... j d -> ... i j", quad_q, quad_k) / g
        sim = sim + self.rel_pos_bias(sim)
        attn = self.attn_fn(sim)
        attn = self.dropout(attn)
        if exists(mask):
            attn = attn.masked_fill(~mask, 0.)
        if self.causal:
            causal_mask = torch.ones((g, g), dtype=torch.bool, device=device).triu(1)
            attn = attn.masked_fill(causal_mask, 0.)
        quad_out = torch.einsum("... i j, ... j d -> ... i d", attn, v)
        # calculate linear attention output
        if self.causal:
            lin_kv = torch.einsum("b g n d, b g n e -> b g d e", lin_k, v) / g
            # exclusive cumulative sum along group dimension
            lin_kv = lin_kv.cumsum(dim=1)
            lin_kv = F.pad(lin_kv, (0, 0, 0, 0, 1, -1), value=0.)
            lin_out = torch.einsum("b g d e, b g n d -> b g n e", lin_kv, lin_q)
        else:
            context_einsum_eq = "b d e" if self.reduce_group_non_causal_attn else "b g d e"
            lin_kv = torch.einsum(f"b g n d, b g n e -> {context_einsum_eq}", lin_k, v) / n
            lin_out = torch.einsum(f"b g n d, {context_einsum_eq} -> b g n e", lin_q, lin_kv)
        # fold back groups into full sequence, and excise out padding
        quad_attn_out, lin_attn_out = map(lambda t: rearrange(t, "b g n d -> b (g n) d")[:, :n], (quad_out, lin_out))
        # gate
        out = gate * (quad_attn_out + lin_attn_out)
        # projection out and residual
        return self.to_out(out) + x


class FLASHTransformer(nn.Module):
    """A causal FLASH LM: vocab 128, dim 64, depth 2, groups of 8 over 20 tokens (padded to 24), query_key_dim 48 with
    rotary on its first 32 channels, scalenorm, token shift."""

    def __init__(self, *, dim=64, num_tokens=128, depth=2, group_size=8, query_key_dim=48, expansion_factor=2., causal=True,
                 attn_dropout=0., norm_type="scalenorm", shift_tokens=True, laplace_attn_fn=False, reduce_group_non_causal_attn=True):
        super().__init__()
        assert norm_type in ("scalenorm", "layernorm"), "norm_type must be one of scalenorm or layernorm"
        if norm_type == "scalenorm":
            norm_klass = ScaleNorm
        else:
            norm_klass = nn.LayerNorm
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.abs_pos_emb = ScaledSinuEmbedding(dim)
        self.group_size = group_size
        rotary_pos_emb = RotaryEmbedding(dim=min(32, query_key_dim))
        # max rotary embedding dimensions of 32, partial Rotary embeddings, from Wang et al - GPT-J
        self.layers = nn.ModuleList([FLASH(dim=dim, group_size=group_size, query_key_dim=query_key_dim, expansion_factor=expansion_factor,
                                           causal=causal, dropout=attn_dropout, rotary_pos_emb=rotary_pos_emb, norm_klass=norm_klass,
                                           shift_tokens=shift_tokens, reduce_group_non_causal_attn=reduce_group_non_causal_attn,
                                           laplace_attn_fn=laplace_attn_fn) for _ in range(depth)])
        self.to_logits = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_tokens))

    def forward(self, x, mask=None):
        x = self.token_emb(x)
        x = self.abs_pos_emb(x) + x
        for flash in self.layers:
            x = flash(x, mask=mask)
        return self.to_logits(x)


# --- registry ----------------------------------------------------------------------------------------------------------

def build(name: str) -> nn.Module:
    return MODELS[name][0]()


def _qformer_inputs():
    g = torch.Generator().manual_seed(0)
    text_ids = torch.randint(1, 100, (3, 10), generator=g)
    text_atts = torch.ones(3, 10, dtype=torch.long)
    text_ids[1, 7:], text_atts[1, 7:] = 0, 0  # padded text
    text_ids[2, 5:], text_atts[2, 5:] = 0, 0
    return torch.randn(3, 3, 32, 32, generator=g), text_ids, text_atts


def _mmdit_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(3, 4, 16, 16, generator=g), torch.rand(3, generator=g) * 1000, torch.randn(3, 32, generator=g),
            torch.randn(3, 8, 48, generator=g))


def _point_inputs():
    g = torch.Generator().manual_seed(0)
    offset = torch.tensor([30, 62, 96], dtype=torch.int32)  # three clouds of 30, 32 and 34 points
    return torch.rand(96, 3, generator=g), torch.rand(96, 3, generator=g), offset


def _eta_inputs():
    g = torch.Generator().manual_seed(0)
    click_history = torch.randint(1, 200, (3, 24), generator=g)
    cate_history = torch.randint(1, 20, (3, 24), generator=g)
    click_history[0, :10], cate_history[0, :10] = 0, 0  # left-padded histories
    click_history[2, :4], cate_history[2, :4] = 0, 0
    short_click, short_cate = click_history[:, -6:].clone(), cate_history[:, -6:].clone()
    short_click[1, :2], short_cate[1, :2] = 0, 0
    return (torch.randint(1, 50, (3,), generator=g), torch.randint(1, 200, (3,), generator=g), torch.randint(1, 20, (3,), generator=g),
            click_history, cate_history, short_click, short_cate)


MODELS = {
    "DeepSeek-V2 multi-head latent attention": (DeepseekV2ForCausalLM,
                                                lambda: (torch.randint(0, 128, (3, 16), generator=torch.Generator().manual_seed(0)),)),
    "Mask2Former masked attention (segmentation)": (Mask2FormerTiny,
                                                    lambda: (torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)),)),
    "Deformable DETR multi-scale deformable attention (detection)": (
        DeformableDETR, lambda: (torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)),)),
    "BLIP-2 Q-Former (multimodal)": (Blip2Qformer, _qformer_inputs),
    "SD3.5 MMDiT joint attention (diffusion)": (MMDiTX, _mmdit_inputs),
    "Point Transformer vector attention (point clouds)": (PointTransformerSeg, _point_inputs),
    "Crossformer two-stage attention (time series)": (Crossformer, lambda: (torch.randn(3, 22, 5, generator=torch.Generator().manual_seed(0)),)),
    "ETA SimHash top-k target attention (recommendation)": (ETA, _eta_inputs),
    "WavLM gated relative position bias (speech)": (WavLMForClassification,
                                                    lambda: (torch.randn(3, 640, generator=torch.Generator().manual_seed(0)),)),
    "FLASH grouped gated attention (text)": (FLASHTransformer,
                                             lambda: (torch.randint(0, 128, (3, 20), generator=torch.Generator().manual_seed(0)),)),
}
