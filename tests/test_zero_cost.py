"""Zero-cost proxies against hand computations, and the ``zero-cost`` estimator on real data."""

from __future__ import annotations

import gc
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.estimators.base import TrialFailed
from nasforge.estimators.zero_cost import (
    JACOB_COV_K, NASWOT_SINGULAR, PROXIES, ZeroCostEstimator, fisher, grad_norm, jacob_cov, jacob_cov_score, naswot,
    naswot_kernel, naswot_score, snip, synflow)
from nasforge.spaces import create_space


def _two_layer(bias=False, norm=False):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 3, bias=bias)]
    if norm:
        layers.append(nn.BatchNorm1d(3))
    layers += [nn.ReLU(), nn.Linear(3, 2, bias=bias)]
    return nn.Sequential(*layers)


# ---- synflow ------------------------------------------------------------------------------------------
def test_synflow_of_a_two_layer_linear_network_by_hand():
    net = _two_layer()
    w1 = net[0].weight.detach().abs().double().numpy()
    w2 = net[2].weight.detach().abs().double().numpy()
    # R = 1^T |W2| |W1| 1 (the ReLU passes everything: all inputs and weights are positive)
    r = np.ones(2) @ w2 @ w1 @ np.ones(4)
    d_w1 = np.outer(w2.T @ np.ones(2), np.ones(4))  # dR/dW1[i, j] = sum_k W2[k, i]
    d_w2 = np.outer(np.ones(2), w1 @ np.ones(4))    # dR/dW2[k, i] = sum_j W1[i, j]
    by_hand = float((w1 * d_w1).sum() + (w2 * d_w2).sum())
    assert by_hand == pytest.approx(2 * r)  # each layer carries the whole flow
    before = [p.detach().clone() for p in net.parameters()]
    assert synflow(net, torch.randn(5, 4)) == pytest.approx(by_hand, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # signs untouched


def test_synflow_ignores_batch_norm_and_data():
    plain, normed = _two_layer(), _two_layer(norm=True)
    normed[0].load_state_dict(plain[0].state_dict())
    normed[3].load_state_dict(plain[2].state_dict())
    with torch.no_grad():
        normed[1].weight.fill_(7.0)
        normed[1].running_var.fill_(3.0)
    assert synflow(normed, torch.randn(6, 4)) == pytest.approx(synflow(plain, torch.zeros(2, 4)))


# ---- gradient proxies ---------------------------------------------------------------------------------
def _linear_case():
    torch.manual_seed(1)
    net = nn.Linear(3, 4)
    x = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    w = net.weight.detach().double().numpy()
    b = net.bias.detach().double().numpy()
    xn = x.double().numpy()
    z = xn @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(4)[y.numpy()]) / len(xn)  # d(mean cross-entropy)/dz
    return net, x, y, w, z, dz, xn


def test_snip_and_grad_norm_by_hand():
    net, x, y, w, z, dz, xn = _linear_case()
    dw = dz.T @ xn
    assert snip(net, x, y) == pytest.approx(float(np.abs(w * dw).sum()), rel=1e-5)
    assert grad_norm(net, x, y) == pytest.approx(float(np.sqrt((dw ** 2).sum())), rel=1e-5)


def test_grad_norm_sums_per_layer_norms():
    net = _two_layer(bias=True)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])
    loss = F.cross_entropy(net(x), y)
    g1, g2 = torch.autograd.grad(loss, [net[0].weight, net[2].weight])
    assert grad_norm(net, x, y) == pytest.approx(float(g1.norm() + g2.norm()), rel=1e-6)


def test_fisher_by_hand():
    net, x, y, w, z, dz, xn = _linear_case()
    by_hand = 0.5 * ((z * dz) ** 2).mean(axis=0).sum()
    assert fisher(net, x, y) == pytest.approx(float(by_hand), rel=1e-5)


