from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SHARED_DATA = ROOT.parent / "shared" / "data"

# Caches a run writes (teacher outputs, latency tables, decoded data sets) go to a folder of this
# test session, not the user's ~/.cache/slimforge: the tests neither read stale entries nor leave any.
os.environ["SLIMFORGE_CACHE"] = tempfile.mkdtemp(prefix="slimforge-test-cache-")

needs_fashion = pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


@pytest.fixture(autouse=True)
def _one_thread_and_seed():
    """Tests run on 1 thread (CI has 2 cores) from a fixed seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield


@pytest.fixture
def cli_env(tmp_path):
    """Environment for subprocess CLI runs: this checkout importable, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
