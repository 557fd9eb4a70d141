#!/usr/bin/env bash
# The GPU check: on a CUDA machine, after the three staging steps of the GPU machine's README
# (bash .gpu/stage.sh, .gpu-b/stage.sh, .gpu-c/stage.sh) and `. /tmp/keep/env.sh`:
#
#   bash scripts/gpu_check.sh
#
# Runs, each step under its own timeout, in about 8 minutes at most:
#   1. the CUDA tests (decoder on CUDA against the previous decoder, 4-bit + sampling copy, auto batch,
#      shared-prefix attention on CUDA in fp32 and bf16 and its peak memory against the copied prefix);
#   2. the sampler benchmark in bf16: model.generate (batch 1 and batched with stop_strings) against star,
#      star with the prefix KV copied per slot (before) and with shared-prefix attention (after);
#   3. star's decoder at several batch sizes, bf16 and 4-bit NF4 (accuracy of each on the same questions);
#   4. decoding steps/s at prefix 64/256/512 and batch 16/32/128, before and after (shared-prefix attention);
#   5. the default run (`star run`, quantization and batch size auto), timed, and its summary.
# Logs go to $OUT/gpu_check (or /tmp/gpu_check); the last lines printed are the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
out=${OUT:-/tmp}/gpu_check
rm -rf "$out" /tmp/gpu-run && mkdir -p "$out"
: > "$out/summary.txt"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name: $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  printf '%-12s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$out/summary.txt"
  tail -n 12 "$out/$name.log"
}

step gpu 20 nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
step tests 180 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_sampling.py tests/test_prefix_attention.py \
  tests/test_quantization.py
step bench 130 "$PY" bench/bench_sampler.py --device cuda --n 256 --batch-size 64 --baseline-n 4
step sweep 80 "$PY" bench/bench_sampler.py --device cuda --n 512 --sweep 64,128,256,512
step sweep-4bit 60 "$PY" bench/bench_sampler.py --device cuda --n 512 --sweep 256 --quantization 4bit
step prefix 90 "$PY" bench/bench_sampler.py --device cuda --prefix-sweep --steps 32
step run 150 "$PY" -m star_core.cli run --out /tmp/gpu-run
step summary 30 "$PY" -m star_core.cli summary /tmp/gpu-run --json
cp "$out/summary.log" "$out/run_summary.json" 2>/dev/null

echo "== summary (also in $out/summary.txt)"
cat "$out/summary.txt"
grep -h "rationales/s\|over:\|same parsed\|star batch" "$out/bench.log" "$out/sweep.log" "$out/sweep-4bit.log" 2>/dev/null
grep -h -A10 "^prefix" "$out/prefix.log" 2>/dev/null
grep -h "model weights:\|sampling:" "$out/run.log" 2>/dev/null | head -3
