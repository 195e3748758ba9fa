"""The one place where params.yaml is read and validated, into typed, frozen sections.

Every stage calls `load_params()` before doing any work and reads `params.prune.criteria`,
`params.seeds`, ... A mistake in params.yaml is one `UserError` line naming the dotted key,
the value and what is allowed (`prunelab.messages`: pydantic's first error → that one line).

* `schema`: one pydantic model per params.yaml section, and the cross-key relations;
* `loader`: the YAML (numbers as DVC reads them, duplicate keys) → `validate`;
* `cli`: `--seed N`, the replicate a per-seed stage runs.

No torch at import (tested).
"""

from __future__ import annotations

from prunelab.params.cli import replicate_seed
from prunelab.params.loader import PARAMS_FILE, load_params, validate
from prunelab.params.schema import Params

__all__ = ["PARAMS_FILE", "Params", "load_params", "replicate_seed", "validate"]
