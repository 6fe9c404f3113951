"""A search space of small MLPs, as a nasforge plugin: name it in a config's ``plugins``."""

from typing import Sequence

from torch import nn

from nasforge.spaces.base import SPACES, Decision, SearchSpace

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@SPACES.register("my-mlp")
class MLPSpace(SearchSpace):
    name = "my-mlp"

    def __init__(self, max_layers: int = 3, widths: Sequence[int] = (16, 32, 64)):
        self.max_layers = int(max_layers)  # the config's [space] settings arrive here, type-checked
        self.widths = [int(w) for w in widths]

    def config(self):
        """The settings that rebuild this space (stored with the experiment, compared on --resume)."""
        return {"max_layers": self.max_layers, "widths": self.widths}

    @property
    def decisions(self):
        """What the strategy chooses, in order; an architecture is one choice index per decision."""
        return ([Decision("depth", tuple(range(1, self.max_layers + 1)))]
                + [Decision(f"L{i}.width", tuple(self.widths), layer=i) for i in range(self.max_layers)]
                + [Decision("act", tuple(ACTIVATIONS))])

    def canonical(self, tokens):
        """Twins share one hash (strategies never train an architecture twice): the widths of
        layers beyond the depth are not built, so they are zeroed."""
        t = list(self.validate(tokens))
        for i in range(t[0] + 1, self.max_layers):
            t[1 + i] = 0
        return tuple(t)

    def summary(self, tokens):
        """One line per architecture in tables (`nasforge trials`, `best`, `pareto`)."""
        v = self.encode(tokens)
        return " ".join(f"fc{v[f'L{i}.width']}" for i in range(v["depth"])) + f" {v['act']}"

    def build(self, tokens, input_shape, num_classes):
        """The network; ``input_shape`` is one example's shape, without the batch: (C, L) or (C, H, W)."""
        v = self.encode(tokens)
        layers, width = [nn.Flatten()], 1
        for size in input_shape:
            width *= int(size)
        for i in range(v["depth"]):
            layers += [nn.Linear(width, v[f"L{i}.width"]), ACTIVATIONS[v["act"]]()]
            width = v[f"L{i}.width"]
        return nn.Sequential(*layers, nn.Linear(width, num_classes))
