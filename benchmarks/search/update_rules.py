"""Learned update rules against tuned baselines on one quantised child (issue 17.3a).

A *task* is a dataset, the weight bits and the update-rules space's child (``--child-layers``).
Every optimiser, baseline or found, is trained by the code that trains a search's children
(``nasforge/estimators/rule_train.py``: the child's conv / linear weights quantised in the forward
pass, the rule updating their latent values, Adam for biases and batch norm) for ``--epochs`` on
the 80% training split (split seed 0), and scored on the other 20% (validation) and on the test
split. Three disjoint sets of training seeds (initialisation and batch order):

* search seeds: those each search derives from its seed (``--search-seed``), one per child and repeat;
* selection seeds (``--select-seeds``, default 10 11 12): every choice is made on their mean
  validation accuracy: each baseline's setting and the rule kept from the search's best;
* test seeds (``--test-seeds``, default 100-104): reported, never used to choose anything.

Baselines, written as the space's tokens (``REFERENCE_RULES``): SGD with momentum + STE, Adam +
STE, PowerSign, AddSign, each over five learning rates of the space's grid, extended by one step
while the best is at an end of the range tried; Bop over gamma x tau (learning rate 1: a flip).

With ``--search-budget N`` one search runs per ``--search-seed`` (default 0; several run side by
side, one process each: ``run_search``, the CLI's loop, ``--strategy``, default reinforce-elite,
children trained for ``--epochs``, each ``--repeats`` times with seeds of its own, scored by the
mean; inline). The ``--rerank`` best rules of distinct behaviour (the space's ``arch_hash``) over
all the searches' children are trained on the selection seeds and the best of them by mean
validation accuracy is the found rule. With ``--rule FILE`` (the JSON of an earlier run) that
run's found rule, its learning rate unchanged, is measured on this task instead: the transfer
tables (with ``--tune-rule-lr`` its learning rate is chosen on the selection seeds as each
baseline's is, from the five rates of the grid around its own); ``--candidates`` measures every
rule that run re-ranked, to see how well its selection seeds chose. ``--workers N`` trains the seeds of one setting in N processes side by side (the
searches have processes of their own): the same trainings, the same figures, in less wall time.

    python benchmarks/search/update_rules.py [--dataset mnist1d] [--bits 1] [--child-layers 3]
        [--epochs 8] [--search-budget 0 | --rule FOUND.json [--candidates] [--tune-rule-lr]]
        [--strategy reinforce-elite] [--rerank 10] [--repeats 2] [--search-seed 0 [1 ...]] [--experiment DIR [DIR ...]] [--workers 1]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from scipy import stats

from nasforge import SearchConfig, run_search
from nasforge.data import load_dataset
from nasforge.quant import meta_train
from nasforge.quant.rules import formula
from nasforge.spaces.update_rules import LEARNING_RATES, REFERENCE_RULES, UpdateRuleSpace
from nasforge.store import Store, store_path

#: label -> (reference rule, learning rates tried first); each range is extended while its best
#: is at an end (``tune``)
LR_GRID = {
    "SGD + momentum 0.9 + STE": ("sgd-momentum", (0.01, 0.03, 0.1, 0.3, 1.0)),
    "Adam + STE": ("adam", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)),
    "PowerSign": ("powersign", (0.01, 0.03, 0.1, 0.3, 1.0)),
    "AddSign": ("addsign", (0.01, 0.03, 0.1, 0.3, 1.0)),
}
BOP_GAMMAS = (1e-3, 1e-2, 1e-1)
BOP_TAUS = (1e-6, 1e-5, 1e-4, 1e-3)


class Task:
    """One dataset, weight bits and child; ``run`` trains one optimiser with one seed
    (``meta_train.run_rule``, the neural optimiser's baselines, on the same split and child).
    With ``workers`` > 1 the trainings of one setting on several seeds run side by side in
    processes of their own (each one torch thread), since each is a training of its own."""

    def __init__(self, dataset: str, bits: int, child_layers: int, epochs: int, workers: int = 1):
        self.dataset, self.bits, self.child_layers, self.epochs = dataset, bits, child_layers, epochs
        self.data = load_dataset(dataset)
        self.task = meta_train.Task(self.data, bits=bits, epochs=epochs, child_layers=child_layers)
        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker,
                                            initargs=(dataset, bits, child_layers, epochs))

    def runs(self, groups, lr: float, constants: Dict, seeds: Sequence[int]) -> List[Dict[str, float]]:
        """``run`` on every seed, in the seeds' order."""
        if self.pool is None:
            return [self.run(groups, lr, constants, s) for s in seeds]
        return list(self.pool.map(_worker_run, [(groups, lr, constants, s) for s in seeds]))

    def space(self, **constants) -> UpdateRuleSpace:
        return UpdateRuleSpace(weight_bits=self.bits, child_layers=self.child_layers, **constants)

    def run(self, groups, lr: float, constants: Dict, seed: int) -> Dict[str, float]:
        try:
            result = meta_train.run_rule(self.task, groups, lr, seed, constants)
        except Exception as exc:  # noqa: BLE001 - a diverging rule scores 0, as its trial would fail
            return {"val_acc": 0.0, "test_acc": 0.0, "error": str(exc)}
        return {"val_acc": result["val_acc"], "test_acc": result["test_acc"]}

    def selection_val(self, groups, lr: float, constants: Dict, seeds: Sequence[int]) -> float:
        """Mean validation accuracy on the selection seeds (their test accuracy is not looked at)."""
        return statistics.mean(r["val_acc"] for r in self.runs(groups, lr, constants, seeds))

    def tested(self, groups, lr: float, constants: Dict, seeds: Sequence[int]) -> Dict[str, float]:
        runs = self.runs(groups, lr, constants, seeds)
        out: Dict[str, float] = {}
        for key in ("val_acc", "test_acc"):
            values = [r[key] for r in runs]
            out[key] = statistics.mean(values)
            out[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
            out[key + "_runs"] = values
        return out


_WORKER_TASK: Dict[str, Task] = {}


def _start_worker(dataset: str, bits: int, child_layers: int, epochs: int) -> None:
    torch.set_num_threads(1)
    _WORKER_TASK["task"] = Task(dataset, bits, child_layers, epochs)


def _worker_run(job) -> Dict[str, float]:
    return _WORKER_TASK["task"].run(*job)


def paired(found: Sequence[float], baseline: Sequence[float]) -> Dict[str, float]:
    """Found minus baseline seed by seed (both trained on the same test seeds): the mean difference,
    its standard error, on how many seeds the found rule is better, and the paired t-test's two-sided
    p-value (scipy), since at 1 and 2 bits the spread over seeds is as large as the differences."""
    diff = [f - b for f, b in zip(found, baseline, strict=True)]
    out = {"mean": statistics.mean(diff), "seeds": len(diff), "better": sum(d > 0 for d in diff)}
    if len(diff) > 1:
        out["se"] = statistics.stdev(diff) / len(diff) ** 0.5
        out["p"] = float(stats.ttest_rel(found, baseline).pvalue) if out["se"] > 0 else float("nan")
    return out


def best_lr(task: Task, groups, lrs: Sequence[float], seeds: Sequence[int]):
    """The learning rate of the highest mean validation accuracy on the selection seeds, of ``lrs``
    and one step further on the space's grid while the best is at an end of the range tried;
    with every rate tried and its selection accuracy."""
    tried = {lr: task.selection_val(groups, lr, {}, seeds) for lr in lrs}
    while True:
        best = max(tried, key=tried.get)
        i = LEARNING_RATES.index(best)
        step = [LEARNING_RATES[j] for j in (i - 1, i + 1) if 0 <= j < len(LEARNING_RATES)
                and LEARNING_RATES[j] not in tried]
        if not step or best not in (min(tried), max(tried)):
            return best, tried
        tried[step[0]] = task.selection_val(groups, step[0], {}, seeds)


def tune(task: Task, seeds: Sequence[int]) -> Dict[str, Dict]:
    """Each baseline's setting of the highest mean validation accuracy on the selection seeds."""
    chosen = {}
    for label, (name, lrs) in LR_GRID.items():
        best, tried = best_lr(task, REFERENCE_RULES[name][0], lrs, seeds)
        chosen[label] = {"rule": name, "lr": best, "constants": {}, "select_val": tried[best],
                         "tried": [{"lr": lr, "select_val": v} for lr, v in sorted(tried.items())]}
        print(f"  {label}: lr {best:g} ({len(tried)} tried), selection val {100 * tried[best]:.1f}", flush=True)
    groups = REFERENCE_RULES["bop"][0]
    tried_bop = [({"gamma": g, "tau": t}, task.selection_val(groups, 1.0, {"gamma": g, "tau": t}, seeds))
                 for g in BOP_GAMMAS for t in BOP_TAUS]
    constants, value = max(tried_bop, key=lambda item: item[1])
    chosen["Bop"] = {"rule": "bop", "lr": 1.0, "constants": constants, "select_val": value,
                     "tried": [{**c, "select_val": v} for c, v in tried_bop]}
    print(f"  Bop: {constants}, selection val {100 * value:.1f}", flush=True)
    return chosen


def _run_one_search(job: Dict) -> Dict:
    """One search of ``search``, in a process of its own when several run side by side."""
    torch.set_num_threads(1)
    config = SearchConfig(dataset=job["dataset"], budget=job["budget"], seed=job["seed"])
    config.space = {"name": "update-rules", "weight_bits": job["bits"], "child_layers": job["child_layers"]}
    config.strategy = {"name": job["strategy"]}
    config.training = {"epochs": job["epochs"], "repeats": job["repeats"]}
    config.execution = {"name": "inline"}
    folder = job["folder"]
    start = time.perf_counter()
    result = run_search(config, folder, resume=store_path(folder).exists(), data=job.get("data"))
    seconds = time.perf_counter() - start
    print(f"  search seed {job['seed']}: {result.completed} complete, {result.failed} failed, {seconds:.0f} s",
          flush=True)
    return {"seed": job["seed"], "folder": str(folder), "complete": result.completed, "failed": result.failed,
            "seconds": seconds}


def search(task: Task, args) -> List[Dict]:
    """The searches' ``--rerank`` best rules of distinct behaviour, pooled over the searches (one per
    ``--search-seed``, side by side in processes of their own: independent searches, so one that
    settles early on a poor family of rules does not decide the result), each with its mean
    validation accuracy on the selection seeds; the first is the found rule. An experiment folder
    that holds a search already is resumed (to its budget), not searched again."""
    seeds = args.search_seed
    folders = args.experiment or [tempfile.mkdtemp(prefix=f"update-rules-{s}-") for s in seeds]
    jobs = [{"dataset": task.dataset, "bits": task.bits, "child_layers": task.child_layers, "epochs": task.epochs,
             "budget": args.search_budget, "seed": seed, "strategy": args.strategy, "repeats": args.repeats,
             "folder": folder} for seed, folder in zip(seeds, folders)]
    start = time.perf_counter()
    if len(jobs) == 1:
        runs = [_run_one_search({**jobs[0], "data": task.data})]  # in this process, on the loaded data
    else:
        with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(_run_one_search, jobs))
    seconds = time.perf_counter() - start
    print(f"  searches: {seconds:.0f} s wall", flush=True)
    trials = []
    for run in runs:
        with Store(store_path(run["folder"]), readonly=True) as store:
            trials += [(record, run["seed"]) for record in store.trials(["COMPLETE"])]
    trials.sort(key=lambda item: (-item[0].objective, item[1], item[0].id))
    space, seen, candidates = task.space(), set(), []
    for record, seed in trials:
        groups, lr = space.rule(record.tokens)
        key = space.arch_hash(record.tokens)  # one optimiser written two ways has one hash
        if key in seen:
            continue
        seen.add(key)
        candidates.append({"rule": f"{lr:g} * {formula(groups)}", "groups": [list(g) for g in groups], "lr": lr,
                           "tokens": list(record.tokens), "search_seed": seed, "search_val": record.objective,
                           "select_val": task.selection_val(groups, lr, {}, args.select_seeds)})
        print(f"  {candidates[-1]['rule']}: search seed {seed}, search {100 * record.objective:.1f}, "
              f"selection {100 * candidates[-1]['select_val']:.1f}", flush=True)
        if len(candidates) == args.rerank:
            break
    candidates.sort(key=lambda c: -c["select_val"])
    candidates[0]["search_seconds"] = seconds
    candidates[0]["searches"] = runs
    return candidates


def table(task: Task, rows: Dict[str, Dict]) -> None:
    print(f"\n| optimiser ({task.dataset}, {task.bits}-bit weights, {task.child_layers} conv layers, "
          f"{task.epochs} epochs) | setting | selection val % | val % (test seeds) | test % (test seeds) |")
    print("| --- | --- | --- | --- | --- |")
    for label, r in rows.items():
        setting = ", ".join(f"{k} {v:g}" for k, v in r["constants"].items()) if r["constants"] else f"lr {r['lr']:g}"
        print(f"| {label} | {setting} | {100 * r['select_val']:.1f} | {100 * r['val_acc']:.1f} ± "
              f"{100 * r['val_acc_sd']:.1f} | {100 * r['test_acc']:.1f} ± {100 * r['test_acc_sd']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--bits", type=int, default=1)
    parser.add_argument("--child-layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--select-seeds", type=int, nargs="+", default=[10, 11, 12])
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    parser.add_argument("--search-budget", type=int, default=0)
    parser.add_argument("--search-seed", type=int, nargs="+", default=[0],
                        help="one search per seed (its children's seeds follow from it), side by side, their "
                             "best rules pooled")
    parser.add_argument("--strategy", default="reinforce-elite")
    parser.add_argument("--rerank", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2,
                        help="training seeds per search child, its reward their mean validation accuracy")
    parser.add_argument("--experiment", nargs="+",
                        help="the searches' experiment folders, one per search seed (default: new ones under /tmp)")
    parser.add_argument("--rule", help="JSON of an earlier run: measure its found rule here, unchanged")
    parser.add_argument("--tune-rule-lr", action="store_true",
                        help="with --rule: choose the rule's learning rate on the selection seeds as each "
                             "baseline's is (five rates around its own, extended while the best is at an end)")
    parser.add_argument("--candidates", action="store_true",
                        help="with --rule: measure every rule that run re-ranked, not only its found rule")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the trainings on the selection and test seeds (not the searches)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if set(args.select_seeds) & set(args.test_seeds):
        parser.error("the selection and test seeds must be disjoint")
    if len(set(args.search_seed)) != len(args.search_seed):
        parser.error("the search seeds must differ")
    if args.experiment and len(args.experiment) != len(args.search_seed):
        parser.error("--experiment needs one folder per search seed")
    if args.candidates and not args.rule:
        parser.error("--candidates needs --rule")
    if args.tune_rule_lr and not args.rule:
        parser.error("--tune-rule-lr needs --rule")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    torch.set_num_threads(1)
    start = time.perf_counter()
    task = Task(args.dataset, args.bits, args.child_layers, args.epochs, args.workers)
    results: Dict = {"args": vars(args), "baselines": tune(task, args.select_seeds)}
    rows = {}
    for label, b in results["baselines"].items():
        rows[label] = b
        b.update(task.tested(REFERENCE_RULES[b["rule"]][0], b["lr"], b["constants"], args.test_seeds))
    found = None
    if args.search_budget:
        results["candidates"] = search(task, args)
        found = results["candidates"][0]
    elif args.rule:
        earlier = json.loads(Path(args.rule).read_text())
        found = earlier["found"]
        if args.tune_rule_lr:  # the rule's learning rate chosen as each baseline's is, from five around its own
            i = LEARNING_RATES.index(found["lr"])
            lr, tried = best_lr(task, found["groups"], LEARNING_RATES[max(0, i - 2):i + 3], args.select_seeds)
            found.update(searched_lr=found["lr"], lr=lr, rule=f"{lr:g} * {found['rule'].split(' * ', 1)[1]}",
                         select_val=tried[lr], tried=[{"lr": r, "select_val": v} for r, v in sorted(tried.items())])
            print(f"  found rule: lr {lr:g} ({len(tried)} tried, {found['searched_lr']:g} in its search), "
                  f"selection val {100 * tried[lr]:.1f}", flush=True)
        else:
            found["select_val"] = task.selection_val(found["groups"], found["lr"], {}, args.select_seeds)
        if args.candidates:  # how well the earlier run's selection seeds chose among its re-ranked rules
            for i, c in enumerate(earlier["candidates"][1:], start=2):
                c.update(task.tested(c["groups"], c["lr"], {}, args.test_seeds), constants={},
                         select_val=task.selection_val(c["groups"], c["lr"], {}, args.select_seeds))
                rows[f"re-ranked {i}: {c['rule']}"] = c
            results["candidates"] = [found] + earlier["candidates"][1:]  # the found rule measured here
    if found is not None:
        found.update(task.tested(found["groups"], found["lr"], {}, args.test_seeds))
        found["constants"] = {}
        results["found"] = rows["found: " + found["rule"]] = found
        label = max(results["baselines"], key=lambda k: results["baselines"][k]["test_acc"])
        best = results["baselines"][label]
        results["margin_test"] = found["test_acc"] - best["test_acc"]
        results["margin_paired"] = {"baseline": label, **paired(found["test_acc_runs"], best["test_acc_runs"])}
    if task.pool is not None:
        task.pool.shutdown()
    results["seconds"] = time.perf_counter() - start
    table(task, rows)
    if found is not None:
        m = results["margin_paired"]
        spread = f", paired se {100 * m['se']:.1f}, p {m['p']:.2f}" if "se" in m else ""
        print(f"found - best baseline ({m['baseline']}, test): {100 * results['margin_test']:+.1f} points"
              f"{spread}, better on {m['better']} of {m['seeds']} seeds")
    print(f"total {results['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
