"""The pruning vocabulary that params validation and the checks read, with no project import: the
criteria's names (the keys of `prunelab.pruning.criteria.CRITERIA`, in its order; a test checks they
agree) and fine-tuning's named K. Pure Python, so validating params.yaml imports no criterion code."""

from __future__ import annotations

from collections.abc import Sequence

# The names of `prunelab.pruning.criteria.CRITERIA`, in its order (the order the allowed text lists them).
CRITERION_NAMES = (
    "mean_activation",
    "mean_conv_output",
    "abs_mean_conv_output",
    "apoz",
    "l1_norm",
    "bn_gamma",
    "taylor",
    "reconstruction",
    "random",
    "reverse",
)

# Named fine-tuning points, as shares of P, so one default fits every architecture.
NAMED_KS = {"quarter": 0.25, "half": 0.5, "three_quarters": 0.75}


def named_k(name: str | int, channels: int) -> int:
    """A fine-tuning K: an integer, or a NAMED_KS share of P."""
    return name if isinstance(name, int) else int(NAMED_KS[name] * channels)


def finetune_criteria(requested: Sequence[str], ranked: Sequence[str]) -> list[str]:
    """finetune.criteria as the study runs them: `headline` is the first of prune.criteria
    (`ranked`), names prune.criteria does not rank are left out, each once, in the given order."""
    resolved = [ranked[0] if c == "headline" else c for c in requested]
    return [c for c in dict.fromkeys(resolved) if c in ranked]
