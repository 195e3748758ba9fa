"""Channel groups: the one model interface. A group is a set of coupled channels that must go together.

Torch-Pruning's `DependencyGraph` traces one forward pass and couples channels by two rules: a
producer's pruned outputs prune every consumer's inputs, and a layer that keeps channels one to
one (BatchNorm, element-wise ops, a depthwise conv) passes pruned inputs on to its outputs. Its
groups are what this module reads: for a plain CNN, one group per conv (its BatchNorm, and the
next conv's or Linear's inputs); for a ResNet, one group per block's inner conv and one per
stage's residual stream (the stem or shortcut conv and every block's last conv, all feeding one
add); for MobileNetV2, the expanded channels carry the depthwise conv along.

Ranking, masking, removal, the cost, the fast sweep and scoring are written once against
`ChannelGroup`; nothing in the study knows an architecture. A group is named by its first
producing conv in forward order (`layer1.0.conv1`), or by the name the model gives it
(`group_names`: the lab's CNNs call theirs `conv1`, `conv2`, … as the lab does).

Removal is Torch-Pruning's own surgery (`Group.prune()`), so index mapping across concatenations
and depthwise convs is the peer's; a pruned model is saved as its architecture plus the channels
removed per group and rebuilt by replaying them (Torch-Pruning's `tp.state_dict` pickles modules,
which `weights_only=True` refuses).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from prunelab.errors import UserError
from prunelab.models.graph import call_order
from prunelab.models.records import ChannelGroup

__all__ = ["ChannelGroup", "Removal", "find_groups", "group_named", "remove_channels"]


def example_input(spec) -> torch.Tensor:  # spec: prunelab.data.spec.InputSpec
    """The one-sample input every trace runs on: zeros of the prepared data's shape (C×S×S)."""
    return torch.zeros(1, spec.channels, spec.size, spec.size)


