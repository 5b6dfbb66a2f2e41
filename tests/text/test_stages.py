"""Text through the same stages as images: train/eval/predict from the CLI, prune, distill, int8."""

from __future__ import annotations

import pytest
import torch

import slimforge
from slimforge.cli import main
from slimforge.data import load_dataset
from slimforge.distill import DistillConfig
from slimforge.errors import DataError
from slimforge.models import create_model
from slimforge.train import TrainConfig, evaluate
from tests.conftest import needs_shared

FAST = TrainConfig(epochs=3, batch_size=16, optimizer="adamw", lr=3e-3, weight_decay=0.0, quiet=True, num_threads=1)


def test_cli_trains_evaluates_and_predicts_from_the_run_folder_alone(corpus_csv, tmp_path, capsys):
    run = tmp_path / "cnn"
    args = ["train", "--data", "text-csv", "--model", "text-cnn", "--epochs", "4", "--batch-size", "16", "--optimizer", "adamw",
            "--lr", "0.01", "--threads", "1", "--quiet", "--out", str(run), f"data.options.path={corpus_csv}",
            "data.options.tokenizer=vocab", "model.kwargs.emb_dim=16", "model.kwargs.filters=8", "train.weight_decay=0"]
    assert main(args) == 0
    assert (run / "tokenizer" / "vocab.json").is_file() and (run / "labels.json").is_file()
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    accuracy = float(capsys.readouterr().out.split("accuracy ")[1].split(",")[0])
    assert accuracy >= 0.9  # the label is decided by a handful of words
    assert main(["predict", str(run), "a superb and lovely film", "awful tedious plot"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1", "0"]
    assert "1=0." in lines[0] or "1=1." in lines[0]
    assert main(["predict", str(run), "  "]) == 2
    assert "empty" in capsys.readouterr().err


def test_heads_and_ffn_neurons_pruned_then_saved_and_reloaded(tiny_bert_dir, tmp_path):
    import slimforge.prune as sp

    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    ids = torch.randint(5, 31, (2, 10), generator=torch.Generator().manual_seed(0))
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    sp.prune(model, example, ratio=0.5, round_to=1, skip=["hf.bert.embeddings*"])  # residual width stays
    assert model.config.num_attention_heads == 2 and model.config.intermediate_size == 32
    for layer in model.hf.bert.encoder.layer:
        assert layer.attention.self.query.out_features == 16 and layer.intermediate.dense.out_features == 32
    assert model.config.hidden_size == 32  # the residual stream stays whole
    with torch.no_grad():
        logits = model(example)
    slimforge.save(model, tmp_path / "pruned")
    with torch.no_grad():
        torch.testing.assert_close(slimforge.load(tmp_path / "pruned")(example), logits)


def test_distilling_the_teacher_into_a_bilstm_uses_cached_teacher_outputs(corpus_csv, tiny_bert_dir, tmp_path):
    from slimforge.distill import run as distill
    from slimforge.text.models import init_embeddings_from_teacher

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    teacher = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir))
    taught = slimforge.train(teacher, data, FAST.model_copy(update={"lr": 1e-2}), tmp_path / "teacher")
    assert taught.metrics["test_accuracy"] >= 0.85
    student = create_model("text-bilstm", **data.info.model_kwargs(), emb_dim=16, hidden=16)
    init_embeddings_from_teacher(student, teacher)
    result = distill(student, [tmp_path / "teacher"], data, DistillConfig(loss="mse", hard_weight=0.5), FAST, tmp_path / "student",
                     cache_dir=tmp_path / "teacher-cache")
    assert list((tmp_path / "teacher-cache").glob("*.npy"))  # teacher logits were cached, not recomputed
    assert result.metrics["test_accuracy"] >= 0.8
    reloaded = slimforge.load(tmp_path / "student")
    assert evaluate(reloaded, data.test)["accuracy"] == pytest.approx(result.metrics["test_accuracy"])


