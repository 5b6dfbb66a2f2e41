"""Logit distillation losses, one registry entry each.

A loss compares student and teacher logits of the same shape, ``(rows, classes)``, and
returns a scalar. The hard-label cross-entropy lives in the objective, which mixes the two as
``soft_weight * loss + hard_weight * CE`` with the weights summing to 1; each loss says what
``soft_weight`` it defaults to (``soft_weight`` attribute). Its settings are the keywords its
constructor takes, their defaults the constructor's: ``temperature``, ``alpha`` and ``beta`` have
fields of their own in the distill config (:func:`loss_settings`); any other keyword a loss takes
(a new loss's own hyper-parameter) is given in ``distill.loss_params`` or inline,
``loss: {name: my-loss, gamma: 2}`` (:func:`loss_params`). Each loss also says how an ensemble of teachers is merged for it
(``ensemble``): ``"probabilities"`` averages the softened probabilities at the loss's temperature,
``"logits"`` averages the raw logits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from slimforge._registry import Registry
from slimforge.errors import ConfigError

LOSS_SETTINGS = ("temperature", "alpha", "beta")  # the distill config keys a loss may take


class LogitLoss(Protocol):
    """student_logits, teacher_logits: (rows, classes); targets: (rows,) class indices -> scalar."""

    ensemble: str
    temperature: float

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


LOSSES: Registry[Callable[..., LogitLoss]] = Registry("distillation loss")
register_loss = LOSSES.register


def list_losses() -> list[str]:
    return LOSSES.names()


def build_loss(name: str, **params: Any) -> LogitLoss:
    """The loss registered as ``name``, given the keywords its constructor takes (others, and
    None values, are ignored: the constructor's defaults apply)."""
    factory = LOSSES.get(name)
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in params.items() if k in accepted and v is not None})


def loss_settings(name: str, **given: float | None) -> dict[str, float | None]:
    """``temperature``, ``alpha``, ``beta`` for loss ``name``: the given value, else the loss's
    default; None for a setting the loss does not take. Giving it one is a ConfigError, so a
    setting that would be silently ignored (``alpha`` with ``kd``) is refused instead."""
    factory = LOSSES.get(name)
    params = inspect.signature(factory).parameters
    settings: dict[str, float | None] = {}
    for key in LOSS_SETTINGS:
        value = given.get(key)
        if key in params:
            settings[key] = float(value) if value is not None else params[key].default
        elif value is not None:
            takes = [k for k in LOSS_SETTINGS if k in params]
            raise ConfigError(
                f"distill.{key}={value} does not apply to the {name!r} loss, which takes "
                f"{', '.join(takes) or 'none of temperature, alpha, beta'}; remove it, or choose a loss that uses it "
                f"({', '.join(n for n in LOSSES.names() if key in inspect.signature(LOSSES.get(n)).parameters)})."
            )
        else:
            settings[key] = None
    return settings