def test_fisher_sums_over_positions_of_a_convolution():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(10, 3))
    x, y = torch.randn(4, 1, 5), torch.tensor([0, 1, 2, 0])
    conv_out = net[0](x)
    logits = net[2](net[1](conv_out))
    g_conv, g_logits = torch.autograd.grad(F.cross_entropy(logits, y), [conv_out, logits])
    expected = 0.5 * ((conv_out * g_conv).sum(2) ** 2).mean(0).sum() + 0.5 * ((logits * g_logits) ** 2).mean(0).sum()
    assert fisher(net, x, y) == pytest.approx(float(expected.detach()), rel=1e-5)


# ---- NASWOT ---------------------------------------------------------------------------------------------
def test_naswot_kernel_on_known_codes():
    codes = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 0, 0]])
    # agreements = 3 - Hamming distance: d(0,1) = 1, d(0,2) = 2, d(1,2) = 3
    expected = torch.tensor([[3, 2, 1], [2, 3, 0], [1, 0, 3]], dtype=torch.float64)
    assert torch.equal(naswot_kernel(codes), expected)
    assert naswot_score(expected) == pytest.approx(math.log(12.0))  # det = 27 - 12 - 3


def test_naswot_of_a_relu_sums_codes_over_relus():
    x = torch.tensor([[1.0, -1.0, 2.0], [3.0, 1.0, 0.5], [-1.0, -2.0, -0.1]])  # codes as above
    assert naswot(nn.ReLU(), x) == pytest.approx(math.log(12.0))
    # two ReLUs see the same codes: K doubles, log det grows by n log 2
    assert naswot(nn.Sequential(nn.ReLU(), nn.ReLU()), x) == pytest.approx(math.log(12.0 * 8))
    assert naswot(nn.Identity(), x) == float("-inf")  # no ReLU, no codes


# ---- jacob_cov ------------------------------------------------------------------------------------------
def test_jacob_cov_score_of_two_rows_by_hand():
    # corr([1, 2, 3], [1, 3, 2]) = 0.5: eigenvalues 1.5 and 0.5
    k = JACOB_COV_K
    expected = -sum(math.log(v + k) + 1 / (v + k) for v in (1.5, 0.5))
    assert jacob_cov_score(np.array([[1.0, 2, 3], [1, 3, 2]])) == pytest.approx(expected)


def test_jacob_cov_of_a_linear_map():
    torch.manual_seed(3)
    net = nn.Linear(6, 1, bias=False)
    x = torch.randn(10, 6)  # only the first 6 examples count (6 features)
    # every row of J is the weight vector: all correlations 1, eigenvalues 6 and five zeros
    k = JACOB_COV_K
    expected = -(math.log(6 + k) + 1 / (6 + k) + 5 * (math.log(k) + 1 / k))
    assert jacob_cov(net, x) == pytest.approx(expected, rel=1e-6)


# ---- the estimator on real architectures ----------------------------------------------------------------
@pytest.fixture(scope="module")
def estimator(request):
    mnist1d_slice = request.getfixturevalue("mnist1d_slice")
    est = ZeroCostEstimator(batch_size=32, num_batches=2)
    est.setup(create_space("chain-cnn", num_layers=4), mnist1d_slice)
    return est


def _conv_tokens(space):
    values = {d.name: d.choices[0] for d in space.decisions}
    for i in range(space.num_layers):
        values[f"L{i}.op"] = "conv"
        values[f"L{i}.kernel"] = 3
        if i:
            values[f"L{i}.from_L{i - 1}"] = 1
    values["head.depth"] = 1
    return space.decode(values)


def _without_times(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith("proxy_seconds")}


def test_estimator_scores_a_real_architecture(estimator):
    tokens = _conv_tokens(estimator.space)
    metrics = estimator.evaluate(tokens, seed=0)
    for name in PROXIES:
        assert np.isfinite(metrics[f"proxy_{name}"]), name
    model = estimator.space.build(tokens, estimator.data.input_shape, 10)
    assert metrics["params"] == sum(p.numel() for p in model.parameters()) == metrics["proxy_params"]
    assert metrics["proxy_synflow"] > 0 and metrics["proxy_snip"] > 0 and metrics["proxy_fisher"] > 0
    assert set(metrics["proxy_seconds_each"]) == set(PROXIES)


