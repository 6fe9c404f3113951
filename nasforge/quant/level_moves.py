"""A neural optimiser whose outputs are quantised weights (issue 17.3b).

Each quantised weight is an integer level times a per-channel scale: at 1 bit the levels are -1 and
+1 (XNOR-Net's ``sign(w) * mean|w|``), at b >= 2 bits the integers ``-top..top``, ``top = 2^(b-1) - 1``
(``max|w| / top`` per channel), exactly :func:`nasforge.quant.fake.weight_levels` of the initial
weights. There is no latent full-precision weight: at every step a small network shared by all
coordinates (as in Andrychowicz et al. 2016 and Li & Malik 2017) reads each weight's gradient
history and picks one of three actions, *down*, *stay* or *up* one level (at 1 bit: set the weight
to -1, keep it, set it to +1). The actions are sampled (or, with ``greedy``, the most likely is
taken), so the policy can be trained by policy gradient on a reward that is not differentiable,
the quantised network's accuracy after a number of steps (``meta_train.py``). The per-channel
scales are not decisions: they follow the drive (see ``FEATURES``) by the statistic the initial
snap used.

This file imports only torch, so a trained policy runs without nasforge: ``MovePolicy`` plus its
``state_dict`` and ``LevelMoveOptimizer`` are the frozen optimiser.
"""

import torch
from torch import nn

#: What the policy reads per weight: the gradient and two running means of it, each divided by its
#: tensor's root mean square (so the policy is blind to the loss's scale); Adam's per-weight
#: direction ``m_hat / sqrt(v_hat)``; the gap between the weight's level and its ``drive`` (Adam's
#: direction summed over the steps, in units of the spacing between levels, starting at the initial
#: weight: the latent weight of straight-through training, here only an input); the level scaled to
#: [-1, 1]; products of the level with gradient signals (positive where the gradient pushes the
#: weight towards zero or across it); and whether the level is an extreme.
FEATURES = ("g", "m_fast", "m_slow", "adam", "gap", "level", "g*level", "m_fast*level", "adam*level", "at_edge")
ACTIONS = ("down", "stay", "up")
#: Normalised features are clipped to this range: one huge gradient cannot saturate the network.
FEATURE_CLIP = 10.0


def top_level(bits):
    """The largest level at ``bits`` (1 bit: the levels are -1 and +1, no zero)."""
    if bits not in (1, 2, 4, 8):
        raise ValueError(f"level moves need weight bits of 1, 2, 4 or 8, got {bits!r}")
    return 1 if bits == 1 else 2 ** (bits - 1) - 1


def snap(w, bits):
    """(integer levels, per-channel scale) of ``w``: ``levels * scale`` is ``weight_levels(w, bits)``."""
    flat = w.detach().reshape(w.shape[0], -1) if w.dim() > 1 else w.detach().reshape(1, -1)
    shape = (-1,) + (1,) * (w.dim() - 1) if w.dim() > 1 else ()
    if bits == 1:
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype), flat.abs().mean(dim=1).reshape(shape)
    top = top_level(bits)
    scale = (flat.abs().amax(dim=1).clamp_min(1e-12) / top).reshape(shape)
    return torch.clamp(torch.round(w.detach() / scale), -top, top), scale


def _normalised(x):
    return (x / (x.pow(2).mean().sqrt() + 1e-12)).clamp(-FEATURE_CLIP, FEATURE_CLIP)


def spacing(top):
    """Distance between neighbouring levels (1 bit: -1 and +1 are 2 apart)."""
    return 2.0 if top == 1 else 1.0


def features(g, m_fast, m_slow, adam, drive, level, top):
    """The (weights, len(FEATURES)) input of the policy for one tensor."""
    gn, fn, sn = _normalised(g), _normalised(m_fast), _normalised(m_slow)
    gap = ((drive - level) / spacing(top)).clamp(-FEATURE_CLIP, FEATURE_CLIP)
    v = level / top
    edge = (level.abs() >= top).to(g.dtype)
    return torch.stack([gn, fn, sn, adam, gap, v, gn * v, fn * v, adam * v, edge], dim=-1).reshape(-1, len(FEATURES))


class MovePolicy(nn.Module):
    """Features -> logits of (down, stay, up): a one-hidden-layer tanh network plus a linear path.

    It starts as a known rule, so that training begins from a policy that works rather than from
    one that scrambles the network: the hidden path's output layer is zero, and the linear path
    moves a weight up where its drive is more than half a level spacing above it and down where it
    is that far below (sharper as ``start_gain`` grows): straight-through Adam with the drive as its
    latent weight. What training changes is how far, and on what, the policy departs from that.
    """

    def __init__(self, hidden=16, start_gain=10.0):
        super().__init__()
        n = len(FEATURES)
        self.hidden = nn.Linear(n, hidden)
        self.out = nn.Linear(hidden, len(ACTIONS))
        self.linear = nn.Linear(n, len(ACTIONS))
        with torch.no_grad():
            self.out.weight.zero_()
            self.out.bias.zero_()
            self.linear.weight.zero_()
            gap = FEATURES.index("gap")
            self.linear.weight[0, gap], self.linear.weight[2, gap] = -start_gain, start_gain
            self.linear.bias.copy_(torch.tensor([-start_gain / 2, 0.0, -start_gain / 2]))

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x))) + self.linear(x)


