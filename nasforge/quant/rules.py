"""Update rules written as token groups (Bello, Zoph, Vasudevan & Le, *Neural Optimizer Search with
Reinforcement Learning*, ICML 2017), and a torch optimiser that performs one.

A rule is a list of groups ``(op1, op2, u1, u2, b)``; group k computes ``r_k = b(u1(op1), u2(op2))``
and later groups may take ``r_1 .. r_{k-1}`` as operands (the paper's nested form). The last group
is the update: ``w <- w - lr * r_last``. Operands are per-parameter tensors or constants:

* ``g``, ``g^2``, ``g^3``: the gradient and its powers;
* ``m``: running mean of g with rate ``1 - beta1``, not bias-corrected (torch's SGD momentum buffer
  is ``m / (1 - beta1)``), ``m_hat`` and ``v_hat``: Adam's bias-corrected first and second moments;
* ``m_bop``: Bop's running mean ``(1 - gamma) m + gamma g`` (Helwegen et al. 2019);
* ``sign(g)``, ``sign(m_hat)``; ``w`` the latent weight, ``w_q`` its quantised value;
* constants ``1``, ``2``, ``eps`` and ``tau`` (Bop's threshold).

Unary functions are the paper's, with ``drop`` as 0 and ``clip`` at +-CLIP; ``log|x|`` is taken of
``max(|x|, eps)``. Binary ``divide`` keeps the denominator eps away from zero on its own side
(``x / (y + eps)`` for ``y >= 0``: Adam's denominator exactly), and ``power`` is the odd extension
``sign(x) |x|^y`` (``x^y`` for ``x >= 0``), so that only overflow can make an update infinite.

This file imports only torch: an exported rule carries it verbatim.
"""

import torch

OPERANDS = ("g", "g^2", "g^3", "m", "m_hat", "v_hat", "m_bop", "sign(g)", "sign(m_hat)",
            "w", "w_q", "1", "2", "eps", "tau")
UNARY = ("identity", "negate", "exp", "log|x|", "sqrt|x|", "sign", "clip", "drop")
BINARY = ("add", "subtract", "multiply", "divide", "keep_left", "power")
CLIP = 1e-3