def test_estimator_is_deterministic_for_a_seed(estimator):
    tokens = _conv_tokens(estimator.space)
    first = _without_times(estimator.evaluate(tokens, seed=4))
    assert _without_times(estimator.evaluate(tokens, seed=4)) == first
    other = _without_times(estimator.evaluate(tokens, seed=5))
    assert other["proxy_snip"] != first["proxy_snip"]  # a new initialisation
    assert other["params"] == first["params"]


def test_estimator_does_not_grow_memory(estimator):
    space = estimator.space
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]

    def live_tensors():
        gc.collect()
        with warnings.catch_warnings():  # isinstance touches deprecated torch attributes
            warnings.simplefilter("ignore")
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    for t in archs[:3]:
        estimator.evaluate(t, 0)
    before = live_tensors()
    for i, t in enumerate(archs * 2):
        estimator.evaluate(t, i)
    assert live_tensors() <= before


def test_a_subset_of_proxies(mnist1d_slice):
    est = ZeroCostEstimator(proxies=["naswot", "params"], batch_size=16)
    est.setup(create_space("chain-cnn", num_layers=2), mnist1d_slice)
    metrics = est.evaluate(_conv_tokens(est.space), 0)
    assert {k for k in metrics if k.startswith("proxy_") and k != "proxy_seconds_each"} == {
        "proxy_naswot", "proxy_params", "proxy_seconds"}


def test_bad_settings_and_spaces_are_refused(mnist1d_slice):
    import nasforge  # noqa: F401  (registers the benchmark spaces)

    with pytest.raises(ValueError, match="unknown proxies"):
        ZeroCostEstimator(proxies=["synflow", "zen"])
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCostEstimator(batch_size=1)
    with pytest.raises(ValueError, match="num_batches"):
        ZeroCostEstimator(num_batches=0)
    with pytest.raises(ValueError, match="cannot"):
        ZeroCostEstimator().setup(create_space("nb201-cifar10"), mnist1d_slice)
    with pytest.raises(ValueError, match="training examples"):
        ZeroCostEstimator(batch_size=500, num_batches=2).setup(create_space("chain-cnn"), mnist1d_slice)


def test_an_unbuildable_architecture_fails_its_trial(mnist1d_slice):
    est = ZeroCostEstimator(batch_size=8)
    est.setup(create_space("chain-cnn", num_layers=2, dims=2), mnist1d_slice)  # 1-D data, 2-D space
    with pytest.raises(TrialFailed):
        est.evaluate(est.space.sample(np.random.default_rng(0)), 0)


def test_registered_by_name():
    from nasforge.estimators.base import ESTIMATORS

    assert "zero-cost" in ESTIMATORS


def test_a_search_on_naswot_fails_unscorable_children_with_the_reason_and_goes_on(tmp_path):
    """Two-layer chains of pooling have no ReLU, or one whose codes coincide: NASWOT is -inf. Those
    children fail with a reason a user can act on, and the search still finishes."""
    from cli_paths import completed_trials, nasforge
    from nasforge.store import Store

    done = nasforge(["search", "--set", "training.estimator=zero-cost", "--set", "reward.metric=proxy_naswot",
                     "--reward-transform", "identity", "--budget", "12", "--layers", "2", "--strategy", "random",
                     "--executor", "inline", "--quiet", "--experiment", "zc"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Store(tmp_path / "zc" / "trials.sqlite", readonly=True) as store:
        failed = [t for t in store.trials() if t.state == "FAILED"]
    assert failed and completed_trials(tmp_path / "zc")
    for trial in failed:
        assert trial.error.endswith("is -inf: " + NASWOT_SINGULAR), trial.error
        assert "ReLU" in trial.error
