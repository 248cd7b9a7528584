"""The statistics behind every accuracy and every note: Wilson intervals and McNemar's test.

Plain Python on counts and boolean sequences (no torch, no scipy), so `robust aggregate`
can recompute them from the files a run leaves.
"""

import math

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
NOTE_LEVEL = 0.01  # a note that compares two rows fires only at p below this


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float | None, float | None]:
    """The Wilson score interval for `correct` successes out of `n` (None, None for n = 0).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0% and 100%.
    """
    if n <= 0:
        return None, None
    p = correct / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0 and n the bound is exactly the observed 0 or 1 (floats would miss it by ~1e-18).
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def interval_fields(correct: int, n: int, prefix: str = "") -> dict:
    """{prefix + "ci_low": ..., prefix + "ci_high": ...} for a result row."""
    low, high = wilson_interval(correct, n)
    return {f"{prefix}ci_low": low, f"{prefix}ci_high": high}


def mcnemar(first, second) -> tuple[float, int, int]:
    """Exact two-sided McNemar test on paired outcomes (one bool per point, same points).

    Returns (p, only_first, only_second): the points right under `first` alone and under
    `second` alone. Points on which both agree carry no information about the difference.
    """
    if len(first) != len(second):
        raise ValueError(f"paired outcomes differ in length: {len(first)} vs {len(second)}")
    only_first = sum(1 for a, b in zip(first, second) if a and not b)
    only_second = sum(1 for a, b in zip(first, second) if b and not a)
    return binomial_two_sided(min(only_first, only_second), only_first + only_second), \
        only_first, only_second


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how likely k or more successes are if the true
    rate is only p."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
             + i * math.log(p) + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def binomial_two_sided(k: int, n: int) -> float:
    """P(X <= k) doubled (capped at 1) for X ~ Binomial(n, 1/2) and k <= n / 2."""
    if n == 0:
        return 1.0
    log_half = n * math.log(0.5)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half
             for i in range(k + 1)]
    top = max(terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in terms)
    return min(1.0, 2 * tail)