def split_loss(loss: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``"dkd"`` -> ("dkd", {}); ``{"name": "dkd", "beta": 8}`` -> ("dkd", {"beta": 8})."""
    if isinstance(loss, str):
        return loss, {}
    if isinstance(loss, Mapping) and isinstance(loss.get("name"), str):
        return loss["name"], {k: v for k, v in loss.items() if k != "name"}
    raise ConfigError(f"distill.loss must be a loss name or a mapping with a 'name' key and the loss's settings "
                      f"(e.g. {{name: dkd, beta: 8}}), got {loss!r}.")


def loss_params(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Loss ``name``'s own keywords beyond temperature/alpha/beta: each one the given value, else
    the constructor's default. A keyword the loss does not take is a ConfigError naming the ones it does."""
    params = {k: p for k, p in inspect.signature(LOSSES.get(name)).parameters.items()
              if k not in LOSS_SETTINGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise ConfigError(f"distill.loss_params {', '.join(unknown)} do not apply to the {name!r} loss, which takes "
                          f"{', '.join(params) or 'no parameter beyond temperature, alpha, beta'}.")
    missing = [k for k, p in params.items() if k not in given and p.default is p.empty]
    if missing:
        raise ConfigError(f"The {name!r} loss needs distill.loss_params {', '.join(missing)} (it has no default).")
    return {k: given[k] if k in given else p.default for k, p in params.items()}


def default_soft_weight(name: str) -> float:
    """The weight loss ``name`` gets against the labels' cross-entropy when neither is given."""
    return float(getattr(LOSSES.get(name), "soft_weight", 0.5))


@register_loss("kd", help="Hinton KD: T^2 * KL(softmax(teacher/T) || softmax(student/T))")
class KDLoss:
    """Hinton et al. (2015): KL divergence of the student's softened distribution from the
    teacher's, scaled by T^2 so gradient magnitudes do not shrink as T grows.

    d/dz_student = T * (softmax(z_student / T) - softmax(z_teacher / T)), which tends to
    (z_student - z_teacher) / classes (zero-mean logits) for large T: the pull does not depend on T,
    as the paper intends; without the T^2 it would fall as 1/T^2. At large T the term is therefore
    close to a squared error on the logits, whose curvature does not fall as the student learns
    (cross-entropy's does): the learning rate that plain training tolerates may be too high here.

    The soft cross-entropy of the paper differs only by the teacher's entropy, a constant: the
    gradients are the same, but the KL form reads as a distance (0 when the student matches the
    teacher), so the logged training loss shows how far the student still is.
    """

    ensemble = "probabilities"

    def __init__(self, temperature: float = 4.0) -> None:
        self.temperature = float(temperature)

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        teacher_probs = F.softmax(teacher_logits.float() / t, dim=-1)
        log_student = F.log_softmax(student_logits.float() / t, dim=-1)
        # kl_div takes 0 * log 0 as 0: a masked class (teacher logit -inf) adds nothing, not NaN.
        return F.kl_div(log_student, teacher_probs, reduction="none").sum(-1).mean() * t * t


@register_loss("dkd", help="Decoupled KD (Zhao et al. 2022): alpha * TCKD + beta * NCKD, times T^2")
class DKDLoss:
    """Decoupled knowledge distillation (Zhao et al., CVPR 2022, eq. 2-4).

    TCKD is the KL divergence between the binary (target, all other classes) distributions of
    teacher and student; NCKD the KL divergence between their distributions over the non-target
    classes alone. Both use temperature T and are scaled by T^2, as in the authors' code.
    """

    ensemble = "probabilities"

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0) -> None:
        self.alpha, self.beta, self.temperature = float(alpha), float(beta), float(temperature)

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        s, z = student_logits.float() / t, teacher_logits.float() / t
        is_target = F.one_hot(targets, s.shape[-1]).bool()
        tckd = _binary_kl(_target_log_probs(z, is_target), _target_log_probs(s, is_target))
        # A large finite offset instead of -inf keeps 0 * (log p - log q) finite in the backward pass.
        z_other = F.log_softmax(z.masked_fill(is_target, -1e9), dim=-1)
        s_other = F.log_softmax(s.masked_fill(is_target, -1e9), dim=-1)
        nckd = (z_other.exp() * (z_other - s_other)).masked_fill(is_target, 0.0).sum(-1)
        return (self.alpha * tckd + self.beta * nckd).mean() * t * t


@register_loss("mse", help="mean squared error between student and teacher logits (text students, regression-like KD)")
class LogitMSELoss:
    """Mean over rows and classes of (student - teacher)^2, on raw logits; ensembles average logits."""

    ensemble = "logits"
    temperature = 1.0

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(student_logits.float(), teacher_logits.float())


def _target_log_probs(scaled_logits: torch.Tensor, is_target: torch.Tensor) -> torch.Tensor:
    """(rows, 2): log P(target class), log P(any other class), computed without underflow."""
    total = torch.logsumexp(scaled_logits, dim=-1)
    target = scaled_logits.masked_fill(~is_target, -1e9).logsumexp(-1)
    other = scaled_logits.masked_fill(is_target, -1e9).logsumexp(-1)
    return torch.stack([target - total, other - total], dim=-1)


def _binary_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row for (rows, 2) log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)
