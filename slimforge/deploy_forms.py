"""Reference deployments: the unmodified fp32 model in every form a user gets for free.

A speed-up that counts what channels-last, ``torch.compile`` or ONNX Runtime give the original
model without any slimforge work overstates what slimforge buys. Each *form* here turns the
original ``nn.Module`` into a predictor; :func:`slimforge.measure.measure_variants` times every
requested form interleaved with the variants and reports speed-ups against eager and against the
fastest form.

    forms, unavailable = build_reference_forms(model, example, ["eager", "channels_last", "onnxruntime"])

A form that cannot be built on this machine (no onnxruntime, a model ``torch.compile`` cannot
handle, a 2-D input for channels-last) is skipped and its reason reported, never an error:
reference timings are context, not the result.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge._registry import Registry
from slimforge.errors import ConfigError

Predictor = Callable[[Any], torch.Tensor]
FormBuilder = Callable[[nn.Module, Any, int], Predictor]

REFERENCE_FORMS: Registry[FormBuilder] = Registry("reference form")
# What `slimforge measure` times unless told otherwise: cheap to build. torch.compile costs tens of
# seconds per model and ONNX export a few, so they are opt-in (--reference eager,channels_last,compile,onnxruntime).
DEFAULT_REFERENCE = ("eager", "channels_last")


class FormUnavailable(Exception):
    """This form cannot be built for this model on this machine; the message says why."""


def register_reference_form(name: str, help: str = "") -> Callable[[FormBuilder], FormBuilder]:
    """Decorator for ``builder(model, example, threads) -> predictor``; raise FormUnavailable to skip."""
    return REFERENCE_FORMS.register(name, help)


def list_reference_forms() -> list[str]:
    return REFERENCE_FORMS.names()


def parse_reference(text: str) -> tuple[str, ...]:
    """``"eager,compile"`` -> ("eager", "compile"); ``"none"`` or ``""`` -> (). Unknown names are a ConfigError."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    for n in names:
        if n not in REFERENCE_FORMS:
            REFERENCE_FORMS.get(n)  # raises with did-you-mean and the known names
    if len(set(names)) != len(names):
        raise ConfigError(f"--reference {text!r} names a form twice.")
    return names


def build_reference_forms(model: nn.Module, example: Any, names: Sequence[str], threads: int = 1) -> tuple[dict[str, Predictor], dict[str, str]]:
    """({form: predictor}, {form: why it is unavailable}) for the original ``model``.

    example: one batch the model takes, e.g. (batch, 3, H, W). Each form gets its own copy of the
    model, so none changes the caller's module (channels-last converts weights in place).
    """
    forms: dict[str, Predictor] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        builder = REFERENCE_FORMS.get(name)
        try:
            forms[name] = builder(model, example, threads)
        except FormUnavailable as exc:
            unavailable[name] = str(exc)
    return forms, unavailable


def fastest_form(latency_ms: dict[str, float]) -> str | None:
    """The form with the lowest latency, or None when there is none."""
    return min(latency_ms, key=latency_ms.__getitem__) if latency_ms else None


# ---------------------------------------------------------------- the forms


@register_reference_form("eager", "PyTorch eager, default (contiguous) memory format")
def _eager(model: nn.Module, example: Any, threads: int) -> Predictor:
    return copy.deepcopy(model).eval()


def _channels_last_inputs(model: nn.Module) -> Predictor:
    """``model`` called with 4-D tensor inputs converted to channels-last (others as they are)."""

    def predict(x: Any) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return model(x)

    return predict


@register_reference_form("channels_last", "PyTorch eager with weights and 4-D inputs in channels-last format")
def _channels_last(model: nn.Module, example: Any, threads: int) -> Predictor:
    if not (isinstance(example, torch.Tensor) and example.dim() == 4):
        shape = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise FormUnavailable(f"channels-last applies to 4-D (batch, channels, H, W) inputs; this model takes {shape}")
    return _channels_last_inputs(copy.deepcopy(model).eval().to(memory_format=torch.channels_last))


@register_reference_form("compile", "torch.compile (inductor), compiled and warmed up before timing")
def _compiled(model: nn.Module, example: Any, threads: int) -> Predictor:
    compiled = torch.compile(copy.deepcopy(model).eval(), dynamic=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # Compile outside the timed region: the first calls build the kernels (one per batch size
        # is built lazily later, during measure's warm-up calls, which are not timed either).
        with torch.inference_mode():
            compiled(example)
    except Exception as exc:  # noqa: BLE001 - inductor fails in many ways (no compiler, unsupported op)
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise FormUnavailable(f"torch.compile failed on this machine: {type(exc).__name__}: {first_line}") from None
    finally:
        torch.set_num_threads(previous)
    return compiled


@register_reference_form("onnxruntime", "ONNX Runtime fp32 (CPU), exported with slimforge.export's ONNX path")
def _onnxruntime(model: nn.Module, example: Any, threads: int) -> Predictor:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise FormUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    if not isinstance(example, torch.Tensor):
        raise FormUnavailable(f"ONNX export takes one tensor input; this model takes {type(example).__name__}")
    from slimforge.errors import SlimforgeError
    from slimforge.export import export_onnx_file, load_onnx

    folder = Path(tempfile.mkdtemp(prefix="slimforge-reference-"))
    try:
        path = export_onnx_file(copy.deepcopy(model).eval(), example, folder / "model.onnx")
        # The session holds the graph in memory; the file is not needed after loading.
        session = load_onnx(path, threads=threads)
    except SlimforgeError as exc:
        raise FormUnavailable(f"ONNX export or load failed: {exc}") from None
    finally:
        for f in folder.glob("*"):
            f.unlink()
        folder.rmdir()
    return session


__all__ = ["DEFAULT_REFERENCE", "FormUnavailable", "build_reference_forms", "fastest_form",
           "list_reference_forms", "parse_reference", "register_reference_form"]

