#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the modules that carry the paper's rules, each against only the
# test files that cover it, so that one module takes minutes. docs/testing.md has the results.
#
#   benchmarks/mutation/run.sh [MODULE ...]     MODULE: reinforce controller rewards fidelity store export
#
# Environment: PYTHON (default .venv/bin/python, with the dev extra: pip install -e '.[dev]'),
# TIMEOUT (seconds per module, default 1800), JOBS (mutants at once, default the CPU count),
# OUT (where each module's results go, default benchmarks/mutation/results).
#
# mutmut rewrites the files it mutates, so it runs in a scratch git worktree holding a copy of
# this checkout's nasforge/ and tests/ (uncommitted edits included); the checkout itself is never
# touched, and the worktree is removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
timeout_s=${TIMEOUT:-1800}
jobs=${JOBS:-$(nproc)}
out=${OUT:-$repo/benchmarks/mutation/results}

declare -A SOURCE=(
  [reinforce]=nasforge/strategies/reinforce.py
  [controller]=nasforge/strategies/controller.py
  [rewards]="nasforge/objectives/rewards.py nasforge/objectives/objective.py nasforge/objectives/constraints.py"
  [fidelity]=nasforge/estimators/fidelity.py
  [store]="nasforge/store/*"
  [export]=nasforge/report/export.py
)
declare -A TESTS=(
  [reinforce]="tests/test_controller.py tests/test_paper_rules.py tests/test_strategies_contract.py tests/test_reinforce_update.py"
  [controller]="tests/test_controller.py tests/test_paper_rules.py tests/test_controller_sampling.py"
  [rewards]="tests/test_rewards.py tests/test_paper_rules.py tests/test_scorer_rules.py"
  [fidelity]="tests/test_fidelity.py tests/test_pruning_settings.py"
  [store]="tests/test_store.py tests/test_store_faults.py"
  [export]="tests/test_export.py tests/test_export_check.py"
)
# pytest -k per module: the two 300-update learning runs of test_controller.py take minutes each and
# would run for every surviving mutant; other strategies' contract cases cover none of these lines
declare -A KEYWORDS=(
  [reinforce]="not learns_the_rewarded and (reinforce or not test_strategies_contract)"
  [controller]="not learns_the_rewarded"
)
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(reinforce controller rewards fidelity store export)
for m in "${modules[@]}"; do
  [ -n "${SOURCE[$m]:-}" ] || { echo "unknown module $m; choose from ${!SOURCE[*]}" >&2; exit 2; }
done
"$python" -c "import mutmut" 2>/dev/null || { echo "mutmut is missing: pip install -e '.[dev]'" >&2; exit 2; }

work=$(mktemp -d /tmp/nasforge-mutation.XXXXXX)
rmdir "$work"
git -C "$repo" worktree add --detach "$work" HEAD >/dev/null
trap 'git -C "$repo" worktree remove --force "$work"' EXIT
for d in nasforge tests; do rm -rf "${work:?}/$d"; cp -a "$repo/$d" "$work/$d"; done
find "$work" -name __pycache__ -prune -exec rm -rf {} +
cp "$work/pyproject.toml" "$work/pyproject.base.toml"
mkdir -p "$out"

for m in "${modules[@]}"; do
  tests=()
  for t in ${TESTS[$m]}; do [ -f "$work/$t" ] && tests+=("\"$t\""); done
  {
    cat "$work/pyproject.base.toml"
    echo
    echo "[tool.mutmut]"
    echo "source_paths = [\"nasforge\"]"
    set -f  # the patterns are mutmut's globs, not the shell's
    echo "only_mutate = [$(printf '"%s",' ${SOURCE[$m]} | sed 's/,$//')]"
    set +f
    echo "pytest_add_cli_args_test_selection = [$(IFS=,; echo "${tests[*]}")]"
    echo "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-n\", \"0\"$([ -n "${KEYWORDS[$m]:-}" ] && echo ", \"-k\", \"${KEYWORDS[$m]}\"")]"
    echo "process_isolation = \"forkserver\""  # torch is not fork-safe after use
    echo "use_git_change_detection = false"
  } > "$work/pyproject.toml"
  rm -rf "$work/mutants"
  echo "== $m: ${SOURCE[$m]} against ${TESTS[$m]}${KEYWORDS[$m]:+ (-k '${KEYWORDS[$m]}')}"
  start=$(date +%s)
  set +e
  (cd "$work" && timeout "$timeout_s" "$python" -m mutmut run --max-children "$jobs") > "$out/$m.log" 2>&1
  rc=$?
  set -e
  (cd "$work" && "$python" -m mutmut results --all true > "$out/$m.results.txt" 2>&1 || true
   "$python" -m mutmut export-cicd-stats >/dev/null 2>&1 && cp mutants/mutmut-cicd-stats.json "$out/$m.stats.json" || true)
  # the mutated source of every mutant that was run and not killed by a failing test (survived,
  # timed out, no covering test), for reading after the worktree is gone
  : > "$out/$m.survivors.diff"
  grep -vE ': (killed|not checked)$' "$out/$m.results.txt" | while IFS= read -r line; do
    name=$(echo "${line%%:*}" | tr -d ' ')
    [ -n "$name" ] || continue
    echo "### $line" >> "$out/$m.survivors.diff"
    (cd "$work" && "$python" -m mutmut show "$name" >> "$out/$m.survivors.diff" 2>&1 || true)
  done
  echo "   exit $rc after $(( $(date +%s) - start )) s; $(cat "$out/$m.stats.json" 2>/dev/null | tr -d '\n ' || echo 'no stats')"
done
