"""The arithmetic behind the signals, as pure functions (each is checked by hand in the tests).

- `psi`: population stability index, proportions floored (registry: label_psi).
- `js_distance`: Jensen-Shannon distance, base 2, in [0, 1] (registry: source_mix_shift).
- `Ewma`: exponentially weighted mean and standard deviation of past windows (api_key_token_zscore).
- `Welford`: running mean and population standard deviation, mergeable (client_confidence_stddev).
- `kmv_*`: a k-minimum-values distinct-count sketch: exact below k distinct items, an estimate
  with about 1/sqrt(k) relative error above (api_key_skeleton_diversity, bounded state per key).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PSI_FLOOR = 1e-4


def proportions(counts: Mapping[str, float]) -> dict[str, float]:
    """Counts -> shares summing to 1 (empty when the total is not positive)."""
    total = sum(c for c in counts.values() if c > 0)
    if total <= 0:
        return {}
    return {k: c / total for k, c in counts.items() if c > 0}


def psi(new: Mapping[str, float], base: Mapping[str, float], floor: float = PSI_FLOOR) -> float:
    """sum over categories of (p_new - p_base) * ln(p_new / p_base), each proportion floored at `floor`.

    `new` and `base` are counts (or proportions); categories missing on one side count as 0 there.
    Every term is >= 0 (both factors share a sign), so the index is >= 0 and 0 for identical mixes.
    """
    p, q = proportions(new), proportions(base)
    total = 0.0
    for key in sorted(set(p) | set(q)):
        a, b = max(p.get(key, 0.0), floor), max(q.get(key, 0.0), floor)
        total += (a - b) * math.log(a / b)
    return total


def js_distance(first: Mapping[str, float], second: Mapping[str, float]) -> float:
    """sqrt(JS divergence, base 2) of two count (or share) vectors; 0 identical, 1 disjoint.

    JSD = 1/2 KL(P || M) + 1/2 KL(Q || M) with M = (P + Q) / 2. Summed per category as one
    symmetric term, so js_distance(p, q) == js_distance(q, p) exactly.
    """
    p, q = proportions(first), proportions(second)
    divergence = 0.0
    for key in sorted(set(p) | set(q)):
        a, b = p.get(key, 0.0), q.get(key, 0.0)
        m = (a + b) / 2
        term = 0.0
        if a > 0:
            term += a * math.log2(a / m)
        if b > 0:
            term += b * math.log2(b / m)
        divergence += term / 2
    return min(1.0, math.sqrt(max(0.0, divergence)))


@dataclass
class Ewma:
    """Exponentially weighted mean/stddev of a series, bias-adjusted (pandas `ewm(adjust=True)`).

    Weights of past values are (1 - alpha)^age, normalized by their sum, so a short history is an
    ordinary (weighted) mean instead of being dominated by its first value. alpha = 2 / (span + 1).
    State: w = sum of weights, x = weighted sum, xx = weighted sum of squares, n = values seen.
    """

    w: float = 0.0
    x: float = 0.0
    xx: float = 0.0
    n: int = 0

    @staticmethod
    def alpha(span: int) -> float:
        return 2.0 / (span + 1.0)

    def update(self, value: float, span: int) -> None:
        decay = 1.0 - self.alpha(span)
        self.w = self.w * decay + 1.0
        self.x = self.x * decay + value
        self.xx = self.xx * decay + value * value
        self.n += 1

    @property
    def mean(self) -> float:
        return self.x / self.w if self.w else 0.0

    @property
    def std(self) -> float:
        """Weighted population standard deviation."""
        if not self.w:
            return 0.0
        return math.sqrt(max(0.0, self.xx / self.w - self.mean**2))

    def to_json(self) -> dict[str, float]:
        return {"w": self.w, "x": self.x, "xx": self.xx, "n": self.n}

    @classmethod
    def from_json(cls, data: Mapping[str, float] | None) -> Ewma:
        if not data:
            return cls()
        return cls(float(data["w"]), float(data["x"]), float(data["xx"]), int(data["n"]))


@dataclass
class Welford:
    """Running count, mean and sum of squared deviations (population stddev = sqrt(m2 / n))."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def merge(self, other: Welford) -> Welford:
        """Chan et al.'s parallel combination."""
        if other.n == 0:
            return Welford(self.n, self.mean, self.m2)
        if self.n == 0:
            return Welford(other.n, other.mean, other.m2)
        n = self.n + other.n
        delta = other.mean - self.mean
        return Welford(n, self.mean + delta * other.n / n, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    @property
    def pstdev(self) -> float:
        return math.sqrt(max(0.0, self.m2 / self.n)) if self.n else 0.0

    def to_json(self) -> list[float]:
        return [self.n, self.mean, self.m2]

    @classmethod
    def from_json(cls, data: list[float] | None) -> Welford:
        return cls(int(data[0]), float(data[1]), float(data[2])) if data else cls()


# ---- k-minimum-values distinct counting -----------------------------------------------------------

KMV_K = 4096
_SPACE = float(2**64)


def hash64(value: str) -> int:
    """A stable 64-bit hash of a string (sha256 prefix; the same on every run and machine)."""
    return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest()[:8], "big")


def kmv_add(sketch: list[int], item: str, k: int = KMV_K) -> None:
    """Keep the k smallest distinct hashes seen (the list stays sorted)."""
    h = hash64(item)
    if len(sketch) >= k and h >= sketch[-1]:
        return
    at = bisect.bisect_left(sketch, h)
    if at < len(sketch) and sketch[at] == h:
        return
    sketch.insert(at, h)
    if len(sketch) > k:
        sketch.pop()


def kmv_merge(sketches: Iterable[list[int]], k: int = KMV_K) -> list[int]:
    return sorted(set().union(*map(set, sketches)))[:k]


def kmv_estimate(sketch: list[int], k: int = KMV_K) -> float:
    """Distinct items: exact below k, else (k - 1) / (k-th smallest hash as a fraction of 2^64)."""
    if len(sketch) < k:
        return float(len(sketch))
    return (k - 1) / (sketch[k - 1] / _SPACE)
