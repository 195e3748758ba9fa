"""Stage collect_activations: one eval-mode pass over the ranking split.

Writes data/activations.npz (per-channel means, APoZ, Taylor terms and the P×M×N mean
feature map of the pruned block).
"""

from __future__ import annotations

from pathlib import Path

from prunelab.activations import collect_stats
from prunelab.models import load_model
from prunelab.params import load_params
from prunelab.prepared import load_info, load_split
from prunelab.runtime import log, resolve_device, seed_everything, stage_main
from prunelab.stats import save_stats

STATS_PATH = Path("data/activations.npz")


def main() -> None:
    params = load_params()
    seed_everything(params.seed)
    split = params["activations"]["split"]
    info = load_info()
    model = load_model("data/model.pt", params["model"]["arch"], info.input)
    images, labels = load_split(split, info=info)
    device = resolve_device(params["train"]["device"])
    stats = collect_stats(model, images, labels, params["activations"]["batch_size"], device)
    save_stats(STATS_PATH, stats, split)
    log(f"collected statistics of {stats.channels} channels over {stats.n_samples} {split} samples")


if __name__ == "__main__":
    stage_main(main)