def sample_actions(logits, generator=None):
    """One action per row, drawn from softmax(logits) by inverse CDF (a generator makes it repeatable;
    the uniforms come from the generator's own device, so a CPU generator serves a CUDA policy)."""
    probs = torch.softmax(logits, dim=-1)
    device = generator.device if generator is not None else probs.device
    u = torch.rand(probs.shape[0], 1, generator=generator, device=device).to(probs.device)
    return (probs.cumsum(dim=-1) < u).sum(dim=-1).clamp(max=len(ACTIONS) - 1)


class LevelMoveOptimizer(torch.optim.Optimizer):
    """Moves each weight by the policy's action; per-channel scales follow the drive.

    The weights are snapped to their levels when the optimiser is built, so the network is
    quantised from the first forward pass. With ``greedy=True`` each weight takes its most likely
    action instead of a sampled one (a deterministic optimiser, for evolution strategies and for
    use). With ``record=True`` each step also adds to ``score`` the gradient, with respect to the
    policy's parameters, of the log-probability of the actions it took: REINFORCE's estimate is
    ``score * (reward - baseline)``.
    """

    def __init__(self, params, policy, bits=1, drive_rate=0.2, betas=(0.9, 0.99), generator=None, record=False,
                 greedy=False):
        top = top_level(bits)
        if not drive_rate > 0:
            raise ValueError(f"drive_rate must be positive, got {drive_rate!r}")
        if greedy and record:
            raise ValueError("a greedy optimiser takes no sampled actions, so REINFORCE has no score to record")
        self.greedy = greedy
        super().__init__(params, dict(bits=bits, top=top, drive_rate=drive_rate, betas=tuple(betas)))
        self.policy, self.generator, self.record = policy, generator, record
        self.score = [torch.zeros_like(q) for q in policy.parameters()] if record else None
        self.moves = 0
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    level, scale = snap(p, bits)
                    self.state[p].update(level=level, unit=scale, drive=p.detach() / scale, m_fast=torch.zeros_like(p),
                                         m_slow=torch.zeros_like(p), v=torch.zeros_like(p), step=0)
                    p.copy_(level * scale)

    def _actions(self, x):
        """The actions for the feature rows ``x``, on ``x``'s device (the policy may sit elsewhere)."""
        x_device = x.device
        x = x.to(next(self.policy.parameters()).device)
        if self.greedy:
            return self.policy(x).argmax(dim=-1).to(x_device)
        if not self.record:
            return sample_actions(self.policy(x), self.generator).to(x_device)
        with torch.enable_grad():
            logp = torch.log_softmax(self.policy(x), dim=-1)
            actions = sample_actions(logp.detach(), self.generator)
            taken = logp.gather(1, actions[:, None]).sum()
            for total, grad in zip(self.score, torch.autograd.grad(taken, list(self.policy.parameters()))):
                total.add_(grad)
        return actions.to(x_device)

    @staticmethod
    def _scale(st, top):
        """The per-channel scale of the latent ``drive * unit``: its channel's mean |.| at 1 bit (as
        XNOR-Net scales the sign), max |.| / top above; the same statistics the initial snap used."""
        latent = (st["drive"] * st["unit"]).abs()
        flat = latent.reshape(latent.shape[0], -1) if latent.dim() > 1 else latent.reshape(1, -1)
        stat = flat.mean(dim=1) if top == 1 else flat.amax(dim=1) / top
        return stat.clamp_min(1e-12).reshape(st["unit"].shape)

    def _move(self, p, group):
        """One step for one tensor: update its statistics, sample the actions, set the levels."""
        b1, b2, top = group["betas"][0], group["betas"][1], group["top"]
        st, g = self.state[p], p.grad
        st["step"] += 1
        st["m_fast"].mul_(b1).add_(g, alpha=1 - b1)
        st["m_slow"].mul_(b2).add_(g, alpha=1 - b2)
        st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
        t = st["step"]
        adam = (st["m_fast"] / (1 - b1 ** t)) / ((st["v"] / (1 - b2 ** t)).sqrt() + 1e-8)
        st["drive"].sub_(group["drive_rate"] * adam)
        actions = self._actions(features(g, st["m_fast"], st["m_slow"], adam, st["drive"], st["level"], top))
        move = (actions - 1).reshape(p.shape).to(p.dtype)
        old = st["level"]
        new = torch.where(move == 0, old, move) if top == 1 else torch.clamp(old + move, -top, top)
        self.moves += int((new != old).sum())
        st["level"] = new
        p.copy_(new * self._scale(st, top))

    @torch.no_grad()
    def step(self, closure=None):
        loss = torch.enable_grad()(closure)() if closure is not None else None
        for group in self.param_groups:
            for p in (q for q in group["params"] if q.grad is not None):
                self._move(p, group)
        return loss
