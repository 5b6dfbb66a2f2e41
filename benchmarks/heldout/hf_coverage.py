"""Which transformers model types no list, benchmark or test of this repository names yet: the pool a new held-out
Hugging Face pass draws from (issue 20). A type counts as named when its config class's name appears in any
``benchmarks/`` or ``tests/`` Python file.

    .venv/bin/python benchmarks/heldout/hf_coverage.py
"""
from __future__ import annotations

import pathlib
import re

from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

ROOT = pathlib.Path(__file__).resolve().parents[2]


def named_config_classes() -> set[str]:
    text = "\n".join(p.read_text() for folder in ("benchmarks", "tests") for p in (ROOT / folder).rglob("*.py"))
    return set(re.findall(r"\b([A-Z][A-Za-z0-9_]*Config)\b", text))  # underscores too: Ernie4_5_MoeConfig


def main() -> None:
    named = named_config_classes()
    missing = [(kind, cls) for kind, cls in CONFIG_MAPPING_NAMES.items() if cls not in named]
    print(f"{len(CONFIG_MAPPING_NAMES)} model types; {len(missing)} named nowhere yet")
    for kind, cls in missing:
        print(kind, cls)


if __name__ == "__main__":
    main()
