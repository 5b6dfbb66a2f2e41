#!/usr/bin/env bash
# Issue 23 on a lent GPU machine, in one call: Hinton, Vinyals & Dean (2015)'s MNIST table through
# slimforge's command line (teacher; student alone; student distilled at T=20), 3 seeds, beside the
# plain-PyTorch script benchmarks/hinton_mnist_reference.py, every run a process of its own on the one GPU.
#
# 1. Here, once, from the repository root (needs ../shared/data/mnist and pip access to PyPI):
#        bash benchmarks/device/hinton_mnist.sh --pack
#    copies mnist.npz to .device/mnist/ and downloads to .whl/ the wheels the machine's image lacks
#    (pydantic and its needs, for its Python 3.12); both folders are git-ignored.
# 2. The call:
#        run(command="bash benchmarks/device/hinton_mnist.sh", carry=[".device/mnist", ".whl"], timeout_s=600)
#    Results in $OUT: hinton_mnist.md (the table of test errors, medians), hinton_mnist.jsonl (one line per
#    model), logs.tgz (every run's log, metrics.json and config.yaml).
#
# Knobs (environment): EPOCHS_SCALE (1 = the recipes' epochs; 0.05 for a smoke test), SEEDS (0,1,2),
# JOBS (processes at once; 9 = all), DEVICE (cuda), BUDGET (seconds before runs are stopped, 540),
# REFERENCE (1: also the plain-PyTorch script), VARIANTS (space-separated NAME:KEY=VALUE[,KEY=VALUE]:
# distilled students beside the recipe's, a sensitivity check; VARIANTS= for none), PYTHON (python3). Smoke test on any machine:
#        EPOCHS_SCALE=0.017 DEVICE=cpu JOBS=2 SEEDS=0,1 PYTHON=.venv/bin/python OUT=/tmp/hinton-out bash benchmarks/device/hinton_mnist.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--pack" ]; then
  mkdir -p .device/mnist
  cp -f "${MNIST:-../shared/data/mnist/mnist.npz}" .device/mnist/mnist.npz && chmod u+w .device/mnist/mnist.npz
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
  ls -la .device/mnist .whl
  exit 0
fi

T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
OUT=${OUT:-/tmp/hinton-out}; W=${WORK:-/tmp/hinton-work}
EPOCHS_SCALE=${EPOCHS_SCALE:-1}; SEEDS=${SEEDS:-0,1,2}; JOBS=${JOBS:-9}; DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-540}; REFERENCE=${REFERENCE:-1}; PY=${PYTHON:-python3}
DEFAULT_VARIANTS="lr0.03:train.lr=0.03"   # issue 23 found KD fragile in the learning rate
mkdir -p "$OUT" "$W"

$PY -c "import torch" || { echo "$PY has no torch; set PYTHON"; exit 1; }
if ! $PY -c "import pydantic" 2>/dev/null; then   # the GPU image has no pydantic: install the carried wheels
  ls .whl/*.whl >/dev/null 2>&1 || { echo "pydantic is missing and .whl/ holds no wheels: run this script with --pack first"; exit 1; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
DATA=${DATA:-.device/mnist}
[ -f "$DATA/mnist.npz" ] || DATA=../shared/data/mnist
[ -f "$DATA/mnist.npz" ] || { echo "no mnist.npz in .device/mnist or ../shared/data/mnist: run with --pack first"; exit 1; }
el "start: $($PY -c 'import torch, sys; print("torch", torch.__version__, "python", sys.version.split()[0], "cuda", torch.cuda.is_available())')"
[ "$DEVICE" != cuda ] || nvidia-smi -L || true

# The whole table; runs still going after BUDGET seconds are stopped and the table has what finished.
REF=(); [ "$REFERENCE" = 1 ] && REF=(--reference)
VAR=(); for v in ${VARIANTS-$DEFAULT_VARIANTS}; do VAR+=(--variant "$v"); done
rc=0
timeout --signal=INT -k 20 "$BUDGET" $PY benchmarks/hinton_mnist.py --data-root "$DATA" --seeds "$SEEDS" --work "$W" \
  --device "$DEVICE" --threads 1 --jobs "$JOBS" --epochs-scale "$EPOCHS_SCALE" --teacher-cache "$W/teacher-cache" \
  "${REF[@]}" "${VAR[@]}" --results "$OUT/hinton_mnist.jsonl" --table "$OUT/hinton_mnist.md" || rc=$?
el "benchmark exit code $rc"
if [ ! -s "$OUT/hinton_mnist.md" ] && [ -s "$OUT/hinton_mnist.jsonl" ]; then   # stopped before it wrote the table
  $PY - "$OUT" <<'EOF' || true
import sys, json, collections, statistics
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/hinton_mnist.jsonl") if l.strip()]
by = collections.defaultdict(list)
for r in rows:
    by[(r["role"], r["impl"])].append(r["test_errors"])
with open(f"{out}/hinton_mnist.md", "w") as f:
    f.write("| model | implementation | test errors by run | median |\n|---|---|---|---|\n")
    for (role, impl), errs in sorted(by.items()):
        f.write(f"| {role} | {impl} | {', '.join(map(str, errs))} | {statistics.median(errs):g} |\n")
EOF
fi
cat "$OUT/hinton_mnist.md" 2>/dev/null || true
tar czf "$OUT/logs.tgz" -C "$W" --exclude='*.safetensors' --exclude='*.npy' . 2>/dev/null || true
ls -la "$OUT"; el "end"
exit $rc
