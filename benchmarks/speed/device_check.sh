#!/usr/bin/env bash
# One call on a machine with a CUDA GPU (issue 19.5): the user's path through the CLI on CUDA for
# each trainable space, time per child in float32 / bf16 / fp16 / channels-last, and the tests that
# take a CUDA parameter. Each part has its own time limit, so one that hangs leaves the others.
# Logs go to $OUT (or ./device-out). Packages the machine lacks come from .whl (see
# benchmarks/README.md, "On a GPU machine").
#     bash benchmarks/speed/device_check.sh
set -u
out=${OUT:-device-out}; mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 NASFORGE_CACHE=/tmp/nasforge-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

cli() {  # space dataset extra-settings...: search on CUDA, then trials, best, retrain, export
    local space=$1 dataset=$2; shift 2
    local exp=/tmp/exp-$space-$dataset
    python3 -m nasforge search --space "$space" --dataset "$dataset" --budget 4 --epochs 2 --workers 1 \
        --device cuda --experiment "$exp" --quiet "$@" \
      && python3 -m nasforge trials --experiment "$exp" \
      && python3 -m nasforge best --experiment "$exp" \
      && python3 -m nasforge retrain --experiment "$exp" --epochs 2 --rerank 1 --device cuda \
      && python3 -m nasforge export --experiment "$exp"
    echo "== cli $space $dataset $*: exit $?"
}
echo "== part 1: the CLI on CUDA"
timeout 200 bash -c "$(declare -f cli); \
    cli nb201-cell mnist5k --set training.amp=bf16 --set training.channels_last=true; \
    cli mobile-blocks mnist5k --set training.amp=bf16 --set training.channels_last=true; \
    cli chain-cnn mnist1d --set training.amp=fp16" > "$out/cli.log" 2>&1
echo "part 1 exit $?"; grep "^== cli" "$out/cli.log"; grep -iE "error|traceback" "$out/cli.log" | head -20

echo "== part 2: time per child"
timeout 240 python3 benchmarks/speed/device_child_time.py --device cuda --children 4 --epochs 2 \
    --json "$out/child_time.jsonl" 2>&1 | tee "$out/child_time.log"

echo "== part 3: tests with a CUDA parameter"
timeout 120 python3 -m pytest -q -p no:cacheprovider -n 8 tests/test_train_precision.py tests/test_export_raw.py \
    tests/test_device.py tests/test_augment_images.py tests/test_train.py > "$out/pytest.log" 2>&1
echo "part 3 exit $?"; tail -15 "$out/pytest.log"
