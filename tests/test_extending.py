"""The plug-in examples of docs/extending.md, registered from outside the package.

Each example is one file under examples/extending/ (a loss with its own hyper-parameter, an
importance criterion, a quantization backend, a pruning op rule); these tests import them as a
user would and check each works through the library, and that the docs show the files as they are.
"""

from __future__ import annotations

import copy
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import slimforge
from slimforge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "extending"
MODULES = ("mixed_kl", "fpgm_importance", "bf16_backend", "channel_gate_rule")


@pytest.fixture(scope="module")
def plugins() -> dict[str, object]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return {name: importlib.import_module(name) for name in MODULES}
    finally:
        sys.path.remove(str(EXAMPLES))


def test_the_docs_show_each_example_file_as_it_is() -> None:
    docs = (ROOT / "docs" / "extending.md").read_text()
    for name in MODULES:
        block = re.search(rf"<!-- examples/extending/{name}.py -->\n```python\n(.*?)```", docs, re.S)
        assert block is not None, f"docs/extending.md does not show examples/extending/{name}.py"
        assert block.group(1) == (EXAMPLES / f"{name}.py").read_text(), f"docs/extending.md's copy of {name}.py is out of date"


# ----------------------------------------------------------------------------- a loss with its own setting


def test_a_plug_in_loss_takes_its_own_hyper_parameter_from_the_config(plugins) -> None:
    from slimforge.distill import DistillConfig
    from slimforge.distill.api import DistillSection

    inline = DistillConfig(loss={"name": "mixed-kl", "reverse_weight": 0.3, "temperature": 2})
    assert (inline.loss, inline.temperature, dict(inline.loss_params)) == ("mixed-kl", 2.0, {"reverse_weight": 0.3})
    assert dict(DistillConfig(loss="mixed-kl").loss_params) == {"reverse_weight": 0.5}  # the constructor's default, resolved
    section = DistillSection.model_validate({"loss": "mixed-kl", "loss_params": {"reverse_weight": 0.8}})
    assert dict(section.to_config().loss_params) == {"reverse_weight": 0.8}
    with pytest.raises(ConfigError, match=r"gamma do not apply to the 'mixed-kl' loss, which takes reverse_weight"):
        DistillConfig(loss="mixed-kl", loss_params={"gamma": 1.0})
    with pytest.raises(ConfigError, match=r"which takes no parameter beyond temperature, alpha, beta"):
        DistillConfig(loss={"name": "kd", "reverse_weight": 0.3})
    with pytest.raises(ConfigError, match="given twice"):
        DistillConfig(loss={"name": "kd", "temperature": 2}, temperature=3)


def test_the_plug_in_loss_computes_what_it_says(plugins) -> None:
    from slimforge.distill import KDLoss, build_loss

    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert build_loss("mixed-kl", temperature=2.0, reverse_weight=0.0)(s, t, y).item() == pytest.approx(KDLoss(2.0)(s, t, y).item(), rel=1e-5)
    reverse = (s.log_softmax(-1).exp() * (s.log_softmax(-1) - t.log_softmax(-1))).sum(-1).mean()
    assert build_loss("mixed-kl", temperature=1.0, reverse_weight=1.0)(s, t, y).item() == pytest.approx(reverse.item(), rel=1e-5)


def test_distillation_runs_with_the_plug_in_loss_and_records_its_setting(plugins, tmp_path) -> None:
    from slimforge.distill import DistillConfig
    from slimforge.distill import run as distill

    data = slimforge.load_dataset("digits")
    teacher = slimforge.create_model("mlp", **data.info.model_kwargs(), hidden=[32])
    student = slimforge.create_model("mlp", **data.info.model_kwargs(), hidden=[8])
    config = DistillConfig(loss={"name": "mixed-kl", "reverse_weight": 0.25})
    distill(student, [teacher], data, config, slimforge.TrainConfig(epochs=1, batch_size=128, quiet=True), tmp_path / "student")
    recorded = slimforge.artifacts.read_json_quiet(tmp_path / "student" / "metrics.json")["distill"]
    assert (recorded["loss"], recorded["loss_params"]) == ("mixed-kl", {"reverse_weight": 0.25})


# ----------------------------------------------------------------------------- an importance criterion


def test_a_plug_in_criterion_chooses_which_channels_go(plugins) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():  # rows 0 and 1 coincide: FPGM drops one of them, though both have the largest norm
        model[0].weight.copy_(torch.tensor([[3.0] * 6, [3.0] * 6, [0.5, -0.5] * 3, [-1.0, 0.2] * 3]))
        model[0].bias.zero_()
        model[2].weight.fill_(1.0)  # the next layer's columns score alike, so l2 ranks by the rows' norms
    pruned = slimforge.prune(copy.deepcopy(model), torch.randn(2, 6), ratio=0.25, importance="fpgm", round_to=1)
    kept = pruned[0].weight
    assert kept.shape == (3, 6)
    assert sum(torch.equal(row, torch.full((6,), 3.0)) for row in kept) == 1
    by_norm = slimforge.prune(copy.deepcopy(model), torch.randn(2, 6), ratio=0.25, importance="l2", round_to=1)
    assert sum(torch.equal(row, torch.full((6,), 3.0)) for row in by_norm[0].weight) == 2


