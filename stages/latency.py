"""Stage latency: the latency table, measured on this machine (one instance; architecture, not weights).

Builds model.arch afresh (the latency of a forward pass does not depend on the weights) for the first
seed's prepared data, and times, in the deployed format at batch 256 on that split's test images, every
channel group pruned alone to counts it may keep under budget.round_to (at most latency.counts per
group) against the unpruned model, in latency.rounds interleaved rounds
(`prunelab.deploy.latency.latency_table`). Writes
metrics/cost/latency/table.csv: in git like efficiency.json, as it is machine-dependent; with budget.target:
latency the budget stage allocates against it, and the export says how well it predicts each
budget model.
"""

from __future__ import annotations

import torch

from prunelab.deploy.latency import latency_table
from prunelab.models.replicate import open_replicate
from prunelab.params import load_params
from prunelab.paths import LATENCY_TABLE
from prunelab.runtime import log, stage_main, write_table


def main() -> None:
    params = load_params()
    replicate = open_replicate(params, params.seeds[0], trained=False)
    groups = replicate.groups
    images, _ = replicate.split("test")
    measure = params.latency
    table = latency_table(
        replicate.model, groups, replicate.example, images, params.budget.round_to, measure.rounds, measure.counts
    )
    write_table(LATENCY_TABLE, table, "%.6f")
    unpruned = float(table.loc[table["kept"] == table["channels"], "latency_ms"].iloc[0])
    log(
        f"latency table: {len(table)} rows ({len(groups)} groups, at most {measure.counts} counts of budget.round_to="
        f"{params.budget.round_to} each), {measure.rounds} interleaved rounds at batch 256 on "
        f"{torch.get_num_threads()} threads; the unpruned model {unpruned:.2f} ms"
    )


if __name__ == "__main__":
    stage_main(main)
