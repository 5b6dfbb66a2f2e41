"""Recipes: validation errors name the stage and key; reruns skip finished stages."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from slimforge.errors import ConfigError, SlimforgeError
from slimforge.pipeline import parse_recipe, run_recipe
from slimforge.pipeline import stages as stage_module

TINY = {
    "name": "tiny",
    "data": {"name": "digits"},
    "stages": [
        {"kind": "train", "model": {"name": "cnn", "kwargs": {"width": 8}}, "train": {"epochs": 2, "batch_size": 128, "lr": 0.05, "num_threads": 1}},
        {"kind": "prune", "ratio": 0.5, "round_to": 2, "finetune": {"epochs": 1, "batch_size": 128, "lr": 0.02, "num_threads": 1}},
        {"kind": "report", "batch_sizes": [8], "repeats": 5},
    ],
}


def _recipe(**changes):
    raw = json.loads(json.dumps(TINY))
    for i, change in changes.items():
        raw["stages"][int(i[1:])].update(change)
    return raw


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"stages": [{"kind": "trian"}]}, r"stage #1 has unknown kind 'trian'. Did you mean 'train'"),
        ({"stages": [{"model": {"name": "cnn"}}]}, r"stage #1 has no 'kind'"),
        ({"stages": [{"kind": "train"}, {"kind": "distill"}]}, r"stage 'distill' \(#2, kind distill\): missing key 'teachers'"),
        ({"stages": [{"kind": "train"}, {"kind": "prune", "ratoi": 0.5}]}, r"stage 'prune' \(#2, kind prune\): unknown key 'ratoi'. Did you mean 'ratio'"),
        ({"stages": [{"kind": "train"}, {"kind": "quantize", "input": "prunee"}]}, r"stage 'quantize' key 'input' = 'prunee' is neither an earlier stage \(train\)"),
        ({"stages": [{"kind": "train"}, {"kind": "train"}], "extra": 1}, r"unknown top-level key"),
        ({"stages": [{"kind": "train", "train": {"learning_rate": 0.1}}]}, r"unknown key 'train.learning_rate'. Valid keys: epochs, batch_size"),
        ({"stages": [{"kind": "train"}, {"kind": "prune", "ratio": 0.5, "finetune": {"epoch": 2}}]}, r"unknown key 'finetune.epoch'. Did you mean 'epochs'"),
        ({"data": {"name": "digitz"}, "stages": [{"kind": "train"}]}, r"Unknown dataset 'digitz'. Did you mean 'digits'"),
        ({"stages": [{"kind": "train"}, {"kind": "report", "reference": ["eagr"]}]}, r"stage 'report'.*Unknown reference form 'eagr'. Did you mean 'eager'"),
    ],
)
def test_bad_recipes_name_the_stage_and_key(raw, message):
    with pytest.raises(SlimforgeError, match=message):
        parse_recipe(raw, "bad.yaml")


def test_overrides_reach_stages_and_unknown_ones_are_named():
    recipe = parse_recipe(TINY, "tiny.yaml", ["prune.ratio=0.25", "data.val_fraction=0.2", "train.train.epochs=1"])
    assert recipe.stages[1].ratio == 0.25 and recipe.data.val_fraction == 0.2 and recipe.stages[0].train.epochs == 1
    with pytest.raises(ConfigError, match=r"'prun' is neither 'data' nor a stage.*Did you mean 'prune'"):
        parse_recipe(TINY, "tiny.yaml", ["prun.ratio=0.1"])
    with pytest.raises(ConfigError, match=r"Unknown config key 'ratoi'"):
        parse_recipe(TINY, "tiny.yaml", ["prune.ratoi=0.1"])


def test_missing_input_artifact_names_the_stage(tmp_path):
    (tmp_path / "empty").mkdir()
    recipe = parse_recipe({"stages": [{"kind": "quantize", "input": str(tmp_path / "empty")}]}, "r.yaml")
    with pytest.raises(SlimforgeError, match=r"stage 'quantize': its input .*empty' has no model.json \(key 'input'\)"):
        run_recipe(recipe, tmp_path / "out", quiet=True, log=lambda *_: None)


def test_interrupted_run_redoes_no_finished_stage(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    original = stage_module.RUNNERS.get("prune")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setitem(stage_module.RUNNERS._entries, "prune", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(parse_recipe(TINY, "tiny.yaml"), out, quiet=True, log=lambda *_: None)
    train_mtime = (out / "train" / "model.safetensors").stat().st_mtime_ns

    monkeypatch.setitem(stage_module.RUNNERS._entries, "prune", original)
    lines: list[str] = []
    markers = run_recipe(parse_recipe(TINY, "tiny.yaml"), out, quiet=True, log=lines.append)
    assert lines[0].startswith("[train] done earlier, skipped")
    assert (out / "train" / "model.safetensors").stat().st_mtime_ns == train_mtime
    assert markers["prune"]["metrics"]["test_accuracy"] > 0
    html = (out / "report" / "report.html").read_text()
    assert "<table id=\"variants\">" in html and html.count("data:image/png;base64,") >= 2

    # A changed stage reruns with everything after it; the stages before it stay.
    lines.clear()
    run_recipe(parse_recipe(TINY, "tiny.yaml", ["prune.ratio=0.25"]), out, quiet=True, log=lines.append)
    assert [line.split("]")[0][1:] for line in lines if "running" in line] == ["prune", "report"]


def test_a_recipe_prunes_to_a_latency_target_and_reports_against_reference_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMFORGE_CACHE", str(tmp_path / "cache"))
    raw = _recipe(s1={"ratio": None, "target_latency": 0.7, "latency": {"batch_size": 8, "repeats": 3}, "finetune": None},
                  s2={"reference": ["eager", "channels_last"]})
    run_recipe(parse_recipe(raw, "tiny.yaml"), tmp_path / "runs", quiet=True, log=lambda *_: None)
    edit = json.loads((tmp_path / "runs" / "prune" / "model.json").read_text())["edits"][-1]
    assert edit["latency"]["target"] == 0.7 and edit["latency"]["batch_size"] == 8
    report = json.loads((tmp_path / "runs" / "report" / "measurements.json").read_text())
    assert set(report["measurement"]["reference"]["forms"]) == {"eager", "channels_last"}
    assert all(r["best_fp32_form"] in ("eager", "channels_last") and r["speedup_vs_best_fp32"] > 0 for r in report["rows"])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make test installs it)")
def test_html_report_renders_in_headless_chromium(tmp_path):
    """The report opens in a real browser with its table and inline Pareto plot decoded."""
    from slimforge.report import write_report

    def row(name, acc, ms, macs):
        lat = {"p50_ms": ms, "p90_ms": ms * 1.1, "throughput": 32 / ms * 1000}
        return {"name": name, "kind": "pytorch", "accuracy": acc, "macs": macs, "params": 1000, "size_bytes": 4096, "latency": {"32": lat}}

    measurement = {"threads": 1, "batch_sizes": [32], "variants": [row("base", 0.95, 10.0, 5e6), row("pruned", 0.945, 4.0, 2e6), row("bad", 0.90, 12.0, 6e6)]}
    paths = write_report(tmp_path, measurement, title="render check")
    script = (
        "document.title = [document.querySelectorAll('#variants tbody tr').length,"
        " Array.from(document.images).filter(i => i.complete && i.naturalWidth > 100).length].join(',')"
    )
    page = paths["html"].read_text().replace("</body>", f"<script>{script}</script></body>")
    paths["html"].write_text(page)
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom", paths["html"].as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert "<title>3,1</title>" in proc.stdout, proc.stderr[-2000:]
    assert "pruned" in proc.stdout and "2.50x" in proc.stdout  # speed-up column: 10 ms / 4 ms


def test_an_interrupted_training_stage_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from slimforge.train import Callback

    class StopAfterFirstEpoch(Callback):  # killed as the second epoch begins: epoch 1 is checkpointed
        def on_epoch_start(self, state):
            if state.epoch == 1:
                raise KeyboardInterrupt

    real_train = stage_module.train
    monkeypatch.setattr(stage_module, "train", lambda *a, **k: real_train(*a, **{**k, "callbacks": [StopAfterFirstEpoch()]}))
    out = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        run_recipe(parse_recipe(TINY, "tiny.yaml"), out, quiet=True, log=lambda *_: None)
    # The cut-short stage left its partial folder (for resuming), never a folder that looks finished.
    assert (out / ".train.partial" / "checkpoint.safetensors").is_file() and not (out / "train").exists()

    monkeypatch.setattr(stage_module, "train", real_train)
    lines: list[str] = []
    markers = run_recipe(parse_recipe(TINY, "tiny.yaml"), out, quiet=True, log=lines.append)
    assert lines[0] == "[train] resuming from its checkpoint (train)"
    history = [json.loads(line)["epoch"] for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert history == [1, 2] and markers["train"]["metrics"]["epochs_run"] == 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no partial folder or lock left behind
    # A changed training stage starts over instead.
    lines.clear()
    run_recipe(parse_recipe(TINY, "tiny.yaml", ["train.train.lr=0.04"]), out, quiet=True, log=lines.append)
    assert lines[0] == "[train] running (train)"


def test_runtime_only_keys_leave_a_finished_stage_done():
    from slimforge.pipeline.runner import _fingerprint

    def fingerprint(*overrides):
        recipe = parse_recipe({"stages": [{"kind": "train"}, {"kind": "quantize"}]}, "r.yaml", list(overrides))
        return _fingerprint(recipe.stages[1], recipe, {"train": "0123"}, ctx=None)

    assert fingerprint("quantize.threads=2") == fingerprint()  # threads: how it runs, not what it writes
    assert fingerprint("quantize.calib_batches=4") != fingerprint()