def test_a_criterion_that_needs_gradients_says_so_when_it_registers() -> None:
    from slimforge.prune.importance import IMPORTANCES, needs_gradients

    assert needs_gradients("taylor") and not needs_gradients("l2")
    assert IMPORTANCES.meta("taylor") == {"needs_gradients": True}


# ----------------------------------------------------------------------------- a quantization backend


def test_a_plug_in_backend_quantizes_saves_and_loads_through_slimforge(plugins, tmp_path) -> None:
    from slimforge.quantize import QuantizeConfig, save_quantized

    model = slimforge.create_model("cnn", in_channels=1, num_classes=10, width=8).eval()
    calibration = [torch.randn(4, 1, 8, 8)]
    result = slimforge.quantize(model, calibration, QuantizeConfig(backend="bf16"))
    x = torch.randn(3, 1, 8, 8)
    expected = result.quantized(x)
    assert expected.dtype == torch.float32 and (expected - model(x)).abs().max() < 0.1  # bf16 keeps ~3 digits
    save_quantized(result, tmp_path / "bf16")
    loaded = slimforge.load(tmp_path / "bf16")
    assert torch.equal(loaded(x), expected)
    assert next(p for n, p in loaded.model.named_parameters() if n.endswith("weight")).dtype == torch.bfloat16


# ----------------------------------------------------------------------------- a pruning op rule


class _Gated(nn.Module):
    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.conv, self.gate, self.head = nn.Conv2d(3, 16, 3), gate, nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.gate(self.conv(x))))


def test_a_plug_in_op_rule_lets_pruning_through_a_custom_op(plugins, tmp_path) -> None:
    model = _Gated(plugins["channel_gate_rule"].ChannelGate(16)).eval()
    with torch.no_grad():
        model.gate.gate.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 10, 10)
    pruned = slimforge.prune(model, x, ratio=0.5, round_to=1)
    assert pruned.conv.out_channels == 8 and pruned.gate.gate.shape == (8,) and pruned.head.in_channels == 8
    assert pruned(x).shape == model(x).shape


def test_an_op_without_a_rule_is_named_with_the_way_to_teach_it(plugins) -> None:
    from slimforge.prune import UnsupportedOpError, register_op_rule

    @torch.library.custom_op("demo::untaught", mutates_args=())
    def untaught(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    untaught.register_fake(lambda x: torch.empty_like(x))

    class Untaught(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return untaught(x)

    model = _Gated(Untaught()).eval()
    with pytest.raises(UnsupportedOpError, match=r"register_op_rule\('demo::untaught', like='relu'\)"):
        slimforge.prune(model, torch.randn(2, 3, 10, 10), ratio=0.5, round_to=1)
    register_op_rule("demo::untaught", like="relu")
    assert slimforge.prune(model, torch.randn(2, 3, 10, 10), ratio=0.5, round_to=1).conv.out_channels == 8
    with pytest.raises(ValueError, match="already has a pruning rule"):
        register_op_rule("demo::untaught", like="mul")
    with pytest.raises(ValueError, match="Did you mean 'relu'"):
        register_op_rule("demo::other", like="reluu")


# ----------------------------------------------------------------------------- the command line


def test_the_command_line_loads_plug_ins_named_in_slimforge_plugins(tmp_path, cli_env, python) -> None:
    env = {**cli_env, "SLIMFORGE_PLUGINS": "fpgm_importance, mixed_kl", "PYTHONPATH": f"{EXAMPLES}:{cli_env['PYTHONPATH']}"}
    script = "import slimforge.cli, slimforge.prune.importance as i, slimforge.distill.losses as l; " \
             "slimforge.cli.main(['models']); print('fpgm' in i.IMPORTANCES, 'mixed-kl' in l.LOSSES)"
    done = subprocess.run([python, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("True True")
    bad = subprocess.run([python, "-m", "slimforge", "models"], env={**env, "SLIMFORGE_PLUGINS": "no_such_plugin"},
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "$SLIMFORGE_PLUGINS names 'no_such_plugin', which could not be imported" in bad.stderr


def test_an_installed_plug_in_that_fails_to_load_is_named_in_one_error(monkeypatch) -> None:
    from slimforge import plugins

    class Broken:
        name, value = "broken", "broken_pkg.register"

        def load(self):
            raise ImportError("No module named 'broken_pkg'")

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [Broken()] if group == plugins.ENTRY_POINT_GROUP else [])
    with pytest.raises(ConfigError, match=r"installed plug-in 'broken' \(broken_pkg.register.*failed to load: ImportError"):
        plugins.load_plugins([])
