#!/usr/bin/env bash
# Tools for the serving benchmark, installed only when missing:
#   wrk (Debian package) as the load generator;
#   benchmarks/serving/.venv, made with uv: the project (editable) + requirements.txt.
# Run by run.py; safe to run by hand. PYTHON picks the interpreter the env is built on.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

if ! command -v wrk >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y wrk || { $sudo apt-get update && $sudo apt-get install -y wrk; }
fi

# uv: on PATH, else the project's dev env, else bootstrapped with pip into .tools.
uv="$(command -v uv || true)"
if [ -z "$uv" ] && [ -x "$repo/.venv/bin/uv" ]; then uv="$repo/.venv/bin/uv"; fi
if [ -z "$uv" ]; then
  [ -x "$here/.tools/bin/uv" ] || { "$python" -m venv "$here/.tools" && "$here/.tools/bin/pip" install --quiet uv; }
  uv="$here/.tools/bin/uv"
fi

stamp="$here/.venv/.installed"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ] || [ "$here/requirements.txt" -nt "$stamp" ]; then
  "$uv" venv --quiet --allow-existing --python "$python" "$here/.venv"
  VIRTUAL_ENV="$here/.venv" "$uv" pip install --quiet -e "$repo" -r "$here/requirements.txt"
  echo "$uv" > "$stamp"  # run.py reads which uv built the env (for its cache directory)
fi
