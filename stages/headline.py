"""Stage headline: the study's and the shipped model's key numbers in one small file.

Reads metrics/metrics.json (aggregate) and metrics/efficiency.json (export); writes
metrics/headline.json, the file `dvc exp show` and `dvc metrics diff` compare by default. No torch.
"""

from __future__ import annotations

from prunelab.checks.efficiency import check_efficiency
from prunelab.checks.implied import implied
from prunelab.checks.study_metrics import check_study_metrics
from prunelab.params import load_params
from prunelab.paths import EFFICIENCY, HEADLINE, STUDY_METRICS
from prunelab.runtime import log, read_json, stage_main, write_json
from prunelab.study.headline import headline_metrics


def main() -> None:
    # No number here comes from a param, but the inputs are checked against params.yaml (and
    # a bad params.yaml is refused by every stage).
    expected = implied(load_params())
    metrics = read_json(STUDY_METRICS, "study metrics", "aggregate")
    check_study_metrics(STUDY_METRICS, metrics, expected)
    efficiency = read_json(EFFICIENCY, "efficiency measurements", "export")
    check_efficiency(EFFICIENCY, efficiency, expected, metrics=metrics)
    write_json(HEADLINE, headline_metrics(metrics, efficiency))
    log(f"wrote {HEADLINE}")


if __name__ == "__main__":
    stage_main(main)
