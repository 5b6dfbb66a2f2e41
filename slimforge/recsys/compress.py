"""The ``embedding-tables`` size generator: smaller recommenders for ``slimforge optimize --objective size``.

A recommender's bytes sit almost all in its embedding tables, so every candidate stores the
tables in fewer bytes. Tried cheapest first, each one saved, measured and scored on validation
by the :class:`~slimforge.optimize.size.SizeSession`:

1. **one width for every table**: int8, int4, int2 rows (FBGEMM row-wise, :mod:`slimforge.recsys.quantize`);
   a width in ``qat_widths`` whose post-training form is over the budget is tried again after a
   short quantization-aware fine-tune (:mod:`slimforge.recsys.qat`; named ``int2-qat``);
2. **a per-table mix of int4 and int2**, when int4 everywhere is within the budget and int2
   everywhere is not: each table alone at int2 gives its validation loss; tables then go to int2
   in order of loss per byte saved, each kept only while the mix stays within the budget. Then,
   with ``qat_widths``, mixes that take more tables to int2 in that order (``mix-int4-int2-qat3``:
   the first 3), each quantization-aware fine-tuned, most tables first, until one is within the
   budget (a mix that cannot be smaller than the best candidate so far is not tried);
3. **SVD of the tables** at falling energies (the share of each table's squared singular values
   kept; ranks rounded up to 8 so factor rows pack at every width), each fine-tuned for a few
   epochs at a small learning rate (the best epoch on validation), then stored at the widths
   above and mixed the same way; their quantization-aware forms (``svd90-int4-qat``) start from
   the factorised tables, the QAT fine-tune taking the place of the fp32 one (a QAT fine-tune on
   top of the fp32 one overfitted: svd80-int4 -0.52% post-training, -2.83% after it, validation).
   Once nothing made from an energy (the fine-tuned model or any of its quantized forms,
   QAT'd ones included) is within the budget, no lower energy is tried (it keeps less); a
   fine-tuned SVD model over the budget can still be within it once quantized, as validation
   scores move by about as much as a 2% budget. Stops when the search's time is spent.

Measured on MovieLens (BENCHMARKS.md): NeuMF's hand-tuned result was SVD at 80% energy, 2 epochs
of fine-tuning at lr 1e-3, then int4: 9.89x smaller at -0.04% test NDCG@10; int2 alone lost 5.7%.
The defaults below cover that point and its neighbours. The search with them (validation scored as
the expectation over the negative draw) chose SVD 70% + int4 with the MLP factor tables at int2,
12.99x smaller, +0.07% validation, -2.29% test NDCG@10 (fixed draw); QAT took int2 everywhere
from -7.7% to -5.6% validation.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from slimforge._logs import silenced
from slimforge.optimize.size import SizeCandidate, SizeSession, register_size_generator


@dataclass(frozen=True)
class EmbeddingTablesSearch:
    """widths: one width for every table, tried on the baseline; svd_widths: on each SVD model;
    mix: the (wide, narrow) widths of the per-table mix; energies: SVD energies, highest first;
    rank_multiple: ranks rounded up to it; finetune_epochs / finetune_lr: the fine-tuning after SVD;
    calibration_pairs: training interactions handed to quantize (the fbgemm backends use none);
    qat_widths: widths (and the mix's narrow width) tried again with a quantization-aware fine-tune of
    qat_epochs at qat_lr when their post-training form is over the budget (empty: none)."""

    widths: tuple[int, ...] = (8, 4, 2)
    svd_widths: tuple[int, ...] = (4, 2)
    mix: tuple[int, int] = (4, 2)
    energies: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6, 0.5)
    rank_multiple: int = 8
    finetune_epochs: int = 2
    finetune_lr: float = 1e-3
    calibration_pairs: int = 64
    qat_widths: tuple[int, ...] = (4, 2)
    qat_epochs: int = 2
    qat_lr: float = 1e-3


class EmbeddingTables:
    """Quantized, mixed and low-rank embedding tables for models with ``nn.Embedding`` tables wider than 1."""

    description = "recommenders' nn.Embedding tables: int8/int4/int2 rows, a per-table int4/int2 mix, SVD + fine-tune"

    def __init__(self, settings: EmbeddingTablesSearch = EmbeddingTablesSearch()) -> None:
        self.settings = settings

    def accepts(self, model: nn.Module) -> bool:
        return bool(_tables(model)) and hasattr(model, "num_items")

    def propose(self, session: SizeSession) -> None:
        s = self.settings
        model = session.baseline_model()
        self.quantize_all(session, model, "", "", s.widths)
        epochs = session.cfg.recovery.epochs if not session.cfg.auto_recovery else s.finetune_epochs
        tried: list[dict[str, int]] = []
        for energy in s.energies:
            if session.time_left() < 0:
                session.log("the time budget is spent: no lower SVD energy tried")
                break
            low_rank = self.svd(session, model, energy, epochs, tried)
            if low_rank is None:
                continue
            ranks = ", ".join(f"{n} {r}" for n, r in low_rank.details["ranks"].items())
            qat_from = (lambda e=energy: self.factorized(model, e).model,  # QAT replaces the fp32 fine-tune: one fine-tune, not two
                        f"SVD of the tables at {energy:.0%} energy (ranks {ranks}), no fp32 fine-tune -> ")
            quantized_within = self.quantize_all(session, session.load(low_rank), f"{low_rank.name}-", f"{low_rank.recipe} -> ", s.svd_widths,
                                                 qat_from)
            if not (low_rank.within_budget or quantized_within):
                session.log(f"nothing made from {low_rank.name} is within the budget: no lower energy tried")
                break

    def quantize_all(self, session: SizeSession, model: nn.Module, prefix: str, recipe: str, widths: tuple[int, ...],
                     qat_from: tuple[Callable[[], nn.Module], str] | None = None) -> bool:
        """``model`` at each width, then the per-table mix when it can help; True when one of them is within the budget.
        ``qat_from``: the model quantization-aware fine-tuning starts from (made on demand) and its recipe (default: ``model``):
        an SVD model's QAT starts from the factorised tables, not from their fp32 fine-tune (a second fine-tune overfits)."""
        make_source, qat_recipe = qat_from or ((lambda: model), recipe)
        within: dict[int, bool] = {}
        for bits in widths:
            cand = self.add_quantized(session, model, f"{prefix}int{bits}", f"{recipe}int{bits} tables", {}, bits)
            if not _within(cand) and bits in self.settings.qat_widths:
                cand = self.add_qat(session, make_source(), f"{prefix}int{bits}-qat", f"{qat_recipe}int{bits} tables", bits)
            within[bits] = _within(cand)
        wide, narrow = self.settings.mix
        mixed = None
        if within.get(wide, wide not in widths) and not within.get(narrow, False) and len(_tables(model)) > 1:
            order = self.narrow_order(session, model)
            mixed = self.mix(session, model, prefix, recipe, order)
            if narrow in self.settings.qat_widths:
                mixed = self.mix_qat(session, make_source(), prefix, qat_recipe, order[0]) or mixed
        return any(within.values()) or _within(mixed)

    def mix(self, session: SizeSession, model: nn.Module, prefix: str, recipe: str,
            order: tuple[list[str], dict[str, float]] | None = None) -> SizeCandidate | None:
        """Tables to the narrow width in order of validation loss per byte saved (``order``: :meth:`narrow_order`'s,
        computed when not given), while within the budget."""
        from slimforge.recsys.quantize import quantize_embeddings

        wide, narrow = self.settings.mix
        tables = _tables(model)
        if len(tables) < 2 or session.time_left() < 0:
            return None
        t0 = time.monotonic()
        order, loss = order or self.narrow_order(session, model)
        chosen: list[str] = []
        for name in order:
            trial = chosen + [name]
            if len(trial) < len(tables):
                trial_model = quantize_embeddings(model, wide, table_bits=dict.fromkeys(trial, narrow))
                if session.allows(*session.score_paired(trial_model)):
                    chosen = trial
        if not chosen:
            session.log(f"{prefix}mix: no table goes to int{narrow} within the budget")
            return None
        bits = {name: (narrow if name in chosen else wide) for name in tables}
        details = {"table_bits": bits, "table_loss_alone": {n: round(v, 5) for n, v in loss.items()}}
        return self.add_quantized(session, model, f"{prefix}mix-int{wide}-int{narrow}",
                                  f"{recipe}int{wide} tables, int{narrow} for {', '.join(chosen)} (chosen on validation)",
                                  details, wide, table_bits=dict.fromkeys(chosen, narrow), started=t0)

    def narrow_order(self, session: SizeSession, model: nn.Module) -> tuple[list[str], dict[str, float]]:
        """The tables in order of validation loss per byte saved at the mix's narrow width (each alone,
        the rest at the wide width), and each one's loss."""
        from slimforge.recsys.quantize import quantize_embeddings

        wide, narrow = self.settings.mix
        tables = _tables(model)
        score_wide = session.score(quantize_embeddings(model, wide))
        saved = {name: t.num_embeddings * t.embedding_dim * (wide - narrow) / 8 for name, t in tables.items()}
        loss = {name: score_wide - session.score(quantize_embeddings(model, wide, table_bits={name: narrow})) for name in tables}
        return sorted(tables, key=lambda n: loss[n] / saved[n]), loss

    def mix_qat(self, session: SizeSession, model: nn.Module, prefix: str, recipe: str, order: list[str]) -> SizeCandidate | None:
        """Quantization-aware fine-tuned mixes: the first k tables of ``order`` (:meth:`narrow_order`) at the
        narrow width, k from all but one down, until one is within the budget; None when none is."""
        from slimforge.recsys.quantize import quantize_embeddings

        wide, narrow = self.settings.mix
        for count in range(len(order) - 1, 0, -1):
            table_bits = dict.fromkeys(order[:count], narrow)
            if session.time_left() < 0:
                return None
            if session.best is not None and len(quantize_embeddings(model, wide, table_bits=table_bits).runtime_bytes()) >= session.best.bytes:
                continue  # cannot be smaller than the best so far
            cand = self.add_qat(session, model, f"{prefix}mix-int{wide}-int{narrow}-qat{count}",
                                f"{recipe}int{wide} tables, int{narrow} for {', '.join(order[:count])}", wide, table_bits)
            if _within(cand):
                return cand
        return None

    def add_qat(self, session: SizeSession, model: nn.Module, name: str, recipe: str, bits: int,
                table_bits: dict[str, int] | None = None) -> SizeCandidate | None:
        """``model`` fine-tuned with its tables fake-quantized at ``bits`` / ``table_bits``, then stored at those widths."""
        from slimforge.recsys.qat import quantization_aware_finetune
        from slimforge.train import TrainConfig

        s = self.settings
        if session.time_left() < 0:
            return None
        t0 = time.monotonic()
        cfg = TrainConfig(epochs=s.qat_epochs, lr=s.qat_lr, quiet=True, num_threads=session.cfg.train_threads, keep_best=False)
        session.log(f"{name}: quantization-aware fine-tuning, {s.qat_epochs} epochs at lr {s.qat_lr:g}")
        scratch = session.out / "qat-finetune" / name
        try:
            tuned = quantization_aware_finetune(model, session.data, bits, cfg, table_bits, out=scratch,
                                                record=session.record_config(train=cfg.model_dump(mode="json")))
        except Exception as exc:  # a fine-tune that fails is a failed candidate, not a failed search
            session.fail(name, exc)
            return None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        recipe = f"{recipe}, after {s.qat_epochs} epochs of quantization-aware fine-tuning at lr {s.qat_lr:g}"
        details = {"qat": {"epochs": s.qat_epochs, "lr": s.qat_lr}, **({"table_bits": table_bits} if table_bits else {})}
        return self.add_quantized(session, tuned, name, recipe, details, bits, table_bits=table_bits, started=t0)

    def add_quantized(self, session: SizeSession, model: nn.Module, name: str, recipe: str, details: dict[str, Any], bits: int,
                      table_bits: dict[str, int] | None = None, started: float | None = None) -> SizeCandidate | None:
        from slimforge.quantize import QuantizeConfig, quantize, save_quantized
        from slimforge.recsys.quantize import quantize_embeddings

        def save(folder: Path) -> None:
            calibration = [session.data.train.__getitems__(list(range(min(self.settings.calibration_pairs, len(session.data.train)))))]
            with silenced("slimforge.quantize.core"):  # "only Embedding layers are quantized" is what this generator asks for
                result = quantize(model, calibration, QuantizeConfig(backend=f"fbgemm-int{bits}"))
            if table_bits:  # the mix: recorded under the wide width's backend; each table's precision is in the weight file
                result.quantized = quantize_embeddings(model, bits, backend=f"fbgemm-int{bits}", table_bits=table_bits)
                result.info["table_bits"] = {**dict.fromkeys(_tables(model), bits), **table_bits}
            result.info["tables"] = result.quantized.tables()
            save_quantized(result, folder, config=session.record_config(recipe=recipe))

        return session.add(name, save, recipe, details, started=started)

    def factorized(self, model: nn.Module, energy: float) -> Any:
        """A copy of ``model`` with every table wider than 1 factorised by SVD at ``energy`` (a FactorizeResult; deterministic)."""
        from slimforge.factorize import FactorizeConfig, factorize

        return factorize(copy.deepcopy(model), FactorizeConfig(energy=energy, include_embeddings=True, layers=tuple(_tables(model)),
                                                               rank_multiple=self.settings.rank_multiple))

    def svd(self, session: SizeSession, model: nn.Module, energy: float, epochs: int, tried: list[dict[str, int]]) -> SizeCandidate | None:
        """SVD of every table wider than 1 at ``energy``, fine-tuned ``epochs`` on the training split;
        None when it failed or gave the ranks of an energy in ``tried`` (to which its ranks are added)."""
        from slimforge.train import TrainConfig, train

        s = self.settings
        name = f"svd{round(100 * energy)}"
        t0 = time.monotonic()
        try:
            result = self.factorized(model, energy)
        except Exception as exc:  # e.g. no table saves parameters at this energy
            session.fail(name, exc)
            return None
        ranks = ", ".join(f"{n} {r}" for n, r in result.ranks.items())
        if result.ranks in tried:  # ranks rounded to rank_multiple: a lower energy can land on the same model
            session.log(f"{name}: ranks {ranks}, as at a higher energy already tried; skipped")
            return None
        tried.append(result.ranks)
        recipe = f"SVD of the tables at {energy:.0%} energy (ranks {ranks}) + {epochs} epochs fine-tune at lr {s.finetune_lr:g}"
        cfg = TrainConfig(epochs=epochs, lr=s.finetune_lr, quiet=True, num_threads=session.cfg.train_threads, keep_best=False)
        session.log(f"{name}: ranks {ranks}; fine-tuning {epochs} epochs")

        def save(folder: Path) -> None:
            train(result.model, session.data, cfg, out=folder,
                  record=session.record_config(recipe=recipe, train=cfg.model_dump(mode="json"), energy=energy))

        return session.add(name, save, recipe, {"energy": energy, "ranks": result.ranks}, started=t0)


def _within(cand: SizeCandidate | None) -> bool:
    return cand is not None and cand.within_budget


def _tables(model: nn.Module) -> dict[str, nn.Embedding]:
    """The ``nn.Embedding`` tables wider than 1 (width-1 bias tables are stored in fp16 at every width)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Embedding) and m.embedding_dim > 1}


register_size_generator("embedding-tables", help=EmbeddingTables.description)(EmbeddingTables())
