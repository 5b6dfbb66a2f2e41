#!/usr/bin/env bash
# One short call on a lent GPU machine, for its host CPU (Intel Xeon with AVX-512 VNNI / AMX):
# issue 6's int8 speed bars at batch 32, 1 thread, each backend against its own fp32.
#
#   run(command="bash benchmarks/device/int8_xeon.sh", carry=[".device/nlp-sst2", ".whl"], timeout_s=480)
#
# .whl holds what the machine's image lacks (pydantic and its needs, torchao); .device/nlp-sst2
# (from `python benchmarks/nlp_sst2.py pack --work .device/nlp-sst2`) gives MiniLM-L6's weights.
# Weights are random or pretrained: latency does not depend on fine-tuning. Results in $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MINILM_PATH=${MINILM_PATH:-.device/nlp-sst2/minilm}
lscpu > "$OUT/lscpu.txt"
python3 -c "import torch, torchao, onnxruntime as ort; print('torch', torch.__version__, 'torchao', torchao.__version__, 'ort', ort.__version__)"
core=$(( $(nproc) - 1 ))
taskset -c $core timeout 90 python3 benchmarks/torch_int8_check.py --reps 30 2>&1 | tee "$OUT/torch_int8_check.log" | grep -v "^W"
# CNN and MLP through every backend, then MiniLM through onnxruntime and torch-dynamic; each its own process and deadline.
taskset -c $core timeout 200 python3 benchmarks/quantize_speed.py --models resnet20x2 mlp-800 --reps 60 --threads 1 \
    --json "$OUT/quantize_speed_xeon.json" 2>&1 | tee "$OUT/quantize_speed.log" | grep -v "^W"
taskset -c $core timeout 150 python3 benchmarks/quantize_speed.py --models minilm --backends onnxruntime torch-dynamic --reps 12 --warmup 2 --smooth-alpha 0.8 \
    --threads 1 --json "$OUT/quantize_speed_minilm_xeon.json" 2>&1 | tee "$OUT/quantize_speed_minilm.log" | grep -v "^W"
