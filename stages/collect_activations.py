"""Stage collect_activations (one instance per seed): one eval-mode pass over the ranking split.

Writes data/seeds/<seed>/activations.npz (per-channel means, APoZ, Taylor terms and the
P×M×N mean feature map of the pruned block).
"""

from __future__ import annotations

from prunelab.models.groups import group_named
from prunelab.models.replicate import open_replicate
from prunelab.params import load_params, replicate_seed
from prunelab.paths import stats_path
from prunelab.pruning.activations import save_stats
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.views import GroupView
from prunelab.runtime import log, resolve_device, stage_main


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    replicate = open_replicate(params, seed)
    split = params.activations.split
    images, labels = replicate.split(split)
    device = resolve_device(params.train.device)
    group = group_named(replicate.groups, params.prune.layer)
    view = GroupView.of(replicate.model, group)
    stats = collect_stats(view, images, labels, params.activations.batch_size, device, label=f"collect seed {seed}")
    save_stats(stats_path(seed), stats, split)
    log(f"seed {seed}: statistics of {group.name}'s {stats.channels} channels over {stats.n_samples} {split} samples")


if __name__ == "__main__":
    stage_main(main)
