"""What an open dashboard costs a running search (issue 18 target: at most 1% of its wall time).

A 100-trial tabular search (REINFORCE on ``mnist1d-chain``, m = 4, learning rate 0.02) runs in this
process again and again, alternately without and with the dashboard open: for a "with" run a
``nasforge dashboard`` process follows the run's (not yet existing) experiment folder and a headless
Chromium shows its page, polling every 2 s (the default), from before the search starts until it
ends; for a "without" run neither exists. Runs alternate A B B A A B ... so that a drift in the
machine's load falls on both. Each run records the search's wall time and its own CPU time (the
search process only: what the dashboard takes from it shows up in wall time, on a machine with
idle cores only through contention), and the CPU seconds the dashboard process and the browser
spent meanwhile. The result is the median ratio with/without over pairs.

    .venv/bin/python benchmarks/speed/dashboard_overhead.py --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def search(folder: Path, trials: int) -> dict:
    from nasforge import SearchConfig, run_search

    config = SearchConfig(budget=trials, seed=0)
    config.space = {"name": "mnist1d-chain"}
    config.strategy = {"name": "reinforce", "batch_size": 4, "learning_rate": 0.02}
    cpu, wall = time.process_time(), time.perf_counter()
    run_search(config, folder)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def cpu_seconds(pids) -> float:
    """User + system CPU seconds so far of these processes (Linux /proc)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def descendants(pid: int) -> list:
    """``pid`` and every process below it (the browser's renderer, GPU and utility processes)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--interval", type=float, default=2.0, help="the page's polling interval, seconds")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    driver = browser()
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            search(Path(tmp) / "warm-up", 8)  # imports and caches paid before any timed run
            order = [k % 2 == 1 for k in range(2 * args.pairs)]  # False: without
            order = [with_ if (k // 2) % 2 == 0 else not with_ for k, with_ in enumerate(order)]  # A B B A A B
            for k, with_dashboard in enumerate(order):
                folder = Path(tmp) / f"run-{k}"
                dashboard = None
                if with_dashboard:
                    port = free_port()
                    dashboard = subprocess.Popen([sys.executable, "-m", "nasforge", "dashboard", "--experiment",
                                                  str(folder), "--port", str(port), "--interval", str(args.interval)],
                                                 stdout=subprocess.PIPE, text=True)
                    dashboard.stdout.readline()  # listening, its imports paid
                    driver.get(f"http://127.0.0.1:{port}/")
                    time.sleep(3)  # the page is up and polling
                load = os.getloadavg()[0]
                watched = descendants(driver.service.process.pid) + ([dashboard.pid] if dashboard else [])
                before = {pid: cpu_seconds([pid]) for pid in watched}
                result = search(folder, args.trials)
                browser_pids = [p for p in watched if not dashboard or p != dashboard.pid]
                result["browser_cpu_s"] = sum(cpu_seconds([p]) - before[p] for p in browser_pids)
                result["dashboard_cpu_s"] = cpu_seconds([dashboard.pid]) - before[dashboard.pid] if dashboard else 0.0
                polls = driver.execute_script("return window.NF_STATE ? (NF_STATE.loads || 0) : null") \
                    if with_dashboard else None
                if dashboard is not None:
                    driver.get("about:blank")
                    dashboard.terminate()
                    dashboard.wait(timeout=30)
                runs.append({"dashboard": with_dashboard, **result, "load_before": load, "page_data_loads": polls})
                print(json.dumps(runs[-1]), flush=True)
    finally:
        driver.quit()
    pairs = []
    without = [r for r in runs if not r["dashboard"]]
    with_ = [r for r in runs if r["dashboard"]]
    for a, b in zip(without, with_):
        pairs.append({"wall_ratio": b["wall_s"] / a["wall_s"], "cpu_ratio": b["cpu_s"] / a["cpu_s"]})
    print(json.dumps({
        "median_wall_ratio": statistics.median(p["wall_ratio"] for p in pairs),
        "median_cpu_ratio": statistics.median(p["cpu_ratio"] for p in pairs),
        "wall_ratios": [round(p["wall_ratio"], 4) for p in pairs],
        "median_wall_without_s": statistics.median(r["wall_s"] for r in without),
        "median_wall_with_s": statistics.median(r["wall_s"] for r in with_),
        "median_cpu_without_s": statistics.median(r["cpu_s"] for r in without),
        "median_cpu_with_s": statistics.median(r["cpu_s"] for r in with_),
        "median_dashboard_cpu_s": statistics.median(r["dashboard_cpu_s"] for r in with_),
        "median_browser_cpu_s_with": statistics.median(r["browser_cpu_s"] for r in with_),
        "median_browser_cpu_s_without": statistics.median(r["browser_cpu_s"] for r in without),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"), "trials": args.trials,
        "interval_s": args.interval, "pairs": len(pairs),
    }, indent=1))


if __name__ == "__main__":
    main()
