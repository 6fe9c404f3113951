"""``nasforge search --resume`` given other data: refused as other data, whatever its shape."""

from __future__ import annotations

from cli_paths import json_out, nasforge, ok, refused

TINY = ["--layers", "2", "--epochs", "1", "--batch-size", "64", "--strategy", "random", "--seed", "1"]


def test_resuming_on_data_of_another_shape_says_the_data_differs(tmp_path, mnist1d_npz):
    """2-D images for a 1-D search advised "set the space's dims to 2", which a resume refuses."""
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "2", "--experiment", "e", "--quiet"],
                cwd=tmp_path))
    run = nasforge(["search", "--resume", "--experiment", "e", "--budget", "3", "--dataset", "digits"], cwd=tmp_path)
    line = refused(run, "search", "cannot resume with different settings: dataset:", "now 'digits'")
    assert "dims" not in line
    assert len(json_out(nasforge(["trials", "--experiment", "e", "--json"], cwd=tmp_path))) == 2  # nothing added


def test_a_bad_setting_is_named_before_the_folder_is_said_to_hold_trials(tmp_path, mnist1d_npz):
    """A typo in a flag, given with an experiment folder that holds trials, was answered only with
    "already holds trials": fixing that led to a second refusal."""
    ok(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "1", "--experiment", "e", "--quiet"],
                cwd=tmp_path))
    for flags, said in ((["--reward-transform", "cubic"], "reward transform must be one of"),
                        (["--workers", "0"], "workers must be a positive integer")):
        run = nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "2", "--experiment", "e", *flags],
                       cwd=tmp_path)
        refused(run, "search", said)
        assert run.stdout == ""  # the error line alone: no header, no empty progress line before it
    refused(nasforge(["search", "--dataset", mnist1d_npz, *TINY, "--budget", "2", "--experiment", "e"], cwd=tmp_path),
            "search", "already holds trials")  # the folder's own refusal, once the settings are right
