"""The stage kinds a recipe may use. Each is a config (pydantic) plus a runner:
``runner(ctx, config, input_dir, out_dir) -> metrics``; runners call the same public
functions a Python user calls, and each writes an ordinary artifact folder."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from slimforge import artifacts, files, loading
from slimforge._registry import Registry
from slimforge.data.core import DataSplits
from slimforge.errors import ConfigError
from slimforge.distill.api import DistillSection, distill_train_config, with_distill_train_defaults
from slimforge.experiment import DataConfig, ModelConfig
from slimforge.models import trusting_code
from slimforge.pipeline.markers import read_marker
from slimforge.pipeline.recipe import STAGE_CONFIGS, StageConfig
from slimforge.prune.latency import LatencySettings
from slimforge.train import TrainConfig, seed_everything, train
from slimforge.train.evaluate import EVAL_BATCH_SIZE

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a stage runner sees: the recipe's data (loaded once), finished stages' folders."""

    data_config: DataConfig
    stage_dirs: dict[str, Path] = field(default_factory=dict)
    quiet: bool = False
    resume: bool = False  # the stage being run continues its interrupted training (train, distill)
    _data: DataSplits | None = None

    @property
    def data(self) -> DataSplits:
        if self._data is None:
            self._data = self.data_config.load()
        return self._data

    def resolve(self, ref: str) -> Path:
        """A stage name or a run folder path -> folder."""
        return self.stage_dirs.get(ref, Path(ref))

    def example(self, n: int = 2) -> torch.Tensor:
        if self.ranking:  # a recommender is timed as it serves: users' candidates (100 pairs each on the NCF protocol)
            return _concat_pairs([self.data.test[i][0] for i in range(min(n, len(self.data.test)))])
        return self.data.train.__getitems__(list(range(n)))[0]

    @property
    def ranking(self) -> bool:
        return getattr(self.data.info, "task", "") == "ranking"

    def measure(self, variants: list[Any], batch_sizes: Sequence[int], *, split: str = "test", threads: int = 1, repeats: int = 30,
                reference: Sequence[str] = ()) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
        """``measure_variants`` on this data's ``split``, and the report's extra columns. A classifier: accuracy. A
        recommender: its ranking figures (the data's metric compared, the others as extra columns), timed on users'
        candidates (batch sizes count the pairs scored: 25,600 is 256 users x 100 candidates)."""
        from slimforge.measure import measure_variants

        dataset = getattr(self.data, split)
        common = dict(threads=threads, repeats=repeats, reference=reference)
        if not self.ranking:
            measurement = measure_variants(variants, self.example(), batch_sizes, eval_batches=self._batches(dataset, EVAL_BATCH_SIZE),
                                           num_classes=self.data.info.num_classes, **common)
            return measurement, {}
        measurement = measure_variants(variants, self.example(), batch_sizes, quality=lambda v: _ranking_figures(dataset, v),
                                       metric=self.data.info.metric, **common)
        return measurement, _ranking_columns(measurement, split)

    def calibration(self, batches: int, batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``batches`` batches of the (un-augmented) training split, in a fixed order."""
        ds = self.data.train
        n = min(len(ds), batches * batch_size)
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n]

        def take() -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [tuple(ds.__getitems__(order[i : i + batch_size].tolist())[:2]) for i in range(0, n, batch_size)]

        if not hasattr(ds, "augment"):  # text datasets have no random augmentation
            return take()
        saved, ds.augment = ds.augment, None
        try:
            return take()
        finally:
            ds.augment = saved

    def val_batches(self, batch_size: int = EVAL_BATCH_SIZE) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self.data.val, batch_size)

    def test_batches(self, batch_size: int = EVAL_BATCH_SIZE, limit: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches(self.data.test, batch_size, limit)

    @staticmethod
    def _batches(ds, batch_size: int, limit: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = len(ds) if limit is None else min(limit, len(ds))
        return [tuple(ds.__getitems__(list(range(i, min(i + batch_size, n))))[:2]) for i in range(0, n, batch_size)]


def _concat_pairs(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


Runner = Callable[[StageContext, Any, Path | None, Path], dict[str, Any]]
RUNNERS: Registry[Runner] = Registry("stage runner")
PRODUCES: Mapping[str, str] = STAGE_CONFIGS.view("produces")  # kind -> "model" | "quantized" | "export" | "report"


RESUMABLE_KINDS = ("train", "distill")  # stages whose training resumes from the checkpoint it leaves


def register_stage(kind: str, config: type[StageConfig], produces: str, help: str = "") -> Callable[[Runner], Runner]:
    """Register a stage kind: its config, what its folder holds, and its runner. The registered
    runner writes its whole folder in one step (see :func:`staged`), with the stage's
    ``trust_code`` applied to the folders it reads."""
    STAGE_CONFIGS.register(kind, help, produces=produces)(config)

    def add(runner: Runner) -> Runner:
        staged_runner = staged(runner, produces, resumable=kind in RESUMABLE_KINDS)
        RUNNERS.register(kind, help)(staged_runner)
        return staged_runner

    return add


def staged(runner: Runner, produces: str, resumable: bool = False) -> Runner:
    """``runner`` writing into a staging folder that replaces ``out`` whole when it succeeds: a
    kill leaves ``out`` as it was (and, for training stages, the partial run for resuming)."""

    @functools.wraps(runner)
    def run(ctx: StageContext, cfg: Any, input_dir: Path | None, out: Path) -> dict[str, Any]:
        final = files.final_folder(Path(out))
        if produces in artifacts.ARTIFACT_KINDS:
            artifacts.check_output_folder(final, produces, input_dir)
        if input_dir is not None:
            files.check_not_input(final, [input_dir])
        with trusting_code(getattr(cfg, "trust_code", False)), \
                files.staged_output(out, reuse_partial=ctx.resume and resumable, keep_on_error=resumable) as work:
            metrics = runner(ctx, cfg, input_dir, work)
            if produces in ("model", "quantized") and hasattr(ctx.data, "save_assets"):
                ctx.data.save_assets(work)  # text: tokenizer/ and labels.json, so the folder alone predicts
        return files.relocated(metrics, work, final)

    return run


def list_stages() -> list[str]:
    return RUNNERS.names()


def _fp32_model(folder: Path | None, stage: str) -> torch.nn.Module:
    """The PyTorch model of run folder ``folder`` (an int8 artifact is refused by name)."""
    if folder is None:
        raise ConfigError(f"The {stage} stage needs an input: a run folder or an earlier stage.")
    return loading.load_module(folder, stage)


def _quiet(cfg: TrainConfig, ctx: StageContext) -> TrainConfig:
    return cfg.model_copy(update={"quiet": True}) if ctx.quiet else cfg


# ---------------------------------------------------------------- train


class TrainStage(StageConfig):
    kind: Literal["train"] = "train"
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


@register_stage("train", TrainStage, "model", "train a model from the registry")
def run_train(ctx: StageContext, cfg: TrainStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.models import create_model

    seed_everything(cfg.train.seed)
    model = create_model(cfg.model.name, **{**ctx.data.info.model_kwargs(), **cfg.model.kwargs})
    record = {"stage": cfg.model_dump(mode="json"), "data": ctx.data_config.model_dump(mode="json")}
    return train(model, ctx.data, _quiet(cfg.train, ctx), out, record=record, resume=ctx.resume).metrics


# ---------------------------------------------------------------- prune


class PruneStage(StageConfig):
    kind: Literal["prune"] = "prune"
    ratio: float | None = Field(None, ge=0, lt=1, description="fraction of channels removed per group")
    target_macs: float | None = Field(None, gt=0, le=1, description="fraction of MACs to keep (instead of ratio)")
    target_params: float | None = Field(None, gt=0, le=1)
    target_latency: float | None = Field(None, gt=0, le=1, description="fraction of the measured latency to keep (latency-aware, HALP-style)")
    latency: LatencySettings = Field(default_factory=LatencySettings, description="how target_latency measures: batch_size, threads, channels_last, grid, ...")
    importance: str = "l2"
    skip: list[str] = Field(default_factory=list)
    round_to: int = Field(8, ge=1)
    steps: int = Field(1, ge=1, description="prune in this many steps spread over the fine-tuning epochs (needs finetune)")
    finetune: TrainConfig | None = Field(None, description="fine-tuning after pruning (None: none)")
    distill: DistillSection | None = Field(None, description="recover with the unpruned input as teacher")


@register_stage("prune", PruneStage, "model", "structured pruning, then optional fine-tuning or distillation")
def run_prune(ctx: StageContext, cfg: PruneStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.prune import prune

    model = _fp32_model(input_dir, "prune").train()
    by_loss = cfg.target_latency is not None and cfg.latency.allocation == "sensitivity"  # measures each group's loss
    in_depth = cfg.target_latency is not None and cfg.latency.blocks != 0  # judges blocks on outputs: more rows
    batches = 16 if in_depth else 4 if cfg.importance == "taylor" or by_loss else 0
    calibration = ctx.calibration(batches) if batches else None
    targets = {"ratio": cfg.ratio, "target_macs": cfg.target_macs, "target_params": cfg.target_params}
    options = {"importance": cfg.importance, "skip": cfg.skip, "round_to": cfg.round_to, "calibration": calibration}
    if cfg.target_latency is not None:
        targets = {"target_latency": cfg.target_latency}
        options["latency"] = cfg.latency
    if cfg.steps == 1:
        prune(model, ctx.example(), **targets, **options)
        return _recover(ctx, model, input_dir, cfg.finetune, cfg.distill, out, cfg)
    from slimforge.prune.sparsity import IterativePruning

    epochs = pruning_epochs(cfg.steps, cfg.finetune.epochs if cfg.finetune else 0, cfg.name)
    steps = IterativePruning(ctx.example(), epochs=epochs, **targets, **options)
    return _recover(ctx, model, input_dir, cfg.finetune, cfg.distill, out, cfg, callbacks=[steps])


def pruning_epochs(steps: int, epochs: int, stage: str = "prune") -> list[int]:
    """Epochs at whose start each of ``steps`` pruning steps runs: spread evenly, the first at
    epoch 0, and at least one epoch of fine-tuning after the last."""
    if epochs < steps:
        raise ConfigError(f"stage {stage!r}: steps={steps} needs at least as many fine-tuning epochs (finetune.epochs={epochs}).")
    return [round(i * epochs / steps) for i in range(steps)]


def _recover(ctx, model, teacher_dir, finetune, distill, out, cfg, callbacks=()) -> dict[str, Any]:
    """Fine-tune (or distil from the stage's input) a structurally changed model, or just save it."""
    record = {"stage": cfg.model_dump(mode="json"), "data": ctx.data_config.model_dump(mode="json")}
    if finetune is None:
        from slimforge.train import evaluate

        test = evaluate(model, ctx.data.test)  # a classifier's accuracy and loss; a recommender's ranking figures and loss
        metrics = {f"test_{k}": v for k, v in test.items() if k != "count" and v is not None}
        loading.save(model, out, config=record, metrics=metrics)
        return metrics
    if distill is not None:
        from slimforge.distill.api import run as distill_run

        return distill_run(model, [teacher_dir], ctx.data, distill.to_config(), _quiet(finetune, ctx), out, record=record,
                           callbacks=callbacks).metrics
    return train(model, ctx.data, _quiet(finetune, ctx), out, record=record, callbacks=callbacks).metrics


# ---------------------------------------------------------------- distill


class DistillStage(StageConfig):
    kind: Literal["distill"] = "distill"
    teachers: list[str] = Field(..., min_length=1, description="stage names or run folders of the teachers")
    student: ModelConfig | None = Field(None, description="a new student; None: start from the input stage's model")
    train: TrainConfig = distill_train_config()  # grad_clip defaults as in `slimforge distill` (DISTILL_GRAD_CLIP)
    distill: DistillSection = DistillSection()

    @model_validator(mode="before")
    @classmethod
    def _train_defaults(cls, raw: Any) -> Any:
        return with_distill_train_defaults(raw)


@register_stage("distill", DistillStage, "model", "distil teacher stage(s) into a student")
def run_distill(ctx: StageContext, cfg: DistillStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.distill.api import run as distill_run
    from slimforge.models import create_model

    seed_everything(cfg.train.seed)
    if cfg.student is not None:
        student = create_model(cfg.student.name, **{**ctx.data.info.model_kwargs(), **cfg.student.kwargs})
    else:
        student = _fp32_model(input_dir, "distill").train()
    teachers = [ctx.resolve(t) for t in cfg.teachers]
    record = {"stage": cfg.model_dump(mode="json"), "data": ctx.data_config.model_dump(mode="json")}
    return distill_run(student, teachers, ctx.data, cfg.distill.to_config(), _quiet(cfg.train, ctx), out, record=record,
                       resume=ctx.resume).metrics


# ---------------------------------------------------------------- factorize


class FactorizeStage(StageConfig):
    kind: Literal["factorize"] = "factorize"
    energy: float = Field(0.9, gt=0, le=1)
    target_ratio: float | None = Field(None, gt=0, lt=1, description="fraction of parameters to keep")
    include_conv: bool = True
    exclude: list[str] = Field(default_factory=list)
    finetune: TrainConfig | None = None
    distill: DistillSection | None = None


@register_stage("factorize", FactorizeStage, "model", "low-rank (SVD) factorisation, then optional fine-tuning")
def run_factorize(ctx: StageContext, cfg: FactorizeStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.factorize import FactorizeConfig, factorize

    model = _fp32_model(input_dir, "factorize").train()
    factorize(model, FactorizeConfig(energy=cfg.energy, target_ratio=cfg.target_ratio, include_conv=cfg.include_conv, exclude=tuple(cfg.exclude)))
    return _recover(ctx, model, input_dir, cfg.finetune, cfg.distill, out, cfg)


# ---------------------------------------------------------------- mixed_dim


class MixedDimStage(StageConfig):
    kind: Literal["mixed_dim"] = "mixed_dim"
    shares: list[float] = Field([0.2, 0.8], min_length=1, description="fractions of the items per block, most interacted first; sum 1")
    widths: list[float] = Field([1.0, 0.25], min_length=1, description="each block's width, a fraction of the table's")
    layers: list[str] | None = Field(None, description="tables to convert (None: every table with one row per item)")
    finetune: TrainConfig | None = None
    distill: DistillSection | None = None


@register_stage("mixed_dim", MixedDimStage, "model", "recommenders: item tables in blocks by popularity at mixed widths, then optional fine-tuning")
def run_mixed_dim(ctx: StageContext, cfg: MixedDimStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.recsys.mixed_dim import mixed_dimensions

    popularity = getattr(getattr(ctx.data, "catalogue", None), "popularity", None)
    if popularity is None:
        raise ConfigError(f"The mixed_dim stage needs recommendation data (its items' training popularity); "
                          f"{ctx.data_config.name!r} has none.")
    model = _fp32_model(input_dir, "mixed_dim").train()
    mixed_dimensions(model, popularity, cfg.shares, cfg.widths, cfg.layers)
    return _recover(ctx, model, input_dir, cfg.finetune, cfg.distill, out, cfg)


# ---------------------------------------------------------------- quantize


class QuantizeStage(StageConfig):
    runtime_only = frozenset({"threads"})

    kind: Literal["quantize"] = "quantize"
    backend: str = "onnxruntime"
    mode: Literal["auto", "static", "dynamic", "weight-only"] = "auto"
    calib_batches: int = Field(16, ge=1)
    per_channel: bool = True
    fp32_first_last: bool = False
    max_accuracy_drop: float | None = Field(None, ge=0, description="points; return sensitive layers to fp32 until within")
    compile: bool = True
    smooth_alpha: float | None = Field(None, ge=0, le=1, description="SmoothQuant migration strength for Linear layers (None: off)")
    smooth_min_gain: float | None = Field(0.1, ge=0, lt=1, description="SmoothQuant only where the simulated int8 error drops this much (None: every Linear)")
    threads: int | None = Field(None, ge=1, description="CPU threads for calibration and the int8 runtime (None: the runtime's default)")
    finetune_epochs: int = Field(0, ge=0, description="fbgemm-int* backends: epochs of quantization-aware fine-tuning of the tables first (0: none)")
    finetune_lr: float = Field(1e-3, gt=0, description="peak learning rate of that fine-tuning")


@register_stage("quantize", QuantizeStage, "quantized", "int8 post-training quantization (onnxruntime or torch)")
def run_quantize(ctx: StageContext, cfg: QuantizeStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.quantize import FallbackConfig, QuantizeConfig, accuracy, accuracy_evaluator, quantize, quantize_with_fallback, save_quantized

    model = _fp32_model(input_dir, "quantize").eval()
    if cfg.finetune_epochs:
        model = _quantization_aware_finetune(model, ctx, cfg)
    qcfg = QuantizeConfig(backend=cfg.backend, mode=cfg.mode, calib_batches=cfg.calib_batches, per_channel=cfg.per_channel,
                          fp32_first_last=cfg.fp32_first_last, compile=cfg.compile, smooth_alpha=cfg.smooth_alpha,
                          smooth_min_gain=cfg.smooth_min_gain, threads=cfg.threads or 0)
    calibration = ctx.calibration(cfg.calib_batches)
    scores_itself = hasattr(ctx.data.test, "evaluate")  # a ranking split: its own metrics, the data's headline one compared
    metric = ctx.data.info.metric
    test = None if scores_itself else ctx.test_batches()
    fallback: dict[str, Any] = {}
    if cfg.max_accuracy_drop is not None:
        # Layers are chosen on the validation split; the test split only reports the result.
        chosen_on = "val" if len(ctx.data.val) else "test"
        if chosen_on == "test":
            log.warning("The data has no validation split: the fallback chooses its fp32 layers on the test split.")
        if scores_itself:
            split = getattr(ctx.data, chosen_on)
            evaluator = lambda predict: split.evaluate(predict)[metric]  # noqa: E731
        else:
            evaluator = accuracy_evaluator(ctx.val_batches() if chosen_on == "val" else test)
        result = quantize_with_fallback(model, calibration, evaluator, qcfg, FallbackConfig(max_drop=cfg.max_accuracy_drop / 100.0), out=out)
        quantized = result.best
        fallback = {"fallback": {**result.metrics(), "split": chosen_on, "metric": metric}}
    else:
        quantized = quantize(model, calibration, qcfg)
    if scores_itself:
        metrics = {**{f"test_{k}": v for k, v in ctx.data.test.evaluate(quantized.quantized).items() if k != "count"},
                   **{f"fp32_test_{k}": v for k, v in ctx.data.test.evaluate(model).items() if k != "count"}, **fallback}
    else:
        metrics = {"test_accuracy": accuracy(quantized.quantized, test), "fp32_test_accuracy": accuracy(model, test), **fallback}
    # Its data section, as a run folder has: `slimforge eval` and `measure` load the same data.
    save_quantized(quantized, out, metrics=metrics,
                   config={"data": ctx.data_config.model_dump(mode="json"), "stage": cfg.model_dump(mode="json"), "source": str(Path(input_dir).absolute()) if input_dir else None})
    return metrics


def _quantization_aware_finetune(model: torch.nn.Module, ctx: StageContext, cfg: QuantizeStage) -> torch.nn.Module:
    """``model`` fine-tuned on the run's data with its embedding tables fake-quantized at the backend's width
    (:mod:`slimforge.recsys.qat`); quantizing it at that width gives the model the fine-tune scored."""
    from slimforge.recsys.qat import quantization_aware_finetune
    from slimforge.recsys.quantize import BITS

    if cfg.backend not in BITS:
        raise ConfigError(f"quantize: finetune_epochs (quantization-aware fine-tuning) is for the embedding backends {', '.join(BITS)}, "
                          f"not {cfg.backend!r}.")
    train_cfg = TrainConfig(epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, quiet=True, num_threads=cfg.threads)
    return quantization_aware_finetune(model, ctx.data, BITS[cfg.backend], train_cfg)


# ---------------------------------------------------------------- export


class ExportStage(StageConfig):
    kind: Literal["export"] = "export"
    format: Literal["onnx", "pt2"] = "onnx"
    opset: int = 18
    atol: float = 1e-4
    preprocess: bool = Field(True, description="bake the model's recorded preprocessing into the graph (it takes raw inputs)")


@register_stage("export", ExportStage, "export", "export to ONNX or torch.export .pt2, checked against PyTorch")
def run_export(ctx: StageContext, cfg: ExportStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.export import ExportConfig, export

    config = ExportConfig(format=cfg.format, opset=cfg.opset, atol=cfg.atol, preprocess=cfg.preprocess)
    if input_dir is not None and artifacts.artifact_kind(input_dir) == "quantized":  # an int8 graph: its preprocessing goes in front
        from slimforge.quantize.export_onnx import export_quantized

        result = export_quantized(input_dir, out, config)
        raw = result.exporter.endswith("in front")
        return {"max_abs_diff": result.max_abs_diff, "format": cfg.format, "inputs": "raw" if raw else "network"}
    model = _fp32_model(input_dir, "export").eval()
    result = export(model, ctx.example(), out, config)
    raw = cfg.preprocess and getattr(model, "preprocess", None) is not None
    return {"max_abs_diff": result.max_abs_diff, "format": cfg.format, "inputs": "raw" if raw else "network"}


# ---------------------------------------------------------------- report


class ReportStage(StageConfig):
    kind: Literal["report"] = "report"
    variants: list[str] | None = Field(None, description="stages or folders to compare; default: every model stage")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32])
    threads: int = Field(1, ge=1)
    repeats: int = Field(30, ge=3)
    channels_last: bool = Field(False, description="run PyTorch CNNs in channels-last memory format (faster on CPUs)")
    reference: list[str] = Field(default_factory=list, description="fp32 forms of the first variant to time too (eager, channels_last, compile, onnxruntime)")
    title: str | None = None

    @field_validator("reference")
    @classmethod
    def _known_forms(cls, names: list[str]) -> list[str]:
        from slimforge.deploy_forms import parse_reference
        from slimforge.errors import SlimforgeError

        try:
            return list(parse_reference(",".join(names)))
        except SlimforgeError as exc:  # as a ValueError, pydantic names the stage and key
            raise ValueError(str(exc).strip("'\"")) from None


@register_stage("report", ReportStage, "report", "measure every variant and write report.md / report.html")
def run_report(ctx: StageContext, cfg: ReportStage, input_dir: Path | None, out: Path) -> dict[str, Any]:
    from slimforge.measure import load_variant
    from slimforge.report import layer_widths, read_history, write_report

    names = cfg.variants or [n for n, d in ctx.stage_dirs.items() if PRODUCES.get(_kind_of(d)) in ("model", "quantized")]
    if not names:
        raise ConfigError(f"stage {cfg.name!r}: a report needs models to measure: put it after a train (or other model) stage, "
                          "or list run folders under 'variants'.")
    variants = [load_variant(ctx.resolve(n), n, threads=cfg.threads, channels_last=cfg.channels_last) for n in names]
    measurement, extra = ctx.measure(variants, cfg.batch_sizes, threads=cfg.threads, repeats=cfg.repeats, reference=cfg.reference)
    histories = {n: h for n in names if (h := read_history(ctx.resolve(n)))}
    widths = {v.name: layer_widths(v.module) for v in variants if v.module is not None}
    if len({tuple(w.values()) for w in widths.values()}) <= 1:
        widths = {}  # nothing was pruned: the plot would say nothing
    paths = write_report(out, measurement, title=cfg.title or f"slimforge report: {ctx.data.info.name}", histories=histories, widths=widths,
                         notes=[f"{v.name}: {v.path}" for v in variants], extra=extra)
    rows = {v["name"]: v for v in measurement["variants"]}
    return {"html": str(paths["html"]), "markdown": str(paths["markdown"]), "variants": list(rows)}


RANKING_FIGURES = ("hr@10", "ndcg@10", "recall@20", "ndcg@20")


def _ranking_figures(test: Any, variant: Any) -> dict[str, float]:
    figures = test.evaluate(variant.module if variant.module is not None else variant.predict)
    return {k: figures[k] for k in RANKING_FIGURES if k in figures}


def _ranking_columns(measurement: dict[str, Any], split: str) -> dict[str, dict[str, str]]:
    """The ranking figures beside the compared one, as extra report columns."""
    metric = measurement.get("metric")
    return {v["name"]: {f"{split} {k}": f"{v[k]:.4f}" for k in RANKING_FIGURES if k != metric and v.get(k) is not None}
            for v in measurement["variants"]}


def _kind_of(folder: Path) -> str:
    """The stage kind that wrote ``folder`` (from its stage marker)."""
    marker = read_marker(folder)
    return marker.get("kind", "") if marker else ""
