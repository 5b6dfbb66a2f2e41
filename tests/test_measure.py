from __future__ import annotations

import math

import pytest
import torch

from slimforge.measure import Latency, count_macs, count_parameters, load_variant, measure_accuracy, measure_latency, measure_variants
from slimforge.models import create_model


def test_a_model_against_itself_is_within_five_percent():
    """Interleaved timing puts noise on both sides: the same model measured twice has a ratio near 1."""
    model = create_model("mlp", hidden=[256, 256], input_size=[16, 16]).eval()
    x = torch.randn(32, 1, 16, 16)
    ratios = []
    for _ in range(3):  # a burst from another process can skew one attempt; a bias skews all three
        result = measure_latency({"a": model, "b": model}, x, threads=1, warmup=20, repeats=1000)
        ratios.append(result["a"][32].p50_ms / result["b"][32].p50_ms)
        if 0.95 <= ratios[-1] <= 1.05:
            break
    assert 0.95 <= ratios[-1] <= 1.05, ratios


def test_latency_percentiles_are_ordered():
    lat = Latency.from_times(8, [0.001 * i for i in range(1, 101)])
    assert lat.p50_ms == pytest.approx(50.5) and lat.p90_ms == pytest.approx(90.1) and lat.p99_ms == pytest.approx(99.01)
    assert lat.throughput == pytest.approx(8 / 0.0505)


def test_macs_of_a_linear_layer_are_exact():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    assert count_macs(model, torch.randn(1, 1, 8, 8)) == 640
    assert count_parameters(model) == 650


