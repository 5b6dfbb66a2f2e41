"""recipes/sst2.yaml end to end on a few hundred SMS messages: the issue's CI-sized check of the text chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import slimforge
from slimforge.pipeline import load_recipe, run_recipe
from slimforge.text.predict import predict
from tests.conftest import needs_shared

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "sst2.yaml"
SMALL = [
    "data.name=sms-spam", "data.options.max_train=300", "data.options.val_fraction=0.1", "data.options.test_fraction=0.05",
    "data.options.max_length=32",
    "teacher.train.epochs=2", "teacher.train.batch_size=16", "teacher.train.num_threads=1",
    "pruned.finetune.epochs=1", "pruned.finetune.batch_size=16", "pruned.finetune.num_threads=1",
    "student.train.epochs=3", "student.train.batch_size=32", "student.train.num_threads=1", "student.distill.augment_copies=2",
    "report.batch_sizes=[1]", "report.repeats=3",
]


@pytest.mark.slow  # about 100 s: the whole recipe, five stages, on real data
@needs_shared
def test_the_sst2_recipe_runs_on_sms_spam_and_every_folder_predicts_alone(tmp_path):
    markers = run_recipe(load_recipe(RECIPE, SMALL), tmp_path, quiet=True, log=lambda *_: None)
    assert list(markers) == ["teacher", "pruned", "pruned-int8", "student", "report"]
    acc = {name: m["metrics"]["test_accuracy"] for name, m in markers.items() if name != "report"}
    spam_share = 0.134  # of the SMS collection; always answering "ham" scores 1 - that
    assert acc["teacher"] > 1 - spam_share + 0.05, acc

    pruned = slimforge.load(tmp_path / "pruned")
    assert (pruned.config.num_attention_heads, pruned.config.intermediate_size) == (6, 768)
    assert abs(acc["pruned-int8"] - markers["pruned-int8"]["metrics"]["fp32_test_accuracy"]) <= 0.02

    student = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert student["data"]["sizes"]["train"] > 300  # the transfer set: originals plus their copies
    report = (tmp_path / "report" / "report.md").read_text()
    assert all(f"| {name} |" in report for name in ("teacher", "pruned", "pruned-int8", "student"))

    spam = "WINNER!! You have won a free prize worth 1000 pounds, text CLAIM to 80082 now"
    for run in ("teacher", "pruned", "pruned-int8", "student"):
        [p] = predict(tmp_path / run, spam)  # tokenizer and labels come from the folder itself
        assert set(p.probabilities) == {"ham", "spam"}
    assert predict(tmp_path / "teacher", spam)[0].label == "spam"
