"""The local pool's time limit, one rule whenever the driver looks: a result the worker sent within
the limit counts, with the worker's own time; any other is a timeout whose time is the limit.

Real worker processes; the worker's own clock decides (the synthetic estimator sleeps well under or
over the limit), and the driver is made to look late or between a poll and a result's arrival."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nasforge.build import estimator_recipe
from nasforge.execution import Task, create_executor
from nasforge.execution import local
from nasforge.spaces.chain_cnn import ChainCNNSpace

from test_execution import synthetic_config

TOKENS = tuple(ChainCNNSpace(num_layers=2, dims=1).sample(np.random.default_rng(0)))


@pytest.fixture()
def pool():
    """A started one-worker pool for a synthetic estimator sleeping ``seconds``, limited to ``limit``."""
    executors = []

    def start(seconds: float, limit: float):
        executor = create_executor("local", workers=1, trial_timeout=limit)
        executors.append(executor)
        executor.start(estimator_recipe(synthetic_config(seconds=seconds, workers=1).to_dict()))
        return executor

    yield start
    for executor in executors:
        executor.shutdown()


def _result_sent(executor) -> None:
    """Wait, without the driver reading anything, until the worker has sent its result."""
    assert executor.pool[0].conn.poll(60), "the worker sent nothing in 60 s"


def test_a_result_sent_in_time_counts_even_when_it_arrives_after_the_last_poll(pool, monkeypatch):
    executor = pool(seconds=0.0, limit=1.0)
    executor.submit(Task(1, TOKENS, 0))
    _result_sent(executor)
    time.sleep(1.2)  # the driver's clock is now past the deadline, with the result there to read
    polls = []
    real_wait = local.wait_any

    def poll_just_before_it_arrived(handles, timeout):  # the first poll saw nothing; later ones are real
        polls.append(timeout)
        return [] if len(polls) == 1 else real_wait(handles, timeout)

    monkeypatch.setattr(local, "wait_any", poll_just_before_it_arrived)
    [outcome] = executor.wait(timeout=30)
    assert outcome.kind == "ok", outcome
    assert outcome.seconds < 1.0  # the worker's own time, not the driver's
    assert executor.pool[0].process.is_alive()  # a worker that answered in time is kept


def test_a_result_sent_after_the_limit_is_a_timeout_of_the_limit_however_it_is_read(pool):
    executor = pool(seconds=1.5, limit=1.0)
    executor.submit(Task(1, TOKENS, 0))
    _result_sent(executor)  # the driver did not look before the worker's (late) result came
    [outcome] = executor.wait(timeout=30)
    assert outcome.kind == "timeout" and outcome.seconds == 1.0, outcome
    assert "longer than 1 s" in outcome.error


def test_a_trial_without_a_result_times_out_at_the_limit_not_when_the_driver_noticed(pool):
    executor = pool(seconds=30.0, limit=0.5)
    executor.submit(Task(1, TOKENS, 0))
    [outcome] = executor.wait(timeout=60)
    assert outcome.kind == "timeout" and outcome.seconds == 0.5, outcome
    executor.submit(Task(2, TOKENS, 0))  # a fresh worker took the stopped one's place
    assert executor.running() == 1
