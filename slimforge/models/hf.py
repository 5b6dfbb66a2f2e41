"""Hugging Face transformers models: the ``hf:`` source, a consistent config after pruning, and
``save_pretrained`` folders that plain transformers loads.

* ``hf:<folder>`` builds the class the folder's ``config.json`` names (``architectures``; one of
  the classes transformers' ``AutoModel...`` mappings list for its ``model_type``, else
  ``AutoModel``'s) and loads the folder's safetensors weights; ``hf:<file.json>`` builds from a
  config with random weights. A config with ``auto_map`` (remote code) is refused, pickled
  weights (``pytorch_model.bin``) are refused, nothing is downloaded. The spec a built model
  records is the config itself (``{"name": "hf:", "kwargs": {"config": {...}}}``), so the saved
  folder is enough to rebuild it.
* :func:`sync_config` (called after every pruning slice) sets the config's ``hidden_size``,
  ``num_attention_heads`` and ``intermediate_size`` (``n_inner`` for GPT-2) from the modules,
  where every layer agrees.
* :func:`save_pretrained` writes ``config.json`` + ``model.safetensors`` for
  ``AutoModel...from_pretrained``, after checking that a model built from the config has
  exactly the pruned model's shapes. Transformers 5 configs hold one head count, one FFN width
  and head size ``hidden_size / num_attention_heads`` for every layer (``pruned_heads`` is gone
  from transformers 5); a model they cannot describe is refused with the reason, unless
  ``pad=True`` puts zero heads/neurons back (same outputs, plain transformers runs the padded size).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge.errors import ArtifactError, SlimforgeError, UnknownNameError, did_you_mean
from slimforge.models._hf_config_fit import apply_changes, config_value, fit_config, has_global

CONFIG_FILE = "config.json"
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
# Config keys that make transformers import code named by the file.
REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code", "custom_pipelines")


# ---------------------------------------------------------------- the hf: source


def hf_factory(target: str) -> Callable[..., nn.Module]:
    """The factory for ``hf:<target>``: a local model folder or a ``config.json``; ``hf:`` alone
    builds from the ``config`` keyword (how ``slimforge.load`` rebuilds a saved model)."""
    path = _source_path(target) if target else None

    def factory(config: dict[str, Any] | None = None) -> nn.Module:
        if (path is None) == (config is None):
            raise SlimforgeError("hf: give a model folder or config.json in the name (hf:PATH), or hf: with a config=... dict; "
                                 f"got {'both' if path is not None else 'neither'}.")
        if config is not None:
            return build_from_config(config, source="hf: config")
        if path.is_file():
            return build_from_config(_read_config(path), source=str(path))
        return _build_from_folder(path)

    # The saved folder records the config, not a path that may not exist where it is loaded.
    factory.describe_spec = lambda model, spec: type(spec)("hf:", {"config": recorded_config(model)}, list(spec.edits))
    return factory


def _source_path(target: str) -> Path:
    path = Path(target).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ArtifactError(f"hf:{target}: the folder has no {CONFIG_FILE}; it is not a Hugging Face model folder.")
        return path
    if path.is_file() and path.suffix == ".json":
        return path
    raise ArtifactError(f"hf:{target}: not a Hugging Face model folder or a config .json file"
                        f"{' (it does not exist)' if not path.exists() else ''}. slimforge builds hf: models from local files only.")


def _read_config(path: Path) -> dict[str, Any]:
    from slimforge.files import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: a Hugging Face config must be a JSON object, not {type(data).__name__}.")
    return data


def check_config(config: dict[str, Any], source: str) -> str:
    """The config's ``model_type`` after refusing configs that ask for remote code; raises naming ``source``."""
    if not isinstance(config, dict):
        raise ArtifactError(f"{source}: a Hugging Face config must be an object, not {type(config).__name__}.")
    asked = [k for k in REMOTE_CODE_KEYS if config.get(k)]
    if asked:
        raise ArtifactError(
            f"{source}: the config sets {asked[0]!r}: it asks transformers to import code shipped with the model "
            "(trust_remote_code). slimforge builds only the model classes transformers itself provides."
        )
    model_type = config.get("model_type")
    from transformers import CONFIG_MAPPING

    if not isinstance(model_type, str) or (model_type not in CONFIG_MAPPING and _sub_model_config_class(config) is None):
        known = sorted(CONFIG_MAPPING.keys())
        raise UnknownNameError(f"{source}: 'model_type' {model_type!r} is not a transformers model type."
                               f"{did_you_mean(str(model_type), known) if isinstance(model_type, str) else ''}")
    return model_type


