"""Small models for the pruning tests (importable as ``prune_helpers:<factory>`` once this folder
is on sys.path, so artifacts can rebuild them)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PlainNet(nn.Module):
    """conv-bn-relu x2, pool, flatten into a linear layer. x: (batch, 3, 8, 8) -> (batch, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 2).flatten(1))


class ZooNet(nn.Module):
    """Many coupling patterns in one small net: concat, grouped and depthwise convs, channel
    shuffle, chunk, GroupNorm, squeeze-excitation, channels-last LayerNorm, flatten into linear.
    x: (batch, 3, 8, 8) -> (batch, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.a = nn.Conv2d(16, 16, 1)
        self.b = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.gn = nn.GroupNorm(4, 32)
        self.se1 = nn.Conv2d(32, 8, 1)
        self.se2 = nn.Conv2d(8, 32, 1)
        self.pw = nn.Conv2d(32, 24, 1)
        self.ln = nn.LayerNorm(24)
        self.fc1 = nn.Linear(24 * 2 * 2, 40)
        self.fc2 = nn.Linear(40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        y = torch.cat([self.a(x), self.b(x)], 1)
        b, c, h, w = y.shape
        y = y.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)  # channel shuffle
        y1, y2 = y.chunk(2, dim=1)
        y = torch.cat([y2, F.relu(y1)], 1)
        y = self.gn(self.dw(y))
        y = y * torch.sigmoid(self.se2(F.relu(self.se1(y.mean((2, 3), keepdim=True)))))
        z = self.pw(y)
        z = self.ln(z.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        z = F.adaptive_avg_pool2d(z, 2).flatten(1)
        return self.fc2(F.relu(self.fc1(z)))


class CumsumNet(nn.Module):
    """Uses an op slimforge has no rule for (cumsum over channels) inside ``odd``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.odd = Odd()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.odd(self.conv(x)).mean((2, 3)))


class Odd(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erfinv(x.tanh() * 0.5)


class WeightlessNorms(nn.Module):
    """Norms without weights keep their width only in normalized_shape (OLMo's LayerNorm, DiT
    blocks); the residual width passes through one. x: (batch, 8) -> (batch, 4)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 4)
        self.ln = nn.LayerNorm(32, elementwise_affine=False)
        self.rms = nn.RMSNorm([32], elementwise_affine=False)

    def forward(self, x):
        h = self.a(x)
        h = h + self.b(self.ln(h))
        return self.c(self.rms(h))


class RecurrentNet(nn.Module):
    """Linear -> recurrent stack -> last step -> linear. x: (batch, 5, 6) -> (batch, 3)."""

    def __init__(self, cell: str = "lstm", num_layers: int = 1, bidirectional: bool = False, proj_size: int = 0):
        super().__init__()
        kinds = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        extra = {"proj_size": proj_size} if proj_size else {}
        self.a = nn.Linear(6, 16)
        self.rnn = kinds[cell](16, 24, num_layers=num_layers, batch_first=True, bidirectional=bidirectional, **extra)
        self.b = nn.Linear((proj_size or 24) * (2 if bidirectional else 1), 3)

    def forward(self, x):
        y, _ = self.rnn(torch.relu(self.a(x)))
        return self.b(y[:, -1])


def recurrent_net(cell: str = "lstm", num_layers: int = 1, bidirectional: bool = False, proj_size: int = 0) -> nn.Module:
    return RecurrentNet(cell, num_layers, bidirectional, proj_size)


def weightless_norms() -> nn.Module:
    return WeightlessNorms()


def plain_net() -> nn.Module:
    return PlainNet()


def zoo_net() -> nn.Module:
    return ZooNet()


def tiny_bert(num_labels: int = 3) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, num_labels=num_labels, attn_implementation="eager",
    )
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def tiny_gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=100, n_positions=32, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(config)


def tiny_llama() -> nn.Module:
    """Grouped-query attention: 4 query heads share 2 key/value heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=64,
                         intermediate_size=128, vocab_size=100, max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def tiny_falcon() -> nn.Module:
    """Falcon's original layout: a fused query_key_value with rows (heads, 3, head_dim), FalconLinear (x @ W.T)."""
    from transformers import FalconConfig, FalconForCausalLM

    config = FalconConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          new_decoder_architecture=False, multi_query=False, pad_token_id=0)
    torch.manual_seed(0)
    return FalconForCausalLM(config)


def tiny_falcon_rw() -> nn.Module:
    """Falcon-RW: the original layout with ALiBi, the bias folded into the attention mask for every head."""
    from transformers import FalconConfig, FalconForCausalLM

    config = FalconConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, alibi=True,
                          new_decoder_architecture=False, multi_query=False, parallel_attn=False, bias=True, pad_token_id=0)
    torch.manual_seed(0)
    return FalconForCausalLM(config)


def tiny_persimmon() -> nn.Module:
    """Persimmon: Falcon's (heads, 3, head_dim) fused rows without Falcon's flags, partial rotary, q/k LayerNorm."""
    from transformers import PersimmonConfig, PersimmonForCausalLM

    config = PersimmonConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                             pad_token_id=0)
    torch.manual_seed(0)
    return PersimmonForCausalLM(config)


def tiny_gpt_neox_japanese() -> nn.Module:
    """GPT-NeoX-Japanese: GPT-NeoX's (heads, 3 * head_size) rows with its own head count and zeros(batch * heads, q, k) scores."""
    from transformers import GPTNeoXJapaneseConfig, GPTNeoXJapaneseForCausalLM

    config = GPTNeoXJapaneseConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_multiple_size=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return GPTNeoXJapaneseForCausalLM(config)


