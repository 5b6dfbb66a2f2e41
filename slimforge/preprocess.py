"""Input preprocessing that travels with the model: raw pixels in, the network's inputs out.

A network trained on images sees normalised inputs ``(x / scale - mean) / std`` per channel,
shaped (batch, C, H, W). The recipe is recorded in the run folder's ``model.json`` under
``"preprocess"`` (JSON only) by training, kept by prune, distill, quantize and optimize, and
used wherever a model meets raw data:

* ``slimforge.load(folder)`` gives the network a ``preprocess`` attribute (a :class:`Preprocess`
  module) and treats numpy arrays and integer tensors it is called on as raw inputs;
* ``slimforge export`` bakes the :class:`Preprocess` module into the ONNX / ``.pt2`` graph, so
  the exported file takes the raw arrays (``--no-preprocess`` exports the bare network);
* int8 models (``slimforge.load`` of a quantized folder) take numpy and raw inputs the same way.

    pre = Preprocess.from_json({"input_shape": [1, 28, 28], "raw_shape": [784], "scale": 255.0,
                                "mean": [0.1307], "std": [0.3081], "input_dtype": "uint8"})
    x = pre(np.zeros((5, 784), np.uint8))  # (5, 1, 28, 28) float32, normalised
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.errors import ArtifactError, DataError

PREPROCESS_KIND = "normalize"


@dataclass(frozen=True)
class PreprocessSpec:
    """What raw inputs look like and how they become the network's inputs.

    input_shape: the network's per-sample shape (C, H, W); raw_shape: the per-sample shape of the
    raw arrays the model was trained from ((784,), (28, 28), (H, W, C), ...; same element count);
    scale: raw values are divided by it first (255 for uint8 pixels); mean, std: one per channel,
    of the scaled training inputs; input_dtype: the dtype the raw training arrays had (informative).
    """

    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0
    raw_shape: tuple[int, ...] | None = None
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        shape, raw = self.input_shape, self.raw_shape or self.input_shape
        if len(shape) < 1 or not all(_count(n) for n in shape) or not all(_count(n) for n in raw):
            raise ArtifactError(f"preprocess: input_shape {list(shape)} / raw_shape {list(raw)} must be positive sizes.")
        if math.prod(raw) != math.prod(shape):
            raise ArtifactError(f"preprocess: raw_shape {list(raw)} holds {math.prod(raw)} values, input_shape {list(shape)} {math.prod(shape)}.")
        if len(self.mean) != shape[0] or len(self.std) != shape[0]:
            raise ArtifactError(f"preprocess: {len(self.mean)} means and {len(self.std)} stds for {shape[0]} channels.")
        numbers = [self.scale, *self.mean, *self.std]
        if not all(_finite(v) for v in numbers) or self.scale <= 0 or any(s <= 0 for s in self.std):
            raise ArtifactError(f"preprocess: scale {self.scale!r} and std {list(self.std)} must be positive, mean {list(self.mean)} finite.")

    def to_json(self) -> dict[str, Any]:
        return {"kind": PREPROCESS_KIND, "input_shape": list(self.input_shape), "raw_shape": list(self.raw_shape or self.input_shape),
                "input_dtype": self.input_dtype, "scale": self.scale, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: Any, source: str = "model.json") -> PreprocessSpec:
        """Read ``data`` (model.json's "preprocess"), every key checked: an :class:`ArtifactError` naming ``source`` otherwise."""
        if not isinstance(data, dict) or data.get("kind") != PREPROCESS_KIND:
            raise ArtifactError(f"{source}: 'preprocess' must be an object with kind {PREPROCESS_KIND!r}, not {data!r}; the file is corrupt.")
        unknown = set(data) - {"kind", "input_shape", "raw_shape", "input_dtype", "scale", "mean", "std"}
        if unknown:
            raise ArtifactError(f"{source}: 'preprocess' has unknown keys {sorted(unknown)}; the file is corrupt or from a newer slimforge.")
        try:
            fields = {
                "input_shape": _ints(data["input_shape"], "input_shape"),
                "raw_shape": _ints(data.get("raw_shape", data["input_shape"]), "raw_shape"),
                "mean": _floats(data["mean"], "mean"),
                "std": _floats(data["std"], "std"),
                "scale": _floats([data.get("scale", 1.0)], "scale")[0],
                "input_dtype": _text(data.get("input_dtype", "float32"), "input_dtype"),
            }
            return cls(**fields)
        except KeyError as exc:
            raise ArtifactError(f"{source}: 'preprocess' lacks {exc.args[0]!r}; the file is corrupt.") from None
        except (TypeError, ArtifactError) as exc:
            raise ArtifactError(f"{source}: {exc}") from None


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**31


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ints(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 8 or not all(_count(n) for n in value):
        raise TypeError(f"'preprocess.{key}' must be a list of 1 to 8 positive sizes, not {value!r}")
    return tuple(value)


def _floats(value: Any, key: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 4096 or not all(_finite(v) for v in value):
        raise TypeError(f"'preprocess.{key}' must be finite numbers, not {value!r}")
    return tuple(float(v) for v in value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or len(value) > 32:
        raise TypeError(f"'preprocess.{key}' must be a short string, not {value!r}")
    return value


class Preprocess(nn.Module):
    """Raw inputs -> the network's inputs: reshape to (batch, *input_shape), divide by ``scale``,
    subtract the mean and divide by the std per channel.

    Accepts numpy arrays or tensors of any numeric dtype, batched or a single sample, shaped as
    the network's input (C, H, W), as the raw training arrays (``raw_shape``, e.g. flat 784),
    channel-last (H, W, C), grey (H, W) for one channel, or flat (C*H*W,). Inside an exported graph it sees
    tensors of ``raw_shape``: the reshape and one multiply-add are all it adds.
    """

    def __init__(self, spec: PreprocessSpec) -> None:
        super().__init__()
        self.spec = spec
        channels = len(spec.mean)
        view = (1, channels) + (1,) * (len(spec.input_shape) - 1)
        # (x / scale - mean) / std == x * gain + shift, one multiply-add in the graph
        std = torch.tensor(spec.std, dtype=torch.float32)
        self.register_buffer("gain", (1.0 / (std * spec.scale)).view(view), persistent=False)
        self.register_buffer("shift", (-torch.tensor(spec.mean, dtype=torch.float32) / std).view(view), persistent=False)

    def forward(self, x: Any) -> torch.Tensor:
        """x: raw (batch, *raw_shape) or any layout :meth:`batch` takes -> (batch, *input_shape) float32."""
        x = self.batch(x)
        x = x.reshape(x.shape[0], *self.spec.input_shape).to(torch.float32)
        return x * self.gain + self.shift

    def batch(self, x: Any) -> torch.Tensor:
        """``x`` as a tensor (batch, *input_shape) in its own dtype, or a :class:`DataError` naming the shapes it takes."""
        x = as_tensor(x)
        shape, raw = tuple(self.spec.input_shape), tuple(self.spec.raw_shape or self.spec.input_shape)
        per_sample = {shape: None, raw: None}
        if len(shape) == 3:
            c, h, w = shape
            per_sample[(h, w, c)] = lambda t: t.movedim(-1, 1)  # channel-last, as PIL and most image arrays are
            if c == 1:
                per_sample[(h, w)] = None
        per_sample.setdefault((math.prod(shape),), None)  # flat rows, as tabular image arrays (N, 784) come
        # Batched layouts first: an exported graph's symbolic batch size is never compared with a size.
        found = next(((layout, fix) for layout, fix in per_sample.items() if x.dim() == len(layout) + 1 and tuple(x.shape[1:]) == layout), None)
        if found is None:
            found = next(((layout, fix) for layout, fix in per_sample.items() if tuple(x.shape) == layout), None)
            x = x.unsqueeze(0) if found is not None else x  # one sample
        if found is None:
            takes = " or ".join(str(list(s)) for s in per_sample)
            raise DataError(f"The model takes inputs of shape (batch, *S) or S with S one of {takes}; got {list(x.shape)}.")
        fix = found[1]
        if fix is not None:
            x = fix(x)
        return x.reshape(x.shape[0], *shape)

    def example(self, batch: int = 2) -> torch.Tensor:
        """Random raw inputs (batch, *raw_shape) in the raw range [0, scale]: what an exported graph takes."""
        gen = torch.Generator().manual_seed(0)
        return torch.rand((batch, *(self.spec.raw_shape or self.spec.input_shape)), generator=gen) * self.spec.scale


def as_tensor(x: Any) -> torch.Tensor:
    """A numpy array, a list or a tensor as a CPU tensor; anything else is a :class:`DataError`."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        array = np.asarray(x)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DataError(f"Model inputs must be numbers; got an array of {array.dtype}.")
        array = np.ascontiguousarray(array)
        return torch.from_numpy(array if array.flags.writeable else array.copy())
    raise DataError(f"Model inputs must be numpy arrays or torch tensors; got {type(x).__name__}.")


def is_raw(x: Any) -> bool:
    """Numpy arrays and integer tensors are raw data (slimforge's own batches are float tensors)."""
    return not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.is_complex())


def model_input(x: Any, preprocess: Preprocess | None) -> Any:
    """What the network takes for ``x``: raw data (:func:`is_raw`) goes through ``preprocess``
    (or becomes a float tensor when there is none); a float tensor is already the network's input."""
    if isinstance(x, dict) or not is_raw(x):
        return x
    if preprocess is not None:
        return preprocess(x)
    tensor = as_tensor(x)
    return tensor if tensor.dtype in (torch.int64, torch.int32) else tensor.float()  # token ids stay integers


def attach_preprocess(model: nn.Module, spec: PreprocessSpec | None) -> nn.Module:
    """Give ``model`` its ``preprocess`` (not a submodule: the weights file is unchanged) and make
    it take raw inputs (numpy arrays, integer tensors); float tensors pass as they are. Without a
    ``spec`` the model is left as it is (``model.preprocess`` is None)."""
    if spec is None:  # nothing recorded (text, recommenders, older folders): the model as it was
        if not hasattr(model, "preprocess"):
            object.__setattr__(model, "preprocess", None)
        return model
    pre = Preprocess(spec)
    if "preprocess" not in model._modules:  # never shadow a submodule of that name; the hook below works regardless
        object.__setattr__(model, "preprocess", pre)

    def raw_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not args or isinstance(args[0], dict) or not is_raw(args[0]) or torch.compiler.is_compiling():
            return None
        return (pre(args[0]), *args[1:])

    model.register_forward_pre_hook(raw_inputs)
    return model


def raw_input_runner(runner: Callable[[torch.Tensor], torch.Tensor], spec: PreprocessSpec) -> Callable[[Any], torch.Tensor]:
    """``runner`` (an exported graph taking raw (batch, *raw_shape) float32) called as a loaded model
    is: numpy arrays and integer tensors are raw data in any layout :meth:`Preprocess.batch` takes;
    a float tensor is the network's normalised input, turned back into raw values first (so
    ``slimforge eval`` and ``measure`` score an export on the same batches as its model)."""
    pre = Preprocess(spec)
    raw_shape, (c, h, w) = tuple(spec.raw_shape or spec.input_shape), (*spec.input_shape, 1, 1)[:3]
    channel_last = len(spec.input_shape) == 3 and raw_shape == (h, w, c) and raw_shape != tuple(spec.input_shape)

    def run(x: Any) -> torch.Tensor:
        if is_raw(x):
            x = pre.batch(x).to(torch.float32)
        else:  # network input -> raw: the inverse of x * gain + shift
            x = ((x.reshape(x.shape[0], *spec.input_shape) - pre.shift) / pre.gain).to(torch.float32)
        x = x.movedim(1, -1) if channel_last else x
        return runner(x.reshape(x.shape[0], *raw_shape).contiguous())

    return run
