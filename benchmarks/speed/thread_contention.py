"""How torch's intra-op threads behave when another process wants the same cores: the training
steps of a small depthwise network (what a mobile-blocks child is made of), timed in a fresh
process with 2 threads, 2 threads with ``OMP_WAIT_POLICY=PASSIVE``, and 1 thread, first on the idle
machine, then beside one busy-looping process.

    python benchmarks/speed/thread_contention.py [--repeats 3 --steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STEPS = """
import sys, time, torch
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                    nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU(),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x, y = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))
start = time.perf_counter()
for _ in range(int(sys.argv[1])):
    opt.zero_grad(); nn.functional.cross_entropy(net(x), y).backward(); opt.step()
print(time.perf_counter() - start)
"""
SETTINGS = {"2 threads": {"OMP_NUM_THREADS": "2"},
            "2 threads, passive wait": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
            "1 thread": {"OMP_NUM_THREADS": "1"}}


def timed(env: dict, steps: int) -> float:
    done = subprocess.run([sys.executable, "-c", STEPS, str(steps)], env={**os.environ, **env},
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    results = {}
    for load in ("idle", "beside a busy loop"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            time.sleep(0.5)
            runs = {name: [] for name in SETTINGS}
            for _ in range(args.repeats):  # interleaved, so a drift in the load falls on each
                for name, env in SETTINGS.items():
                    runs[name].append(timed(env, args.steps))
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        results[load] = {name: {"median_s": statistics.median(r), "runs_s": [round(v, 3) for v in r]}
                         for name, r in runs.items()}
    print(json.dumps({"results": results, "steps": args.steps, "cpus": os.cpu_count(),
                      "date": time.strftime("%Y-%m-%d %H:%M")}, indent=1))


if __name__ == "__main__":
    main()