def tiny_xlnet() -> nn.Module:
    """XLNet: (d_model, n_head, d_head) projection parameters through einsum, relative attention."""
    from transformers import XLNetConfig, XLNetForSequenceClassification

    torch.manual_seed(0)
    return XLNetForSequenceClassification(XLNetConfig(vocab_size=100, d_model=64, n_layer=2, n_head=4, d_inner=128))


def tiny_deberta_v1() -> nn.Module:
    """DeBERTa (v1) with relative attention: a fused in_proj as (heads, 3 * head_size), q_bias / v_bias."""
    from transformers import DebertaConfig, DebertaForSequenceClassification

    config = DebertaConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                           max_position_embeddings=64, relative_attention=True, pos_att_type=["p2c", "c2p"], max_relative_positions=16)
    torch.manual_seed(0)
    return DebertaForSequenceClassification(config)


def tiny_xlm() -> nn.Module:
    """XLM: q_lin / k_lin / v_lin / out_lin, n_heads; its mask expanded over the heads with expand_as."""
    from transformers import XLMConfig, XLMForSequenceClassification

    torch.manual_seed(0)
    return XLMForSequenceClassification(XLMConfig(vocab_size=100, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=64))


def tiny_ctrl() -> nn.Module:
    """CTRL: Wq / Wk / Wv / dense, num_heads."""
    from transformers import CTRLConfig, CTRLForSequenceClassification

    torch.manual_seed(0)
    return CTRLForSequenceClassification(CTRLConfig(vocab_size=100, n_embd=64, n_layer=2, n_head=4, dff=128, n_positions=64, pad_token_id=0))


def tiny_openai_gpt() -> nn.Module:
    """OpenAI GPT: a fused Conv1D c_attn split by split_size, head size width // n_head."""
    from transformers import OpenAIGPTConfig, OpenAIGPTLMHeadModel

    torch.manual_seed(0)
    return OpenAIGPTLMHeadModel(OpenAIGPTConfig(vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64))


def tiny_modernbert() -> nn.Module:
    """ModernBERT: a fused Wqkv viewed as (3, heads, head_dim), unbound; Wo."""
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    config = ModernBertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                              max_position_embeddings=64, pad_token_id=0)
    torch.manual_seed(0)
    return ModernBertForSequenceClassification(config)


def tiny_mpt() -> nn.Module:
    """MPT: a fused Wqkv chunked into q, k, v; the model-wide ALiBi bias picked per layer by a stand-in forward."""
    from transformers import MptConfig, MptForCausalLM

    torch.manual_seed(0)
    return MptForCausalLM(MptConfig(vocab_size=100, d_model=64, n_heads=4, n_layers=2, max_seq_len=64))


def tiny_minicpm3() -> nn.Module:
    """MiniCPM3: multi-head latent attention (q_a/q_b_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj, a shared rotary key)."""
    from transformers import MiniCPM3Config, MiniCPM3ForCausalLM

    torch.manual_seed(0)
    return MiniCPM3ForCausalLM(MiniCPM3Config(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              num_key_value_heads=4, intermediate_size=128, max_position_embeddings=64,
                                              pad_token_id=0, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8,
                                              qk_rope_head_dim=8, v_head_dim=16))


def tiny_bloom() -> nn.Module:
    """BLOOM: query_key_value as (heads, 3, head_dim), heads merged with the batch; the model-wide ALiBi bias
    picked per layer by a stand-in forward."""
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    return BloomForCausalLM(BloomConfig(vocab_size=100, hidden_size=64, n_layer=2, n_head=4))


def tiny_squeezebert() -> nn.Module:
    """SqueezeBERT with ungrouped 1x1 Conv1d query/key/value (grouped ones keep their heads)."""
    from transformers import SqueezeBertConfig, SqueezeBertForSequenceClassification

    config = SqueezeBertConfig(vocab_size=100, hidden_size=64, embedding_size=64, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=128, max_position_embeddings=64, q_groups=1, k_groups=1, v_groups=1)
    torch.manual_seed(0)
    return SqueezeBertForSequenceClassification(config)


def tiny_convbert() -> nn.Module:
    """ConvBERT: 4 self-attention heads beside 4 span-based convolution heads (num_attention_heads 8, head_ratio 2)."""
    from transformers import ConvBertConfig, ConvBertForSequenceClassification

    config = ConvBertConfig(vocab_size=100, hidden_size=64, embedding_size=64, num_hidden_layers=2, num_attention_heads=8,
                            intermediate_size=128, max_position_embeddings=64, conv_kernel_size=5, num_labels=3)
    torch.manual_seed(0)
    return ConvBertForSequenceClassification(config)


def tiny_falcon_grouped() -> nn.Module:
    """Falcon's new_decoder_architecture: query_key_value rows (kv heads, queries per kv head + 2, head_dim)."""
    from transformers import FalconConfig, FalconForCausalLM

    config = FalconConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
                          new_decoder_architecture=True, pad_token_id=0)
    torch.manual_seed(0)
    return FalconForCausalLM(config)


