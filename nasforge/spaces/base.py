"""What every search space is: an ordered list of decisions, and architectures as their tokens.

An architecture is the sequence of choice indices, one per decision, exactly what a controller
emits. Spaces validate, sample, mutate and hash token sequences; trainable spaces also build a
``torch.nn.Module``. A space never trains and never reads a benchmark.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import registry
from ..registry import Registry

Tokens = Tuple[int, ...]


class InvalidArchitectureError(ValueError):
    """A token sequence that is not an architecture of the space; the message says why."""


@dataclass(frozen=True)
class Decision:
    """One choice the controller makes.

    ``layer`` groups decisions that describe one layer. ``source`` marks a skip-connection decision
    (choices ``(0, 1)``: does layer ``source`` feed layer ``layer``?); a controller may answer those
    with anchor-point attention rather than a softmax.
    """

    name: str
    choices: Tuple[Any, ...]
    layer: Optional[int] = None
    source: Optional[int] = None

    @property
    def size(self) -> int:
        return len(self.choices)


class SearchSpace(ABC):
    """Base class: subclasses define ``decisions`` and may override the hooks below."""

    name: str = "space"
    #: Optional hook ``allowed_next(prefix) -> values``: the values the decision after ``prefix``
    #: may take so that the tokens stay evaluable (a sparse table, a network the table lacks).
    #: None, the default, where every valid token sequence can be evaluated. Controllers that
    #: write tokens one decision at a time sample only from these values.
    allowed_next: Optional[Callable[[Sequence[int]], Optional[Tuple[int, ...]]]] = None
    #: The estimator that answers for this space by lookup (a tabular benchmark: ``tabular``), or
    #: None. A search of a space with one uses it whatever ``[training] estimator`` says, with only
    #: the ``[training]`` settings named in ``lookup_settings``, loads no dataset, and runs it
    #: inline when ``auto`` chooses the executor (a lookup costs less than a worker process).
    lookup_estimator: ClassVar[Optional[str]] = None
    lookup_settings: ClassVar[Tuple[str, ...]] = ()
    #: The estimator a search of this space uses when ``[training] estimator`` names none (None:
    #: ``train``): a space whose tokens are not a network (``update-rules``) names its own.
    default_estimator: ClassVar[Optional[str]] = None
    #: The number of spatial axes of the data the space's networks take (1: signals, 2: images),
    #: or None for any. A trained search refuses other data before it starts.
    dims: Optional[int] = None
    #: Optional hook ``path_encoding(tokens) -> vector``: the space's own fixed-length encoding,
    #: which predictors and BANANAS prefer to the one-hot of the canonical tokens. None: one-hot.
    path_encoding: Optional[Callable[[Sequence[int]], Any]] = None

    @property
    @abstractmethod
    def decisions(self) -> List[Decision]:
        ...

    def config(self) -> Dict[str, Any]:
        """Plain settings that recreate this space (stored with every experiment)."""
        return {}

    # ---- tokens -------------------------------------------------------------------------------
    def validate(self, tokens: Sequence[int]) -> Tokens:
        """Return ``tokens`` as a tuple of ints or raise InvalidArchitectureError naming the fault."""
        decisions = self.decisions
        values = []
        for t in tokens:
            if isinstance(t, (float, np.floating)) and float(t).is_integer():
                t = int(t)
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise InvalidArchitectureError(f"tokens must be integers, got {list(tokens)!r}")
            values.append(int(t))
        values = tuple(values)
        if len(values) != len(decisions):
            raise InvalidArchitectureError(
                f"{self.name} expects {len(decisions)} tokens, got {len(values)}"
            )
        for value, decision in zip(values, decisions):
            if not 0 <= value < decision.size:
                raise InvalidArchitectureError(
                    f"token for {decision.name!r} is {value}, must be in 0..{decision.size - 1}"
                )
        return values

    def sample(self, rng: np.random.Generator) -> Tokens:
        """Uniform sample: every decision independently."""
        return tuple(int(rng.integers(d.size)) for d in self.decisions)

    def encode(self, tokens: Sequence[int]) -> Dict[str, Any]:
        """Readable form: decision name -> chosen value."""
        tokens = self.validate(tokens)
        return {d.name: d.choices[t] for d, t in zip(self.decisions, tokens)}

    def decode(self, values: Dict[str, Any]) -> Tokens:
        """Inverse of :meth:`encode`; unknown or missing names and values are errors."""
        decisions = self.decisions
        names = {d.name for d in decisions}
        extra = sorted(set(values) - names)
        if extra:
            raise InvalidArchitectureError(f"unknown decisions for {self.name}: {extra}")
        tokens = []
        for d in decisions:
            if d.name not in values:
                raise InvalidArchitectureError(f"missing decision {d.name!r}")
            value = values[d.name]
            matches = [i for i, c in enumerate(d.choices) if c == value and type(c) is type(value)]
            if not matches:
                matches = [i for i, c in enumerate(d.choices) if c == value]
            if not matches:
                raise InvalidArchitectureError(
                    f"{d.name!r} = {value!r} is not one of {list(d.choices)}"
                )
            tokens.append(matches[0])
        return tuple(tokens)

    def canonical(self, tokens: Sequence[int]) -> Tokens:
        """Tokens with every choice that cannot change the network set to 0."""
        return self.validate(tokens)

    def arch_hash(self, tokens: Sequence[int]) -> str:
        """Identifies duplicates: equal for architectures that build the same network."""
        return self._digest(list(self.canonical(tokens)))

    def _digest(self, key: Any) -> str:
        """16 hex digits of this space (name and settings) and ``key`` (JSON): the hash's form."""
        payload = json.dumps([self.name, self.config(), key], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # ---- neighbourhood ------------------------------------------------------------------------
    def mutate(self, tokens: Sequence[int], rng: np.random.Generator) -> Tokens:
        """Change exactly one decision to a different value, chosen uniformly."""
        tokens = list(self.validate(tokens))
        candidates = [i for i, d in enumerate(self.decisions) if d.size > 1]
        index = int(rng.choice(candidates))
        offset = int(rng.integers(1, self.decisions[index].size))
        tokens[index] = (tokens[index] + offset) % self.decisions[index].size
        return tuple(tokens)

    def neighbours(self, tokens: Sequence[int]) -> List[Tokens]:
        """Every architecture one decision away."""
        tokens = self.validate(tokens)
        result = []
        for i, d in enumerate(self.decisions):
            for value in range(d.size):
                if value != tokens[i]:
                    result.append(tokens[:i] + (value,) + tokens[i + 1 :])
        return result

    def one_hot(self, tokens: Sequence[int]) -> np.ndarray:
        """Fixed-length encoding for predictors."""
        tokens = self.validate(tokens)
        parts = []
        for d, t in zip(self.decisions, tokens):
            v = np.zeros(d.size, dtype=np.float32)
            v[t] = 1.0
            parts.append(v)
        return np.concatenate(parts)

    # ---- presentation and building ------------------------------------------------------------
    def describe(self, tokens: Sequence[int]) -> List[str]:
        """A readable line per part of the architecture."""
        return [f"{k} = {v}" for k, v in self.encode(tokens).items()]

    def summary(self, tokens: Sequence[int]) -> str:
        """One short line for tables."""
        return " ".join(str(t) for t in self.validate(tokens))

    def build(self, tokens: Sequence[int], input_shape: Tuple[int, ...], num_classes: int):
        raise NotImplementedError(f"space {self.name!r} cannot build a trainable network")


SPACES: Registry[SearchSpace] = registry.SPACES  # declared in registry.py, light enough for --help


def lookup_estimator(space_name: str) -> Optional[str]:
    """The estimator a space answers with by lookup (``SearchSpace.lookup_estimator``), or None.
    Read off the registered class, before the space is built (building may need the data)."""
    factory = SPACES.get(space_name)
    if isinstance(factory, type) and issubclass(factory, SearchSpace):
        return factory.lookup_estimator
    return None  # a plugin's factory function declares nothing: its space is trained


def is_tabular(space_name: str) -> bool:
    """Benchmark spaces are looked up in a table instead of trained (and need no data)."""
    return lookup_estimator(space_name) is not None


def create_space(name: str, **settings) -> SearchSpace:
    return SPACES.create(name, **settings)


def space_of_section(section: Dict[str, Any]) -> SearchSpace:
    """The space a stored ``[space]`` section names: ``name`` plus its settings."""
    return create_space(section["name"], **{k: v for k, v in section.items() if k != "name"})
