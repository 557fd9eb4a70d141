#!/usr/bin/env bash
# Re-record the demo runs shipped in sample_data/runs (CPU, offline, bundled model).
# Each is a plain `star run`; afterwards the adapters are deleted to keep the repo small
# (the dashboard says so). Run one at a time: two torch processes on 2 cores crawl.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
STAR=.venv/bin/star
OUT=${DEMO_OUT:-sample_data/runs}  # DEMO_OUT: record elsewhere, then move the folders in
mkdir -p "$OUT"
run() {  # run NAME ARGS...
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  /usr/bin/time -f "$name: %e s wall" "$STAR" run --quiet --out "$OUT/$name" "$@"
  rm -rf "$OUT/$name/adapters" "$OUT/$name/run.lock"
}
# `lanes` records the six current demos in two lanes of one torch thread each (2 cores).
if [ "${1:-}" = lanes ]; then
  T="--set threads=1"
  ( bash "$0" paper $T; bash "$0" cqa $T; bash "$0" samples $T ) &
  ( bash "$0" warm $T; bash "$0" gsm8k $T; bash "$0" columns $T ) &
  wait
  exit
fi
what=${1:-all}; shift || true
case "$what" in
  audit)     run arithmetic-audit-filter --iterations 3 --set reject_unfaithful=true "$@" \
               --set name="arithmetic, 3 iterations, unfaithful rationales rejected" ;;&
  paper|all) run arithmetic-paper-rule --set n_eval=400 "$@" \
               --set name="arithmetic, 2 iterations, paper rule (the default star run, 100 eval sums per digit count)" ;;&
  warm|all)  run arithmetic-warm-start --iterations 2 --set warm_start=64 --set reject_unfaithful=true \
               --set n_eval=400 "$@" \
               --set name="arithmetic, supervised warm start on 64 1-2-digit rationales, then 2 STaR iterations keeping only faithful rationales" ;;&
  columns|all) run arithmetic-columns-warm-start --iterations 2 --set arith_format=columns --set warm_start=64 \
               --set reject_unfaithful=true --set direct_baseline=true --set n_eval=400 --set max_new_tokens=160 "$@" \
               --set name="arithmetic, columns format, supervised warm start on 64 1-2-digit rationales, then 2 STaR iterations keeping only faithful rationales" ;;&
  samples|all) run arithmetic-samples-warm-start --iterations 1 --set warm_start=64 --set reject_unfaithful=true \
               --set n_train=100 --set samples_per_question=4 --set temperature=0.8 --set max_kept_per_question=2 \
               --set n_eval=400 "$@" \
               --set name="arithmetic, supervised warm start on 64 1-2-digit rationales, then 1 STaR iteration with 4 samples per question at temperature 0.8, keeping up to 2 distinct faithful rationales each" ;;&
  carry|all) run arithmetic-carry-curriculum --iterations 2 --set arith_format=carry --set train_digits=1-4 \
               --set eval_digits=1-4 --set n_eval=240 --set n_train=240 --set warm_start=64 --set warm_start_digits=1-3 \
               --set warm_start_steps=60 --set curriculum=digits --set curriculum_rate=0.8 --set curriculum_keep=0.25 \
               --set samples_per_question=4 --set temperature=0.7 --set max_kept_per_question=2 \
               --set reject_unfaithful=true --set accumulate_kept=true --set max_train_per_group=64 \
               --set train_epochs=1 --set restart_from_base=false --set prompt_exemplars=false --set max_new_tokens=176 \
               --set threads=1 "$@" \
               --set name="arithmetic, carry scratchpad: warm start on 64 1-3-digit traces, then 2 STaR iterations with a digit curriculum, keeping only traces whose every line holds" ;;&
  cqa|all)   run commonsenseqa-slice --task commonsenseqa --iterations 2 --set n_train=100 --set n_eval=100 "$@" \
               --set name="commonsenseqa, 2 iterations on a slice (100 train, 100 eval)" ;;&
  gsm8k|all) run gsm8k-slice --task gsm8k --iterations 2 --set n_train=100 --set n_eval=100 \
               --set max_new_tokens=160 "$@" --set name="gsm8k, 2 iterations on a slice (100 train, 100 eval)" ;;
esac
