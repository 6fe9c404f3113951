"""reinforce-elite's three changes to REINFORCE: no duplicate evaluation, risk-seeking advantages,
priority-queue training (nasforge/strategies/reinforce_elite.py)."""

from __future__ import annotations

import pytest
import torch

from nasforge.spaces.base import Decision, SearchSpace
from nasforge.strategies import create_strategy
from nasforge.strategies.reinforce_elite import EliteQueue, risk_seeking_advantages

class NineSpace(SearchSpace):
    """Two decisions of three choices: nine architectures, all valid."""

    name = "nine"

    @property
    def decisions(self):
        return [Decision("a", (0, 1, 2)), Decision("b", (0, 1, 2))]


def test_risk_seeking_learns_only_from_the_top_quantile():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # the 0.5-quantile (lower) is 2: children at or above it get R - 2, the others nothing
    assert risk_seeking_advantages(rewards, 0.5, normalize=False).tolist() == [0.0, 0.0, 1.0, 2.0]
    scaled = risk_seeking_advantages(rewards, 0.5, normalize=True)
    assert torch.allclose(scaled, torch.tensor([0.0, 0.0, 1.0, 2.0]) / rewards.std(correction=0))
    # quantile 1: every child, against the batch mean
    assert risk_seeking_advantages(rewards, 1.0, normalize=False).tolist() == [-1.5, -0.5, 0.5, 1.5]


def test_elite_queue_keeps_the_best_distinct_architectures():
    queue = EliteQueue(2)
    for key, reward in [("a", 0.1), ("b", 0.5), ("a", 0.9), ("c", 0.3), ("d", 0.7)]:
        queue.offer(key, (ord(key),), reward)
    assert queue.tokens() == [(ord("d"),), (ord("b"),)]  # "a" kept its first reward; "c" fell out
    restored = EliteQueue(2)
    restored.load(queue.state())
    assert restored.tokens() == queue.tokens()


def _nine_asked(**settings):
    """Nine children of NineSpace (reward: the tokens' sum), proposed and told one at a time."""
    strategy = create_strategy("reinforce-elite", batch_size=2, pool=64, **settings)
    strategy.setup(NineSpace(), 0)
    proposed = []
    for _ in range(9):
        proposal = strategy.ask()
        proposed.append(proposal.tokens)
        strategy.tell(proposal.tokens, float(sum(proposal.tokens)), proposal.info)
    return proposed


def test_no_architecture_is_proposed_twice_while_the_pool_holds_new_ones():
    assert len(set(_nine_asked())) == 9


def test_queue_training_raises_the_likelihood_of_the_best():
    strategy = create_strategy("reinforce-elite", batch_size=2, pool=2, queue_size=1, queue_weight=1.0,
                               queue_steps=5, learning_rate=0.05)
    strategy.setup(NineSpace(), 0)
    best = (2, 2)
    before = float(strategy.controller.score([best])[0][0].detach())
    strategy.elite.offer("best", best, 10.0)
    proposal = strategy.ask()
    strategy.tell(proposal.tokens, 0.0, proposal.info)
    proposal = strategy.ask()
    strategy.tell(proposal.tokens, 0.0, proposal.info)  # a batch of equal rewards: no policy gradient
    assert strategy.updates == 1
    assert float(strategy.controller.score([best])[0][0]) > before + 0.1


def test_one_scoring_pass_for_batch_and_queue_gives_the_separate_passes_update():
    """The update scores the batch and the queue's architectures together; the step must be the
    one that scoring them apart gives (the controller's rows do not interact)."""
    from nasforge.spaces.base import create_space
    from nasforge.strategies.reinforce import Reinforce
    from nasforge.strategies.reinforce_elite import ReinforceElite

    class Apart(ReinforceElite):
        def batch_log_probs(self, tokens):
            self._elite_log_probs = None
            return Reinforce.batch_log_probs(self, tokens)

    space = create_space("nb201-cifar10")
    together, apart = create_strategy("reinforce-elite"), Apart()
    for s in (together, apart):
        s.setup(space, 7)
    for _ in range(40):  # 10 updates, the queue full after the third
        p, q = together.ask(), apart.ask()
        assert p.tokens == q.tokens
        reward = space.lookup(p.tokens)["val_acc"]
        together.tell(p.tokens, reward, p.info)
        apart.tell(q.tokens, reward, q.info)
    assert together.updates == 10 and len(together.elite.items) == 10
    # equal up to the float sums of a 14-row pass against a 4-row and a 10-row one: about 1e-6
    # after the first Adam step (which normalises the gradient), not growing over 10 updates
    for x, y in zip(together.controller.parameters(), apart.controller.parameters()):
        assert torch.allclose(x, y, atol=1e-5, rtol=0)


def _tell_batch(strategy, space):
    proposals = [strategy.ask() for _ in range(strategy.batch_size)]
    for p in proposals:
        strategy.tell(p.tokens, space.lookup(p.tokens)["val_acc"], p.info)
    return [p.tokens for p in proposals]


