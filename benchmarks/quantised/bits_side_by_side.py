"""One chain-cnn architecture on MNIST-1D at 32/8/4/2/1 weight bits, QAT against PTQ: test
accuracy and weight bits; then the int8 ONNX export of the 8-bit QAT network against fp32.

    OMP_NUM_THREADS=1 python benchmarks/quantised/bits_side_by_side.py --epochs 10 --seeds 1

Trained on the whole training split (no validation carved out), scored on the test split; the
activation bits are 8 wherever the weights are quantised (32 at 32). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from nasforge.data.datasets import load_dataset
from nasforge.estimators.train import TrainRecipe, predict, train_network
from nasforge.quant.metrics import weight_bits
from nasforge.report.export_int8 import export_int8
from nasforge.spaces.chain_cnn import ChainCNNSpace

# L0 conv5x36, L1 conv3x48/2, L2 conv3x64, avg, fc128: a plain, reasonable 1-D network
ARCH = {"L0.op": "conv", "L0.kernel": 5, "L0.filters": 36, "L0.stride": 1,
        "L1.op": "conv", "L1.kernel": 3, "L1.filters": 48, "L1.stride": 2,
        "L2.op": "conv", "L2.kernel": 3, "L2.filters": 64, "L2.stride": 1,
        "readout": "avg", "head.depth": 1, "head.width": 128}


def tokens(space: ChainCNNSpace):
    chosen = {f"L{i}.from_L{j}": int(j == i - 1) for i in range(3) for j in range(i)} | ARCH
    return tuple(d.choices.index(chosen[d.name]) for d in space.decisions)


def run(data, space, bits: int, mode: str, epochs: int, seed: int):
    recipe = TrainRecipe(epochs=epochs, quantization="off" if bits == 32 else mode, weight_bits=bits,
                         activation_bits=32 if bits == 32 else 8)
    torch.manual_seed(seed)
    model = space.build(tokens(space), data.input_shape, data.num_classes)
    train_network(model, data.x_train, data.y_train, recipe, seed, torch.device("cpu"))
    acc = float((predict(model, torch.as_tensor(data.x_test)).argmax(1) == data.y_test).mean())
    return model, acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist1d")
    space = ChainCNNSpace(num_layers=3)
    print("| weight bits | QAT test acc | PTQ test acc | weight_bits (bits) |\n| --- | --- | --- | --- |")
    keep = None
    for bits in (32, 8, 4, 2, 1):
        accs = {}
        for mode in ("qat", "ptq"):
            runs = [run(data, space, bits, mode, args.epochs, s) for s in range(args.seeds)]
            accs[mode] = np.mean([a for _, a in runs])
            if bits == 8 and mode == "qat":
                keep = runs[0][0]
        print(f"| {bits} | {accs['qat']:.4f} | {accs['ptq']:.4f} | {weight_bits(runs[0][0]):,} |", flush=True)
    pick = np.random.default_rng(0).permutation(len(data.x_train))[:512]
    with tempfile.TemporaryDirectory() as out:
        r = export_int8(keep, out, data.x_train[pick], data.x_test, data.y_test, min_agreement=0.0)
    print(f"\nint8 export of the 8-bit QAT network: agreement {r['agreement']:.4f}, int8 test acc "
          f"{r['int8_test_acc']:.4f} (PyTorch {r['torch_test_acc']:.4f}); latency {r['int8_latency_ms']:.4f} ms vs "
          f"fp32 {r['fp32_latency_ms']:.4f} ms; {r['int8_bytes']:,} vs {r['fp32_bytes']:,} bytes")


if __name__ == "__main__":
    main()
