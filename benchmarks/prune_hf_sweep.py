"""One generic call on many Hugging Face transformers architectures: does
``slimforge.prune(model, x, ratio=0.3)`` prune, how many parameters go, are attention heads
removed, and does the pruned model save and reload with identical outputs? Issue 20's sweep (slow).

    OMP_NUM_THREADS=1 PYTHONPATH=. nice .venv/bin/python benchmarks/prune_hf_sweep.py [--models a,b | --held-out] [--ratio 0.3]

Each model is built from its config class (tiny, random init, no download: hidden 64, 2 layers,
4 heads, vocabulary 128, as the architecture allows), not with ``slimforge.create_model``: ``prune``
records the config as an ``hf:`` spec, so ``slimforge.save(model, out)`` + ``slimforge.load(out)``
is the documented path for transformers models a user built. Heads are counted from the attention
modules of a registered attention form (from their weights) and from attention written by hand (its head count
attribute, which pruning keeps in line; before 2026-12-06 these were left out of the count and counted as kept
whole); "attention kept whole" counts ``*Attention`` modules that are neither (their heads stay; their MLPs are
still pruned).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

warnings.filterwarnings("ignore")

TEXT = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=64)
DECODER = dict(TEXT, num_key_value_heads=2, pad_token_id=0)
VISION = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
              patch_size=8, num_labels=5)
SEQ2SEQ = dict(vocab_size=128, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64,
               pad_token_id=1, decoder_start_token_id=2)
SEGFORMER = dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 4, 8],
                 decoder_hidden_size=64, num_labels=5, image_size=32)

# name -> (config class, model class, config keywords, input kind)
MODELS: dict[str, tuple[str, str, dict, object]] = {
    # encoders (sequence classification)
    "bert": ("BertConfig", "BertForSequenceClassification", TEXT, "ids"),
    "roberta": ("RobertaConfig", "RobertaForSequenceClassification", dict(TEXT, pad_token_id=1), "ids"),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForSequenceClassification", dict(TEXT, pad_token_id=1), "ids"),
    "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification",
                   dict(vocab_size=128, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=64), "ids"),
    "albert": ("AlbertConfig", "AlbertForSequenceClassification", dict(TEXT, embedding_size=32), "ids"),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification", dict(TEXT, embedding_size=64), "ids"),
    "deberta-v2": ("DebertaV2Config", "DebertaV2ForSequenceClassification", TEXT, "ids"),
    "mpnet": ("MPNetConfig", "MPNetForSequenceClassification", dict(TEXT, pad_token_id=1), "ids"),
    "funnel": ("FunnelConfig", "FunnelForSequenceClassification", dict(vocab_size=128, block_sizes=[1, 1], d_model=64, n_head=4,
                                                                      d_head=16, d_inner=128), "ids"),
    # decoders (causal LM)
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=64), "ids"),
    "gpt-neo": ("GPTNeoConfig", "GPTNeoForCausalLM",
                dict(vocab_size=128, hidden_size=64, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]],
                     max_position_embeddings=64, window_size=16), "ids"),
    "gptj": ("GPTJConfig", "GPTJForCausalLM", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, rotary_dim=8,
                                                   n_positions=64), "ids"),
    "opt": ("OPTConfig", "OPTForCausalLM", dict(TEXT, ffn_dim=128, word_embed_proj_dim=64, pad_token_id=1), "ids"),
    "llama": ("LlamaConfig", "LlamaForCausalLM", DECODER, "ids"),
    "mistral": ("MistralConfig", "MistralForCausalLM", DECODER, "ids"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", DECODER, "ids"),
    "qwen2-mqa": ("Qwen2Config", "Qwen2ForCausalLM", dict(DECODER, num_key_value_heads=1), "ids"),  # multi-query
    "phi": ("PhiConfig", "PhiForCausalLM", DECODER, "ids"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(DECODER, head_dim=16), "ids"),
    "falcon": ("FalconConfig", "FalconForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
                                                        num_attention_heads=4, new_decoder_architecture=False,
                                                        multi_query=False, pad_token_id=0), "ids"),
    "llama-seqcls": ("LlamaConfig", "LlamaForSequenceClassification", dict(DECODER, num_labels=3), "ids"),
    # encoder-decoders
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                                                          num_heads=4, decoder_start_token_id=0), "seq2seq"),
    "bart": ("BartConfig", "BartForConditionalGeneration", SEQ2SEQ, "seq2seq"),
    "marian": ("MarianConfig", "MarianMTModel", dict(SEQ2SEQ, decoder_vocab_size=128, pad_token_id=127), "seq2seq"),
    "whisper": ("WhisperConfig", "WhisperForConditionalGeneration",
                dict(SEQ2SEQ, num_mel_bins=16, max_source_positions=32, max_target_positions=64), "audio"),
    # vision (image classification)
    "vit": ("ViTConfig", "ViTForImageClassification", VISION, "pixels"),
    "deit": ("DeiTConfig", "DeiTForImageClassification", VISION, "pixels"),
    "beit": ("BeitConfig", "BeitForImageClassification", dict(VISION, use_relative_position_bias=True), "pixels"),
    "dinov2": ("Dinov2Config", "Dinov2ForImageClassification", VISION, "pixels"),
    # bare backbones: their output is the hidden state, whose width (the residual) stays
    "bert-model": ("BertConfig", "BertModel", TEXT, "ids"),
    "dinov2-model": ("Dinov2Config", "Dinov2Model", VISION, "pixels"),
    "swin": ("SwinConfig", "SwinForImageClassification", dict(image_size=32, patch_size=2, embed_dim=32, depths=[1, 1],
                                                              num_heads=[2, 4], window_size=4, num_labels=5), "pixels"),
    "convnext": ("ConvNextConfig", "ConvNextForImageClassification",
                 dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_labels=5), "pixels"),
    "segformer": ("SegformerConfig", "SegformerForSemanticSegmentation", SEGFORMER, "pixels"),
    "segformer-cls": ("SegformerConfig", "SegformerForImageClassification", SEGFORMER, "pixels"),
    "pvt": ("PvtConfig", "PvtForImageClassification", dict(image_size=32, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                           num_attention_heads=[1, 2, 4, 8], num_labels=5), "pixels"),
    "levit": ("LevitConfig", "LevitForImageClassification", dict(image_size=32, hidden_sizes=[32, 64, 96], num_attention_heads=[2, 4, 6],
                                                                 depths=[1, 1, 1], key_dim=[8, 8, 8], num_labels=5), "pixels"),
    "clip-vision": ("CLIPConfig", "CLIPForImageClassification",
                    dict(vision_config=dict(VISION), text_config=dict(TEXT), num_labels=5), "pixels"),
    "siglip": ("SiglipConfig", "SiglipForImageClassification",
               dict(vision_config=dict(VISION), text_config=dict(TEXT), num_labels=5), "pixels"),
}


# Architectures the sweep above was not tuned on (``--held-out``), checked after the fixes for issue 20's gaps.
HELD_OUT: dict[str, tuple[str, str, dict, str]] = {
    "stablelm": ("StableLmConfig", "StableLmForCausalLM", DECODER, "ids"),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", DECODER, "ids"),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", DECODER, "ids"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(DECODER, head_dim=16), "ids"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(DECODER, head_dim=16), "ids"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", DECODER, "ids"),
    "phi3-mqa": ("Phi3Config", "Phi3ForCausalLM", dict(DECODER, num_key_value_heads=1), "ids"),  # one key/value head
    "gpt-neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", TEXT, "ids"),
    "codegen": ("CodeGenConfig", "CodeGenForCausalLM", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, rotary_dim=8,
                                                           n_positions=64, n_ctx=64), "ids"),
    # qkv_proj in mp_num=4 groups and a head goes from every group at once: with 4 heads (one per group, above) none
    # can go; with 8 (two per group) half of them can
    "codegen-8heads": ("CodeGenConfig", "CodeGenForCausalLM", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=8, rotary_dim=4,
                                                                  n_positions=64, n_ctx=64), "ids"),
    "bloom": ("BloomConfig", "BloomForCausalLM", dict(vocab_size=128, hidden_size=64, n_layer=2, n_head=4), "ids"),
    "gpt-bigcode": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4,
                                                                     n_positions=64, multi_query=True), "ids"),
    "falcon-new": ("FalconConfig", "FalconForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
                                                            num_attention_heads=4, new_decoder_architecture=True,
                                                            num_kv_heads=2, pad_token_id=0), "ids"),
    "convbert": ("ConvBertConfig", "ConvBertForSequenceClassification", TEXT, "ids"),
    "mobilebert": ("MobileBertConfig", "MobileBertForSequenceClassification",
                   dict(TEXT, embedding_size=32, intra_bottleneck_size=32, num_feedforward_networks=2), "ids"),
    "pegasus": ("PegasusConfig", "PegasusForConditionalGeneration", SEQ2SEQ, "seq2seq"),
    "mbart": ("MBartConfig", "MBartForConditionalGeneration", SEQ2SEQ, "seq2seq"),
    "swinv2": ("Swinv2Config", "Swinv2ForImageClassification", dict(image_size=32, patch_size=2, embed_dim=32, depths=[1, 1],
                                                                    num_heads=[2, 4], window_size=4, num_labels=5), "pixels"),
    "data2vec-vision": ("Data2VecVisionConfig", "Data2VecVisionForImageClassification", VISION, "pixels"),
    "mobilevit": ("MobileViTConfig", "MobileViTForImageClassification",
                  dict(image_size=32, hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 16, 24, 32, 40, 48, 160],
                       num_attention_heads=4, num_labels=5), "pixels"),
    "pvt-v2": ("PvtV2Config", "PvtV2ForImageClassification", dict(image_size=32, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                                  num_attention_heads=[1, 2, 4, 8], num_labels=5), "pixels"),
    "cvt": ("CvtConfig", "CvtForImageClassification", dict(embed_dim=[16, 32, 64], num_heads=[1, 2, 4], depth=[1, 2, 3],  # transformers indexes drop_path_rates by stage
                                                           num_labels=5), "pixels"),
}


def build(name: str) -> tuple[torch.nn.Module, dict]:
    """The tiny model and its example keyword inputs (batch 2)."""
    import transformers

    config_cls, model_cls, kwargs, kind = {**MODELS, **HELD_OUT}[name]
    config = getattr(transformers, config_cls)(**kwargs)
    model = getattr(transformers, model_cls)(config).eval()
    ids = torch.randint(3, 120, (2, 12))
    if callable(kind):  # a held-out pass's own inputs, made from the config (image tokens, video frames, ...)
        return model, kind(config, ids)
    inputs = {
        "ids": lambda: {"input_ids": ids},
        "seq2seq": lambda: {"input_ids": ids, "decoder_input_ids": ids[:, :6]},
        "audio": lambda: {"input_features": torch.randn(2, 16, 64), "decoder_input_ids": ids[:, :6]},
        "pixels": lambda: {"pixel_values": torch.randn(2, 3, 32, 32)},
        "pixels64": lambda: {"pixel_values": torch.randn(2, 3, 64, 64)},
        "wave": lambda: {"input_values": torch.randn(2, 1600)},  # 0.1 s at 16 kHz (speech encoders)
        "mel": lambda: {"input_values": torch.randn(2, 64, 16)},  # 64 frames x 16 mel bins (AST)
        "frames": lambda: {"input_features": torch.randn(2, 40, 160)},  # 40 stacked filter-bank frames (Wav2Vec2-BERT)
    }[kind]()
    return model, inputs


def heads(model: torch.nn.Module) -> tuple[int, int]:
    """Heads of every attention module of a registered form (from its weights, as pruning syncs them) and of every
    attention written by hand (its own head count attribute, which pruning keeps in line: ViTDet's, SAM's), and how
    many modules named ``*Attention`` with a linear layer of their own are neither (kept whole)."""
    from slimforge.prune._capture import head_counts
    from slimforge.prune._trace import unknown_attention
    from slimforge.prune.attention import find_attention_form

    total, whole = 0, 0
    for module in model.modules():
        form = find_attention_form(module)
        if form is not None and not form.part:
            total += form.sync(module).get("num_attention_heads", 0)
        elif form is None and unknown_attention(module):
            total += max(head_counts(module).values())  # query heads: at least as many as key/value heads
        elif form is None and "Attention" in type(module).__name__ and any(
                isinstance(c, torch.nn.Linear) or type(c).__name__ == "Conv1D" for c in module.children()):
            whole += 1
    return total, whole


def output(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """The model's logits (or last hidden state); random draws seeded, so that a forward that samples (ViTMAE
    shuffles its patches on every call) draws the same numbers for the models compared."""
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        out = model(**inputs, **({"use_cache": False} if getattr(model.config, "use_cache", False) else {}))
    logits = out.logits[0] if "logits" in out and isinstance(out.logits, tuple) else out.get("logits")  # MGP-STR: one per head
    if logits is not None and logits.isfinite().all():
        return logits
    if "last_hidden_state" in out:
        return out.last_hidden_state
    if "feature_maps" in out:  # a backbone (ViTPose's, LW-DETR's ViT): its last map
        return out.feature_maps[-1]
    # depth maps, image-text similarities; a random-init ALIGN's image embeddings vanish (1e-27), so its normalised
    # similarities are not finite: then its first finite output
    return next(v for v in out.values() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.isfinite().all())


def run(name: str, ratio: float) -> str:
    import slimforge

    torch.manual_seed(0)
    model, inputs = build(name)
    n0, (h0, whole) = sum(p.numel() for p in model.parameters()), heads(model)
    start = time.perf_counter()
    try:
        slimforge.prune(model, example_kwargs=inputs, ratio=ratio)
        output(model, inputs)
    except Exception as exc:  # noqa: BLE001 - a sweep reports every failure and goes on
        msg = str(exc).replace("|", "/").replace("\n", " ")[:140]
        return f"| {name} | {type(model).__name__} | no | {n0 / 1e6:.3f} | - | {h0} | - | {whole} | - | {type(exc).__name__}: {msg} | - |"
    seconds = time.perf_counter() - start
    n1, (h1, _) = sum(p.numel() for p in model.parameters()), heads(model)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            slimforge.save(model, tmp)
            diff = (output(slimforge.load(tmp).eval(), inputs) - output(model, inputs)).abs().max().item()
        saved = f"max diff {diff:.1e}" if diff else "identical"
    except Exception as exc:  # noqa: BLE001
        saved = f"{type(exc).__name__}: {str(exc)[:100]}".replace("|", "/").replace("\n", " ")
    return (f"| {name} | {type(model).__name__} | yes | {n0 / 1e6:.3f} | {1 - n1 / n0:.1%} | {h0} | {h1} | {whole} | "
            f"{seconds:.1f} | {saved} | {plain_transformers(model, inputs)} |")


def plain_transformers(model: torch.nn.Module, inputs: dict) -> str:
    """``slimforge.save_pretrained`` then ``type(model).from_pretrained``: the outputs' max difference, or why it was refused."""
    import slimforge

    try:
        with tempfile.TemporaryDirectory() as tmp:
            slimforge.save_pretrained(model, tmp)
            diff = (output(type(model).from_pretrained(tmp).eval(), inputs) - output(model, inputs)).abs().max().item()
        return f"max diff {diff:.1e}" if diff else "identical"
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).split(" as a Hugging Face folder: ")[-1].split(" A transformers config holds")[0]
        return f"refused: {reason[:110]}".replace("|", "/").replace("\n", " ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=None, help="comma-separated names (default: all of the sweep's)")
    parser.add_argument("--held-out", action="store_true", help="the held-out architectures instead")
    parser.add_argument("--ratio", type=float, default=0.3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers

    print(f"ratio={args.ratio}, importance l2, round_to 8, random init, 1 thread, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print("| model | class | prunes | params (M) | params removed | heads before | heads after | attention kept whole | prune s "
          "| save/load | save_pretrained + from_pretrained |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    names = args.models.split(",") if args.models else list(HELD_OUT if args.held_out else MODELS)
    for name in names:
        try:
            print(run(name, args.ratio), flush=True)
        except Exception as exc:  # noqa: BLE001 - the build itself failed
            print(f"| {name} | - | build failed | - | - | - | - | - | - | {type(exc).__name__}: {str(exc)[:120]} | - |", flush=True)


if __name__ == "__main__":
    main()
