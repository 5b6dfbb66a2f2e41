"""Issue 20: after pruning (and after save + load), does ``model.reset_classifier(5)`` build a head that fits? Every
timm model of the timm sweep and its held-out rounds 4-9 that has ``reset_classifier``, built by ``timm.create_model``,
pruned at ratio 0.3, then one call of the model with the new head (slow: about 20 minutes on 1 thread).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/timm_reset_classifier.py

Prints a line per failure (FAIL), per model it could not prune (SKIP) or save (SAVE), then the counts.
"""
from __future__ import annotations

import copy
import sys
import tempfile
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")


def models() -> dict[str, tuple[dict, int]]:
    """The sweep's list and the lists of ``heldout/timm_round4.py`` ... ``timm_round9.py`` (read, not run)."""
    import prune_timm_sweep as sweep

    found = dict(sweep.MODELS)
    for r in range(4, 10):
        source = (Path(__file__).parent / "heldout" / f"timm_round{r}.py").read_text().replace("S.main()", "")
        sweep.MODELS.clear()
        exec(compile(source, f"timm_round{r}.py", "exec"), {"__name__": "round"})  # noqa: S102 - this repository's own lists
        found.update(sweep.MODELS)
    return {name: spec for name, spec in found.items() if ":" not in name}


def main() -> None:
    import timm

    import slimforge

    torch.set_num_threads(1)
    fits = fails = 0
    for name, (kwargs, size) in models().items():
        try:
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False, **kwargs).eval()
            if not callable(getattr(model, "reset_classifier", None)):
                continue
            x = torch.randn(2, 3, size, size)
            slimforge.prune(model, x, ratio=0.3)
        except Exception as exc:  # noqa: BLE001 - a sweep reports every failure and goes on
            print("SKIP", name, type(exc).__name__, str(exc)[:100])
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                slimforge.save(model, tmp)
                reloaded = slimforge.load(tmp)
        except Exception as exc:  # noqa: BLE001
            reloaded = None
            print("SAVE", name, str(exc)[:150])
        for tag, m in (("pruned", model), ("reloaded", reloaded)):
            if m is None:
                continue
            try:
                m = copy.deepcopy(m)
                m.reset_classifier(5)
                with torch.no_grad():
                    assert m(x).shape[-1] == 5
                fits += 1
            except Exception as exc:  # noqa: BLE001
                fails += 1
                print("FAIL", tag, name, type(exc).__name__, str(exc)[:150])
    print(f"reset_classifier fits {fits}, fails {fails}")


if __name__ == "__main__":
    sys.path[:0] = [str(Path(__file__).parent)]
    main()