def test_ranked_batch_is_the_predictors_top_new_architectures_of_the_pool():
    """With a predictor, a batch after the warm-up is the ``batch_size`` new architectures of one
    pool that a predictor fitted on every measured child ranks highest; before it, the first new
    ones. Checked against the pool replayed from a copy of the generator and a predictor fitted
    here, from the same children."""
    import numpy as np

    from nasforge.predictors import create_predictor
    from nasforge.predictors.encodings import encode_many
    from nasforge.spaces.base import create_space

    space = create_space("nb201-cifar10")
    strategy = create_strategy("reinforce-elite", pool=32, predictor="gp",
                               predictor_settings={"restarts": 0}, predictor_warmup=8)
    strategy.setup(space, 3)
    told = []
    for _ in range(2):  # the warm-up: 8 children
        told += _tell_batch(strategy, space)
    for _ in range(3):
        replay = torch.Generator()
        replay.set_state(strategy.generator.get_state())
        with torch.no_grad():
            pool = strategy.controller.run(generator=replay, batch=32)[0].tolist()
        seen, fresh = {space.arch_hash(t) for t in told}, []
        for row in map(tuple, pool):
            if space.arch_hash(row) not in seen:
                seen.add(space.arch_hash(row))
                fresh.append(row)
        model = create_predictor("gp", seed=3, restarts=0)
        model.fit(encode_many(space, told, "onehot"), np.array([space.lookup(t)["val_acc"] for t in told]))
        predicted = model.predict(encode_many(space, fresh, "onehot"))
        expected = [fresh[i] for i in sorted(range(len(fresh)), key=lambda i: (-predicted[i], i))[:4]]
        batch = _tell_batch(strategy, space)
        assert batch == expected
        told += batch
    # without a predictor: the same warm-up, then the pool's first new architectures, not these
    unranked = create_strategy("reinforce-elite", pool=32)
    unranked.setup(space, 3)
    batches = [_tell_batch(unranked, space) for _ in range(3)]
    assert batches[:2] == [told[:4], told[4:8]] and batches[2] != told[8:12]


def test_predictor_settings_are_checked():
    import pytest

    for settings, fault in [({"predictor": "svm"}, "svm"), ({"predictor_warmup": 1}, "predictor_warmup"),
                            ({"encoding": "graph"}, "encoding"), ({"explore": -1.0}, "explore"),
                            ({"predictor": "gp", "predictor_settings": {"nu": 3.0}}, "nu")]:
        with pytest.raises(ValueError, match=fault):
            create_strategy("reinforce-elite", **settings)


def test_mutate_seeds_each_batch_with_new_neighbours_of_the_best():
    """With ``mutate``, a batch after the first is ``round(batch_size * mutate)`` new architectures
    one decision from a queue member, then the controller's first new samples; every child is told
    to the same update and queue. Without it, the first batch is unchanged (same seed)."""
    from nasforge.spaces.base import create_space

    space = create_space("nb201-cifar10")
    strategy = create_strategy("reinforce-elite", pool=32, mutate=0.5)
    strategy.setup(space, 5)
    plain = create_strategy("reinforce-elite", pool=32)
    plain.setup(space, 5)
    first = _tell_batch(strategy, space)
    assert first == _tell_batch(plain, space)  # no parents yet: the controller's batch
    seen = {space.arch_hash(t) for t in first}
    for _ in range(10):
        parents = strategy.elite.tokens()
        batch = _tell_batch(strategy, space)
        for child in batch[:2]:
            assert any(sum(a != b for a, b in zip(child, parent)) == 1 for parent in parents), child
        hashes = [space.arch_hash(t) for t in batch]
        assert len(set(hashes)) == 4 and not seen & set(hashes)  # new, as the sampled ones are
        seen |= set(hashes)
    assert strategy.updates == 11
    # a space of nine: the mutants, too, are architectures not evaluated before while there are any
    assert len(set(_nine_asked(mutate=0.5))) == 9


def test_recent_parents_are_the_tournament_winner_of_the_last_children():
    """``parents = "recent"``: a mutant is a new neighbour of the best of 20 of the last 30 children
    (regularized evolution's selection), found by replaying the draw from a copy of the generator."""
    import copy

    from nasforge.spaces.base import create_space
    from nasforge.strategies.reinforce_elite import RECENT, TOURNAMENT

    space = create_space("nb201-cifar10")
    strategy = create_strategy("reinforce-elite", pool=32, mutate=0.25, parents="recent")
    strategy.setup(space, 11)
    told = []
    for _ in range(12):
        told += [(t, space.lookup(t)["val_acc"]) for t in _tell_batch(strategy, space)]
    assert strategy.recent == told[-RECENT:]
    replay = copy.deepcopy(strategy.rng)
    replay.permutation(len(strategy.elite.items))
    picks = replay.choice(RECENT, size=TOURNAMENT, replace=False)
    winner = max((told[-RECENT:][int(i)] for i in picks), key=lambda c: c[1])[0]
    mutant = strategy.ask().tokens
    assert sum(a != b for a, b in zip(mutant, winner)) == 1


@pytest.mark.parametrize("parents", ["queue", "recent"])
def test_mutate_resumes_exactly(parents):
    from nasforge.spaces.base import create_space

    space = create_space("nb201-cifar10")
    strategy = create_strategy("reinforce-elite", pool=32, mutate=0.5, parents=parents)
    strategy.setup(space, 7)
    for _ in range(3):
        _tell_batch(strategy, space)
    copy = create_strategy("reinforce-elite", pool=32, mutate=0.5, parents=parents)
    copy.setup(space, 7)
    copy.load_state_dict(strategy.state_dict())
    assert [_tell_batch(copy, space) for _ in range(3)] == [_tell_batch(strategy, space) for _ in range(3)]


def test_mutate_settings_are_checked():
    import pytest

    for settings, fault in [({"mutate": 1.0}, "mutate must be a fraction"), ({"mutate": -0.1}, "mutate must be"),
                            ({"mutate": True}, "mutate must be"),
                            ({"mutate": 0.5, "queue_size": 0}, "needs queue_size >= 1"),
                            ({"parents": "best"}, "parents must be one of queue, recent")]:
        with pytest.raises(ValueError, match=fault):
            create_strategy("reinforce-elite", **settings)
