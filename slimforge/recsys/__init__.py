"""Recommendation: implicit-feedback data, ranking metrics and models through the same stages.

* datasets (``slimforge.load_dataset``): ``movielens`` (a folder you point at), ``ratings`` (any
  ratings file) and the generated ``synthetic-ratings``; leave-one-out by time with 99 sampled
  negatives per held-out item (the NCF protocol) (:mod:`slimforge.recsys.data`,
  :mod:`slimforge.recsys.protocol`);
* metrics: HR@10 / NDCG@10 over the sampled candidates, Recall@20 / NDCG@20 over the whole
  catalogue (:mod:`slimforge.recsys.metrics`), reported by ``slimforge.evaluate`` and the trainer;
* models (``slimforge.create_model``): ``popularity``, ``mf``, ``neumf``, ``two-tower``
  (:mod:`slimforge.recsys.models`), trained by ``slimforge.train`` with BCE (or BPR);
* :func:`recommend`: raw user ids in, ranked raw item ids out, from a run folder; unknown users
  get the popularity ranking (:mod:`slimforge.recsys.serve`).

Registries know these names without importing this package; it is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Interactions": "slimforge.recsys.ratings:Interactions",
    "read_ratings": "slimforge.recsys.ratings:read_ratings",
    "read_genres": "slimforge.recsys.ratings:read_genres",
    "build_recsys_splits": "slimforge.recsys.data:build_recsys_splits",
    "synthetic_interactions": "slimforge.recsys.data:synthetic_interactions",
    "RecsysDataSplits": "slimforge.recsys.data:RecsysDataSplits",
    "RankingSplit": "slimforge.recsys.protocol:RankingSplit",
    "ImplicitTrainDataset": "slimforge.recsys.protocol:ImplicitTrainDataset",
    "recommend": "slimforge.recsys.serve:recommend",
    "score": "slimforge.recsys.serve:score",
    "Recommendation": "slimforge.recsys.serve:Recommendation",
}


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'slimforge.recsys' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


__all__ = list(_EXPORTS)
