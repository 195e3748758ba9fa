"""Stage sweep_prune: prune the K lowest-ranked channels for every K, for every criterion.

Writes metrics/sweep.csv (one row per K) and metrics/metrics.json (scalars).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prunelab.comparison import Curve, curve_from_confusions, long_table, resolve_ks, summary_metrics, sweep_table
from prunelab.criteria import RankingContext, removal_orders
from prunelab.metrics import majority_floor
from prunelab.models import load_model
from prunelab.params import load_params
from prunelab.prepared import load_info, load_split
from prunelab.pruning import block_outputs, sweep_confusions
from prunelab.runtime import atomic_path, log, resolve_device, seed_everything, stage_main, write_json
from prunelab.stats import load_stats

SWEEP_PATH = Path("metrics/sweep.csv")
SWEEP_LONG_PATH = Path("metrics/sweep_long.csv")
METRICS_PATH = Path("metrics/metrics.json")


def main() -> None:
    params = load_params()
    prune = params["prune"]
    seed_everything(params.seed)
    info = load_info()
    model = load_model("data/model.pt", params["model"]["arch"], info.input)
    stats, split = load_stats(Path("data/activations.npz"), model.channels)
    device = resolve_device(params["train"]["device"])
    images, labels = load_split("test", info=info)
    outputs = block_outputs(model, images, params["activations"]["batch_size"], device)
    model = model.to(device)
    ks = resolve_ks(prune["ks"], prune["k_step"], model.channels)
    headline = prune["criteria"][0]
    ctx = RankingContext(stats, model, headline, params.seed, prune["random_orders"])
    n_classes = info.input.n_classes

    def run(criteria: list[str], mode: str) -> dict[str, Curve]:
        """Sweep every criterion's orders in one call, so block contributions are computed once."""
        orders = {name: removal_orders(name, ctx) for name in criteria}
        stacked = np.concatenate(list(orders.values()))
        confusions = sweep_confusions(model, outputs, labels, stacked, ks, n_classes, mode)
        bounds = np.cumsum([0, *(len(o) for o in orders.values())])
        return {
            name: curve_from_confusions(confusions[a:b])
            for name, a, b in zip(criteria, bounds[:-1], bounds[1:], strict=True)
        }

    curves = run(prune["criteria"], prune["mode"])
    if prune["compare_zero_weights"] and prune["mode"] == "remove":
        # The lab's own method on the headline ranking, to show what weight zeroing does.
        curves[f"{headline}_zero_weights"] = run([headline], "zero_weights")[headline]
    table = sweep_table(ks, curves)
    metrics = summary_metrics(ks, curves, model.channels, majority_floor(labels), n_classes, len(labels))
    metrics["ranking_split_is_test"] = int(split == "test")
    with atomic_path(SWEEP_PATH) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(SWEEP_LONG_PATH) as tmp:
        long_table(ks, curves).to_csv(tmp, index=False, float_format="%.4f")
    write_json(METRICS_PATH, metrics)
    first = curves[headline]
    log(
        f"{headline}: baseline acc {first.acc[0]:.2f}% (bacc {first.bacc[0]:.2f}%), "
        f"K={ks[-1]}: acc {first.acc[-1]:.2f}% (bacc {first.bacc[-1]:.2f}%); ranked on {split}"
    )


if __name__ == "__main__":
    stage_main(main)
