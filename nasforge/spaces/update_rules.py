"""``update-rules``: the controller writes an optimiser's update rule instead of a network (Bello,
Zoph, Vasudevan & Le, *Neural Optimizer Search with Reinforcement Learning*, ICML 2017), for a fixed
child whose weights are quantised in the forward pass (issue 17.3a).

Per group k the decisions are the paper's subsequence ``op1, op2, u1, u2, b`` (group k may read the
results r1..r{k-1}, the paper's nested form), then one learning rate; the last group is the update
(``nasforge/quant/rules.py`` interprets it). Every token sequence is a rule. ``canonical`` zeroes
what cannot change the update: an operand under ``drop``, the right side of ``keep_left``, and every
group the last one does not read. Tokens cannot see algebra (``power(sign(g^3), 1)`` is
``sign(g)``), so ``arch_hash`` identifies a rule by what it does (``behaviour``): strategies never
train one optimiser twice under other tokens. Constants of the interpreter (betas, Bop's gamma and
tau, eps), the weight bits and the child network are settings, stored with the search.

SGD with momentum, Adam, PowerSign, AddSign and Bop are in the space (``REFERENCE_RULES``;
``tests/test_update_rules.py`` checks each against torch.optim or its paper's formula).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..quant.fake import check_bits, weight_levels
from ..quant.rules import BINARY, OPERANDS, UNARY, RuleOptimizer, check_rule, formula, reads_gradient, used_groups
from .base import SPACES, Decision, InvalidArchitectureError, SearchSpace, Tokens

LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
FIELDS = ("op1", "op2", "u1", "u2", "b")
PROBES = 192  # random optimiser states a rule's behaviour is read at (8 channels of 24 weights)
HASHES_KEPT = 200_000  # arch_hash remembers this many canonical rules (a few tens of MB at most)

#: Known optimisers as rules: (groups, learning rate). SGD's rate is torch's 0.01 / (1 - beta1),
#: since ``m`` is the running mean and torch's momentum buffer its sum; Bop flips a weight
#: (``w <- -w``: the update is ``2w``) where ``m_bop sign(w) > tau``, i.e. |m_bop| > tau with the sign of w.
REFERENCE_RULES: Dict[str, Tuple[List[Tuple[str, ...]], float]] = {
    "sgd-momentum": ([("m", "g", "identity", "identity", "keep_left")], 0.1),
    "adam": ([("m_hat", "v_hat", "identity", "sqrt|x|", "divide")], 1e-3),
    "powersign": ([("sign(g)", "sign(m_hat)", "identity", "identity", "multiply"),
                   ("r1", "g", "exp", "identity", "multiply")], 0.1),
    "addsign": ([("sign(g)", "sign(m_hat)", "identity", "identity", "multiply"),
                 ("1", "r1", "identity", "identity", "add"),
                 ("r2", "g", "identity", "identity", "multiply")], 0.1),
    "bop": ([("m_bop", "w", "identity", "sign", "multiply"),
             ("r1", "tau", "identity", "identity", "subtract"),
             ("r2", "w", "sign", "identity", "multiply"),
             ("r3", "w", "identity", "identity", "add")], 1.0),
}


@SPACES.register("update-rules")
class UpdateRuleSpace(SearchSpace):
    name = "update-rules"
    default_estimator = "rule-train"

    def __init__(self, weight_bits: int = 1, groups: int = 4, beta1: float = 0.9, beta2: float = 0.999,
                 gamma: float = 1e-3, tau: float = 1e-6, eps: float = 1e-8, child_layers: int = 3,
                 child: Optional[List[int]] = None):
        self.weight_bits = check_bits(weight_bits)
        if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= 8:
            raise ValueError(f"update-rules: groups must be an integer in 1..8, got {groups!r}")
        for key, value in (("beta1", beta1), ("beta2", beta2), ("gamma", gamma)):
            if not 0 < value < 1:
                raise ValueError(f"update-rules: {key} must be in (0, 1), got {value!r}")
        if not tau >= 0 or not eps > 0:
            raise ValueError(f"update-rules: tau must be >= 0 and eps > 0, got tau={tau!r}, eps={eps!r}")
        if isinstance(child_layers, bool) or not isinstance(child_layers, int) or not 1 <= child_layers <= 24:
            raise ValueError(f"update-rules: child_layers must be an integer in 1..24, got {child_layers!r}")
        self.groups, self.child_layers = groups, child_layers
        self.constants = {"beta1": beta1, "beta2": beta2, "gamma": gamma, "tau": tau, "eps": eps}
        self.child = list(child) if child is not None else None
        self._decisions = [Decision(f"G{k + 1}.{field}", choices)
                           for k in range(groups) for field, choices in zip(FIELDS, self._choices(k))]
        self._decisions.append(Decision("lr", LEARNING_RATES))
        self._hashes: Dict[Tokens, str] = {}

    @staticmethod
    def _choices(k: int):
        operands = OPERANDS + tuple(f"r{j + 1}" for j in range(k))
        return operands, operands, UNARY, UNARY, BINARY

    @property
    def decisions(self) -> List[Decision]:
        return self._decisions

    def config(self) -> Dict[str, Any]:
        return {"weight_bits": self.weight_bits, "groups": self.groups, **self.constants,
                "child_layers": self.child_layers, "child": self.child}

    # ---- tokens <-> rules -------------------------------------------------------------------------
    def rule(self, tokens: Sequence[int]) -> Tuple[List[Tuple[str, ...]], float]:
        """(groups as names, learning rate) of ``tokens``."""
        values = self.encode(tokens)
        groups = [tuple(values[f"G{k + 1}.{f}"] for f in FIELDS) for k in range(self.groups)]
        return groups, float(values["lr"])

    def tokens_for(self, groups: Sequence[Sequence[str]], lr: float) -> Tokens:
        """The canonical tokens of a rule of at most ``self.groups`` groups: it fills the last
        groups (its results renumbered), the groups before it stay unused."""
        groups = [tuple(g) for g in groups]
        check_rule(groups)
        offset = self.groups - len(groups)
        if offset < 0:
            raise InvalidArchitectureError(f"the rule has {len(groups)} groups; this space has {self.groups}")
        shifted = [tuple(f"r{int(x[1:]) + offset}" if i < 2 and x.startswith("r") else x for i, x in enumerate(g))
                   for g in groups]
        values = {f"G{k + 1}.{f}": v for k, g in enumerate(shifted, start=offset) for f, v in zip(FIELDS, g)}
        for k in range(offset):
            values.update({f"G{k + 1}.{f}": c[0] for f, c in zip(FIELDS, self._choices(k))})
        if lr not in LEARNING_RATES:
            raise InvalidArchitectureError(f"learning rate {lr} is not one of {LEARNING_RATES}")
        values["lr"] = lr
        return self.canonical(self.decode(values))

    def canonical(self, tokens: Sequence[int]) -> Tokens:
        """Zero an operand under drop, the right side of keep_left, and unread groups."""
        t = list(self.validate(tokens))
        for k in range(self.groups):
            base = 5 * k
            op1, op2, u1, u2, b = (self._decisions[base + i].choices[t[base + i]] for i in range(5))
            if u1 == "drop":
                t[base] = 0
            if b == "keep_left":
                t[base + 1] = t[base + 3] = 0
            elif u2 == "drop":
                t[base + 1] = 0
        groups, _ = self.rule(t)
        used = set(used_groups(groups))
        for k in range(self.groups):
            if k not in used:
                t[5 * k: 5 * k + 5] = [0] * 5
        return tuple(t)

    def behaviour(self, tokens: Sequence[int]) -> Optional[Tuple[str, ...]]:
        """What the rule does: ``lr`` times its update at PROBES fixed random optimiser states, to
        10 significant digits (float64 rounding is far below that; ``exp(tau)`` against 1 is above).
        Equal for updates that agree as functions of the optimiser's state at all these points,
        whatever their tokens; None where an update is not finite (such rules are then told apart
        by their tokens). The probes:

        * every operand spans many magnitudes (1e-8 to 10 with random signs; the second moment 1e-16
          to 100) and none is exactly 0: rules that differ only where a gradient is exactly 0
          (``power(sign(g^3), x)`` and ``sign(g)`` for an ``x`` that can be negative) are one
          optimiser in training, where such gradients do not occur (the 1-bit search's ten best
          rules of that kind scored the same 49.0% on every selection seed);
        * the weights form 8 channels of scales 1e-3 to 10, half of each spread evenly, so that
          quantising gives every level (0 included) and channels get different scales;
        * the step is the 4th, so bias corrections differ from 1.
        """
        groups, lr = self.rule(tokens)  # the interpreter computes only what canonical keeps
        gen = torch.Generator().manual_seed(0)

        def draw(low: float = -8.0, high: float = 1.0, signed: bool = True) -> torch.Tensor:
            magnitude = 10.0 ** (low + (high - low) * torch.rand(PROBES, generator=gen, dtype=torch.float64))
            signs = torch.where(torch.rand(PROBES, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
            return magnitude * signs if signed else magnitude

        c = self.constants
        channel_scale = 10.0 ** torch.linspace(-3, 1, 8, dtype=torch.float64).repeat_interleave(PROBES // 8)
        even = (2 * torch.rand(PROBES, generator=gen, dtype=torch.float64) - 1) * channel_scale
        p = torch.nn.Parameter(torch.where(torch.arange(PROBES) % 2 == 0, even, draw()))
        p.grad = draw()
        bits = self.weight_bits
        optimiser = RuleOptimizer([p], groups, lr, quantise=lambda w: weight_levels(w.view(8, -1), bits).view(-1),
                                  betas=(c["beta1"], c["beta2"]), gamma=c["gamma"], tau=c["tau"], eps=c["eps"])
        optimiser.state[p].update(step=3, m=draw(), v=draw(-16.0, 2.0, signed=False), m_bop=draw())
        with torch.no_grad():
            values = (lr * optimiser.update(p, optimiser.param_groups[0])).expand(PROBES)
        if not bool(torch.isfinite(values).all()):
            return None
        return tuple(f"{v + 0.0:.10g}" for v in values.tolist())  # + 0.0: -0.0 and 0.0 are one value

    def cannot_learn(self, tokens: Sequence[int]) -> Optional[str]:
        """Why the rule cannot train its child, or None: it reads no gradient, or its update is zero
        at every probe of :meth:`behaviour`. Such a rule fails its trial untrained: its child would
        score only what the biases and batch norm learn, and a short search could report it best."""
        groups, lr = self.rule(tokens)
        if not reads_gradient(groups):
            return f"the rule {lr:g} * {formula(groups)} reads no gradient, so it cannot learn"
        what = self.behaviour(tokens)
        if what is not None and all(float(v) == 0.0 for v in what):
            return f"the rule {lr:g} * {formula(groups)} never changes a weight (its update is zero)"
        return None

    def arch_hash(self, tokens: Sequence[int]) -> str:
        """Equal for rules of equal :meth:`behaviour` (one optimiser), else for equal canonical
        tokens where the update is not finite. Remembered per canonical rule: a strategy hashes
        many samples per child, and reading a behaviour costs about a millisecond."""
        canonical = self.canonical(tokens)
        digest = self._hashes.get(canonical)
        if digest is None:
            what = self.behaviour(canonical)
            digest = super().arch_hash(canonical) if what is None else self._digest(["behaviour", list(what)])
            if len(self._hashes) < HASHES_KEPT:
                self._hashes[canonical] = digest
        return digest

    # ---- presentation -----------------------------------------------------------------------------
    def summary(self, tokens: Sequence[int]) -> str:
        groups, lr = self.rule(tokens)
        return f"{lr:g} * {formula(groups)}"

    def describe(self, tokens: Sequence[int]) -> List[str]:
        groups, lr = self.rule(tokens)
        lines = [f"update: w <- w - {lr:g} * {formula(groups)}"]
        lines += [f"r{k + 1} = {formula(groups[: k + 1])}" for k in used_groups(groups)]
        lines.append(f"weights quantised to {self.weight_bits} bits in the forward pass")
        return lines

    # ---- the child ----------------------------------------------------------------------------------
    def child_network(self, dims: int):
        """(chain-cnn space, tokens) of the fixed child every rule trains: ``child`` if set, else a
        chain of convolutions (kernel 5 in 1-D, 3x3 in 2-D; 24 filters; stride 2), average
        pooling and a linear classifier."""
        from .chain_cnn import ChainCNNSpace

        space = ChainCNNSpace(num_layers=self.child_layers, dims=dims)
        if self.child is not None:
            return space, space.validate(self.child)
        values: Dict[str, Any] = {}
        for d in space.decisions:
            if d.source is not None:
                values[d.name] = int(d.source == d.layer - 1)
            elif d.name.endswith((".kernel", ".kernel_h", ".kernel_w")):
                values[d.name] = 5 if dims == 1 else 3
            else:
                values[d.name] = {"op": "conv", "filters": 24, "stride": 2, "readout": "avg",
                                  "depth": 0, "width": 64}.get(d.name.split(".")[-1], d.choices[0])
        return space, space.decode(values)
