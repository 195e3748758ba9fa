"""Stage collect_activations (one instance per seed): one eval-mode pass over the ranking split.

Writes data/seeds/<seed>/activations.npz (per-channel means, APoZ, Taylor terms and the
P×M×N mean feature map of the pruned block).
"""

from __future__ import annotations

from prunelab.data.prepared import load_info, load_split
from prunelab.models.groups import example_input, find_groups, group_named
from prunelab.models.nets import load_model
from prunelab.params import load_params, replicate_seed
from prunelab.paths import model_path, prepared_dir, stats_path
from prunelab.pruning.activations import save_stats
from prunelab.pruning.collect import collect_stats
from prunelab.pruning.views import GroupView
from prunelab.runtime import log, resolve_device, seed_everything, stage_main


def main() -> None:
    params = load_params()
    seed = replicate_seed(params)
    seed_everything(seed)
    split = params.activations.split
    folder = prepared_dir(seed)
    info = load_info(folder)
    model = load_model(model_path(seed), params.model.arch, info.input)
    images, labels = load_split(split, folder, info)
    device = resolve_device(params.train.device)
    groups = find_groups(model, example_input(info.input))
    params.check_groups(groups)
    group = group_named(groups, params.prune.layer)
    view = GroupView.of(model, group)
    stats = collect_stats(view, images, labels, params.activations.batch_size, device, label=f"collect seed {seed}")
    save_stats(stats_path(seed), stats, split)
    log(f"seed {seed}: statistics of {group.name}'s {stats.channels} channels over {stats.n_samples} {split} samples")


if __name__ == "__main__":
    stage_main(main)