def _sign_plus(x):
    """+1 where x >= 0, else -1 (never 0)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def unary(name, x, eps):
    if name == "identity":
        return x
    if name == "negate":
        return -x
    if name == "exp":
        return torch.exp(x)
    if name == "log|x|":
        return torch.log(x.abs().clamp_min(eps))
    if name == "sqrt|x|":
        return torch.sqrt(x.abs())
    if name == "sign":
        return torch.sign(x)
    if name == "clip":
        return x.clamp(-CLIP, CLIP)
    if name == "drop":
        return torch.zeros_like(x)
    raise ValueError(f"unknown unary function {name!r}; choose from {', '.join(UNARY)}")


def binary(name, x, y, eps):
    if name == "add":
        return x + y
    if name == "subtract":
        return x - y
    if name == "multiply":
        return x * y
    if name == "divide":
        return x / (y + eps * _sign_plus(y))
    if name == "keep_left":
        return x
    if name == "power":
        return _sign_plus(x) * torch.pow(x.abs(), y)
    raise ValueError(f"unknown binary function {name!r}; choose from {', '.join(BINARY)}")


def used_groups(groups):
    """Indices of the groups the last one depends on (itself included), following only operands
    whose value matters (not under ``drop``, not the right side of ``keep_left``)."""
    needed, stack = set(), [len(groups) - 1]
    while stack:
        k = stack.pop()
        if k in needed:
            continue
        needed.add(k)
        for op in relevant_operands(groups[k]):
            if op.startswith("r"):
                stack.append(int(op[1:]) - 1)
    return sorted(needed)


def relevant_operands(group):
    """The operands of one group whose value can change its result."""
    op1, op2, u1, u2, b = group
    out = [] if u1 == "drop" else [op1]
    if b != "keep_left" and u2 != "drop":
        out.append(op2)
    return out


#: The operands that carry the loss's gradient, directly or as a running average: a rule that reads
#: none of them moves every weight the same way whatever the loss, so it cannot learn.
GRADIENT_OPERANDS = frozenset(("g", "g^2", "g^3", "m", "m_hat", "v_hat", "m_bop", "sign(g)", "sign(m_hat)"))


def reads_gradient(groups) -> bool:
    """Does the update depend on the gradient through an operand whose value matters?"""
    return any(op in GRADIENT_OPERANDS for k in used_groups(groups) for op in relevant_operands(groups[k]))


def check_rule(groups):
    """Raise ValueError unless ``groups`` is a well-formed rule (names known, results used only later)."""
    if not groups:
        raise ValueError("a rule needs at least one group")
    for k, group in enumerate(groups):
        if len(group) != 5:
            raise ValueError(f"group {k + 1} must be (op1, op2, u1, u2, b), got {group!r}")
        for op in group[:2]:
            earlier = op.startswith("r") and op[1:].isdigit() and 1 <= int(op[1:]) <= k
            if op not in OPERANDS and not earlier:
                raise ValueError(f"group {k + 1}: operand {op!r} is not one of {OPERANDS} or r1..r{k}")
        for u in group[2:4]:
            if u not in UNARY:
                raise ValueError(f"group {k + 1}: unknown unary function {u!r}")
        if group[4] not in BINARY:
            raise ValueError(f"group {k + 1}: unknown binary function {group[4]!r}")


def formula(groups):
    """The rule as one readable expression, e.g. ``multiply(exp(r1), g)`` with r1 written out; a
    dropped operand is written 0, whatever it was, so twins under :func:`canonical` read alike."""
    def text(k):
        op1, op2, u1, u2, b = groups[k]
        args = []
        for op, u in ((op1, u1), (op2, u2)):
            inner = text(int(op[1:]) - 1) if op.startswith("r") else op
            args.append("0" if u == "drop" else inner if u == "identity" else f"{u}({inner})")
        return args[0] if b == "keep_left" else f"{b}({args[0]}, {args[1]})"
    return text(len(groups) - 1)


class RuleOptimizer(torch.optim.Optimizer):
    """``w <- w - lr * rule(...)`` per parameter; ``quantise(w)`` gives the operand ``w_q``
    (identity when None). State per parameter: the step count and the running means the rule reads."""

    def __init__(self, params, groups, lr, quantise=None, betas=(0.9, 0.999), gamma=1e-3, tau=1e-6,
                 eps=1e-8):
        groups = [tuple(g) for g in groups]
        check_rule(groups)
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), gamma=gamma, tau=tau, eps=eps))
        self.rule = groups
        self.quantise = quantise
        self._order = used_groups(groups)
        self._reads = {op for k in self._order for op in relevant_operands(groups[k])}

    def _moments(self, state, g, group):
        beta1, beta2 = group["betas"]
        reads = self._reads
        if not state:
            state["step"] = 0
            for key in ("m", "v", "m_bop"):
                state[key] = torch.zeros_like(g)
        state["step"] += 1
        t = state["step"]
        if reads & {"m", "m_hat", "sign(m_hat)"}:
            state["m"].mul_(beta1).add_(g, alpha=1 - beta1)
        if "v_hat" in reads:
            state["v"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if "m_bop" in reads:
            state["m_bop"].mul_(1 - group["gamma"]).add_(g, alpha=group["gamma"])
        return t, 1 - beta1 ** t, 1 - beta2 ** t

    def _operand(self, name, p, g, state, group, corrections):
        t, c1, c2 = corrections
        constants = {"1": 1.0, "2": 2.0, "eps": group["eps"], "tau": group["tau"]}
        if name in constants:
            return torch.tensor(constants[name], dtype=p.dtype, device=p.device)
        values = {"g": lambda: g, "g^2": lambda: g * g, "g^3": lambda: g * g * g, "m": lambda: state["m"],
                  "m_hat": lambda: state["m"] / c1, "v_hat": lambda: state["v"] / c2,
                  "m_bop": lambda: state["m_bop"], "sign(g)": lambda: torch.sign(g),
                  "sign(m_hat)": lambda: torch.sign(state["m"]), "w": lambda: p,
                  "w_q": lambda: self.quantise(p) if self.quantise is not None else p}
        return values[name]()

    def update(self, p, group):
        """The rule's value for ``p`` (before ``lr``); advances the running means."""
        state = self.state[p]
        g = p.grad
        corrections = self._moments(state, g, group)
        results = {}
        for k in self._order:
            op1, op2, u1, u2, b = self.rule[k]
            args = []
            for op, u in ((op1, u1), (op2, u2)):
                if u == "drop" or (b == "keep_left" and args):  # value irrelevant: not computed
                    args.append(torch.zeros((), dtype=p.dtype, device=p.device))
                    continue
                x = results[op] if op.startswith("r") else self._operand(op, p, g, state, group, corrections)
                args.append(unary(u, x, group["eps"]))
            results[f"r{k + 1}"] = binary(b, args[0], args[1], group["eps"])
        return results[f"r{len(self.rule)}"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                delta = self.update(p, group)
                p.sub_(group["lr"] * delta)
        return loss
