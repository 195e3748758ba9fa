"""The one command-line argument a stage takes: which replicate (seed) it runs."""

from __future__ import annotations

import sys

from prunelab.errors import UserError
from prunelab.params.schema import SEED_RANGE, Params


def replicate_seed(params: Params, argv: list[str] | None = None) -> int:
    """The seed a per-replicate stage runs for: `--seed N` on its command line (dvc.yaml's
    matrix passes each entry of `seeds`), or the only seed when `seeds` has one."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        if len(params.seeds) == 1:
            return params.seeds[0]
        raise UserError(f"this stage runs one replicate; allowed: --seed N with N one of seeds={list(params.seeds)}")
    if len(args) != 2 or args[0] != "--seed":
        raise UserError(f"arguments {' '.join(args)!r} are invalid; allowed: --seed N")
    low, high = SEED_RANGE
    try:
        seed = int(args[1])
    except ValueError:
        seed = None
    if seed is None or not low <= seed <= high:
        raise UserError(f"--seed {args[1]} is invalid; allowed: an integer from {low} to {high}")
    return seed