def dependency_graph(model: nn.Module, example: torch.Tensor):  # -> tp.DependencyGraph
    """Torch-Pruning's graph of `model`, traced in eval mode (a trace in train mode would move
    BatchNorm's running statistics)."""
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    first = next(model.parameters())
    example = example.to(first.device, first.dtype)
    try:
        with torch.enable_grad():  # the graph is traced through autograd, so callers under no_grad work too
            return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    finally:
        model.train(was_training)


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def output_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The module that computes the logits: the last conv or Linear a forward pass calls. Its
    outputs are the classes, so no group may include them."""
    order = call_order(model, example)
    if not order:
        raise UserError("model.arch: the model has no Conv2d or Linear layer")
    return order[-1]


def find_groups(model: nn.Module, example: torch.Tensor) -> tuple[ChannelGroup, ...]:
    """The prunable channel groups of `model`, in forward order of their first producer.

    A group coupled to the output layer's outputs is not prunable (it would remove classes) and
    is left out, as is any group without a producing conv (e.g. a Linear-only MLP head)."""
    order = call_order(model, example)
    if not order:
        raise UserError("model.arch: the model has no Conv2d or Linear layer")
    position = {name: i for i, name in enumerate(order)}
    names = {module: name for name, module in model.named_modules()}
    registered = {name: i for i, name in enumerate(names.values())}
    last = model.get_submodule(order[-1])  # the output layer (`output_layer`), from the same forward pass
    graph = dependency_graph(model, example)
    aliases: Mapping[str, str] = getattr(model, "group_names", {}) or {}
    found = []
    for group in graph.get_all_groups(ignored_layers=[last], root_module_types=[nn.Conv2d]):
        producers, norms, consumers, depthwise = [], [], [], []
        for item in group.items:
            module = item.dep.target.module
            if module not in names:
                continue  # a traced op (add, flatten), not a module
            name = names[module]
            out = graph.is_out_channel_pruning_fn(item.dep.handler)
            if _is_depthwise(module):
                depthwise.append(name)
            elif isinstance(module, nn.Conv2d) and out:
                producers.append(name)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                norms.append(name)
            elif isinstance(module, nn.Conv2d | nn.Linear) and not out:
                consumers.append(name)
        if not producers:
            continue
        by_call = sorted(dict.fromkeys(producers), key=lambda n: position.get(n, len(position)))
        channels = model.get_submodule(by_call[0]).out_channels
        found.append(
            ChannelGroup(
                name=aliases.get(by_call[0], by_call[0]),
                channels=channels,
                producers=tuple(by_call),
                norms=tuple(sorted(dict.fromkeys(norms), key=registered.__getitem__)),
                consumers=tuple(sorted(dict.fromkeys(consumers), key=lambda n: position.get(n, len(position)))),
                depthwise=tuple(dict.fromkeys(depthwise)),
            )
        )
    found.sort(key=lambda g: position.get(g.producer, len(position)))
    if not found:
        raise UserError("model.arch: the model has no prunable channel group (no conv whose outputs can be removed)")
    return tuple(found)


def group_named(groups: Sequence[ChannelGroup], name: str | None, key: str = "prune.layer") -> ChannelGroup:
    """A group by name; `last` (or None) is the group whose first producer runs last, the lab's
    layer. An unknown name is refused in one line naming `key` and the groups there are."""
    if name is None or name == "last":
        return groups[-1]
    for group in groups:
        if group.name == name:
            return group
    listed = ", ".join(g.name for g in groups[:10])
    more = f" and {len(groups) - 10} more (prunelab.find_groups lists them all)" if len(groups) > 10 else ""
    raise UserError(f"{key}={name!r} names no channel group of this model; it has {listed}{more}")


Removal = Mapping[str, Sequence[int]]  # channels removed, by group name


def _checked(groups: Sequence[ChannelGroup], removed: Removal) -> dict[str, list[int]]:
    by_name = {g.name: g for g in groups}
    out = {}
    for name, chosen in removed.items():
        if name not in by_name:
            raise ValueError(f"no channel group {name!r}; this model has {', '.join(by_name)}")
        channels = sorted(int(c) for c in chosen)
        if len(set(channels)) != len(channels) or any(c < 0 or c >= by_name[name].channels for c in channels):
            raise ValueError(f"{name}: channels to remove must be distinct and in 0..{by_name[name].channels - 1}")
        if len(channels) >= by_name[name].channels:
            raise ValueError(f"{name}: a group keeps at least one of its {by_name[name].channels} channels")
        out[name] = channels
    return out


def remove_channels(
    model: nn.Module, groups: Sequence[ChannelGroup], removed: Removal, example: torch.Tensor
) -> nn.Module:
    """A copy of `model` without the removed channels of each named group (any number at once):
    every producer's filters and biases, every BatchNorm's entries, every depthwise conv's
    channels and every consumer's input slices (a Linear's columns through a flatten), by
    Torch-Pruning's `Group.prune()`, in eval mode on the model's device. Indices are the
    unpruned group's channels."""
    import torch_pruning as tp

    chosen = _checked(groups, removed)
    device = next(model.parameters()).device
    smaller = copy.deepcopy(model).cpu().eval()  # the surgery runs on the CPU; the result goes back
    if any(chosen.values()):
        graph = dependency_graph(smaller, example.cpu())
        for group in groups:
            if chosen.get(group.name):
                root = smaller.get_submodule(group.producer)
                graph.get_pruning_group(root, tp.prune_conv_out_channels, idxs=chosen[group.name]).prune()
    return smaller.to(device)


def kept_channels(channels: int, removed: Sequence[int]) -> torch.Tensor:
    keep = torch.ones(channels, dtype=torch.bool)
    keep[torch.as_tensor(list(removed), dtype=torch.long)] = False
    return keep.nonzero().flatten()


def channel_mask(channels: int, removed: Sequence[int]) -> torch.Tensor:
    mask = torch.ones(channels)
    mask[torch.as_tensor(list(removed), dtype=torch.long)] = 0.0
    return mask
