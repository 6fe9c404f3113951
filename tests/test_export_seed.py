"""Which retrained model ``nasforge export`` writes after ``retrain --seeds N``: it wrote the
last seed's, unsaid. It now writes the lowest seed's (the one a plain retrain makes), says which
and with what test accuracy, and ``--seed`` picks another; never the best on test, which would
choose the model on the test split."""

from __future__ import annotations

import json

from cli_paths import error_line, nasforge, ok

from nasforge.store import Store, store_path

TINY = ["--layers", "2", "--epochs", "1", "--batch-size", "64", "--strategy", "random", "--seed", "1"]


def test_export_writes_the_seed_it_names(tmp_path, mnist1d_npz):
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "1", "--experiment", "e", "--quiet"],
                cwd=tmp_path))
    ok(nasforge(["retrain", "--experiment", "e", "--epochs", "2", "--rerank", "1", "--seeds", "2", "--seed", "3"],
                cwd=tmp_path))
    with Store(store_path(tmp_path / "e"), readonly=True) as store:
        accs = {r["metrics"]["seed"]: r["metrics"]["test_acc"] for r in store.evaluations("retrain")}
    assert sorted(accs) == [3, 4]
    run = nasforge(["export", "--experiment", "e", "--out", "x"], cwd=tmp_path)
    ok(run)
    meta = json.loads((tmp_path / "x" / "metadata.json").read_text())
    assert meta["seed"] == 3 and meta["test_acc"] == accs[3]
    assert f"seed 3, test accuracy {100 * accs[3]:.2f}%; retrained seeds 3, 4, --seed chooses" in run.stdout
    ok(nasforge(["export", "--experiment", "e", "--out", "x", "--overwrite", "--seed", "4"], cwd=tmp_path))
    assert json.loads((tmp_path / "x" / "metadata.json").read_text())["seed"] == 4
    before = (tmp_path / "x" / "metadata.json").read_bytes()
    refused = nasforge(["export", "--experiment", "e", "--out", "x", "--overwrite", "--seed", "0"], cwd=tmp_path)
    assert refused.returncode == 2 and "was not retrained with seed 0; retrained seeds: 3, 4" in error_line(refused)
    assert (tmp_path / "x" / "metadata.json").read_bytes() == before  # nothing replaced