def test_dynamic_int8_through_slimforge_quantize(tiny_bert_dir, corpus_csv, tmp_path):
    from slimforge.quantize import QuantizeConfig, load_quantized, quantize, save_quantized
    from slimforge.text.predict import save_text_assets

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    loader = [data.test.__getitems__(list(range(i, min(i + 16, len(data.test))))) for i in range(0, len(data.test), 16)]
    result = quantize(model, loader, QuantizeConfig(backend="torch-dynamic", mode="dynamic", calib_batches=1))
    int8 = result.quantized
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    int8_linears = [m for m in int8.modules() if isinstance(m, DynamicLinear)]
    assert len(int8_linears) == 2 * 6 + 2
    assert {m.weight().qscheme() for m in int8_linears} == {torch.per_channel_affine}  # QuantizeConfig.per_channel
    with torch.no_grad():
        ref = model(loader[0][0])
        torch.testing.assert_close(int8(loader[0][0]), ref, atol=0.05, rtol=0.0)
    fp32_acc, int8_acc = evaluate(model, data.test)["accuracy"], evaluate(int8, data.test)["accuracy"]
    assert abs(fp32_acc - int8_acc) <= 0.05
    save_quantized(result, tmp_path / "int8")
    save_text_assets(tmp_path / "int8", data.tokenizer, data.info.classes)
    with torch.no_grad():
        torch.testing.assert_close(load_quantized(tmp_path / "int8")(loader[0][0]), int8(loader[0][0]))
    from slimforge.text.predict import predict

    assert predict(tmp_path / "int8", "good film")[0].label in data.info.classes


def test_onnxruntime_dynamic_int8_of_a_text_transformer(tiny_bert_dir, corpus_csv, tmp_path):
    """ONNX Runtime takes text batches as token ids: dynamic int8, any batch size and length."""
    from slimforge.quantize import QuantizeConfig, accuracy, load_quantized, quantize, save_quantized
    from slimforge.text.predict import predict, save_text_assets

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    loader = [data.test.__getitems__(list(range(i, min(i + 16, len(data.test))))) for i in range(0, len(data.test), 16)]
    result = quantize(model, loader, QuantizeConfig(backend="onnxruntime", calib_batches=2))
    assert result.info["mode"] == "dynamic" and result.info["inputs"] == "token_ids" and result.info["input_shape"] is None
    q = result.quantized
    first, last = loader[0][0], loader[-1][0]
    lengths = {batch["input_ids"].shape[1] for batch in (first, last)}
    assert len(lengths) == 2  # the exported graph's length dimension is free
    with torch.no_grad():
        for batch in (first, last):
            torch.testing.assert_close(q(batch), model(batch), atol=0.05, rtol=0.0)
            torch.testing.assert_close(q(batch["input_ids"]), q(batch))  # ids alone: the mask comes from padding
    assert abs(accuracy(model, loader) - accuracy(q, loader)) <= 0.05
    save_quantized(result, tmp_path / "int8")
    save_text_assets(tmp_path / "int8", data.tokenizer, data.info.classes)
    torch.testing.assert_close(load_quantized(tmp_path / "int8")(loader[0][0]), q(loader[0][0]))
    assert predict(tmp_path / "int8", "good film")[0].label in data.info.classes


def test_onnxruntime_text_models_are_dynamic_only_and_need_token_ids(corpus_csv):
    from slimforge.quantize import QuantizationError, QuantizeConfig, quantize

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer="vocab")
    model = create_model("text-cnn", **data.info.model_kwargs(), emb_dim=8, filters=4).eval()
    batch = data.test.__getitems__([0, 1])
    assert quantize(model, [batch], QuantizeConfig(backend="onnxruntime")).info["mode"] == "dynamic"  # auto: not static
    with pytest.raises(QuantizationError, match="dynamically only"):
        quantize(model, [batch], QuantizeConfig(backend="onnxruntime", mode="static"))
    with pytest.raises(DataError, match="Calibration batches must be tensors"):
        quantize(model, [({"tokens": batch[0]["input_ids"]}, batch[1])], QuantizeConfig(backend="onnxruntime"))


@needs_shared
def test_sms_spam_end_to_end_on_a_few_hundred_messages(tmp_path):
    """Train a CNN on 400 messages with a vocabulary tokenizer, int8 it, and predict from the folders."""
    from slimforge.quantize import save_quantized
    from slimforge.text.predict import predict, save_text_assets
    from slimforge.text.quantize import quantize_dynamic_int8

    data = load_dataset("sms-spam", tokenizer="vocab", max_train=400, max_length=64)
    data.test = data.test.subset(range(0, len(data.test), 4))  # about 280 messages, all lengths
    model = create_model("text-cnn", **data.info.model_kwargs(), emb_dim=32, filters=16)
    result = slimforge.train(model, data, FAST.model_copy(update={"epochs": 5, "batch_size": 32, "lr": 1e-2}), tmp_path / "cnn")
    majority = max(data.test.labels.float().mean().item(), 1 - data.test.labels.float().mean().item())
    assert result.metrics["test_accuracy"] > majority + 0.03
    data.save_assets(tmp_path / "cnn")
    int8 = quantize_dynamic_int8(result.model.eval(), [data.test.__getitems__([0, 1])])
    save_quantized(int8, tmp_path / "cnn-int8")
    save_text_assets(tmp_path / "cnn-int8", data.tokenizer, data.info.classes)
    spam = "WINNER!! You have won a free prize, call now to claim your cash reward"
    for run in ("cnn", "cnn-int8"):
        [p] = predict(tmp_path / run, spam)
        assert set(p.probabilities) == {"ham", "spam"} and abs(sum(p.probabilities.values()) - 1) < 1e-5


