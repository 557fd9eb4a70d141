#!/usr/bin/env bash
# Re-record the demo runs shipped in sample_data/runs (CPU, offline, bundled model).
# Each is a plain `star run`; afterwards the adapters are deleted to keep the repo small
# (the dashboard says so). Run one at a time: two torch processes on 2 cores crawl.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
STAR=.venv/bin/star
OUT=sample_data/runs
mkdir -p "$OUT"
run() {  # run NAME ARGS...
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  /usr/bin/time -f "$name: %e s wall" "$STAR" run --quiet --out "$OUT/$name" "$@"
  rm -rf "$OUT/$name/adapters"
}
case "${1:-all}" in
  audit|all) run arithmetic-audit-filter --iterations 3 --set reject_unfaithful=true \
               --set name="arithmetic, 3 iterations, unfaithful rationales rejected" ;;&
  paper|all) run arithmetic-paper-rule \
               --set name="arithmetic, 2 iterations, paper rule (the default star run)" ;;&
  cqa|all)   run commonsenseqa-slice --task commonsenseqa --iterations 2 --set n_train=100 --set n_eval=80 \
               --set name="commonsenseqa, 2 iterations on a slice" ;;
esac
