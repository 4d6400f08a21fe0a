#!/usr/bin/env bash
# Make the LiteLLM proxy environment the LLM-gateway collector tests run against.
#
# LiteLLM never goes into aisoc's own venv: it lives in .venv/litellm-env (ignored by git with
# .venv/), installed from requirements/litellm.txt, which pins litellm[proxy] and every dependency
# to an exact version *with hashes* (pip --require-hashes refuses anything else; 1.107.0 was
# reported compromised, so the pin is deliberate). Regenerate the lock after changing
# requirements/litellm.in with:
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
#     --no-emit-find-links -o requirements/litellm.txt requirements/litellm.in
#
# Idempotent: does nothing when the environment already matches the lock. Prints the path of the
# `litellm` executable on its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${AISOC_LITELLM_ENV:-$ROOT/.venv/litellm-env}"
LOCK="$ROOT/requirements/litellm.txt"
PYTHON="${PYTHON:-python3}"
stamp="$ENV_DIR/.aisoc-litellm-lock.sha256"
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"

mkdir -p "$(dirname "$ENV_DIR")"
exec 9>"$ENV_DIR.lock"  # one installer at a time (parallel test runs)
flock 9
if [ ! -x "$ENV_DIR/bin/litellm" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  start=$(date +%s)
  if [ -e "$ENV_DIR" ] && [ ! -f "$ENV_DIR/pyvenv.cfg" ]; then
    echo "litellm-env: $ENV_DIR exists and is not a virtualenv; refusing to replace it" >&2
    exit 1
  fi
  rm -rf "$ENV_DIR"
  "$PYTHON" -m venv "$ENV_DIR"
  # --no-deps: the lock already lists every dependency; --require-hashes: nothing unverified.
  "$ENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --no-deps --only-binary=:all: -r "$LOCK" >&2
  "$ENV_DIR/bin/python" -m pip check >&2
  echo "$want" > "$stamp"
  echo "litellm-env: installed in $(( $(date +%s) - start ))s at $ENV_DIR" >&2
fi
echo "$ENV_DIR/bin/litellm"