def model_class(config: Any, source: str) -> type[nn.Module]:
    """The transformers class ``config.architectures[0]`` names, if transformers' auto mappings
    list it for this model type; the bare ``AutoModel`` class when the config names none."""
    import transformers
    from transformers.models.auto import modeling_auto

    known: set[str] = set()
    for attr in dir(modeling_auto):
        mapping = getattr(modeling_auto, attr)
        if attr.endswith("_MAPPING_NAMES") and isinstance(mapping, dict):
            value = mapping.get(config.model_type)
            known.update(value if isinstance(value, (list, tuple)) else [value] if isinstance(value, str) else [])
    names = list(getattr(config, "architectures", None) or [])
    if not names:
        names = [modeling_auto.MODEL_MAPPING_NAMES.get(config.model_type, "")]
    name = names[0]
    if name not in known and _own_config_class(transformers, name, config.model_type):
        return getattr(transformers, name)  # MusicgenForCausalLM of a musicgen_decoder config: in no auto mapping
    if name not in known or not hasattr(transformers, name):
        raise UnknownNameError(f"{source}: architecture {name!r} is not a transformers class for model type "
                               f"{config.model_type!r}.{did_you_mean(str(name), sorted(known))}")
    return getattr(transformers, name)


def _own_config_class(transformers: Any, name: str, model_type: str) -> bool:
    """``transformers.<name>`` is a model class whose config class is of ``model_type`` (a sub-model's class that the
    auto mappings list under its parent's type only: Musicgen's decoder)."""
    cls = getattr(transformers, name, None) if isinstance(name, str) and name.isidentifier() else None
    return (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)
            and getattr(getattr(cls, "config_class", None), "model_type", None) == model_type)


def _sub_model_config_class(config: dict[str, Any]) -> type | None:
    """The config class of a sub-model whose model type no auto mapping lists (Bark's ``semantic``, ``coarse_acoustics``
    and ``fine_acoustics`` models): that of the transformers model class its ``architectures`` names, if that class's
    config is of this type. None otherwise."""
    import transformers

    names = config.get("architectures")
    name = names[0] if isinstance(names, list) and names else None
    if _own_config_class(transformers, name, config.get("model_type")):
        return getattr(transformers, name).config_class
    return None


