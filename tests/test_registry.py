"""The plug-in registry: did-you-mean errors, and built-in entries imported on first use."""

from __future__ import annotations

import sys
import types

import pytest

from slimforge._registry import Registry
from slimforge.errors import UnknownNameError


def test_builtins_are_listed_before_their_module_is_imported(tmp_path, monkeypatch):
    reg: Registry[int] = Registry("thing", builtins={"lazy-thing": "sf_test_provider", "broken-thing": "sf_test_provider"})
    holder = types.ModuleType("sf_test_holder")
    holder.REG, holder.imports = reg, []
    (tmp_path / "sf_test_provider.py").write_text(
        "import sys\nholder = sys.modules['sf_test_holder']\nholder.imports.append(1)\n"
        "holder.REG.register('lazy-thing', help='registered on import')(42)\n"
    )
    monkeypatch.setitem(sys.modules, "sf_test_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sf_test_provider", raising=False)

    reg.register("eager")(1)
    assert reg.names() == ["broken-thing", "eager", "lazy-thing"] and "lazy-thing" in reg and holder.imports == []
    assert reg.get("lazy-thing") == 42 and holder.imports == [1]
    assert reg.help("lazy-thing") == "registered on import" and reg.get("lazy-thing") == 42
    assert holder.imports == [1]  # imported once
    with pytest.raises(ValueError, match="was expected to register thing 'broken-thing' but did not"):
        reg.get("broken-thing")
    sys.modules.pop("sf_test_provider", None)


def test_unknown_names_suggest_close_ones_including_builtins():
    reg: Registry[int] = Registry("model", builtins={"neumf": "slimforge.recsys.models"})
    with pytest.raises(UnknownNameError, match=r"Unknown model 'neumff'. Did you mean 'neumf'\?"):
        reg.get("neumff")


def test_recommendation_entries_load_on_first_use_from_the_shared_registries():
    from slimforge.data import DATASETS
    from slimforge.models import MODELS
    from slimforge.train.objectives import OBJECTIVES

    assert {"movielens", "synthetic-ratings", "ratings"} <= set(DATASETS.names())
    assert {"popularity", "mf", "neumf", "two-tower"} <= set(MODELS.names())
    assert callable(MODELS.get("neumf")) and callable(OBJECTIVES.get("bpr"))
    from slimforge.quantize import list_backends

    assert {"fbgemm-int8", "fbgemm-int4", "fbgemm-int2"} <= set(list_backends())  # registered without importing FBGEMM


def test_entries_carry_their_metadata_and_a_view_follows_later_registrations() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("plain")(1)
    reg.register("rich", help="with facts", produces="model", cost=3)(2)
    assert reg.meta("rich") == {"produces": "model", "cost": 3} and reg.meta("plain") == {}
    reg.meta("rich")["cost"] = 99  # a copy: the registry keeps its own
    assert reg.meta("rich")["cost"] == 3
    produces = reg.view("produces")
    assert dict(produces) == {"rich": "model"} and "plain" not in produces
    reg.register("later", produces="report")(3)
    assert dict(produces) == {"rich": "model", "later": "report"} and len(produces) == 2
    with pytest.raises(KeyError):
        produces["plain"]
    with pytest.raises(UnknownNameError, match="Did you mean 'rich'"):
        reg.meta("ric")


def test_stage_kinds_and_exporters_keep_their_facts_in_the_registry() -> None:
    from slimforge.export import EXPORTERS, LOADERS
    from slimforge.pipeline.stages import PRODUCES, list_stages

    assert set(PRODUCES) == set(list_stages()) and PRODUCES["quantize"] == "quantized"
    assert set(LOADERS) == set(EXPORTERS.names()) and all(callable(LOADERS[name]) for name in LOADERS)