def tiny_gpt_bigcode() -> nn.Module:
    """GPT-BigCode (StarCoder), multi-query: c_attn split into (query heads, one key head, one value head)."""
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    config = GPTBigCodeConfig(vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64, multi_query=True,
                              bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPTBigCodeForCausalLM(config)


def tiny_phi3() -> nn.Module:
    """Phi-3: one fused qkv_proj (query heads, then key/value heads), sliced at bounds computed from the config."""
    from transformers import Phi3Config, Phi3ForCausalLM

    config = Phi3Config(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=128, max_position_embeddings=64, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return Phi3ForCausalLM(config)


def tiny_gpt_neox() -> nn.Module:
    """GPT-NeoX (Pythia): query_key_value rows (heads, 3 * head_size), no head count attribute."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                           max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(config)


def tiny_cvt_classifier() -> nn.Module:
    """CvT: convolutional projections, head size embed_dim // num_heads computed in the forward."""
    from transformers import CvtConfig, CvtForImageClassification

    config = CvtConfig(embed_dim=[16, 32, 64], num_heads=[2, 2, 4], depth=[1, 2, 3], num_labels=5)  # depth: drop_path_rates by stage
    torch.manual_seed(0)
    return CvtForImageClassification(config)


def tiny_hiera_classifier() -> nn.Module:
    """transformers' Hiera: a fused qkv, query max-pooling, heads merged back to hidden_size_output."""
    from transformers import HieraConfig, HieraForImageClassification

    config = HieraConfig(num_labels=5, image_size=[64, 64], embed_dim=32, depths=[1, 1, 1, 1], num_heads=[2, 2, 4, 8])
    torch.manual_seed(0)
    return HieraForImageClassification(config)


def tiny_pegasus_x() -> nn.Module:
    """PEGASUS-X: global-local attention in the encoder, its heads merged to the input's width by its own forward."""
    from transformers import PegasusXConfig, PegasusXForConditionalGeneration

    config = PegasusXConfig(vocab_size=100, d_model=64, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
                            decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64,
                            block_size=4, num_global_tokens=4, decoder_start_token_id=0)
    torch.manual_seed(0)
    return PegasusXForConditionalGeneration(config)


def tiny_distilbert() -> nn.Module:
    """DistilBERT attention: n_heads, attention_head_size, q_lin/k_lin/v_lin/out_lin."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=100, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=32)
    torch.manual_seed(0)
    return DistilBertForSequenceClassification(config)


def tiny_t5_tagger() -> nn.Module:
    """T5's encoder with a token classifier (T5Attention: n_heads, key_value_proj_dim, q/k/v/o; one
    relative position bias column per head, shared by every layer)."""
    from transformers import T5Config, T5ForTokenClassification

    config = T5Config(vocab_size=100, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, num_labels=5)
    torch.manual_seed(0)
    return T5ForTokenClassification(config)


def tiny_clip_classifier() -> nn.Module:
    """CLIP's vision tower with a classification head (CLIPAttention: num_heads, head_dim, q/k/v/out_proj)."""
    from transformers import CLIPConfig, CLIPForImageClassification

    vision = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, eos_token_id=2)
    torch.manual_seed(0)
    return CLIPForImageClassification(CLIPConfig(vision_config=vision, text_config=text, num_labels=5))


def tiny_torchvision_vit() -> nn.Module:
    """torchvision's ViT (nn.MultiheadAttention inside), small. x: (batch, 3, 32, 32) -> (batch, 5)."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=5)


class EncoderNet(nn.Module):
    """nn.TransformerEncoder (batch_first, fused inference path available). x: (batch, 5, 6) -> (batch, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.enc(self.inp(x), src_key_padding_mask=pad)).mean(1)


def encoder_net() -> nn.Module:
    torch.manual_seed(0)
    return EncoderNet()


def tiny_torchvision_swin() -> nn.Module:
    """torchvision's Swin (v1), small: two stages of 2 blocks. x: (batch, 3, 64, 64) -> (batch, 5)."""
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    return SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4], num_classes=5)


def tiny_torchvision_swin_v2() -> nn.Module:
    """torchvision's Swin v2 (cosine attention, continuous position bias), small. x: (batch, 3, 64, 64) -> (batch, 5)."""
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

    torch.manual_seed(0)
    return SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4], num_classes=5,
                           block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2)


def tiny_torchvision_maxvit() -> nn.Module:
    """torchvision's MaxViT, small: two stages of one block. x: (batch, 3, 64, 64) -> (batch, 5)."""
    from torchvision.models.maxvit import MaxVit

    torch.manual_seed(0)
    return MaxVit(input_size=(64, 64), stem_channels=16, partition_size=2, block_channels=[32, 64], block_layers=[1, 1],
                  head_dim=8, stochastic_depth_prob=0.0, num_classes=5)


def tiny_caformer(num_classes: int = 5) -> nn.Module:
    """timm's CAFormer (MetaFormer: two convolution stages, two attention stages), one block per stage."""
    from timm.models.metaformer import Attention, LayerNorm2dNoBias, LayerNormNoBias, MetaFormer, SepConv

    return MetaFormer(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), token_mixers=(SepConv, SepConv, Attention, Attention),
                      norm_layers=(LayerNorm2dNoBias,) * 2 + (LayerNormNoBias,) * 2, num_classes=num_classes)


class _SelfAttentionNet(nn.Module):
    """conv -> timm self-attention layer (no output projection) -> norm, ReLU -> pool -> linear. x: (B, 3, 16, 16)."""

    def __init__(self, attention: nn.Module, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.self_attn, self.norm, self.fc = attention, nn.BatchNorm2d(32), nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.self_attn(self.stem(x)))).mean((2, 3)))


def tiny_botnet(num_classes: int = 5) -> nn.Module:
    """timm's BottleneckAttn (BoTNet): heads folded into the batch, relative position logits."""
    from timm.layers.bottleneck_attn import BottleneckAttn

    return _SelfAttentionNet(BottleneckAttn(32, feat_size=(16, 16), num_heads=4), num_classes)


