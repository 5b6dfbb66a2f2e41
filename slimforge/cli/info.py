"""`slimforge models` and `slimforge datasets`: what the registries hold."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from slimforge.cli import app


@app.command("models")
def list_models_cmd() -> None:
    """List registered models (also: torchvision:<name>, timm:<name>, hf:<folder> and package.module:function)."""
    from slimforge.models import MODELS

    table = Table("model", "description")
    for name in MODELS.names():
        table.add_row(name, MODELS.help(name))
    table.add_row("torchvision:<name>", "any torchvision classification model, e.g. torchvision:resnet18")
    table.add_row("timm:<name>", "any timm model, e.g. timm:vit_tiny_patch16_224 (pretrained=True: local weights only)")
    table.add_row("hf:<folder or config.json>", "a local Hugging Face transformers model (safetensors weights only)")
    table.add_row("package.module:function", "your own factory returning an nn.Module")
    Console().print(table)


@app.command("datasets")
def list_datasets_cmd() -> None:
    """List registered datasets."""
    from slimforge.data import DATASETS

    table = Table("dataset", "description")
    for name in DATASETS.names():
        table.add_row(name, DATASETS.help(name))
    Console().print(table)
