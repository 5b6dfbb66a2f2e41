#!/usr/bin/env bash
# One short call on a lent GPU machine, for its host CPU (Intel Xeon with AVX-512 VNNI / AMX):
# issue 6's int8 speed bars at batch 32, 1 thread, each backend against its own fp32 (pinned to the
# last core), and beside them, on the GPU and the other cores, MiniLM-L6 fine-tuned on SST-2 for one
# epoch and the dev accuracy of its int8 variants with this CPU's 8-bit activations.
#
#   run(command="bash benchmarks/device/int8_xeon.sh", carry=[".device/nlp-sst2", ".whl"], timeout_s=570)
#
# .whl holds what the machine's image lacks (pydantic and its needs, torchao); .device/nlp-sst2
# (from `python benchmarks/nlp_sst2.py pack --work .device/nlp-sst2`) gives MiniLM-L6's weights and
# SST-2. Speed runs on random weights (latency does not depend on fine-tuning). Every phase has a
# deadline inside BUDGET seconds, so the call returns with whatever finished; results in $OUT.
# A local smoke run: SKIP_WHEELS=1 SITE= PYTHON=.venv/bin/python DEVICE=cpu SST2_EXTRA="--max-train 64 --max-eval 64" \
#     REPS_SCALE=0 bash benchmarks/device/int8_xeon.sh
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-540}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
upto() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $(( l > 1 ? l : 1 )) || echo "$1"; }   # a phase's limit, within the budget
pin() { taskset -c "$1" true 2>/dev/null && echo "taskset -c $1"; }   # no pinning where those cores are not ours
el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=${SITE:-/tmp/site}:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
P=${PACK:-.device/nlp-sst2}
export MINILM_PATH=${MINILM_PATH:-$P/minilm}
PY=${PYTHON:-python3}
lscpu > "$OUT/lscpu.txt"
$PY -c "import torch, torchao, onnxruntime as ort; print('torch', torch.__version__, 'torchao', torchao.__version__, 'ort', ort.__version__)"
core=$(( $(nproc) - 1 ))
last=$(pin $core)

[ -n "${ALSO:-}" ] && { bash -c "$ALSO" > "$OUT/also.log" 2>&1 & }   # an extra check beside the rest (a diagnostic)

# SST-2 on the GPU (cores 0 to core-2), then int8 dev accuracy and latency on the CPU (7 cores, core-8 to core-2).
(
  W=/tmp/w; B="$PY benchmarks/nlp_sst2.py --work $W --teacher-path $P/minilm --data-root $P/sst2 --quiet ${SST2_EXTRA:-}"
  $(pin 0-$(( core > 2 ? core - 2 : 0 ))) timeout $(upto 240) $B teacher --name teacher --device ${DEVICE:-cuda} --threads 4 \
      --epochs 1 --lr 1e-4 --batch-size 32 > "$OUT/sst2_teacher.log" 2>&1
  el "sst2 teacher rc=$? $(grep -h 'dev accuracy' "$OUT/sst2_teacher.log" | tail -1)"
  $B select >> "$OUT/sst2_teacher.log" 2>&1 || exit 0
  threads=$(( core > 8 ? 7 : 1 ))
  $(pin $(( core > 8 ? core - 8 : 0 ))-$(( core > 8 ? core - 2 : 0 ))) timeout $(upto 400) $B report --threads $threads \
      --latency-batches 4 --latency-rounds 2 --json "$OUT/nlp_sst2_int8_xeon.json" > "$OUT/sst2_report.log" 2>&1
  el "sst2 report rc=$?"
) &
sst2=$!

# Speed: CNN and MLP through every backend, then MiniLM through onnxruntime and torch-dynamic; each its own process and deadline.
S=${REPS_SCALE:-1}
[ -n "${SKIP_CNN:-}" ] || {
$last timeout $(upto 90) $PY benchmarks/torch_int8_check.py --reps $(( 30 * S + 2 )) 2>&1 | tee "$OUT/torch_int8_check.log" | grep -v "^W"
$last timeout $(upto 200) $PY benchmarks/quantize_speed.py --models resnet20x2 mlp-800 --reps $(( 60 * S + 2 )) --threads 1 \
    --json "$OUT/quantize_speed_xeon.json" 2>&1 | tee "$OUT/quantize_speed.log" | grep -v "^W"
}
for b in ${MINILM_BACKENDS:-torch-dynamic onnxruntime}; do
  $last timeout $(upto 100) $PY benchmarks/quantize_speed.py --models minilm --backends $b --reps $(( 12 * S + 2 )) --warmup 2 --smooth-alpha 0.8 \
      --threads 1 --json "$OUT/quantize_speed_minilm_${b}_xeon.json" 2>&1 | tee "$OUT/quantize_speed_minilm_$b.log" | grep -v "^W\|^  \|Warning"
done
el "speed done"
wait $sst2   # not the ALSO check: it has its own deadline, or none
grep -h "dev accuracy\|teacher:" "$OUT"/sst2_*.log | tail -12
el "done"
