"""Issue 20: is every torchvision classification model, built by its own builder (``num_classes=10``), recognised as
``torchvision:<that builder>`` (``slimforge/models/recognised.py``)? The six largest are left out (memory, time).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/torchvision_recognised.py
"""
from __future__ import annotations

import time
import warnings

warnings.filterwarnings("ignore")

LARGEST = ("vit_h_14", "regnet_y_128gf", "vit_l_16", "vit_l_32", "regnet_y_32gf", "regnet_y_16gf")


def main() -> None:
    import torchvision

    from slimforge.models.recognised import recognise

    ok = missed = 0
    for name in torchvision.models.list_models(module=torchvision.models):
        if name in LARGEST:
            continue
        model = torchvision.models.get_model(name, weights=None, num_classes=10)
        start = time.perf_counter()
        spec, why = recognise(model)
        if spec is not None and spec.name == f"torchvision:{name}":
            ok += 1
        else:
            missed += 1
            print("NO", name, spec, (why or "")[:300])
        print(f"{name}: {time.perf_counter() - start:.2f} s", flush=True)
    print(f"recognised {ok}, not {missed}")


if __name__ == "__main__":
    main()