def tiny_halonet(num_classes: int = 5) -> nn.Module:
    """timm's HaloAttn (HaloNet): blocked local attention over windows with a halo."""
    from timm.layers.halo_attn import HaloAttn

    return _SelfAttentionNet(HaloAttn(32, feat_size=(16, 16), num_heads=4, block_size=4, halo_size=1), num_classes)


def tiny_bamba() -> nn.Module:
    """Bamba: a Mamba-2 mixer (8 state-space heads of 16, one group of B and C) and an attention layer."""
    from transformers import BambaConfig, BambaForCausalLM

    config = BambaConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, attn_layer_indices=[1], mamba_n_heads=8, mamba_d_head=16, mamba_d_state=16,
                         pad_token_id=0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return BambaForCausalLM(config)


def tiny_mamba2_grouped() -> nn.Module:
    """Mamba-2 with four groups of B and C, each shared by 2 of its 8 heads."""
    from transformers import Mamba2Config, Mamba2ForCausalLM

    config = Mamba2Config(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_heads=8, head_dim=16, state_size=16,
                          n_groups=4, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return Mamba2ForCausalLM(config)


def tiny_mamba() -> nn.Module:
    """Mamba (v1): a selective scan over 128 inner channels, each with its own 16-wide state."""
    from transformers import MambaConfig, MambaForCausalLM

    config = MambaConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, state_size=16, pad_token_id=0,
                         bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return MambaForCausalLM(config)


def tiny_kimi_linear() -> nn.Module:
    """Kimi Linear: a Kimi Delta Attention layer (4 linear heads of 16, per-head forget gate) and a latent-attention layer."""
    from transformers import KimiLinearConfig, KimiLinearForCausalLM

    config = KimiLinearConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                              intermediate_size=128, max_position_embeddings=64, num_experts=4, num_experts_per_tok=2,
                              moe_intermediate_size=64, linear_num_heads=4, linear_head_dim=16, q_lora_rank=32, kv_lora_rank=16,
                              qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16, layer_types=["linear_attention", "full_attention"],
                              pad_token_id=0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return KimiLinearForCausalLM(config)


def _gated_delta_config(config_cls, **extra):
    """Two Gated DeltaNet layers (4 key heads of 16, each serving 2 value heads of 8) and a full-attention layer."""
    return config_cls(vocab_size=100, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, intermediate_size=128, max_position_embeddings=64, linear_num_key_heads=4,
                      linear_num_value_heads=8, linear_key_head_dim=16, linear_value_head_dim=8,
                      layer_types=["linear_attention", "linear_attention", "full_attention"], pad_token_id=0,
                      bos_token_id=0, eos_token_id=0, **extra)


def tiny_qwen3_next() -> nn.Module:
    """Qwen3-Next: Gated DeltaNet with ``in_proj_qkvz`` / ``in_proj_ba`` rows grouped per key head, and MoE MLPs."""
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    torch.manual_seed(0)
    return Qwen3NextForCausalLM(_gated_delta_config(Qwen3NextConfig, num_experts=4, num_experts_per_tok=2,
                                                    moe_intermediate_size=64, shared_expert_intermediate_size=64))


def tiny_qwen3_5_text() -> nn.Module:
    """Qwen3.5's language model: Gated DeltaNet with ``in_proj_qkv`` ([q; k; v] rows), ``in_proj_z``, ``in_proj_b``
    and ``in_proj_a``."""
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    torch.manual_seed(0)
    return Qwen3_5ForCausalLM(_gated_delta_config(Qwen3_5TextConfig))


def tiny_olmo_hybrid() -> nn.Module:
    """OLMo hybrid: Gated DeltaNet with separate ``q_proj`` ... ``b_proj`` and ``g_proj`` (the output gate)."""
    from transformers import OlmoHybridConfig, OlmoHybridForCausalLM

    torch.manual_seed(0)
    return OlmoHybridForCausalLM(_gated_delta_config(OlmoHybridConfig))


# ----------------------------------------------------------------------------- channel blocks of timm's CNN families


class _Eca(nn.Module):
    """ECA channel attention: the pooled channels as a sequence, mixed with their neighbours by a Conv1d of kernel 3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean((2, 3)).view(x.shape[0], 1, -1)).sigmoid()
        return x * y.view(x.shape[0], -1, 1, 1)


class _MixedConv(nn.ModuleDict):
    """MixNet's mixed convolution (timm's MixedConv2d): channels split by ``self.splits``, one kernel size per piece."""

    def __init__(self, channels: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.splits = [channels // len(kernels)] * len(kernels)
        self.in_channels = self.out_channels = channels
        for i, (k, c) in enumerate(zip(kernels, self.splits)):
            self.add_module(str(i), nn.Conv2d(c, c, k, padding=k // 2, groups=c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(p) for conv, p in zip(self.values(), torch.split(x, self.splits, 1))], 1)


class _CrossStage(nn.Module):
    """A CSP stage: the expanded channels split in halves by a width the stage keeps (``x.split(self.expand_chs // 2)``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.expand_chs = 2 * channels
        self.conv_exp = nn.Conv2d(channels, self.expand_chs, 1)
        self.block = nn.Conv2d(channels, channels, 3, padding=1)
        self.transition = nn.Conv2d(self.expand_chs, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs, xb = self.conv_exp(x).split(self.expand_chs // 2, dim=1)
        return self.transition(torch.cat([xs, self.block(xb.relu())], 1))


class _Res2Split(nn.Module):
    """Res2Net's split: pieces of ``self.width`` channels, each through its own convolution, the last passed on."""

    def __init__(self, width: int, scale: int) -> None:
        super().__init__()
        self.width = width
        self.stem = nn.Conv2d(16, width * scale, 1)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(scale - 1))
        self.out = nn.Conv2d(width * scale, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(self.stem(x), self.width, 1)
        return self.out(torch.cat([conv(p) for conv, p in zip(self.convs, parts)] + [parts[-1]], 1))


class _StdConv(nn.Conv2d):
    """timm's ScaledStdConv2d: the weight standardised per output channel in forward, as (1, out, in * kh * kw)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=1e-6)
        return F.conv2d(x, w.reshape_as(self.weight), self.bias, self.stride, self.padding, self.dilation, self.groups)


class ChannelBlocksNet(nn.Module):
    """The channel blocks that kept timm CNNs' channels whole until session 21 (ECA-ResNet, MixNet, CSPNet, Res2Net,
    NFNet), one each. x: (batch, 3, 8, 8) -> (batch, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.eca = _Eca()
        self.expand = nn.Conv2d(16, 48, 1)
        self.mixed = _MixedConv(48, (3, 5, 7))
        self.project = nn.Conv2d(48, 16, 1)
        self.csp = _CrossStage(16)
        self.res2 = _Res2Split(8, 4)
        self.std = _StdConv(16, 32, 3, padding=1, groups=2)
        self.std2 = _StdConv(32, 16, 3, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.eca(self.stem(x).relu())
        x = x + self.project(self.mixed(self.expand(x).relu()).relu())
        x = self.res2(self.csp(x).relu()).relu()
        x = self.std2(self.std(x).relu())
        return self.fc(x.mean((2, 3)))


def channel_blocks_net() -> nn.Module:
    return ChannelBlocksNet()


class _PerceiverEncoder(nn.Module):
    """Perceiver's encoder over token ids (a cross-attention of 2 heads into 16 latents, two self-attentions of 4
    heads, value heads wider than query/key heads): the latents out. Its classification decoder's one head cannot go."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import PerceiverConfig, PerceiverModel
        from transformers.models.perceiver.modeling_perceiver import PerceiverTextPreprocessor

        config = PerceiverConfig(vocab_size=100, d_model=32, d_latents=48, num_latents=16, num_blocks=1, num_self_attends_per_block=2,
                                 num_self_attention_heads=4, num_cross_attention_heads=2, qk_channels=32, v_channels=48,
                                 max_position_embeddings=16)
        self.perceiver = PerceiverModel(config, input_preprocessor=PerceiverTextPreprocessor(config))

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.perceiver(inputs=ids, attention_mask=attention_mask).last_hidden_state


def tiny_perceiver() -> nn.Module:
    torch.manual_seed(0)
    return _PerceiverEncoder()


def tiny_cpmant() -> nn.Module:
    """CPM-Ant: 4 heads of 16 whose scores add one position bias, computed once for both layers."""
    from transformers import CpmAntConfig, CpmAntForCausalLM

    config = CpmAntConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, dim_head=16, dim_ff=128)
    torch.manual_seed(0)
    return CpmAntForCausalLM(config)


class ConformerConvNet(nn.Module):
    """A Conformer convolution module: pointwise to 2x, GLU over the channels, depthwise, pointwise back.
    x: (batch, 16, time) -> (batch, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.pointwise1 = nn.Conv1d(16, 64, 1)
        self.depthwise = nn.Conv1d(32, 32, 5, padding=2, groups=32)
        self.pointwise2 = nn.Conv1d(32, 16, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pointwise2(self.depthwise(F.glu(self.pointwise1(x), dim=1)).relu())
        return self.fc((x + h).mean(-1))


def conformer_conv_net() -> nn.Module:
    return ConformerConvNet()


class WeightNormNet(nn.Module):
    """wav2vec 2.0's positional convolution: a grouped Conv1d along time whose weight is normalised per kernel tap
    (weight_norm, dim 2) over all its channels, added to the residual; and a weight-normalised Linear (dim 0).
    x: (batch, time, 8) -> (batch, time, 3)."""

    def __init__(self) -> None:
        super().__init__()
        weight_norm = nn.utils.parametrizations.weight_norm
        self.a = nn.Linear(8, 32)
        self.pos = weight_norm(nn.Conv1d(32, 32, 5, padding=2, groups=4), name="weight", dim=2)
        self.wn0 = weight_norm(nn.Linear(32, 16), dim=0)
        self.b = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = h + self.pos(h.transpose(1, 2)).transpose(1, 2)
        return self.b(torch.relu(self.wn0(h)))


def weight_norm_net() -> nn.Module:
    return WeightNormNet()


class PerExpertNormNet(nn.Module):
    """Ergo's per-expert norm, ``rms_norm(x, (x.shape[-1],))`` with the scale applied after: a weightless norm whose
    size the code reads off the tensor (``fixed``: a size written in the code instead). x: (batch, 8) -> (batch, 3)."""

    def __init__(self, fixed: bool = False) -> None:
        super().__init__()
        self.fixed = fixed
        self.a, self.b = nn.Linear(8, 32), nn.Linear(32, 3)
        self.scale = nn.Parameter(torch.ones(32))
        self.up, self.down = nn.Linear(8, 16), nn.Linear(16, 8)  # prunable whatever the norm does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x + self.down(self.up(x).relu()))
        return self.b(F.rms_norm(h, (32,) if self.fixed else (h.shape[-1],)) * self.scale)


def per_expert_norm_net(fixed: bool = False) -> nn.Module:
    return PerExpertNormNet(fixed)


def tiny_wav2vec2() -> nn.Module:
    """wav2vec 2.0 for audio classification: 3 feature convolutions, a 4-group weight-normalised positional convolution,
    2 layers of 4 heads of 16; masking on in training (``masked_spec_embed`` replaces masked frames)."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32, 32),
                            conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            num_labels=5, classifier_proj_size=32, mask_time_prob=0.5, mask_time_length=2, layerdrop=0.0)
    torch.manual_seed(0)
    return Wav2Vec2ForSequenceClassification(config)


def tiny_wav2vec2_bert() -> nn.Module:
    """Wav2Vec2-BERT: Conformer layers (relative-key attention of 4 heads of 16, a GLU convolution module)."""
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertForSequenceClassification

    config = Wav2Vec2BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, output_hidden_size=64,
                                conv_depthwise_kernel_size=7, left_max_position_embeddings=16, right_max_position_embeddings=4,
                                num_labels=5, classifier_proj_size=32)
    torch.manual_seed(0)
    return Wav2Vec2BertForSequenceClassification(config)


_MOE = dict(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
            max_position_embeddings=64, pad_token_id=0, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=16)


def _causal_lm(config_cls: str, model_cls: str, **kwargs) -> nn.Module:
    import transformers

    torch.manual_seed(0)
    return getattr(transformers, model_cls)(getattr(transformers, config_cls)(**{**_MOE, **kwargs}))


def tiny_mimo_v2() -> nn.Module:
    """MiMo-V2-Flash: value heads of v_head_dim 32, wider than its query/key heads of 16."""
    return _causal_lm("MiMoV2FlashConfig", "MiMoV2FlashForCausalLM", n_routed_experts=4, v_head_dim=32)


def tiny_minicpm5_moe() -> nn.Module:
    """MiniCPM5-MoE: a gated query projection ``q_gate_proj`` (each head's query and its gate)."""
    return _causal_lm("MiniCPM5MoeConfig", "MiniCPM5MoeForCausalLM", n_routed_experts=4)


def tiny_ergo() -> nn.Module:
    """Ergo: a fused qkv_proj split by the config's head counts, experts with a per-expert weightless RMS norm."""
    return _causal_lm("ErgoConfig", "ErgoForCausalLM", first_dense_intermediate_size=128, shared_intermediate_size=64)


def tiny_inkling() -> nn.Module:
    """Inkling: a router over routed and shared experts (``n_total_experts`` rows) reshaping to its ``hidden_dim``."""
    return _causal_lm("InklingTextConfig", "InklingForCausalLM", n_routed_experts=4, swa_num_attention_heads=4,
                      swa_num_key_value_heads=2, swa_head_dim=16)


def tiny_inkling2() -> nn.Module:
    """Inkling 2: attention of no registered form, with a sink logit per head, a relative position bias per head
    gathered by (q, k) distances expanded to (batch, heads, q, k), and block states that start empty
    (``new_zeros(b, l, 0, width)``)."""
    return _causal_lm("Inkling2TextConfig", "Inkling2ForCausalLM", head_dim=16, swa_num_attention_heads=4,
                      swa_num_key_value_heads=2, swa_head_dim=16, unpadded_vocab_size=120, n_routed_experts=4,
                      sliding_window_size=8, rel_extent=16)


def tiny_t5gemma2_classifier() -> nn.Module:
    """T5Gemma 2's classifier, which calls its encoder-decoder with ``use_cache=False, **kwargs`` itself."""
    import transformers

    torch.manual_seed(0)
    text = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, head_dim=16, max_position_embeddings=64, pad_token_id=0)
    vision = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
    config = transformers.T5Gemma2Config(encoder=dict(text_config=text, vision_config=vision), decoder=text, num_labels=5)
    return transformers.T5Gemma2ForSequenceClassification(config)


def tiny_privacy_filter() -> nn.Module:
    """OpenAI Privacy Filter: a token classifier whose experts loop over the experts the data hit (``nonzero``)."""
    return _causal_lm("OpenAIPrivacyFilterConfig", "OpenAIPrivacyFilterForTokenClassification", num_labels=5)


class AttributeSplitNet(nn.Module):
    """Unequal splits sized by the module's own attributes: FasterNet's partial convolution (``dim_conv3`` and
    ``dim_untouched``, one attribute a piece) and Inception-NeXt's token mixer (``split_indexes``, one tuple).
    x: (batch, 3, 8, 8) -> (batch, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 48, 1)
        self.dim_conv3, self.dim_untouched = 16, 32
        self.partial = nn.Conv2d(16, 16, 3, padding=1)
        self.split_indexes = (24, 8, 8, 8)
        self.hw, self.w, self.h = (nn.Conv2d(8, 8, k, padding=tuple(p // 2 for p in k), groups=8) for k in ((3, 3), (1, 5), (5, 1)))
        self.fc = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x1, x2 = torch.split(x, [self.dim_conv3, self.dim_untouched], dim=1)
        x = torch.cat((self.partial(x1), x2), 1).relu()
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        x = torch.cat((x_id, self.hw(x_hw), self.w(x_w), self.h(x_h)), 1)
        return self.fc(x.mean((2, 3)))


def attribute_split_net() -> nn.Module:
    return AttributeSplitNet()


class AttributeSliceNet(nn.Module):
    """Slices cut at an index the module keeps: ReXNet's partial residual (``x[:, 0:self.in_channels] + shortcut``)
    and DPN's two paths (``x[:, :self.num_1x1_c]``, ``x[:, self.num_1x1_c:]``). x: (batch, 3, 8, 8) -> (batch, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_channels, self.num_1x1_c = 16, 24
        self.stem = nn.Conv2d(3, 16, 1)
        self.expand = nn.Conv2d(16, 40, 3, padding=1)
        self.residual, self.dense = nn.Conv2d(24, 24, 1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(40, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.stem(x)
        x = self.expand(shortcut.relu())
        x = torch.cat([x[:, 0:self.in_channels] + shortcut, x[:, self.in_channels:]], dim=1)
        x = torch.cat([self.residual(x[:, :self.num_1x1_c]), self.dense(x[:, self.num_1x1_c:])], dim=1)
        return self.fc(x.mean((2, 3)))


def attribute_slice_net() -> nn.Module:
    return AttributeSliceNet()


def tiny_deepseek_v2() -> nn.Module:
    """DeepSeek-V2: latent attention (queries of qk_nope 8 + qk_rope 8 per head, values of 16) and routed experts."""
    return _causal_lm("DeepseekV2Config", "DeepseekV2ForCausalLM", n_routed_experts=4, first_k_dense_replace=1, n_group=1,
                      topk_group=1, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8,
                      qk_rope_head_dim=8, v_head_dim=16)


class PartialSingleHeadNet(nn.Module):
    """SHViT's single-head attention on part of the channels: ``split(x, [self.pdim, self.dim - self.pdim])`` and
    ``split(qkv, [self.qk_dim, self.qk_dim, self.pdim])``. x: (batch, 3, 4, 4) -> (batch, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.dim, self.pdim, self.qk_dim = 48, 16, 8
        self.stem = nn.Conv2d(3, 48, 1)
        self.qkv = nn.Conv2d(16, 2 * 8 + 16, 1)
        self.proj = nn.Conv2d(48, 48, 1)
        self.fc = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, _, h, w = x.shape
        x1, x2 = torch.split(x, [self.pdim, self.dim - self.pdim], dim=1)
        q, k, v = torch.split(self.qkv(x1), [self.qk_dim, self.qk_dim, self.pdim], dim=1)
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
        attn = ((q.transpose(-2, -1) @ k) * self.qk_dim ** -0.5).softmax(dim=-1)
        x1 = (v @ attn.transpose(-2, -1)).reshape(b, self.pdim, h, w)
        return self.fc(self.proj(torch.cat([x1, x2], dim=1)).mean((2, 3)))


def partial_single_head_net() -> nn.Module:
    return PartialSingleHeadNet()


_VIS = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
_LLAMA = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
              max_position_embeddings=64, pad_token_id=0, model_type="llama")
IMAGE_TOKEN = 99


def tiny_llava() -> nn.Module:
    """LLaVA: a CLIP vision tower (16 patches), a projector and a Llama decoder whose image tokens take the patches."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(vision_config=dict(_VIS, model_type="clip_vision_model"), text_config=_LLAMA, image_token_index=IMAGE_TOKEN,
                         projector_hidden_act="gelu")
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(config)


def tiny_idefics3() -> nn.Module:
    """Idefics3: images batched by a count the data decides (only those holding pixels), pixel-shuffled 2 x 2 into 4 tokens."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    config = Idefics3Config(vision_config=dict(_VIS, model_type="idefics3_vision"), text_config=_LLAMA, image_token_id=IMAGE_TOKEN, scale_factor=2)
    torch.manual_seed(0)
    return Idefics3ForConditionalGeneration(config)


def image_text_inputs(tokens: int, frames: int = 0) -> dict:
    """``tokens`` image placeholders then 12 text tokens; one 32 px image per example (an image-count axis if ``frames``)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.full((2, tokens), IMAGE_TOKEN), torch.randint(3, 90, (2, 12), generator=g)], 1)
    pixels = torch.randn(2, *([frames] if frames else []), 3, 32, 32, generator=g)
    return {"input_ids": ids, "pixel_values": pixels}


def tiny_hf(config_cls: str, model_cls: str, **kwargs) -> nn.Module:
    import transformers

    torch.manual_seed(0)
    return getattr(transformers, model_cls)(getattr(transformers, config_cls)(**kwargs))


class ShuffleUpsampler(nn.Module):
    """A super-resolution tail: conv to 4 x 8 channels, ``pixel_shuffle(2)`` to 8, and a weightless module that
    views its input to ``self.embed_dim`` channels (Swin2SR's patch un-embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.up = nn.Conv2d(16, 32, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.unembed = Unembed(8)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = self.shuffle(self.up(torch.relu(self.head(x))))
        b, c, h, w = y.shape
        return self.tail(self.unembed(y.flatten(2).transpose(1, 2), (h, w)))


class Unembed(nn.Module):
    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim

    def forward(self, x, size):
        return x.transpose(1, 2).view(x.shape[0], self.embed_dim, size[0], size[1])


class PatchPicker(nn.Module):
    """Picks tokens of (batch, tokens, channels) by two index tensors, ``x[rows, cols]`` (ViLT's patch selection)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        h = self.embed(x)
        rows = torch.arange(h.shape[0]).repeat_interleave(3)
        cols = torch.tensor([0, 2, 4] * h.shape[0])
        picked = h[rows, cols].view(h.shape[0], 3, -1)
        return self.head(self.mlp(picked).mean(1))


def tiny_timesformer() -> nn.Module:
    return tiny_hf("TimesformerConfig", "TimesformerForVideoClassification", **_VIS, num_frames=4, num_labels=5)


def tiny_blip() -> nn.Module:
    text = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                max_position_embeddings=64, model_type="blip_text_model", bos_token_id=1, sep_token_id=2, pad_token_id=0)
    return tiny_hf("BlipConfig", "BlipForConditionalGeneration", vision_config=_VIS, text_config=text, projection_dim=64)


def tiny_pix2struct() -> nn.Module:
    return tiny_hf("Pix2StructConfig", "Pix2StructForConditionalGeneration",
                   vision_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, d_ff=128, d_kv=16,
                                      patch_embed_hidden_size=48, seq_len=16),
                   text_config=dict(vocab_size=128, hidden_size=64, num_layers=2, num_heads=4, d_ff=128, d_kv=16))


def pix2struct_patches() -> torch.Tensor:
    """16 flattened 4 x 4 x 3 patches, each led by its row and column (1-based)."""
    rows_cols = torch.arange(16).view(1, 16, 1).expand(2, 16, 2) // 4 + 1
    return torch.cat([rows_cols, torch.randn(2, 16, 48, generator=torch.Generator().manual_seed(0))], 2).float()


class Qwen2VisionTower(nn.Module):
    """Qwen2-VL's vision tower alone: two 32 px images of 4 x 4 patches (2 frames each) packed into one sequence."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import Qwen2VLVisionConfig
        from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

        torch.manual_seed(0)
        self.visual = Qwen2VisionTransformerPretrainedModel(Qwen2VLVisionConfig(
            embed_dim=64, hidden_size=64, depth=2, num_heads=4, patch_size=8, spatial_merge_size=2, temporal_patch_size=2, in_chans=3))
        self.register_buffer("grid", torch.tensor([[1, 4, 4], [1, 4, 4]]), persistent=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.visual(patches, grid_thw=self.grid).pooler_output


class CachedCodebook(nn.Module):
    """Mimi's and EnCodec's vector quantizer: the nearest entry by ``torch.cdist``, the codebook a plain attribute
    ``_embed`` computed from buffers on the first forward (None in a freshly built model)."""

    def __init__(self, size: int = 16, dim: int = 8) -> None:
        super().__init__()
        self.embed_sum = nn.Buffer(torch.randn(size, dim))
        self.cluster_usage = nn.Buffer(torch.rand(size) + 0.5)
        self._embed = None

    @property
    def embed(self) -> torch.Tensor:
        if self._embed is None:
            self._embed = self.embed_sum / self.cluster_usage.clamp(min=1e-5)[:, None]
        return self._embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        index = torch.cdist(flat[None], self.embed[None])[0].argmin(dim=-1)
        return F.embedding(index, self.embed).view_as(x)


class CodebookNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encode = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 8))
        self.codebook = CachedCodebook()
        self.decode = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.codebook(self.encode(x)))


def codebook_net() -> nn.Module:
    return CodebookNet()


def tiny_lxmert() -> nn.Module:
    """LXMERT: language, vision and cross-modality layers, an attention that views its output to ``self.head_size``
    (every head's channels)."""
    import transformers

    torch.manual_seed(0)
    config = transformers.LxmertConfig(vocab_size=128, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                       l_layers=2, x_layers=1, r_layers=1, visual_feat_dim=32, max_position_embeddings=64)
    return transformers.LxmertModel(config)


def evo_norm_net() -> nn.Module:
    """conv -> timm's EvoNorm2dS0 (statistics over ``self.groups`` groups of channels, ``x.reshape(B, groups, C //
    groups, H, W)``, asserting ``C % groups == 0``) -> conv -> pool -> linear. x: (B, 3, 8, 8)."""
    from timm.layers import EvoNorm2dS0

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), EvoNorm2dS0(32, groups=8), nn.Conv2d(32, 16, 3, padding=1),
                        EvoNorm2dS0(16, groups=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    for norm in (net[1], net[3]):
        with torch.no_grad():  # not the identity it starts as, so that the kept channels' values are a real check
            norm.weight.uniform_(0.5, 1.5), norm.v.uniform_(0.5, 1.5), norm.bias.uniform_(-0.5, 0.5)
    return net


class GridSampledPositions(nn.Module):
    """Patches to tokens plus a position table resampled with ``F.grid_sample`` at each token's place (GLM-4V's vision
    embeddings), then an MLP and a classifier. x: (B, 16, 12) patches of a 4 x 4 grid."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Linear(12, 32)
        self.positions = nn.Parameter(torch.randn(9, 32))  # a 3 x 3 table
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        table = self.positions.T.reshape(1, -1, 3, 3).expand(b, -1, -1, -1)
        side = torch.linspace(-1, 1, 4)
        grid = torch.stack(torch.meshgrid(side, side, indexing="ij"), -1).reshape(1, n, 1, 2).expand(b, -1, -1, -1)
        positions = F.grid_sample(table, grid, align_corners=False).squeeze(-1).transpose(1, 2)  # (b, n, width)
        h = self.patch(x) + positions
        h = h + self.mlp(h)
        return self.head(h.mean(1))


def grid_sampled_positions_net() -> nn.Module:
    return GridSampledPositions()



class BinIntegral(nn.Module):
    """A box regressor over discrete bins (D-FINE's integral): per coordinate a softmax over ``BINS`` logits, then
    ``F.linear`` with a weight *vector* (the bins' values), a dot product with no output dimension. x: (B, N, 12)."""

    BINS = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mlp = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4 * self.BINS))
        self.register_buffer("bin_values", torch.linspace(-1.0, 1.0, self.BINS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        probs = F.softmax(self.mlp(x).reshape(-1, self.BINS), dim=1)
        return F.linear(probs, self.bin_values).reshape(b, n, 4)


def bin_integral_net() -> nn.Module:
    return BinIntegral()



class SignedGate(nn.Module):
    """A gate that takes the magnitude of one branch and the sign of another (Kolibri's indexer, ``torch.copysign``),
    then a classifier. x: (B, 12)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.magnitude, self.sign = nn.Linear(12, 32), nn.Linear(12, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.copysign(self.magnitude(x), self.sign(x)))


def signed_gate_net() -> nn.Module:
    return SignedGate()
