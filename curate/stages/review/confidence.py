"""The judge's combined decision on a pair and its confidence level, from every signal the pair has.

Signals (all about the pair's responses in their original order, 'x' = first, 'y' = second):
`judge_preference` (the judge's verdict, imported or derived from the judge's ratings),
`judge_preference_swapped` (the same judge shown the responses in the other order),
`judge_preference_2` (a second judge's verdict), the judge's `ratings` (their difference) and the
responses' `quality_scores` (head or Deita quality margin).

The levels, most confident first (`LEVELS`):
- `agree`: two or more verdicts (both orders, or two judges) pick the same side, and no strong
  margin (ratings >= 2 apart, quality >= 1 apart) points the other way;
- `margin`: one verdict, backed by a strong margin in the same direction;
- `single`: one verdict, nothing else for or against it;
- `partial`: the verdicts are one side and tie, or a strong margin contradicts an `agree`/`single`;
- `split`: the verdicts pick opposite sides (flipped with the order, or the judges differ); the
  decision is then the first judge's verdict;
- `tie`: the combined decision is a tie (never exported by the judge);
- `none`: no verdict at all.
"""

from __future__ import annotations

from typing import Any

LEVELS = ("agree", "margin", "single", "partial", "split", "tie", "none")
# The Argilla suggestion score of each level: a fixed, documented order (1 = most confident).
LEVEL_SCORE = {"agree": 1.0, "margin": 0.8, "single": 0.6, "partial": 0.4, "split": 0.2, "tie": 0.0}
RATING_MARGIN = 2  # judge ratings this far apart (1-5 scale) are a strong signal
QUALITY_MARGIN = 1.0  # quality scores this far apart (Deita 1-6 scale) are a strong signal
VERDICT_FIELDS = ("judge_preference", "judge_preference_swapped", "judge_preference_2")


def _margin(pair: dict[str, Any]) -> str | None:
    """'x' or 'y' when the ratings or quality scores strongly favour one response, None otherwise
    (also when the two margins point in opposite directions)."""
    sides = set()
    rx, ry = pair.get("ratings") or (None, None)
    if rx is not None and ry is not None and abs(rx - ry) >= RATING_MARGIN:
        sides.add("x" if rx > ry else "y")
    qx, qy = pair.get("quality_scores") or (None, None)
    if qx is not None and qy is not None and abs(qx - qy) >= QUALITY_MARGIN:
        sides.add("x" if qx > qy else "y")
    return sides.pop() if len(sides) == 1 else None


def judge_confidence(pair: dict[str, Any]) -> tuple[str | None, str]:
    """(decision 'x' | 'y' | 'tie' | None, level in `LEVELS`) for a pair from `pairs.to_pairs`."""
    verdicts = [pair.get(f) for f in VERDICT_FIELDS if pair.get(f) is not None]
    if not verdicts:
        return None, "none"
    sides = {v for v in verdicts if v != "tie"}
    margin = _margin(pair)
    if not sides:
        return "tie", "tie"
    if len(sides) == 2:
        first = verdicts[0]
        return (first, "split") if first != "tie" else ("tie", "tie")
    side = sides.pop()
    if "tie" in verdicts:
        return side, "partial"
    if margin is not None and margin != side:
        return side, "partial"
    if len(verdicts) >= 2:
        return side, "agree"
    return side, "margin" if margin == side else "single"


def annotate(pair: dict[str, Any]) -> dict[str, Any]:
    """Set the pair's `judge_decision` and `judge_confidence` (in place; returns the pair)."""
    pair["judge_decision"], pair["judge_confidence"] = judge_confidence(pair)
    return pair
