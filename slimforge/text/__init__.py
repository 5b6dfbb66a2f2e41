"""Text classification: datasets, tokenisers and models that go through the same stages as images.

* datasets (``slimforge.load_dataset``): ``sst2``, ``sms-spam``, ``text-csv``, ``text-tsv``,
  ``jsonl``, ``hf-disk``; batches are ``({"input_ids", "attention_mask"}, targets, indices)``
  padded to each batch's longest text (:mod:`slimforge.text.data`);
* tokenisers: a Hugging Face fast tokenizer or a word vocabulary, saved in a run folder's
  ``tokenizer/`` (:mod:`slimforge.text.tokenizers`);
* models (``slimforge.create_model``): ``hf-text-classifier`` (default MiniLM-L6),
  ``text-bilstm``, ``text-cnn``, ``text-transformer`` (:mod:`slimforge.text.models`);
* :func:`predict`: texts in, labels and probabilities out, from a run folder alone;
* int8: the ``torch-dynamic`` backend of :mod:`slimforge.quantize` (:mod:`slimforge.quantize.dynamic`).

Nothing here imports ``transformers`` until a Hugging Face tokenizer or model is built.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "TextDataset": "slimforge.text.data:TextDataset",
    "TextDataSplits": "slimforge.text.data:TextDataSplits",
    "LengthBucketSampler": "slimforge.text.data:LengthBucketSampler",
    "build_text_splits": "slimforge.text.data:build_text_splits",
    "HFTokenizer": "slimforge.text.tokenizers:HFTokenizer",
    "VocabTokenizer": "slimforge.text.tokenizers:VocabTokenizer",
    "load_tokenizer": "slimforge.text.tokenizers:load_tokenizer",
    "init_embeddings_from_teacher": "slimforge.text.models:init_embeddings_from_teacher",
    "predict": "slimforge.text.predict:predict",
    "Prediction": "slimforge.text.predict:Prediction",
    "quantize_dynamic_int8": "slimforge.quantize.dynamic:quantize_dynamic_int8",
    "measure_latency": "slimforge.measure:measure_latency",  # the one harness, token-id batches included
}


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'slimforge.text' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


__all__ = list(_EXPORTS)