def test_cli_distill_of_a_text_teacher_on_a_transfer_set_predicts_from_its_folder(corpus_csv, tmp_path, capsys):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    common = ["--quiet", "train.batch_size=16", "train.optimizer=adamw", "train.weight_decay=0", "train.num_threads=1"]
    assert main(["train", "--data", "text-csv", "--model", "text-cnn", "--epochs", "4", "--lr", "0.01", "--out", str(teacher),
                 f"data.options.path={corpus_csv}", "data.options.tokenizer=vocab", "model.kwargs.emb_dim=16",
                 "model.kwargs.filters=8", *common]) == 0
    assert main(["distill", "--teacher", str(teacher), "--student", "text-cnn", "--loss", "mse", "--epochs", "3", "--lr", "0.01",
                 "--out", str(student), "student.kwargs.emb_dim=16", "student.kwargs.filters=8", "distill.hard_weight=0",
                 "distill.augment_copies=2", "distill.init_embeddings=true", *common]) == 0
    assert (student / "tokenizer" / "vocab.json").is_file() and (student / "labels.json").is_file()
    capsys.readouterr()
    assert main(["predict", str(student), "a superb and lovely film"]) == 0
    assert capsys.readouterr().out.split("\t")[0] == "1"


def test_dynamic_int8_weight_scales_and_activation_range_follow_the_config(tmp_path):
    from slimforge.quantize import QuantizeConfig, load_quantized, quantize, save_quantized

    torch.manual_seed(0)
    model = create_model("mlp", num_classes=3, in_channels=1, input_size=(16,), hidden=(32,)).eval()
    first = model.net[1]
    with torch.no_grad():
        first.weight[:2] *= 30  # two large rows: one scale per layer wastes the others' precision
    x = torch.randn(64, 1, 16)
    errors = {}
    for per_channel in (False, True):
        config = QuantizeConfig(backend="torch-dynamic", mode="dynamic", calib_batches=1, per_channel=per_channel, reduce_range=True)
        result = quantize(model, [x], config)
        int8 = result.quantized
        first_int8 = int8.model.net[1]
        assert first_int8.weight().qscheme() == (torch.per_channel_affine if per_channel else torch.per_tensor_affine)
        assert first_int8.weight().int_repr().abs().max().item() <= 64  # 7-bit weights: no int16 saturation without VNNI
        with torch.no_grad():
            errors[per_channel] = (int8(x) - model(x)).abs().mean().item()
        save_quantized(result, tmp_path / str(per_channel))
        loaded = load_quantized(tmp_path / str(per_channel))
        assert loaded.model.net[1].weight().qscheme() == first_int8.weight().qscheme()
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), int8(x))
    assert errors[True] < errors[False]


def test_onnxruntime_preprocessing_leaves_nothing_in_the_working_directory(tiny_bert_dir, tmp_path, monkeypatch):
    """ONNX Runtime's shape inference fails on a token-id graph and then saves a debug copy into
    the current directory; slimforge runs it inside its own work folder."""
    from slimforge.export import export_onnx_file
    from slimforge.quantize.backend_onnxruntime import _preprocess

    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    work, cwd = tmp_path / "work", tmp_path / "cwd"
    work.mkdir()
    cwd.mkdir()
    fp32 = export_onnx_file(model, torch.randint(5, 20, (2, 7)), work / "fp32.onnx")
    monkeypatch.chdir(cwd)
    _preprocess(fp32, work / "fp32.pre.onnx")
    assert list(cwd.iterdir()) == []


