"""Each loss against a literal reference formula, and a contract every registered loss meets."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from slimforge.distill import DKDLoss, KDLoss, LogitMSELoss, build_loss, list_losses
from slimforge.errors import UnknownNameError


def _logits(rows: int = 8, classes: int = 5, seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(rows, classes, generator=g, dtype=torch.float64) * scale
    teacher = torch.randn(rows, classes, generator=g, dtype=torch.float64) * scale
    targets = torch.randint(0, classes, (rows,), generator=g)
    return student, teacher, targets


def test_kd_at_temperature_one_is_cross_entropy_with_teacher_probabilities_less_their_entropy() -> None:
    s, t, y = _logits()
    teacher = F.softmax(t.float(), dim=-1)
    expected = F.cross_entropy(s.float(), teacher) - F.cross_entropy(t.float(), teacher)
    assert torch.allclose(KDLoss(temperature=1.0)(s, t, y), expected, atol=1e-6)
    assert KDLoss(temperature=4.0)(t, t, y).item() == pytest.approx(0.0, abs=1e-6)  # a student matching its teacher
    masked = t.clone()
    masked[:, 0] = float("-inf")  # a class the teacher rules out
    assert torch.isfinite(KDLoss(temperature=4.0)(s, masked, y))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 10.0])
def test_kd_is_t_squared_times_kl_divergence(temperature: float) -> None:
    s, t, y = _logits(seed=1)
    expected = 0.0
    for row_s, row_t in zip(s.tolist(), t.tolist()):
        zs = [v / temperature for v in row_s]
        zt = [v / temperature for v in row_t]
        log_norm_s = math.log(sum(math.exp(v) for v in zs))
        log_norm_t = math.log(sum(math.exp(v) for v in zt))
        expected += sum(math.exp(b - log_norm_t) * ((b - log_norm_t) - (a - log_norm_s)) for a, b in zip(zs, zt))
    expected = temperature**2 * expected / len(s)
    assert KDLoss(temperature)(s, t, y).item() == pytest.approx(expected, rel=1e-5)


def test_kd_gradient_equals_that_of_kl_divergence() -> None:
    s, t, y = _logits(seed=2)
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    KDLoss(3.0)(s1, t, y).backward()
    kl = F.kl_div(F.log_softmax(s2 / 3.0, -1), F.softmax(t / 3.0, -1), reduction="batchmean") * 9.0
    kl.backward()
    assert torch.allclose(s1.grad.double(), s2.grad, atol=1e-6)


def _dkd_reference(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, alpha: float, beta: float, temp: float) -> float:
    """Zhao et al. 2022, eq. (2)-(4), written out in plain Python one sample at a time."""
    total = 0.0
    for row_s, row_t, gt in zip(s.tolist(), t.tolist(), y.tolist()):
        ps = [math.exp(v / temp) for v in row_s]
        pt = [math.exp(v / temp) for v in row_t]
        ps = [v / sum(ps) for v in ps]
        pt = [v / sum(pt) for v in pt]
        b_s, b_t = [ps[gt], 1 - ps[gt]], [pt[gt], 1 - pt[gt]]
        tckd = sum(bt * math.log(bt / bs) for bt, bs in zip(b_t, b_s))
        hat_s = [ps[i] / (1 - ps[gt]) for i in range(len(ps)) if i != gt]
        hat_t = [pt[i] / (1 - pt[gt]) for i in range(len(pt)) if i != gt]
        nckd = sum(a * math.log(a / b) for a, b in zip(hat_t, hat_s))
        total += alpha * tckd + beta * nckd
    return temp**2 * total / len(y)


@pytest.mark.parametrize(("alpha", "beta", "temperature"), [(1.0, 8.0, 4.0), (1.0, 1.0, 1.0), (0.5, 2.0, 2.0), (0.0, 1.0, 3.0)])
def test_dkd_matches_the_papers_equations(alpha: float, beta: float, temperature: float) -> None:
    s, t, y = _logits(seed=3, scale=2.0)
    got = DKDLoss(alpha=alpha, beta=beta, temperature=temperature)(s, t, y).item()
    assert got == pytest.approx(_dkd_reference(s, t, y, alpha, beta, temperature), rel=1e-5)


def test_dkd_decomposes_kd_as_in_equation_one() -> None:
    # KL(p_t || p_s) = TCKD + (1 - p_t[target]) * NCKD, per sample.
    s, t, y = _logits(seed=4, rows=1, scale=2.0)
    tckd = DKDLoss(alpha=1.0, beta=0.0, temperature=1.0)(s, t, y)
    nckd = DKDLoss(alpha=0.0, beta=1.0, temperature=1.0)(s, t, y)
    kl = F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")
    p_target = F.softmax(t, -1)[0, y[0]].float()
    assert torch.allclose(tckd + (1 - p_target) * nckd, kl.float(), atol=1e-6)


def test_dkd_stays_finite_for_confident_teachers() -> None:
    s, t, y = _logits(seed=5)
    t = t.clone()
    t[torch.arange(len(y)), y] = 200.0  # teacher puts ~all mass on the target class
    s = s.clone().requires_grad_()
    loss = DKDLoss()(s, t, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_logit_mse_is_mean_squared_difference() -> None:
    s, t, y = _logits(seed=6)
    assert LogitMSELoss()(s, t, y).item() == pytest.approx(((s - t) ** 2).mean().item(), rel=1e-6)


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_is_minimal_where_the_student_matches_the_teacher(name: str) -> None:
    loss = build_loss(name, temperature=2.0, alpha=1.0, beta=4.0)
    _, t, y = _logits(seed=7)
    t = t.float()
    at_teacher = t.clone().requires_grad_()
    value = loss(at_teacher, t, y)
    value.backward()
    assert value.dim() == 0 and torch.isfinite(value)
    assert at_teacher.grad.abs().max() < 1e-5
    perturbed = t + torch.randn(t.shape, generator=torch.Generator().manual_seed(8))
    assert loss(perturbed, t, y) > value
    assert loss.ensemble in ("probabilities", "logits")


def test_unknown_loss_name_suggests_a_registered_one() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'dkd'"):
        build_loss("dkdd")


def _grad(loss, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    s = student.clone().requires_grad_()
    loss(s, teacher, torch.zeros(len(s), dtype=torch.long)).backward()
    return s.grad


def test_kd_gradient_scale_does_not_depend_on_the_temperature() -> None:
    # Hinton et al. (2015), section 2.1: d/dz_s of T^2 KL = T (q_s - q_t) -> (z_s - z_t) / N (zero-mean
    # logits) as T grows, so the T^2 keeps the soft term's pull the same at any temperature. Without it
    # the gradient would shrink as 1/T^2 (a factor of 400 at the paper's T = 20).
    s, t, _ = _logits(rows=16, classes=10, seed=9, scale=2.0)
    s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)
    limit = (s - t) / s.shape[-1] / len(s)  # batch mean
    norms = {}
    for temperature in (5.0, 10.0, 20.0, 40.0):
        grad = _grad(KDLoss(temperature), s, t)
        norms[temperature] = grad.norm().item()
    assert max(norms.values()) / min(norms.values()) < 1.08  # 5 to 40: the same scale
    high = _grad(KDLoss(40.0), s, t)  # and it approaches the high-temperature limit
    assert (high - limit).abs().max() < 0.05 * limit.abs().max() and high.norm() == pytest.approx(limit.norm().item(), rel=0.01)


def test_kd_gradient_is_bounded_by_temperature_for_any_logits() -> None:
    # The other side of the T^2: per logit the gradient is T * (q_s - q_t), at most T in size, so a
    # student far from a confident teacher pulls T times harder than cross-entropy can (at most 1).
    s, t, _ = _logits(rows=4, classes=10, seed=10, scale=50.0)
    for temperature in (1.0, 4.0, 20.0):
        grad = _grad(KDLoss(temperature), s, t) * len(s)  # per row
        assert grad.abs().max().item() <= temperature + 1e-9


def test_loss_settings_fill_each_loss_s_own_defaults_and_leave_out_what_it_does_not_take() -> None:
    from slimforge.distill.losses import default_soft_weight, loss_settings

    assert loss_settings("kd") == {"temperature": 4.0, "alpha": None, "beta": None}
    assert loss_settings("kd", temperature=2, alpha=None) == {"temperature": 2.0, "alpha": None, "beta": None}
    assert loss_settings("dkd", alpha=2) == {"temperature": 4.0, "alpha": 2.0, "beta": 8.0}
    assert loss_settings("mse") == {"temperature": None, "alpha": None, "beta": None}
    assert isinstance(loss_settings("kd", temperature=2)["temperature"], float)
    assert all(default_soft_weight(name) == 0.5 for name in list_losses())  # none declares its own yet


@pytest.mark.parametrize(("name", "given", "message"), [
    ("kd", {"alpha": 2.0}, "distill.alpha=2.0 does not apply to the 'kd' loss, which takes temperature; "
                           "remove it, or choose a loss that uses it (dkd)."),
    ("mse", {"temperature": 3.0}, "distill.temperature=3.0 does not apply to the 'mse' loss, which takes none of "
                                  "temperature, alpha, beta; remove it, or choose a loss that uses it (dkd, kd)."),
])
def test_a_setting_a_loss_would_ignore_is_refused_naming_the_losses_that_take_it(name, given, message) -> None:
    from slimforge.distill.losses import loss_settings
    from slimforge.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        loss_settings(name, **given)
    assert str(info.value) == message


def test_losses_built_without_settings_use_the_documented_defaults() -> None:
    s, t, y = _logits(seed=9)
    assert KDLoss()(s, t, y).item() == pytest.approx(KDLoss(temperature=4.0)(s, t, y).item(), rel=1e-9)
    assert KDLoss()(s, t, y).item() != pytest.approx(KDLoss(temperature=5.0)(s, t, y).item(), rel=1e-3)
    reference = DKDLoss(alpha=1.0, beta=8.0, temperature=4.0)(s, t, y).item()
    assert DKDLoss()(s, t, y).item() == pytest.approx(reference, rel=1e-9)
    for other in ({"alpha": 2.0}, {"beta": 9.0}, {"temperature": 5.0}):
        assert DKDLoss(**other)(s, t, y).item() != pytest.approx(reference, rel=1e-3)


def test_build_loss_passes_the_given_settings_and_skips_unset_ones() -> None:
    kd = build_loss("kd", temperature=2.0, alpha=None, beta=3.0)  # kd takes no beta: ignored here
    dkd = build_loss("dkd", temperature=None, alpha=None, beta=3.0)
    assert kd.temperature == 2.0
    assert (dkd.alpha, dkd.beta, dkd.temperature) == (1.0, 3.0, 4.0)


def test_a_registered_loss_declares_its_own_soft_weight_and_settings(monkeypatch) -> None:
    from slimforge.distill.losses import LOSSES, default_soft_weight, loss_settings
    from slimforge.errors import ConfigError

    class SharpKD(KDLoss):
        soft_weight = 0.9

        def __init__(self, temperature: float = 2.0, alpha: float = 0.5) -> None:
            super().__init__(temperature)
            self.alpha = alpha

    monkeypatch.setitem(LOSSES._entries, "sharp-kd", SharpKD)
    assert default_soft_weight("sharp-kd") == 0.9
    assert loss_settings("sharp-kd", alpha=0.25) == {"temperature": 2.0, "alpha": 0.25, "beta": None}
    with pytest.raises(ConfigError, match=r"which takes temperature, alpha; .* \(dkd\)\.$"):
        loss_settings("sharp-kd", beta=1.0)
