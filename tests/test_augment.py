"""Shift augmentation: each example is a circular shift of itself within the limit; mixup: convex
combinations of pairs; weight averaging: the model ends as the average of its trajectory; the
retrain recipe: the search's settings, longer, with label smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim.optimizer import register_optimizer_step_post_hook

from nasforge.config import RETRAIN_EPOCHS, RETRAIN_LABEL_SMOOTHING
from nasforge.estimators.augment import mixup, random_shift
from nasforge.estimators.train import TrainRecipe, retrain_recipe, train_network


def _offsets_1d(x: np.ndarray, y: np.ndarray) -> list:
    """For each example, every offset k with y == roll(x, k) on all channels."""
    return [[k for k in range(x.shape[-1]) if np.array_equal(np.roll(x[i], k, axis=-1), y[i])]
            for i in range(len(x))]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), channels=st.integers(1, 3), length=st.integers(2, 30), max_shift=st.integers(0, 8),
       seed=st.integers(0, 2**16))
def test_every_example_is_a_circular_shift_within_the_limit(n, channels, length, max_shift, seed):
    # distinct values, so the offset that produced each output is unique
    x = torch.randperm(n * channels * length, generator=torch.Generator().manual_seed(seed)).float()
    x = x.view(n, channels, length)
    y = random_shift(x, max_shift, torch.Generator().manual_seed(seed))
    for found in _offsets_1d(x.numpy(), y.numpy()):
        assert len(found) == 1  # all channels moved together, by one offset
        k = found[0]
        assert min(k, length - k) <= max_shift  # |offset| mod length within the limit


def test_two_dimensional_inputs_shift_along_both_axes_independently():
    x = torch.arange(4 * 1 * 7 * 9, dtype=torch.float32).view(4, 1, 7, 9)
    gen = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(30):
        y = random_shift(x, 2, gen)
        for i in range(4):
            match = [(a, b) for a in range(-2, 3) for b in range(-2, 3)
                     if torch.equal(torch.roll(x[i], (a, b), dims=(1, 2)), y[i])]
            assert len(match) == 1
            seen.add(match[0])
    assert len(seen) == 25  # every pair of offsets in [-2, 2] x [-2, 2] occurs


def test_shift_zero_is_the_identity_and_inputs_without_a_spatial_axis_are_refused():
    x = torch.randn(3, 2, 5)
    assert random_shift(x, 0, torch.Generator()) is x
    with pytest.raises(ValueError, match="no spatial axis"):
        random_shift(torch.randn(3, 5), 1, torch.Generator())


def test_retrain_recipe_keeps_the_search_settings_and_lengthens_and_regularises():
    training = {"epochs": 8, "learning_rate": 0.01, "estimator": "train", "val_fraction": 0.3}
    recipe = retrain_recipe(training)
    assert (recipe.epochs, recipe.shift, recipe.label_smoothing, recipe.learning_rate) == (
        RETRAIN_EPOCHS, 0, RETRAIN_LABEL_SMOOTHING, 0.01)
    assert retrain_recipe({**training, "shift": 2}).shift == 2  # the search's augmentation carries over
    recipe = retrain_recipe(training, epochs=5, shift=3, label_smoothing=0)
    assert (recipe.epochs, recipe.shift, recipe.label_smoothing) == (5, 3, 0)
    for bad, message in [({"shift": -1}, "shift must be"), ({"shift": 1.5}, "shift must be"),
                         ({"label_smoothing": 1.0}, "label smoothing"), ({"mixup": -0.1}, "mixup must be"),
                         ({"ema": 1.0}, "ema must be"), ({"ema": -0.5}, "ema must be")]:
        with pytest.raises(ValueError, match=message):
            TrainRecipe(**bad).check()


def test_training_with_shift_and_label_smoothing_learns_a_shift_invariant_task():
    # class = which of two bump widths, at a random position: a shift never changes the label
    rng = np.random.default_rng(0)
    n, length = 256, 24
    y = rng.integers(0, 2, n)
    x = np.zeros((n, 1, length), np.float32)
    for i in range(n):
        start = rng.integers(0, length)
        width = 2 if y[i] == 0 else 6
        x[i, 0, (start + np.arange(width)) % length] = 1.0
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 3, padding=1, padding_mode="circular"), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    torch.manual_seed(0)
    recipe = TrainRecipe(epochs=30, batch_size=32, learning_rate=0.02, shift=5, label_smoothing=0.05)
    history = train_network(model, x[:192], y[:192], recipe, 0, torch.device("cpu"), x[192:], y[192:])
    assert history[-1] >= 0.95


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 9), alpha=st.floats(0.05, 4.0), seed=st.integers(0, 2**16))
def test_mixup_is_a_convex_combination_with_a_partner(n, alpha, seed):
    x = torch.randn(n, 2, 5, generator=torch.Generator().manual_seed(seed))
    mixed, partner, lam = mixup(x, alpha, torch.Generator().manual_seed(seed), np.random.default_rng(seed))
    assert 0.0 <= lam <= 1.0
    assert sorted(partner.tolist()) == list(range(n))  # every example is someone's partner once
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])


def test_mixup_weights_follow_the_beta_distribution():
    rng, gen, x = np.random.default_rng(0), torch.Generator().manual_seed(0), torch.zeros(4, 1, 3)
    lams = np.array([mixup(x, 0.4, gen, rng)[2] for _ in range(4000)])
    assert abs(lams.mean() - 0.5) < 0.02  # Beta(a, a) is symmetric about 1/2
    assert abs(lams.var() - 1 / (4 * (2 * 0.4 + 1))) < 0.01  # its variance, 1 / (4 (2a + 1))


def test_weight_average_is_the_exponential_average_of_the_trajectory():
    """The model ends with a_t = d a_(t-1) + (1 - d) w_t over the weights after each step (a_1 = w_1);
    averaging does not change the trajectory itself."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 1, 6)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    decay, trajectory = 0.9, []

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 2))

    plain = model()
    hook = register_optimizer_step_post_hook(
        lambda *_: trajectory.append([p.detach().clone() for p in plain.parameters()]))
    try:
        train_network(plain, x, y, TrainRecipe(epochs=3, batch_size=8), 0, torch.device("cpu"))
    finally:
        hook.remove()
    expected = trajectory[0]
    for weights in trajectory[1:]:
        expected = [decay * a + (1 - decay) * w for a, w in zip(expected, weights)]
    averaged = model()
    train_network(averaged, x, y, TrainRecipe(epochs=3, batch_size=8, ema=decay), 0, torch.device("cpu"))
    assert len(trajectory) == 15
    for got, want, last in zip(averaged.parameters(), expected, trajectory[-1]):
        torch.testing.assert_close(got, want)
        assert not torch.allclose(got, last)  # the average, not the last step's weights


def test_training_with_mixup_and_weight_average_learns_a_simple_task():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 1, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum(1) > 0).astype(np.int64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    recipe = TrainRecipe(epochs=20, batch_size=32, learning_rate=0.02, mixup=0.2, ema=0.95)
    history = train_network(model, x[:240], y[:240], recipe, 0, torch.device("cpu"), x[240:], y[240:])
    assert history[-1] >= 0.9
