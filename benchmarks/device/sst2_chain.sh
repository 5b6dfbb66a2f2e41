#!/usr/bin/env bash
# One call on a lent GPU machine (16 cores): the SST-2 chain of issue 8 on the GPU, and int8 vs
# fp32 latency of issue 6 on the host CPU beside it (1 thread, pinned to the last core).
#
#   run(command="bash benchmarks/device/sst2_chain.sh", carry=[".device/nlp-sst2", ".whl"], timeout_s=600)
#
# .device/nlp-sst2 comes from `python benchmarks/nlp_sst2.py pack --work .device/nlp-sst2`
# (SST-2 TSVs + MiniLM-L6 in float16); .whl holds the wheels the machine's image lacks
# (pydantic and its needs, torchao). Every phase has a deadline so the call returns with
# whatever finished; results land in $OUT (results.json, quantize_speed.json, logs.tgz, and the
# teacher's outputs on the transfer set).
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-585}                 # seconds this script may use in all
el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
pin() { taskset -c "$1" true 2>/dev/null && echo "taskset -c $1"; }   # no pinning where those cores are not ours
left() { echo $(( BUDGET - ($(date +%s) - T0) - ${1:-0} )); }   # seconds left, keeping $1 in reserve

[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; P=${PACK:-.device/nlp-sst2}; W=${WORK:-/tmp/w}; L=$W/logs; mkdir -p $OUT $L
B="python3 benchmarks/nlp_sst2.py --work $W --device ${DEVICE:-cuda} --teacher-path $P/minilm --data-root $P/sst2 --quiet --threads 1 ${EXTRA:-}"
# gpu NAME SECONDS STAGE ARGS...: one stage, killed after SECONDS; its training stops after the last epoch
# that fits SECONDS less 45 s (data, model loading and the final evaluation).
gpu() { name=$1; limit=$2; shift 2
  $(pin ${CORES_GPU:-0-13}) timeout $limit $B "$@" --name $name --time-limit $(( limit - 45 )) > $L/$name.log 2>&1; echo "rc=$?" >> $L/$name.log
  el "$name: $(grep -h 'dev accuracy' $L/$name.log | tail -1) $(tail -1 $L/$name.log)"; }
lscpu > $L/lscpu.txt; nvidia-smi -L; el "start on $(grep -m1 'model name' /proc/cpuinfo)"

# Issue 6: int8 vs fp32 on this CPU (the GPU jobs stay on cores 0-13).
( $(pin ${CORES_QUANT:-15}) timeout $(left 100) python3 benchmarks/quantize_speed.py --models resnet20x2 mlp-800 resnet20 --reps 100 \
    --threads 1 --json $OUT/quantize_speed.json > $L/quantize_speed.log 2>&1; el "quantize_speed rc=$?" ) &

# Phase 1: three teachers and the label-only students, side by side.
T=$(left 345); pids=()
gpu teacher-b32-lr5e-5 $T teacher --lr 5e-5 --epochs 3 --batch-size 32 & pids+=($!)
gpu teacher-b32-lr1e-4 $T teacher --lr 1e-4 --epochs 3 --batch-size 32 & pids+=($!)
gpu teacher-b64-lr1e-4 $T teacher --lr 1e-4 --epochs 3 --batch-size 64 & pids+=($!)
gpu bilstm-alone $(left 120) student --mode alone --epochs 6 --batch-size 64 &
gpu cnn-alone $(left 120) student --student text-cnn --mode alone --epochs 6 --batch-size 64 &
wait "${pids[@]}"
$B select 2>&1 | tail -1

# Phase 2: teacher outputs for train + 20 augmented copies of each sentence (Tang et al. 2019).
TOKENIZERS_PARALLELISM=true timeout $(left 250) $B transfer --copies 20 --cache-batch-size 1024 > $L/transfer.log 2>&1
el "transfer rc=$? $(grep -h 'transfer set' $L/transfer.log)"

# Phase 3: distilled students and pruned teachers (distilled back), side by side.
S=$(left 95)
gpu bilstm-kd $S student --mode distill --epochs 6 --batch-size 64 &
gpu bilstm-kd-aug $S student --mode distill --copies 20 --epochs 2 --batch-size 256 &
gpu cnn-kd-aug $S student --student text-cnn --mode distill --copies 20 --epochs 2 --batch-size 256 &
gpu pruned-50 $S prune --ratio 0.5 --epochs 3 --batch-size 32 &
gpu pruned-45 $S prune --ratio 0.45 --epochs 3 --batch-size 32 &
gpu pruned-50-aug $S prune --ratio 0.5 --copies 20 --epochs 1 --batch-size 256 &
wait

# Phase 4: int8, dev accuracy and 1-thread latency on the CPU; then collect.
$(pin ${CORES_REPORT:-8-14}) timeout $(left 8) python3 benchmarks/nlp_sst2.py report --work $W --teacher-path $P/minilm --data-root $P/sst2 \
    --threads 7 --latency-rounds 2 --latency-batches 8 ${EXTRA:-} --json $OUT/results.json > $L/report.log 2>&1; el "report rc=$?"
grep -v "Loading weights" $L/report.log | tail -40
cp $W/transfer-20-cache/*.npy $OUT/transfer20_teacher_logits.npy 2>/dev/null
tar czf $OUT/logs.tgz --exclude='*.safetensors' --exclude='*.npy' --exclude='checkpoints' -C $W . 2>/dev/null
ls -la $OUT; el "end"