def test_accuracy_top5_and_macro_f1_against_hand_counts():
    logits = torch.tensor([[9.0, 1, 0, 0, 0, 0], [0, 9.0, 1, 0, 0, 0], [0, 9.0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 9.0]])
    targets = torch.tensor([0, 1, 2, 5])
    out = measure_accuracy(lambda x: x, [(logits, targets)], num_classes=6)
    assert out["accuracy"] == 0.75
    assert out["top5_accuracy"] == 1.0
    # class 0: f1 1; class 1: p=1/2, r=1 -> 2/3; class 2: 0; class 5: 1 -> mean over present classes
    assert out["macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)


def test_measure_variants_reads_a_run_folder(tmp_path):
    import slimforge

    model = create_model("cnn", num_classes=10, in_channels=1, width=8)
    slimforge.save(model, tmp_path / "run")
    variant = load_variant(tmp_path / "run", "fp32")
    x = torch.randn(4, 1, 8, 8)
    report = measure_variants([variant], x, batch_sizes=(1, 4), eval_batches=[(x, torch.arange(4))], num_classes=10, repeats=5)
    row = report["variants"][0]
    assert row["params"] == count_parameters(model) and row["macs"] > 0 and row["size_bytes"] > 0
    assert set(row["latency"]) == {"1", "4"} and math.isfinite(row["latency"]["4"]["p50_ms"])
    assert 0 <= row["accuracy"] <= 1


def test_channels_last_variants_run_in_that_layout_with_the_same_outputs(tmp_path):
    import slimforge

    model = create_model("cnn", num_classes=10, in_channels=1, width=8).eval()
    slimforge.save(model, tmp_path / "run")
    variant = load_variant(tmp_path / "run", "nhwc", channels_last=True)
    conv = next(m for m in variant.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert variant.info["memory_format"] == "channels_last"
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(variant.predict(x), model(x), atol=1e-5, rtol=1e-4)
    report = measure_variants([variant], x, batch_sizes=(4,), repeats=3)
    assert report["variants"][0]["memory_format"] == "channels_last"


def test_a_batch_too_big_for_memory_is_one_clear_error(monkeypatch):
    import slimforge.measure as measure_mod
    from slimforge.errors import ConfigError

    monkeypatch.setattr(measure_mod, "available_memory", lambda: 64 * 2**20)  # 64 MiB free
    example = torch.zeros(2, 1, 28, 28)  # 3,136 bytes a row
    assert measure_mod._batch_of(example, 32).shape == (32, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"batch size 100000: its inputs alone need 0\.3 GiB"):
        measure_mod._batch_of(example, 100_000)


# ---------------------------------------------------------------- reference fp32 forms


def test_measure_reports_eager_and_channels_last_reference_forms_of_a_cnn(tmp_path):
    """The original model is timed as eager and channels-last (no compile: it is opt-in), and each
    variant's speed-ups are its latency against those forms' latencies in the same run."""
    import slimforge
    from slimforge.report import build_rows, reference_notes, write_report

    slimforge.save(create_model("cnn", num_classes=10, in_channels=1, width=8), tmp_path / "run")
    variant = load_variant(tmp_path / "run", "fp32")
    x = torch.randn(4, 1, 8, 8)
    report = measure_variants([variant], x, batch_sizes=(4,), repeats=5, reference=("eager", "channels_last"))
    ref = report["reference"]
    assert set(ref["forms"]) == {"eager", "channels_last"} and ref["unavailable"] == {}
    eager, cl = ref["forms"]["eager"]["4"]["p50_ms"], ref["forms"]["channels_last"]["4"]["p50_ms"]
    assert ref["best_fp32_form"]["4"] == ("eager" if eager <= cl else "channels_last")
    row = build_rows(report)[0]
    assert row["speedup_vs_eager"] == pytest.approx(eager / row["latency_ms"])
    assert row["speedup_vs_best_fp32"] == pytest.approx(min(eager, cl) / row["latency_ms"])
    assert row["speedup_vs_best_fp32"] <= row["speedup_vs_eager"]
    assert any("fastest fp32 form" in line for line in reference_notes(report))
    paths = write_report(tmp_path / "report", report)
    assert "vs best fp32" in paths["markdown"].read_text() and row["best_fp32_form"] in paths["markdown"].read_text()


def test_reference_forms_that_do_not_apply_say_why_and_reports_without_them_keep_their_columns(tmp_path):
    import slimforge
    from slimforge.report import build_rows, write_report

    slimforge.save(create_model("mlp", hidden=[16], input_size=[4, 4]), tmp_path / "run")
    variant = load_variant(tmp_path / "run", "fp32")
    x = torch.randn(2, 16)
    report = measure_variants([variant], x, batch_sizes=(2,), repeats=3, reference=("eager", "channels_last"))
    assert "4-D" in report["reference"]["unavailable"]["channels_last"]
    assert report["reference"]["best_fp32_form"]["2"] == "eager"
    plain = measure_variants([variant], x, batch_sizes=(2,), repeats=3)
    assert "reference" not in plain and "speedup_vs_eager" not in build_rows(plain)[0]
    assert "vs best fp32" not in write_report(tmp_path / "plain", plain)["markdown"].read_text()


def test_reference_names_are_checked():
    from slimforge.deploy_forms import parse_reference
    from slimforge.errors import UnknownNameError

    assert parse_reference("none") == () and parse_reference("eager, compile") == ("eager", "compile")
    with pytest.raises(UnknownNameError, match="channels_last"):
        parse_reference("eager,chanels_last")


@pytest.mark.parametrize("forms", [("eager", "channels_last"),
                                   pytest.param(("compile", "onnxruntime"), marks=pytest.mark.slow)])
def test_every_reference_form_computes_what_the_model_computes(forms):
    """A form is the same function deployed differently: its outputs match the module's (or it says why it is unavailable)."""
    from slimforge.deploy_forms import build_reference_forms

    model = create_model("cnn", num_classes=10, in_channels=1, width=8).eval()
    x = torch.randn(4, 1, 8, 8)
    built, unavailable = build_reference_forms(model, x, forms)
    assert set(built) | set(unavailable) == set(forms) and all(unavailable.values())
    with torch.no_grad():
        want = model(x)
        for name, predict in built.items():
            torch.testing.assert_close(predict(x), want, atol=1e-4, rtol=1e-4, msg=name)
    assert set(built) >= {"eager", "channels_last"} & set(forms)


@pytest.mark.parametrize("cls, gates", [(torch.nn.RNN, 1), (torch.nn.GRU, 3), (torch.nn.LSTM, 4)])
def test_recurrent_layers_are_counted(cls, gates):
    """issue 25: a BiLSTM's MACs left out the LSTM (0.09 M instead of about 7-8 M)."""
    rnn = cls(32, 64, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(4, 10, 32)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = rnn, torch.nn.Linear(128, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    per_step = gates * (32 * 64 + 64 * 64) + gates * (128 * 64 + 64 * 64)  # layer 1, layer 2 (input: both directions)
    expected = 2 * per_step * 40 + 4 * 128 * 2  # two directions, 4 x 10 steps, the head
    assert count_macs(Head().eval(), x) == expected
