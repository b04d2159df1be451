"""Search spaces: which encoders a search may propose, and the latency of one from the cost model.

The ``bert`` space: layers, hidden size, heads (a divisor of the features attention runs on),
feed-forward width and a MobileBERT-style bottleneck (a quarter of the hidden size) on or off, at
a fixed sequence length. A candidate's latency is the cost model's (polyfuse.estimate): no build.
Encoder layers are identical and fuse into the same kernels, so the latency of L layers is that
of one layer plus (L - 1) times the difference between two layers and one: two estimates of small
graphs price any depth (the test checks it against a direct estimate).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from .builder import EncoderConfig, build_encoder


@dataclass(frozen=True)
class Space:
    name: str
    layers: tuple
    hidden: tuple
    heads: tuple
    intermediate: tuple
    bottleneck: tuple = (False, True)
    seq: int = 128

    def check(self) -> "Space":
        for f in ("layers", "hidden", "heads", "intermediate", "bottleneck"):
            values = getattr(self, f)
            if not values:
                raise InputError(f"search space {self.name!r}: no choices for {f}")
            if f != "bottleneck" and any(not isinstance(v, int) or v < 1 for v in values):
                raise InputError(f"search space {self.name!r}: {f} choices must be positive integers, got {values}")
        if self.seq < 1:
            raise InputError(f"search space {self.name!r}: seq must be >= 1")
        if not any(self.heads_for(h, b) for h in self.hidden for b in self.bottleneck):
            raise InputError(f"search space {self.name!r}: no head count divides any hidden size "
                             f"(hidden {self.hidden}, heads {self.heads})")
        return self

    def inner(self, hidden: int, bottleneck: bool) -> int:
        return hidden // 4 if bottleneck else hidden

    def heads_for(self, hidden: int, bottleneck: bool) -> tuple:
        d = self.inner(hidden, bottleneck)
        return tuple(h for h in self.heads if d >= h and d % h == 0)

    def config(self, layers, hidden, heads, intermediate, bottleneck) -> EncoderConfig:
        return EncoderConfig(layers, hidden, heads, intermediate, self.seq,
                             self.inner(hidden, bottleneck) if bottleneck else 0).check()

    def smallest(self) -> EncoderConfig:
        """The candidate every other one is at least as large as: the fastest, for the budget check."""
        best = None
        for b in self.bottleneck:
            for h in self.hidden:
                heads = self.heads_for(h, b)
                if heads:
                    c = self.config(min(self.layers), h, max(heads), min(self.intermediate), b)
                    best = c if best is None else min(best, c, key=lambda x: (x.hidden, x.bottleneck or x.hidden))
        return best


SPACES = {
    "bert": Space("bert", layers=(2, 4, 6, 8, 10, 12), hidden=(128, 256, 384, 512, 768), heads=(2, 4, 6, 8, 12),
                  intermediate=(512, 1024, 1536, 2048, 3072)),
}


def get_space(name: str, seq: int | None = None) -> Space:
    if name not in SPACES:
        raise InputError(f"unknown search space {name!r} (available: {', '.join(SPACES)})")
    s = SPACES[name]
    if seq is not None:
        s = Space(s.name, s.layers, s.hidden, s.heads, s.intermediate, s.bottleneck, seq)
    return s.check()


@dataclass
class LatencyModel:
    """Predicted ms of encoders for one target and device profile, two small estimates per shape."""
    target: str
    profile: object
    _per_shape: dict = field(default_factory=dict)

    def __call__(self, c: EncoderConfig) -> float:
        from ..cost import estimate
        from ..pipeline import quiet

        key = (c.hidden, c.heads, c.intermediate, c.seq, c.bottleneck)
        if key not in self._per_shape:
            with quiet():  # the compiler's stage messages, twice per shape: not here
                one, two = (estimate(build_encoder(EncoderConfig(n, *key[:4], key[4]), seed=0), target=self.target,
                                     profile=self.profile).total_ms for n in (1, 2))
            self._per_shape[key] = (one, two - one)
        base, per_layer = self._per_shape[key]
        return base + (c.layers - 1) * per_layer