def test_onnxruntime_fuses_a_text_transformer_and_keeps_its_outputs(tiny_bert_dir, tmp_path):
    """The fp32 graph that dynamic int8 starts from gets ONNX Runtime's transformer fusions, unless they change the outputs."""
    import onnx

    from slimforge.export import OnnxSession, export_onnx_file
    from slimforge.quantize.backend_onnxruntime import fuse_transformer

    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    ids = torch.randint(5, 20, (3, 9))
    plain = export_onnx_file(model, ids, tmp_path / "fp32.onnx")
    fused = fuse_transformer(plain, tmp_path / "fused.onnx", ids)
    assert fused == tmp_path / "fused.onnx"
    assert "SkipLayerNormalization" in {node.op_type for node in onnx.load(str(fused)).graph.node}
    other = torch.randint(5, 20, (2, 13))  # another batch size and length
    with torch.no_grad():
        torch.testing.assert_close(OnnxSession(fused)(other), model(other), atol=1e-4, rtol=0.0)
    assert fuse_transformer(plain, tmp_path / "refused.onnx", ids, atol=-1.0) == plain  # outputs differ: the plain graph


@pytest.mark.slow  # about 12 s; tests/quantize/test_backends.py keeps named layers in fp32 by default
def test_onnxruntime_keeps_any_linear_of_a_text_transformer_in_fp32(tiny_bert_dir, corpus_csv):
    """The exporter folds each Linear's transposed weight into an unnamed constant; the layer is found by its module scope."""
    import onnx

    from slimforge.quantize import FallbackConfig, QuantizeConfig, quantizable_layers, quantize, quantize_with_fallback

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    loader = [data.test.__getitems__(list(range(i, i + 8))) for i in range(0, 32, 8)]
    layers = quantizable_layers(model)
    query = next(name for name in layers if name.endswith("layer.0.attention.self.query"))

    def float_weighted_matmuls(result) -> int:
        graph = onnx.load_from_string(result.quantized.model_bytes).graph
        constants = {init.name for init in graph.initializer}
        return sum(node.op_type == "MatMul" and node.input[1] in constants for node in graph.node)

    config = QuantizeConfig(backend="onnxruntime", calib_batches=2)
    assert float_weighted_matmuls(quantize(model, loader, config)) == 0
    kept = quantize(model, loader, QuantizeConfig(backend="onnxruntime", calib_batches=2, fp32_layers=(query,)))
    assert kept.info["fp32_layers"] == [query] and float_weighted_matmuls(kept) == 1

    # The accuracy-aware search tries each layer in fp32: every one must be mappable.
    with torch.no_grad():
        reference = [model(batch[0]) for batch in loader]

    def closeness(predict) -> float:  # 0 for fp32, below 0 for any int8 model: the search never stops early
        with torch.no_grad():
            return -sum((predict(batch[0]) - r).abs().mean().item() for batch, r in zip(loader, reference))

    result = quantize_with_fallback(model, loader, closeness, config, FallbackConfig(max_drop=0.0, max_fp32_layers=2))
    assert len(result.sensitivity) == len(layers)
    assert len(result.history) == 1 + len(layers) + 1


@pytest.mark.parametrize("backend", ["torch-dynamic", "onnxruntime"])
def test_smoothquant_on_a_text_transformer(backend, tiny_bert_dir, corpus_csv, tmp_path):
    """SmoothQuant measures activation ranges on text batches (dicts or token ids) and the artifact reloads to the same outputs."""
    from slimforge.quantize import QuantizeConfig, load_quantized, quantize, save_quantized
    from slimforge.quantize.smooth import smoothing_scales

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir)).eval()
    loader = [data.test.__getitems__(list(range(i, i + 8))) for i in range(0, 32, 8)]
    assert smoothing_scales(model, [b[0] for b in loader], 0.8)  # by default the layers whose simulated int8 error drops 10%
    config = QuantizeConfig(backend=backend, mode="dynamic", calib_batches=4, smooth_alpha=0.8, smooth_min_gain=None)
    result = quantize(model, loader, config)
    assert len(result.info["smoothed_layers"]) == len([m for m in model.modules() if isinstance(m, torch.nn.Linear)])
    batch = loader[1][0]
    with torch.no_grad():
        torch.testing.assert_close(result.quantized(batch), model(batch), atol=0.05, rtol=0.0)
        save_quantized(result, tmp_path / "int8")
        torch.testing.assert_close(load_quantized(tmp_path / "int8")(batch), result.quantized(batch))
    if backend == "torch-dynamic":  # query, key and value share one scale and one hook, also once reloaded
        layer = load_quantized(tmp_path / "int8").model.hf.bert.encoder.layer[0].attention.self
        hooks = [next(iter(m._forward_pre_hooks.values())) for m in (layer.query, layer.key, layer.value)]
        assert hooks[0] is hooks[1] is hooks[2] and hooks[0].users == 3