def _config_object(config: dict[str, Any], source: str) -> Any:
    from transformers import CONFIG_MAPPING, AutoConfig

    model_type = check_config(config, source)
    fields = {k: _untag_nonfinite(v) for k, v in config.items() if k != "model_type"}
    try:
        if model_type not in CONFIG_MAPPING:
            return _sub_model_config_class(config)(**fields)
        return AutoConfig.for_model(model_type, **fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{source}: not a valid {model_type} config: {exc}") from None


def build_from_config(config: dict[str, Any], source: str = "hf: config") -> nn.Module:
    """A transformers model with random weights from a config dict (checked by :func:`check_config`)."""
    cfg = _config_object(config, source)
    cls = model_class(cfg, source)
    return _floating_to_float32(cls(cfg))


def _floating_to_float32(model: nn.Module) -> nn.Module:
    """Floating-point parameters and buffers in float32; complex ones as they are (``model.to(torch.float32)`` casts
    those too, dropping the imaginary part: Llama 4's vision rotary table ``freqs_ci`` lost its sines)."""
    return model._apply(lambda t: t.float() if t.is_floating_point() else t)


def _build_from_folder(folder: Path) -> nn.Module:
    """``from_pretrained`` on a local folder with safetensors weights; pickled weights are refused before transformers sees them."""
    source = str(folder / CONFIG_FILE)
    cfg = _config_object(_read_config(folder / CONFIG_FILE), source)  # refuses remote code before anything else
    if not any((folder / f).is_file() for f in SAFE_WEIGHTS):
        pickled = [f for f in PICKLED_WEIGHTS if (folder / f).is_file()]
        if pickled:
            raise ArtifactError(
                f"hf:{folder}: the weights are {pickled[0]}, a pickle (or another non-safetensors format); slimforge never "
                "unpickles, because loading a pickle can run arbitrary code. Convert it where you trust it: "
                "AutoModel.from_pretrained(folder).save_pretrained(folder) writes model.safetensors."
            )
        raise ArtifactError(f"hf:{folder}: no model.safetensors in the folder. Use hf:{folder / CONFIG_FILE} for random weights.")
    cls = model_class(cfg, source)
    try:
        with _no_progress_bars():
            return cls.from_pretrained(str(folder), config=cfg, local_files_only=True, use_safetensors=True,
                                       trust_remote_code=False, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"hf:{folder}: transformers cannot load the folder: {first}") from None


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers draws progress bars for one-file loads and saves; they are noise in a log."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def hf_config_dict(config: Any) -> dict[str, Any]:
    """A JSON-able Hugging Face config without the machine-specific source path; infinite and NaN floats (Mamba-2's
    ``time_step_limit`` of (0, inf)) as :data:`NONFINITE` tags, which strict JSON can hold."""
    data = config.to_dict()
    for key in ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype"):  # weights are fp32
        data.pop(key, None)
    return _tag_nonfinite(data)


NONFINITE = "__float__"  # {"__float__": "inf"}: a float JSON has no literal for ("inf", "-inf" or "nan")


def _tag_nonfinite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {NONFINITE: str(value)}
    if isinstance(value, dict):
        return {k: _tag_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_nonfinite(v) for v in value]
    return value


def _untag_nonfinite(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {NONFINITE} and value[NONFINITE] in ("inf", "-inf", "nan"):
            return float(value[NONFINITE])
        return {k: _untag_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag_nonfinite(v) for v in value]
    return value


def recorded_config(model: nn.Module) -> dict[str, Any]:
    """The JSON config a saved spec records: no source path, the built class in ``architectures``."""
    data = hf_config_dict(model.config)
    data["architectures"] = [type(model).__name__]
    for key in ("_attn_implementation_autoset", "_attn_implementation_internal"):
        data.pop(key, None)
    return data


def spec_of(model: nn.Module) -> Any:
    """The ``hf:`` spec of a transformers model built outside slimforge (``from_pretrained``,
    ``BertModel(config)``): its config rebuilds it, so it saves and loads like an ``hf:`` model.
    None for anything else, or a class transformers' auto mappings do not list (remote code)."""
    from slimforge.artifacts import ModelSpec

    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(model, transformers.PreTrainedModel):
        return None
    config = recorded_config(model)
    try:
        if model_class(_config_object(config, "config"), "config") is not type(model):
            return None
    except SlimforgeError:
        return None
    return ModelSpec("hf:", {"config": config})


# ---------------------------------------------------------------- config after pruning


def hf_models(model: nn.Module) -> list[nn.Module]:
    """The outermost transformers models inside ``model`` (itself, or wrapped as ``model.hf`` ...), one per config."""
    transformers = sys.modules.get("transformers")  # not imported: no transformers model can exist (and importing it costs seconds)
    if transformers is None:
        return []
    PreTrainedModel = transformers.PreTrainedModel
    found: list[nn.Module] = []
    seen: set[int] = set()
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and id(module.config) not in seen:
            found.append(module)
            seen.add(id(module.config))
    return found


# Attention projections (query, key, value) by naming convention: BERT-style, and transformers 5's
# q_proj/k_proj/v_proj (ViT, Llama ...); the output projection is inside the module or a sibling's ``dense``.
QKV_NAMES = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"))
ATTENTION_OUTPUTS = ("o_proj", "out_proj")
# FFN input projections (module path suffix) and the projection that reads their output.
FFN_LAYERS = {"intermediate.dense": "output.dense", "mlp.fc1": "mlp.fc2", "mlp.up_proj": "mlp.down_proj"}


def _qkv(module: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear] | None:
    for names in QKV_NAMES:
        found = [getattr(module, n, None) for n in names]
        if all(isinstance(f, nn.Linear) for f in found):
            return found[0], found[1], found[2]
    return None


def _head_size(module: nn.Module) -> int | None:
    size = getattr(module, "attention_head_size", getattr(module, "head_dim", None))
    return size if isinstance(size, int) and size > 0 else None


def _falcon_fused(module: nn.Module) -> bool:
    return (isinstance(getattr(module, "query_key_value", None), nn.Linear) and getattr(module, "multi_query", None) is False
            and getattr(module, "new_decoder_architecture", None) is False)


def layer_sizes(hf: nn.Module) -> dict[str, list[int]]:
    """Per-layer sizes read from the modules: ``hidden`` (attention input width), ``heads``,
    ``head_size`` and ``intermediate`` (FFN width), in layer order."""
    sizes: dict[str, list[int]] = {"hidden": [], "heads": [], "head_size": [], "intermediate": []}
    for path, module in hf.named_modules():
        head_size, qkv = _head_size(module), _qkv(module)
        fused = getattr(module, "c_attn", None)  # GPT-2: Conv1D, weight (in, 3 * heads * head_dim)
        if head_size and qkv is not None:
            sizes["hidden"].append(qkv[0].in_features)
            out = getattr(module, "o_proj", None)  # a gated query (Qwen3-Next: each head's query and gate) is 2x as wide
            ratio = getattr(module, "head_ratio", 1)  # ConvBERT's config counts its attention and convolution heads together
            sizes["heads"].append((out.in_features if isinstance(out, nn.Linear) else qkv[0].out_features) // head_size
                                  * (ratio if type(ratio) is int else 1))
            sizes["head_size"].append(head_size)
        elif head_size and type(fused).__name__ == "Conv1D" and isinstance(getattr(fused, "weight", None), torch.Tensor):
            sizes["hidden"].append(fused.weight.shape[0])
            sizes["heads"].append(fused.weight.shape[1] // 3 // head_size)
            sizes["head_size"].append(head_size)
        elif head_size and _falcon_fused(module):  # Falcon's query_key_value: (out, in), rows (heads, 3, head_dim)
            sizes["hidden"].append(module.query_key_value.in_features)
            sizes["heads"].append(module.query_key_value.out_features // 3 // head_size)
            sizes["head_size"].append(head_size)
        if isinstance(module, nn.Linear) and any(path.endswith(suffix) for suffix in FFN_LAYERS):
            sizes["intermediate"].append(module.out_features)
        elif path.endswith("mlp.c_fc") and isinstance(getattr(module, "weight", None), torch.Tensor):
            sizes["intermediate"].append(module.weight.shape[1])
    return sizes


def sync_config(model: nn.Module) -> None:
    """Set each transformers config inside ``model`` to the sizes its modules now have, where
    every layer agrees (a per-layer difference leaves the key, and :func:`save_pretrained` says why)."""
    for hf in hf_models(model):
        config, sizes = hf.config, layer_sizes(hf)
        inner = "n_inner" if hasattr(config, "n_inner") else "intermediate_size"
        hidden = sizes["hidden"] or _embedding_width(hf)
        for key, values in (("hidden_size", hidden), ("num_attention_heads", sizes["heads"]), (inner, sizes["intermediate"]),
                            # an encoder-decoder's own keys (Whisper, BART): every layer of both agrees on the value
                            ("encoder_attention_heads", sizes["heads"]), ("decoder_attention_heads", sizes["heads"])):
            if len(set(values)) == 1 and has_global(config, key):
                setattr(config, key, values[0])
        kv_heads = {m.k_proj.out_features // m.head_dim for m in hf.modules() if getattr(m, "config", None) is config
                    and isinstance(getattr(m, "k_proj", None), nn.Linear) and type(getattr(m, "head_dim", None)) is int}
        if len(kv_heads) == 1 and type(config_value(config, "num_key_value_heads")) is int:
            config.num_key_value_heads = kv_heads.pop()  # a text model inside a vision-language one: its own config
        _sync_base_heads(hf, sizes["heads"])
        _sync_stage_widths(hf)
        _sync_output_scale(hf)
        for key, value in getattr(hf, "slimforge_config_kept", {}).items():  # sizes its forward reads for what pruning
            setattr(config, key, value)  # kept whole (slimforge.prune.plan.keep_config_values)


@torch.no_grad()
def _sync_output_scale(hf: nn.Module) -> None:
    """T5 and its kin scale the decoder's output by ``model_dim ** -0.5`` before the vocabulary projection, with
    ``model_dim`` set from ``d_model`` when built. Once the residual narrows, the config's ``d_model`` follows it and a
    model built from the config would scale by the new width: the factor between the two goes into the decoder's final
    norm weight (the scale multiplies that norm's output, nothing else), and ``model_dim`` follows ``d_model``. Without
    the scaling (FLAN-T5: ``scale_decoder_outputs`` off), ``model_dim`` is read by nothing and just follows. A model
    whose decoder has no final norm keeps its ``model_dim``, and ``save_pretrained`` says so."""
    config, model_dim = hf.config, getattr(hf, "model_dim", None)
    width = getattr(config, "d_model", None)
    if type(model_dim) is not int or type(width) is not int or model_dim == width:
        return
    scaled = getattr(config, "scale_decoder_outputs", None)
    if scaled is None:
        scaled = getattr(config, "tie_word_embeddings", True)  # Switch Transformers: the scale goes with the tied head
    if scaled:
        norm = getattr(getattr(hf, "decoder", None), "final_layer_norm", None)
        weight = getattr(norm, "weight", None)
        if not isinstance(weight, nn.Parameter) or weight.shape != (width,):
            return
        weight.mul_((width / model_dim) ** 0.5)  # w * model_dim^-0.5 == w' * width^-0.5
    hf.model_dim = width


def _embedding_width(hf: nn.Module) -> list[int]:
    """A model without attention (RWKV, Mamba): its hidden size as its token embedding's width, where the config has no
    separate embedding size (ALBERT's ``embedding_size``). RWKV builds its recurrent state at ``config.hidden_size``, so
    left at the unpruned width the pruned model ran without its cache but not with it."""
    if has_global(hf.config, "embedding_size"):
        return []
    try:
        embedding = hf.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return []
    return [embedding.embedding_dim] if isinstance(embedding, nn.Embedding) else []


def _sync_base_heads(hf: nn.Module, heads: list[int]) -> None:
    """A base model's own ``num_heads`` copy of the config's (Falcon's and BLOOM's, for ALiBi, which pins the
    heads when it is on: a tensor built from it has no head it could follow) follows a uniform pruned head count."""
    base = getattr(hf, "base_model", None)
    if any(hasattr(m, "_slimforge_full_heads") for m in hf.modules()):
        return  # layers that pick their heads' rows of a bias built for every head (slimforge.prune._head_index_stand_in)
    if len(set(heads)) == 1 and isinstance(getattr(base, "num_heads", None), int):
        base.num_heads = heads[0]


def _sync_stage_widths(hf: nn.Module) -> None:
    """A config's per-stage widths (``hidden_sizes``) from each stage's closing norm, where the forward
    reads them (SegFormer's and PvT-v2's classifiers reshape with ``config.hidden_sizes[-1]``); the stages are the
    base model's ``stages`` (SegFormer) or its encoder's ``layers`` (PvT-v2)."""
    widths = getattr(hf.config, "hidden_sizes", None)
    base = getattr(hf, "base_model", None)
    stages = getattr(base, "stages", None)
    if stages is None:
        stages = getattr(getattr(base, "encoder", None), "layers", None)
    if not isinstance(widths, (list, tuple)) or not isinstance(stages, nn.ModuleList) or len(stages) != len(widths):
        return  # a default SegformerConfig holds a tuple
    norms = [getattr(stage, "layer_norm", None) for stage in stages]
    if all(isinstance(n, nn.LayerNorm) for n in norms):
        hf.config.hidden_sizes = type(widths)(n.normalized_shape[0] for n in norms)


# ---------------------------------------------------------------- save_pretrained


def save_pretrained(model: nn.Module, out: str | Path, *, pad: bool = False) -> Path:
    """Write ``model`` (a transformers model, or a slimforge model wrapping one, e.g.
    ``hf-text-classifier``) as a ``save_pretrained`` folder: ``config.json`` + ``model.safetensors``
    that ``AutoModel...from_pretrained(out)`` loads with plain transformers, giving the same outputs.

    The config is first synced with the modules, then fitted: whatever the architecture calls its
    sizes (``d_model``, ``encoder_ffn_dim``, Swin's per-stage ``num_heads`` ...), the values that make a
    model built from the config match the pruned one, tensor shapes and module attributes (head
    counts, head sizes, scales) alike (:mod:`slimforge.models._hf_config_fit`). A model no config
    describes (per-layer head counts or FFN widths, a head size other than hidden_size / heads where
    the config derives it) is refused with the reason, unless ``pad=True`` puts zero heads/neurons
    back (same outputs, plain transformers runs the padded size). Before the folder replaces ``out``
    (in one step), it is loaded back with ``from_pretrained`` and compared tensor by tensor, buffers
    the config computes (not saved) included.
    """
    from slimforge.files import staged_output

    found = _outermost(hf_models(model))
    if len(found) != 1:
        raise ArtifactError(f"save_pretrained needs a model holding one transformers model; {type(model).__name__} holds {len(found)}. "
                            "Save it in slimforge's format instead (slimforge.save).")
    hf = found[0]
    if hasattr(hf, "slimforge_outputs"):  # slimforge.prune._output_projection.ATTRIBUTE (models import nothing from prune)
        raise ArtifactError(
            f"Cannot write {out} as a Hugging Face folder: pruning narrowed {type(hf).__name__}'s residual and puts its "
            "outputs back to their width through slimforge's output projection (model.slimforge_outputs), a layer "
            "transformers does not know. Keep slimforge's own format (slimforge.save), or prune with "
            "keep_outputs=False (the outputs narrow and config.hidden_size follows; such a folder loads in plain transformers)."
        )
    kept = getattr(hf, "slimforge_config_kept", None)  # slimforge.prune.plan.CONFIG_KEPT
    if kept:
        raise ArtifactError(
            f"Cannot write {out} as a Hugging Face folder: {type(hf).__name__}'s forward reads config sizes for layers "
            f"pruning kept whole or for a value such as a scale ({', '.join(f'{k}={v}' for k, v in kept.items())}), so its "
            "config keeps them and cannot describe the pruned shapes. Keep slimforge's own format (slimforge.save)."
        )
    skipped = [n for n, m in hf.named_modules() if type(m).__name__ == "SkippedBlock"]  # slimforge.prune.depth, by name as above
    if skipped:
        raise ArtifactError(
            f"Cannot write {out} as a Hugging Face folder: pruning removed whole blocks of {type(hf).__name__} "
            f"({', '.join(skipped)}), and a transformers config numbers its layers from 0 without gaps. Keep slimforge's "
            "own format (slimforge.save), or prune without latency.blocks."
        )
    sync_config(hf)
    problem = fit_config_or_describe(hf)
    if problem and pad:
        hf = padded_copy(hf)
        problem = fit_config_or_describe(hf)
    if problem:
        raise ArtifactError(
            f"Cannot write {out} as a Hugging Face folder: {problem} A transformers config holds one size for every layer. "
            + ("" if pad else "Pass pad=True to put the removed heads/neurons back as zeros (same outputs, "
               "plain transformers runs the padded size), or ")
            + "keep slimforge's own format (slimforge.save), which rebuilds any per-layer shape."
        )
    with staged_output(out) as folder, _no_progress_bars():
        hf.save_pretrained(str(folder))
        _check_reloads(hf, folder, out)
    return Path(out)


def _outermost(models: list[nn.Module]) -> list[nn.Module]:
    """The models not inside another one (T5's encoder and decoder stacks carry configs of their own)."""
    inner = {id(m) for outer in models for m in outer.modules() if m is not outer}
    return [m for m in models if id(m) not in inner]


def fit_config_or_describe(hf: nn.Module) -> str:
    """Set ``hf.config`` to the values that describe ``hf`` and return ""; or, when no config can, why
    (``hf.config`` then stays as it was)."""
    changes, left = fit_config(hf)
    if not left:
        apply_changes(hf.config, changes)
        return ""
    sizes = layer_sizes(hf)
    for key, what in (("heads", "attention head counts"), ("intermediate", "FFN widths (intermediate_size)"), ("hidden", "hidden sizes")):
        if len(set(sizes[key])) > 1:
            return f"its layers have different {what}: {sizes[key]} ({'; '.join(str(d) for d in left[:2])})."
    config = hf.config
    hidden = getattr(config, "hidden_size", None)
    if sizes["heads"] and isinstance(hidden, int):  # the config's class derives the head size (pruning set head_dim; it reads none)
        heads, head_size = sizes["heads"][0], sizes["head_size"][0]
        if hidden != heads * head_size:
            return (f"{heads} heads of size {head_size} (heads pruned, hidden size {hidden} kept): the config derives the "
                    f"head size as hidden_size / num_attention_heads = {hidden / max(heads, 1):g}.")
    return f"a model built from its config differs ({'; '.join(str(d) for d in left[:3])})."


def _check_reloads(hf: nn.Module, folder: Path, out: str | Path) -> None:
    """``from_pretrained(folder)`` gives ``hf``'s tensors, buffers computed from the config (not saved:
    Gemma's embedding scale) included; raises naming the first that differ."""
    dtype = next(hf.parameters()).dtype
    loaded = type(hf).from_pretrained(str(folder), local_files_only=True, use_safetensors=True, dtype=dtype)
    mine = {**_tensor_attributes(hf), **dict(hf.named_buffers()), **hf.state_dict()}
    theirs = {**_tensor_attributes(loaded), **dict(loaded.named_buffers()), **loaded.state_dict()}
    wrong = [k for k, v in mine.items() if k not in theirs or theirs[k].shape != v.shape or not torch.equal(theirs[k], v)]
    if wrong:
        raise ArtifactError(f"Cannot write {out} as a Hugging Face folder: loaded back with from_pretrained, "
                            f"{', '.join(wrong[:3])} differ{'s' if len(wrong) == 1 else ''} from the pruned model's "
                            "(a value the config computes from the pruned sizes). Keep slimforge's own format (slimforge.save).")


def _tensor_attributes(model: nn.Module) -> dict[str, torch.Tensor]:
    """Tensors modules hold as plain attributes (VideoMAE's sinusoidal position table): pruning slices them, and a
    model built from the pruned config computes them again at the new width, which may give other values."""
    return {f"{path}.{k}" if path else k: v for path, module in model.named_modules() for k, v in vars(module).items()
            if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter) and not k.startswith("_")}


@torch.no_grad()
def padded_copy(hf: nn.Module) -> nn.Module:
    """A copy of ``hf`` with removed attention heads and FFN neurons put back as zeros, so every
    layer has the config's head count (hidden_size / head size) and the widest FFN width.

    A zero head's output-projection columns are zero, so it adds nothing whatever it computes;
    the same for a zero FFN neuron. Layers found by name: query/key/value or q/k/v_proj attention
    with o_proj/out_proj or a sibling ``output.dense``; intermediate.dense, mlp.fc1 or mlp.up_proj
    FFNs (BERT, RoBERTa, MiniLM, ViT ...)."""
    hf = copy.deepcopy(hf)
    config = hf.config
    modules = dict(hf.named_modules())
    parents = {id(child): parent for parent in hf.modules() for child in parent.children()}
    widest = max(layer_sizes(hf)["intermediate"] or [0])
    for path, module in list(modules.items()):
        head_size, qkv = _head_size(module), _qkv(module)
        if head_size and qkv is not None:
            _pad_heads(module, path, qkv, head_size, config.hidden_size, parents.get(id(module)))
        for suffix, reader in FFN_LAYERS.items():
            if path.endswith(suffix) and isinstance(module, nn.Linear) and module.out_features < widest:
                base = path[: -len(suffix)]
                _pad_width(modules, base + suffix, widest, extra=[base + "mlp.gate_proj"] if suffix == "mlp.up_proj" else [])
                output = modules.get(base + reader)
                if not isinstance(output, nn.Linear):
                    raise ArtifactError(f"{path}: no {reader} reading its outputs was found; this layer cannot be padded.")
                output.weight = nn.Parameter(_pad(output.weight, 1, widest))
                output.in_features = widest
    sync_config(hf)
    return hf


def _pad_heads(module: nn.Module, path: str, qkv: tuple[nn.Linear, ...], head_size: int, hidden: int, parent: nn.Module | None) -> None:
    """Zero heads appended to an attention ``module`` until it has hidden / head_size of them."""
    if hidden % head_size or len({p.out_features for p in qkv}) != 1:
        raise ArtifactError(f"{path}: {qkv[0].out_features} query / {qkv[1].out_features} key features of head size {head_size} "
                            f"with hidden size {hidden}: no head count the config can hold describes it.")
    old, width = qkv[0].out_features, hidden
    if old >= width:
        return
    names = next(n for n in QKV_NAMES if getattr(module, n[0], None) is qkv[0])
    for name, linear in zip(names, qkv):
        setattr(module, name, _pad_linear(linear, out_features=width))
    output = next((getattr(module, n) for n in ATTENTION_OUTPUTS if isinstance(getattr(module, n, None), nn.Linear)), None)
    if output is None:
        output = _sibling_dense(parent, module, old, path)
    output.weight = nn.Parameter(_pad(output.weight, 1, width))
    output.in_features = width
    for attr in ("num_attention_heads", "num_heads"):
        if isinstance(getattr(module, attr, None), int):
            setattr(module, attr, width // head_size)
    if hasattr(module, "all_head_size"):
        module.all_head_size = width


def _pad_width(modules: dict[str, nn.Module], path: str, width: int, extra: list[str]) -> None:
    """Zero output rows appended to the Linear at ``path`` (and to those at ``extra`` paths, e.g. a gate)."""
    for p in [path, *extra]:
        linear = modules.get(p)
        if isinstance(linear, nn.Linear):
            parent_path, _, attr = p.rpartition(".")
            setattr(modules[parent_path] if parent_path else None, attr, _pad_linear(linear, out_features=width))


def _sibling_dense(parent: nn.Module | None, module: nn.Module, width: int, path: str) -> nn.Linear:
    """The ``dense`` Linear of a sibling of ``module`` that reads its ``width`` outputs (BERT's attention output projection)."""
    for child in (parent.children() if parent is not None else []):
        dense = getattr(child, "dense", None)
        if child is not module and isinstance(dense, nn.Linear) and dense.in_features == width:
            return dense
    raise ArtifactError(f"{path}: no output projection reading its {width} outputs was found; this layer cannot be padded.")


def _pad(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t.detach(), t.new_zeros(shape)], dim)


def _pad_linear(linear: nn.Linear, out_features: int) -> nn.Linear:
    new = nn.Linear(linear.in_features, out_features, bias=linear.bias is not None, dtype=linear.weight.dtype, device=linear.weight.device)
    new.weight = nn.Parameter(_pad(linear.weight, 0, out_features))
    if linear.bias is not None:
        new.bias = nn.Parameter(_pad(linear.bias, 0, out_features))
    return new
