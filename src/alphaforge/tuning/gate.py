"""The promotion gate: does a new validation score replace the stored best config?

Pure functions, no I/O; :func:`alphaforge.tuning.tune` applies them to ``hyperparams/best``.
``min_improvement`` is a percent here as in every tune option (``1.0`` = 1%);
:func:`improvement` returns a fraction (``0.02`` = 2%).
"""

from __future__ import annotations

import math
from typing import Literal

from alphaforge.errors import ConfigError

Direction = Literal["minimize", "maximize"]


def promote(
    old_score: float | None,
    new_score: float | None,
    direction: Direction,
    min_improvement: float = 1.0,
    force: bool = False,
) -> tuple[bool, str]:
    """Decide whether a new validation score replaces the stored best.

    Args:
        old_score: Stored best score; ``None`` or NaN when there is none.
        new_score: The study's best score; ``None`` or non-finite means nothing to promote.
        direction: ``"minimize"`` or ``"maximize"``.
        min_improvement: Relative improvement needed, in percent (1.0 = 1%); the new score must
            beat the old by strictly more than this share of ``|old|``.
        force: Promote any finite new score.

    Returns:
        ``(promoted, reason)``; the reason is one human-readable line.

    Raises:
        ConfigError: Bad ``direction`` or a negative ``min_improvement``.
    """
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if not min_improvement >= 0:
        raise ConfigError(f"min_improvement must be >= 0, got {min_improvement!r}")
    if new_score is None or not math.isfinite(new_score):
        return False, "no finite new score"
    if force:
        return True, "forced"
    if old_score is None or not math.isfinite(old_score):
        return True, "no previous best"
    imp = improvement(old_score, new_score, direction)
    need = min_improvement / 100  # percent -> fraction, the unit of `imp`
    if imp > need + 1e-12:  # float slack: 1.0 -> 0.99 is exactly 1%, not more
        return True, f"improved {imp:+.2%} > {need:.2%}"
    return False, f"improvement {imp:+.2%} not above {need:.2%}"


def improvement(old_score: float, new_score: float, direction: Direction) -> float:
    """Relative improvement as a fraction of ``|old_score|`` (``0.02`` = 2%), positive when
    ``new_score`` is better (``inf`` from an old 0)."""
    gain = (old_score - new_score) if direction == "minimize" else (new_score - old_score)
    if old_score == 0:
        return 0.0 if gain == 0 else math.copysign(math.inf, gain)
    return gain / abs(old_score)
