"""Exponential backoff with full jitter, for retrying calls to a peer that may be away."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that double from `base` up to `cap`, each drawn uniformly below its ceiling."""

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        # The exponent stops growing long before a float would overflow (2**1024).
        ceiling = min(self.cap, self.base * 2.0 ** min(self.attempts, 64))
        self.attempts += 1
        return self.rng.uniform(self.base / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
