"""The ``distilled-students`` size generator: smaller recommenders distilled from the baseline, for
``slimforge optimize --objective size``.

A different, smaller architecture can hold what a big one learned: each student (by default a
dot-product MF at the baseline's factor width and at half of it) is trained on the training split
by distillation from the baseline (:mod:`slimforge.distill`: the teacher's softmax over each
positive's sampled candidates, plus the run's own objective on the labels), for as many epochs as
the baseline trained; a student whose fp32 weight file is not smaller than the baseline's is not
tried. Each student within the budget, or close to it, is then stored with quantized tables by the
``embedding-tables`` generator's steps (one width for every table, the per-table mix, their
quantization-aware forms), so "distil, then int4" is one candidate among the rest; and with its item
table in popularity blocks of mixed widths (:mod:`slimforge.recsys.mixed_dim`, ``mixed``), int4.

Measured on MovieLens (ml-latest-small, seed 0, 1 thread; BENCHMARKS.md): NeuMF (test NDCG@10 0.4739)
distilled into MF with 32 factors gave 0.4824 (MF trained alone: 0.4734), 0.4796 with int4 tables.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from slimforge.optimize.size import SizeSession, register_size_generator, weight_file


@dataclass(frozen=True)
class StudentSearch:
    """students: registered model names; widths: fractions of the baseline's factor width (``dim``) each is tried at;
    temperature / soft_weight: the distillation loss (kd over each positive's candidates); epochs: None = the baseline's."""

    students: tuple[str, ...] = ("mf",)
    widths: tuple[float, ...] = (1.0, 0.5)
    temperature: float = 1.0
    soft_weight: float = 0.5
    epochs: int | None = None
    quantize_widths: tuple[int, ...] = (8, 4, 2)
    # mixed-dimension item tables, each (shares of the items by popularity, widths as fractions), then int4 rows;
    # measured on MovieLens MF with int4 rows: 8.82x / 10.32x / 12.55x smaller at -0.67% / -1.30% / -1.52% NDCG@10
    mixed: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = (
        ((0.2, 0.8), (1.0, 0.25)), ((0.1, 0.3, 0.6), (1.0, 0.25, 0.125)), ((0.05, 0.25, 0.7), (0.5, 0.25, 0.0625)))


class DistilledStudents:
    """Smaller recommenders distilled from the baseline, then quantized."""

    description = "smaller recommenders (MF at the baseline's factor width and half of it) distilled from the baseline, then quantized"

    def __init__(self, settings: StudentSearch = StudentSearch()) -> None:
        self.settings = settings

    def accepts(self, model: nn.Module) -> bool:
        return hasattr(model, "num_items") and hasattr(model, "num_users")

    def propose(self, session: SizeSession) -> None:
        from slimforge.recsys.compress import EmbeddingTables

        tables = EmbeddingTables()
        for name, dim in self.plan(session):
            if session.time_left() < 0:
                session.log("the time budget is spent: no further student tried")
                return
            cand = self.add_student(session, name, dim)
            if cand is not None:
                student = session.load(cand)
                tables.quantize_all(session, student, f"{cand.name}-", f"{cand.recipe} -> ", self.settings.quantize_widths)
                self.add_mixed(session, tables, student, cand)

    def add_mixed(self, session: SizeSession, tables, student: nn.Module, cand) -> None:
        """The student with its item table in popularity blocks (each of ``mixed``), stored with int4 rows."""
        from slimforge.recsys.mixed_dim import mixed_dimensions

        popularity = getattr(getattr(session.data, "catalogue", None), "popularity", None)
        if popularity is None:
            return
        for shares, widths in self.settings.mixed:
            name = f"{cand.name}-md-{'.'.join(str(round(100 * share)) for share in shares)}-int4"
            model = copy.deepcopy(student)
            try:
                blocks = mixed_dimensions(model, popularity, shares, widths)
            except Exception as exc:  # e.g. a block narrower than one value: a failed candidate, not a failed search
                session.fail(name, exc)
                continue
            described = "; ".join(f"{table}: {blocks_of}" for table, blocks_of in blocks.items())
            tables.add_quantized(session, model, name, f"{cand.recipe} -> item rows in popularity blocks (items, width) {described} -> int4",
                                 {"blocks": {table: [list(b) for b in blocks_of] for table, blocks_of in blocks.items()}}, 4)

    def plan(self, session: SizeSession) -> list[tuple[str, int]]:
        """(student model, factor width) pairs to try, widest first."""
        from slimforge import artifacts

        spec = artifacts.read_spec(session.baseline_dir)
        dim = int(spec.kwargs.get("dim", 32)) if spec is not None else 32
        return [(name, max(1, round(dim * w))) for name in self.settings.students for w in self.settings.widths]

    def add_student(self, session: SizeSession, student: str, dim: int):
        """``student`` at factor width ``dim``, distilled from the baseline; None when it failed or is not smaller."""
        from slimforge.distill import DistillConfig
        from slimforge.distill.api import run as distill
        from slimforge.models import create_model
        from slimforge.train import TrainConfig, seed_everything

        s = self.settings
        name, t0 = f"distill-{student}{dim}", time.monotonic()
        seed_everything(0)
        try:
            model = create_model(student, **{**session.data.info.model_kwargs(), "dim": dim})
        except Exception as exc:  # a student that cannot be built at this width is a failed candidate, not a failed search
            session.fail(name, exc)
            return None
        if _fp32_bytes(model) >= weight_file(session.baseline_dir).stat().st_size:
            session.log(f"{name}: not smaller than the baseline in fp32; skipped")
            return None
        epochs = s.epochs or _baseline_epochs(session.baseline_dir)
        # The last epoch, not the best on validation: validation certifies the candidate, and an epoch picked on it
        # would look better there than it is (the chosen student's test NDCG@10 fell 4 points under its validation's).
        cfg = TrainConfig(epochs=epochs, quiet=True, num_threads=session.cfg.train_threads, keep_best=False)
        loss = DistillConfig(temperature=s.temperature, soft_weight=s.soft_weight)
        recipe = f"{student} with {dim} factors distilled from the baseline ({epochs} epochs, kd T={s.temperature:g} x {s.soft_weight:g} + labels)"
        session.log(f"{name}: distilling {epochs} epochs")

        def save(folder: Path) -> None:
            distill(model, [session.baseline_dir], session.data, loss, cfg, folder,
                    record=session.record_config(recipe=recipe, train=cfg.model_dump(mode="json")))

        return session.add(name, save, recipe, {"student": student, "dim": dim, "epochs": epochs}, started=t0)


def _fp32_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _baseline_epochs(folder: Path) -> int:
    """How many epochs the baseline trained (its config.yaml), 10 when it does not say."""
    from slimforge.experiment import run_train_section

    return int(run_train_section(folder).get("epochs") or 10)


register_size_generator("distilled-students", help=DistilledStudents.description)(DistilledStudents())
