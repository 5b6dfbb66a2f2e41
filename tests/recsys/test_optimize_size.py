"""The ``embedding-tables`` size generator: per-table mixes round-trip, the mix keeps the budget,
and ``slimforge optimize --objective size`` turns a trained recommender into a smaller run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import slimforge
from slimforge.cli import main
from slimforge.experiment import DataConfig
from slimforge.optimize import Budget, OptimizeConfig, optimize
from slimforge.optimize.size import SIZE_GENERATORS, weight_file
from slimforge.quantize import QuantizationError, QuantizeConfig, load_quantized, quantize, save_quantized
from slimforge.recsys.compress import EmbeddingTables, EmbeddingTablesSearch
from slimforge.recsys.students import StudentSearch
from slimforge.train import TrainConfig, seed_everything, train


@pytest.fixture(scope="module")
def fbgemm():
    return pytest.importorskip("fbgemm_gpu")


@pytest.fixture(scope="module")
def trained_neumf(small_synthetic, tmp_path_factory):
    """NeuMF trained 4 epochs on the small generated set, as a run folder (~3 s)."""
    seed_everything(0)
    out = tmp_path_factory.mktemp("neumf") / "run"
    model = slimforge.create_model("neumf", dim=16, mlp=[32, 16, 8], **small_synthetic.info.model_kwargs())
    train(model, small_synthetic, TrainConfig(epochs=4, lr=0.01, quiet=True, num_threads=1), out=out)
    return out


def test_a_per_table_mix_round_trips_and_sits_between_the_widths(fbgemm, small_synthetic, trained_neumf, tmp_path):
    from slimforge.recsys.quantize import quantize_embeddings

    model = slimforge.load(trained_neumf).eval()
    calibration = [small_synthetic.train.__getitems__(list(range(32)))]
    sizes = {}
    for label, table_bits in {"int4": {}, "mix": {"gmf_item": 2, "mlp_item": 2}, "int2": None}.items():
        result = quantize(model, calibration, QuantizeConfig(backend="fbgemm-int2" if table_bits is None else "fbgemm-int4"))
        if table_bits:
            result.quantized = quantize_embeddings(model, 4, backend="fbgemm-int4", table_bits=table_bits)
        folder = save_quantized(result, tmp_path / label)
        sizes[label] = weight_file(folder).stat().st_size
        if label == "mix":
            loaded = load_quantized(folder)
            assert loaded.tables() == {"gmf_user": "int4", "gmf_item": "int2", "mlp_user": "int4", "mlp_item": "int2"}
            inputs = small_synthetic.val[0][0]  # one user's 50 candidates
            assert torch.equal(loaded(inputs), result.quantized(inputs))
    assert sizes["int2"] < sizes["mix"] < sizes["int4"]
    with pytest.raises(QuantizationError, match=r"must name embedding tables of the model \(\['gmf_item'.*unknown: \['user_table'\]"):
        quantize_embeddings(model, 4, table_bits={"user_table": 2})


class ScoredByPrecision:
    """A session stand-in: a model's validation score is 1 minus the loss of each of its int2 tables."""

    def __init__(self, losses: dict[str, float], budget_points: float) -> None:
        self.losses, self.budget = losses, Budget(budget_points)
        self.added: list[tuple[str, dict]] = []
        self.log = lambda *_: None

    def time_left(self) -> float:
        return 1e9

    def score(self, model) -> float:
        return 1.0 - sum(self.losses[name] for name, precision in model.tables().items() if precision == "int2")

    def score_paired(self, model) -> tuple[float, None]:
        return self.score(model), None

    def allows(self, val: float, per_sample=None) -> bool:
        return self.budget.allows(1.0, val)

    def add(self, name, save, recipe, details=None, started=None):
        self.added.append((name, details))


def test_the_mix_takes_the_cheapest_tables_to_int2_while_within_the_budget(fbgemm, small_synthetic):
    model = slimforge.create_model("neumf", dim=16, mlp=[32, 16, 8], **small_synthetic.info.model_kwargs())
    losses = {"gmf_user": 0.001, "mlp_user": 0.002, "gmf_item": 0.03, "mlp_item": 0.04}
    session = ScoredByPrecision(losses, budget_points=0.35)  # 0.001 + 0.002 fits; either item table does not
    EmbeddingTables().mix(session, model, "", "")
    [(name, details)] = session.added
    assert name == "mix-int4-int2"
    assert details["table_bits"] == {"gmf_user": 2, "gmf_item": 4, "mlp_user": 2, "mlp_item": 4}
    assert details["table_loss_alone"] == pytest.approx(losses)
    session = ScoredByPrecision(losses, budget_points=0.05)  # no table alone fits: no mix candidate
    EmbeddingTables().mix(session, model, "", "")
    assert session.added == []


