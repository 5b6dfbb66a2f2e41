"""Parameters removed at ratio 0.3 from bare backbones (no task head) under each ``keep_outputs``, against the same
model with a head: issue 20's "reduction of attention models within 10 points of the CNNs'".

True keeps the features' width (and with it the residual), "auto" narrows the residual and projects the features
back to their width (the default for a bare backbone), False lets them narrow. Random init: parameter counts do not
depend on the weights.

    PYTHONPATH=. .venv/bin/python benchmarks/prune_bare_backbones.py [--set full|timm|tiny|backbones]

``tiny``: the Hugging Face sweep's small configs (2 layers, 64 wide), where the fill's share of the parameters is
largest, each beside the same config with a head. ``backbones``: transformers' ``*Backbone`` classes and timm's
``features_only`` models, whose outputs are several feature maps.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import slimforge

MODES = (True, "auto", "fill", False)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def row(name: str, build, args: tuple, kwargs: dict | None, mode) -> str:
    torch.manual_seed(0)
    model = build().eval()
    n0, start = count(model), time.perf_counter()
    slimforge.prune(model, *args, example_kwargs=kwargs, ratio=0.3, keep_outputs=mode)
    seconds = time.perf_counter() - start
    extra = count(model.slimforge_outputs) if hasattr(model, "slimforge_outputs") else 0
    with torch.no_grad():
        out = model(*args, **(kwargs or {}))
    tensor = next(t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor))  # a backbone's first map
    return (f"| {name} | {n0 / 1e6:.1f} | {mode} | {1 - count(model) / n0:.1%} | {extra / n0:.2%} | "
            f"{tuple(tensor.shape)} | {seconds:.0f} |")


def full_size() -> list[tuple]:
    import transformers
    import timm

    ids = torch.randint(0, 30000, (2, 16))
    pixels = torch.randn(2, 3, 224, 224)
    dinov2 = dict(hidden_size=384, num_attention_heads=6, image_size=224)
    return [
        ("BertModel (bert-base config)", lambda: transformers.BertModel(transformers.BertConfig()), (), dict(input_ids=ids)),
        ("Dinov2Model (dinov2-small config)", lambda: transformers.Dinov2Model(transformers.Dinov2Config(**dinov2)), (),
         dict(pixel_values=pixels)),
        ("timm vit_base_patch16_224, num_classes=0", lambda: timm.create_model("vit_base_patch16_224", num_classes=0),
         (pixels,), None),
    ]


TIMM = ("resnet18", "resnet50", "convnext_tiny", "efficientnet_b0", "mobilenetv3_large_100", "deit_tiny_patch16_224",
        "vit_small_patch16_224", "swin_tiny_patch4_window7_224")


def timm_models() -> list[tuple]:
    import timm

    pixels = torch.randn(2, 3, 224, 224)
    out = []
    for name in TIMM:
        out.append((f"{name} (1000 classes)", lambda n=name: timm.create_model(n, num_classes=1000), (pixels,), None, ("auto",)))
        out.append((f"{name}, num_classes=0", lambda n=name: timm.create_model(n, num_classes=0), (pixels,), None, (True, "auto", "fill")))
    return out


def tiny_models() -> list[tuple]:
    import transformers

    ids, pixels = torch.randint(0, 1000, (2, 16)), torch.randn(2, 3, 32, 32)
    text = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                max_position_embeddings=64)
    vision = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, image_size=32,
                  patch_size=8)
    gpt2 = dict(vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=64)
    cases = [
        ("BertModel", lambda: transformers.BertModel(transformers.BertConfig(**text)),
         lambda: transformers.BertForSequenceClassification(transformers.BertConfig(**text)), dict(input_ids=ids)),
        ("RobertaModel", lambda: transformers.RobertaModel(transformers.RobertaConfig(**text)),
         lambda: transformers.RobertaForSequenceClassification(transformers.RobertaConfig(**text)), dict(input_ids=ids)),
        ("GPT2Model", lambda: transformers.GPT2Model(transformers.GPT2Config(**gpt2)),
         lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(**gpt2)), dict(input_ids=ids)),
        ("ViTModel", lambda: transformers.ViTModel(transformers.ViTConfig(**vision)),
         lambda: transformers.ViTForImageClassification(transformers.ViTConfig(**vision)), dict(pixel_values=pixels)),
        ("Dinov2Model", lambda: transformers.Dinov2Model(transformers.Dinov2Config(**vision)),
         lambda: transformers.Dinov2ForImageClassification(transformers.Dinov2Config(**vision)), dict(pixel_values=pixels)),
    ]
    out = []
    for name, bare, headed, kwargs in cases:
        out.append((f"{name}, tiny config", bare, (), kwargs, MODES))
        out.append((f"{name}, tiny config, with a head", headed, (), kwargs, ("auto",)))
    return out


def backbone_models() -> list[tuple]:
    """transformers' ``*Backbone`` classes (tiny configs) and timm's ``features_only`` models: outputs of several maps."""
    import timm
    import transformers as t

    small, large = dict(pixel_values=torch.randn(2, 3, 32, 32)), torch.randn(2, 3, 224, 224)
    vit = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
    cnn = dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1])
    cases = [
        ("VitPoseBackbone", lambda: t.VitPoseBackbone(t.VitPoseBackboneConfig(**vit, out_indices=[2])), (), small),
        ("Dinov2Backbone, 2 maps", lambda: t.Dinov2Backbone(t.Dinov2Config(**vit, out_features=["stage1", "stage2"])), (), small),
        ("VitDetBackbone", lambda: t.VitDetBackbone(t.VitDetConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
                                                                  image_size=32, pretrain_image_size=32, patch_size=8,
                                                                  out_features=["stage2"])), (), small),
        ("SamHQVisionModel", lambda: t.SamHQVisionModel(t.SamHQVisionConfig(**vit, output_channels=32, global_attn_indexes=[1],
                                                                            window_size=2, mlp_dim=128)), (), small),
        ("ResNetBackbone (bottleneck), 3 maps", lambda: t.ResNetBackbone(t.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                                                      out_features=["stage2", "stage3", "stage4"])), (), small),
        ("ConvNextBackbone, 2 maps", lambda: t.ConvNextBackbone(t.ConvNextConfig(**cnn, out_features=["stage2", "stage4"])), (), small),
        ("SwinBackbone, 2 maps", lambda: t.SwinBackbone(t.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                                                                     window_size=4, out_features=["stage1", "stage2"])), (), small),
    ]
    for name in ("deit_tiny_patch16_224", "efficientnet_b0", "resnet18", "swin_tiny_patch4_window7_224"):
        cases.append((f"timm {name}, features_only", lambda n=name: timm.create_model(n, features_only=True), (large,), None))
    return [(*c, (True, "auto")) for c in cases]


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("full", "timm", "tiny", "backbones"), default="full")
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    print("| model | params (M) | keep_outputs | params removed | of which in the output layer | output | prune s |")
    print("|---|---|---|---|---|---|---|")
    cases = {"full": lambda: [(*c, MODES) for c in full_size()], "timm": timm_models, "tiny": tiny_models,
             "backbones": backbone_models}[opts.set]()
    for name, build, args, kwargs, modes in cases:
        for mode in modes:
            print(row(name, build, args, kwargs, mode), flush=True)


if __name__ == "__main__":
    main()
