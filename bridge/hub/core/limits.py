"""Per-connection flood control: a token bucket with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """Allows ``rate`` frames a second on average, in bursts of up to ``burst``.

    ``refused_in_a_row`` counts refusals since the last accepted frame: a
    client that keeps sending into an empty bucket is flooding, not bursting.
    """

    rate: float
    burst: int
    tokens: float
    updated: float
    refused_in_a_row: int = 0

    @classmethod
    def full(cls, rate: float, burst: int, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=float(burst), updated=now)

    def take(self, now: float) -> bool:
        """Spend one token if there is one; return whether the frame may pass."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False