def test_optimize_size_returns_the_smallest_recommender_within_the_budget(fbgemm, small_synthetic, trained_neumf, tmp_path, monkeypatch):
    generator = SIZE_GENERATORS.get("embedding-tables")
    monkeypatch.setattr(generator, "settings", EmbeddingTablesSearch(widths=(4, 2), svd_widths=(4,), energies=(0.8,), finetune_epochs=1))
    monkeypatch.setattr(SIZE_GENERATORS.get("distilled-students"), "settings", StudentSearch(students=()))  # tables only here
    data_config = DataConfig(name="synthetic-ratings", options={"num_users": 80, "num_items": 160, "max_per_user": 20, "eval_negatives": 49})
    cfg = OptimizeConfig(objective="size", metric="hr@10", budget=Budget(5.0, relative=True), train_threads=1)
    summary = optimize(trained_neumf, small_synthetic, cfg, tmp_path / "opt", log=lambda *_: None, data_config=data_config)
    names = [c["name"] for c in summary["candidates"]]
    assert names[:2] == ["int4", "int2"] and "svd80" in names and "svd80-int4" in names
    within = [c for c in summary["candidates"] if c["within_budget"]]
    budget, base = Budget(5.0, True), summary["baseline"]["val"]
    assert all(c["within_budget"] == (budget.loss(base, c["val"]) + c["margin"] <= 5.0 + 1e-3) for c in summary["candidates"])
    best = summary["best"]
    assert best is not None and best["bytes"] == min(c["bytes"] for c in within)
    assert best["size_x"] > 3.0  # measured: int4 tables alone 3.43x smaller on this model, int2 4.25x
    # best/ is a folder slimforge.load and slimforge eval read: its own test score is the one recorded
    folder = tmp_path / "opt" / "best"
    assert slimforge.evaluate(slimforge.load(folder), small_synthetic.test)["hr@10"] == pytest.approx(best["test"])
    assert "synthetic-ratings" in (folder / "config.yaml").read_text() and (folder / "catalogue.json").is_file()
    assert json.loads((tmp_path / "opt" / "optimize.json").read_text())["metric"] == "hr@10"


def test_distilled_students_are_smaller_models_trained_from_the_baseline_then_quantized(fbgemm, small_synthetic, trained_neumf,
                                                                                       tmp_path, monkeypatch):
    monkeypatch.setattr(SIZE_GENERATORS.get("embedding-tables"), "propose", lambda session: None)  # the students only
    monkeypatch.setattr(SIZE_GENERATORS.get("distilled-students"), "settings",
                        StudentSearch(widths=(1.0, 4.0), epochs=2, quantize_widths=(4,), mixed=(((0.5, 0.5), (1.0, 0.25)),)))
    cfg = OptimizeConfig(objective="size", metric="hr@10", budget=Budget(50.0, relative=True), train_threads=1)
    data_config = DataConfig(name="synthetic-ratings", options={"num_users": 80, "num_items": 160, "max_per_user": 20, "eval_negatives": 49})
    summary = optimize(trained_neumf, small_synthetic, cfg, tmp_path / "opt", log=lambda *_: None, data_config=data_config)
    made = {c["name"]: c for c in summary["candidates"]}
    # the baseline's 16 factors: MF with 16, its int4 form (and the int4/int2 mix); MF with 64 would not be smaller: not tried
    assert {"distill-mf16", "distill-mf16-int4"} <= set(made) and all(n.startswith("distill-mf16") for n in made)
    assert made["distill-mf16"]["size_x"] > 1.5 and made["distill-mf16-int4"]["size_x"] > 3 * made["distill-mf16"]["size_x"]
    # half the items at 4 of 16 values, int4 (on 152 items the positions and the projection outweigh what it saves:
    # 4388 bytes against the plain int4 form's 3820; on MovieLens' 9,724 items it is the smaller one)
    mixed = made["distill-mf16-md-50.50-int4"]
    assert mixed["details"]["blocks"]["item_embedding"] == [[76, 16], [76, 4]] and mixed["bytes"] < made["distill-mf16"]["bytes"] / 3
    loaded = slimforge.load_quantized(mixed["path"])
    assert loaded.tables()["item_embedding.tables.1"] == "int4"
    assert slimforge.evaluate(loaded, small_synthetic.test)["hr@10"] == pytest.approx(mixed["test"])
    student = Path(made["distill-mf16"]["path"])
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["distill"]["teachers"][0]["path"] == str(trained_neumf.resolve()) and metrics["epochs_run"] == 2
    assert slimforge.evaluate(slimforge.load(student), small_synthetic.test)["hr@10"] == pytest.approx(made["distill-mf16"]["test"])


def test_a_student_that_cannot_be_built_is_a_failed_candidate_not_a_failed_search(small_synthetic, trained_neumf, tmp_path, monkeypatch):
    monkeypatch.setattr(SIZE_GENERATORS.get("embedding-tables"), "propose", lambda session: None)
    monkeypatch.setattr(SIZE_GENERATORS.get("distilled-students"), "settings", StudentSearch(students=("no-such-model",), widths=(0.5,)))
    cfg = OptimizeConfig(objective="size", metric="hr@10", budget=Budget(5.0, relative=True), train_threads=1)
    summary = optimize(trained_neumf, small_synthetic, cfg, tmp_path / "opt", log=lambda *_: None)
    assert summary["candidates"] == [] and summary["best"] is None
    assert [f["name"] for f in summary["failed"]] == ["distill-no-such-model8"] and "no-such-model" in summary["failed"][0]["error"]


def test_cli_train_then_optimize_by_size_writes_a_run_folder_eval_reads(fbgemm, tmp_path, capsys):
    """`slimforge train` then `slimforge optimize RUN --metric ndcg@10 --objective size --budget 2%` (the default search; ~10 s)."""
    run, opt = tmp_path / "neumf", tmp_path / "opt"
    assert main(["train", "--data", "synthetic-ratings", "--model", "neumf", "--epochs", "4", "--out", str(run), "--quiet", "train.num_threads=1"]) == 0
    assert main(["optimize", str(run), "--metric", "ndcg@10", "--objective", "size", "--budget", "2%", "--threads", "1", "--out", str(opt)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((opt / "optimize.json").read_text())
    assert "| candidate | weight file (KB) | size x | val ndcg@10" in printed and f"Best: {summary['best']['name']}" in printed
    # measured 19.2x (MF with 4 factors distilled, int4 tables); int2 tables alone are 6.59x
    critical = summary["budget"]["critical_z"]
    assert summary["best"]["size_x"] >= 6.0 and summary["budget"] == {
        "amount": 2.0, "relative": True, "split": "validation", "validation_sampled_metrics": "expectation over the negative draw",
        "noise_margin": f"{critical:.2f} standard errors: 95% for all {len(summary['candidates'])} candidates at once", "critical_z": critical}
    assert summary["config"]["margin_z"] == 1.645 and summary["config"]["joint_margin"]  # --noise-margin's default reaches the search
    assert 1.645 < critical < 3.2  # measured 2.57 over 23 candidates (Bonferroni: 3.06)
    assert all(c["margin"] == pytest.approx(100 * critical * c["se"] / summary["baseline"]["val"], abs=1e-3) for c in summary["candidates"])
    val = {c["name"]: c["val"] for c in summary["candidates"]}
    assert val["int2-qat"] > val["int2"]  # int2 over the budget gets a QAT try; measured: +1.52% against -2.98% relative
    assert main(["eval", str(opt / "best")]) == 0
    assert f"ndcg@10 {summary['best']['test']:.4f}" in capsys.readouterr().out
    assert Path(summary["best"]["path"]).is_dir()


def test_cli_names_the_known_metrics_for_a_bad_one(trained_neumf, tmp_path, capsys):
    code = main(["optimize", str(trained_neumf), "--objective", "size", "--metric", "ndcg10", "--budget", "2%", "--noise-margin", "0",
                 "--out", str(tmp_path / "opt")])
    printed = capsys.readouterr()
    assert code != 0 and not (tmp_path / "opt").exists()
    assert "unknown metric 'ndcg10': the validation split reports hr@10, ndcg@10. Did you mean 'ndcg@10'" in printed.out + printed.err


def test_lower_svd_energies_are_tried_until_nothing_made_from_one_is_within_the_budget():
    """svd90 over the budget in fp32 but within once quantized (as on MovieLens) goes on to svd80;
    nothing from svd80 within stops there."""
    from types import SimpleNamespace

    within = {"svd90": False, "svd90-": True, "svd80": False, "svd80-": False}  # fp32 candidate, best of its quantized forms
    generator = EmbeddingTables(EmbeddingTablesSearch(energies=(0.9, 0.8, 0.7, 0.6)))
    tried = []

    def svd(session, model, energy, epochs, ranks):
        tried.append(energy)
        name = f"svd{round(100 * energy)}"
        return SimpleNamespace(name=name, recipe=name, within_budget=within[name], details={"ranks": {"table": 8}})

    generator.svd = svd
    generator.quantize_all = lambda session, model, prefix, recipe, widths, qat_from=None: within.get(prefix, True)
    session = SimpleNamespace(baseline_model=lambda: None, load=lambda c: None, time_left=lambda: 1e9, log=lambda *_: None,
                              cfg=OptimizeConfig(objective="size"))
    generator.propose(session)
    assert tried == [0.9, 0.8]


def test_quantization_aware_mixes_take_the_most_tables_first_and_stop_at_the_first_within(fbgemm, small_synthetic):
    from types import SimpleNamespace

    model = slimforge.create_model("neumf", dim=16, mlp=[32, 16, 8], **small_synthetic.info.model_kwargs())
    order = ["mlp_item", "gmf_item", "mlp_user", "gmf_user"]
    tried = []

    def add_qat(session, model, name, recipe, bits, table_bits=None):
        tried.append((name, sorted(table_bits)))
        return SimpleNamespace(within_budget=len(table_bits) == 2)

    generator = EmbeddingTables()
    generator.add_qat = add_qat
    session = SimpleNamespace(time_left=lambda: 1e9, best=None)
    found = generator.mix_qat(session, model, "", "", order)
    assert found.within_budget and tried == [("mix-int4-int2-qat3", ["gmf_item", "mlp_item", "mlp_user"]),
                                             ("mix-int4-int2-qat2", ["gmf_item", "mlp_item"])]
    tried.clear()
    from slimforge.recsys.quantize import quantize_embeddings

    two = len(quantize_embeddings(model, 4, table_bits={"mlp_item": 2, "gmf_item": 2}).runtime_bytes())
    session.best = SimpleNamespace(bytes=two)  # as small as the 2-table mix: only the 3-table mix can be smaller
    assert generator.mix_qat(session, model, "", "", order) is None and tried == [("mix-int4-int2-qat3", ["gmf_item", "mlp_item", "mlp_user"])]


def test_a_width_over_the_budget_is_fine_tuned_again_from_the_model_qat_starts_from():
    """quantize_all: a width whose post-training form is over the budget gets a QAT candidate, made from
    ``qat_from``'s model (an SVD model's factorised tables) with its recipe; one within the budget does not."""
    from types import SimpleNamespace

    fine_tuned, factorised = torch.nn.Identity(), torch.nn.Identity()  # no tables: no mix follows
    qat = []
    generator = EmbeddingTables(EmbeddingTablesSearch(qat_widths=(2,)))
    generator.add_quantized = lambda session, model, name, recipe, details, bits, **kw: SimpleNamespace(within_budget=bits == 4)
    generator.add_qat = lambda session, model, name, recipe, bits, table_bits=None: qat.append((model, name, recipe))
    generator.quantize_all(SimpleNamespace(), fine_tuned, "svd90-", "SVD + fine-tune -> ", (4, 2), (lambda: factorised, "SVD, no fine-tune -> "))
    assert qat == [(factorised, "svd90-int2-qat", "SVD, no fine-tune -> int2 tables")]


def test_a_candidate_the_joint_margin_no_longer_admits_hands_best_to_the_next_smallest(tmp_path):
    """Verdicts follow the critical value over all candidates so far: with more candidates a lucky small one drops out."""
    import numpy as np

    from slimforge.optimize.budget import JointMargin
    from slimforge.optimize.size import SizeCandidate, SizeSession

    rng = np.random.default_rng(0)
    base = rng.random(400)
    session = SizeSession.__new__(SizeSession)
    session.budget, session.base_val, session.cfg = Budget(2.0, relative=True), float(base.mean()), OptimizeConfig(objective="size")
    session.base_per_sample, session.joint = base, JointMargin(1.645, base.tolist())
    session.candidates = []
    # se 0.004 on a mean near 0.5: margin 1.645 x 0.8% = 1.3%; a 0.5% loss is within at z = 1.645, over once z > 1.88
    small = SizeCandidate("small", "", "", 100, 10.0, session.base_val * 0.995, 0.0, False, 0.0, se=0.004)
    large = SizeCandidate("large", "", "", 400, 2.5, session.base_val, 0.0, False, 0.0, se=0.0005)
    session.candidates += [small, large]
    session.joint.add(_noisy(base, rng))
    session._judge()
    assert session.best is small and small.within_budget
    for _ in range(10):
        session.joint.add(_noisy(base, rng))
    session._judge()
    assert session.critical_z() > 2.2 and not small.within_budget and session.best is large
    assert small.margin == pytest.approx(100 * session.critical_z() * 0.004 / session.base_val, abs=1e-3)
    session.joint, session.cfg = None, OptimizeConfig(objective="size", joint_margin=False)  # --per-candidate-margin
    session._judge()
    assert session.critical_z() == 1.645 and session.best is small and "for each candidate alone" in session.margin_rule()


def _noisy(base, rng, scale=0.1):
    return (base + rng.normal(0, scale, base.size)).tolist()
