"""The format a pruned model ships in: BatchNorm folded into the convs, channels-last tensors.

At inference BatchNorm is an affine map per channel, so it folds into the conv before it
(`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over the map less, the same function up
to rounding. oneDNN's convolutions and max pooling are faster on channels-last maps (the
input is converted on the way in, and every later map follows). Neither
changes what the model computes, and both help the unpruned model as much as the pruned one:
speed-ups of pruning are therefore always stated between two models in the same format
(`prunelab.deploy.efficiency.compare_models`), so that folding is never counted as pruning's gain.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import warnings
from collections import Counter

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """Whether `bn` can be folded into `conv`: a plain Conv2d then a plain BatchNorm2d of as many
    channels with running statistics (subclasses may compute something else), no hooks on either."""
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.num_features == conv.out_channels
        and bn.running_mean is not None
        and bn.running_var is not None
        and not any(m._forward_hooks or m._forward_pre_hooks for m in (conv, bn))
    )


def _traced_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Candidate (conv path, BN path) pairs in `model`'s symbolically traced graph: a module call
    whose only input is another module call whose output nothing else uses, each module called at
    that one site only (`_foldable` then keeps the Conv2d → BatchNorm2d ones). Raises whatever the
    tracer raises."""
    parameters = list(inspect.signature(model.forward).parameters.values())[1:]  # the first is the input
    concrete = {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    graph = fx.symbolic_trace(model, concrete_args=concrete or None).graph
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        source = node.args[0]
        if not isinstance(source, fx.Node) or source.op != "call_module" or list(source.users) != [node]:
            continue
        conv_path, bn_path = str(source.target), str(node.target)
        if calls[conv_path] == 1 and calls[bn_path] == 1:
            pairs.append((conv_path, bn_path))
    return pairs


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv path, BN path) of each BatchNorm2d whose preceding sibling in an nn.Sequential
    (one that runs its children in turn) is a Conv2d: the pairs found without tracing. Candidates,
    as every pair of neighbouring children: `_foldable` keeps the Conv2d → BatchNorm2d ones."""
    pairs = []
    for path, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential) or type(parent).forward is not nn.Sequential.forward:
            continue
        prefix = f"{path}." if path else ""
        names = [prefix + name for name, _ in parent.named_children()]
        pairs.extend(itertools.pairwise(names))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with every BatchNorm2d that directly follows a Conv2d folded
    into it (`fuse_conv_bn_eval`: running statistics and affine terms become the conv's weight scale
    and bias; the BN becomes an `nn.Identity`). Works for any model: the lab's nets, ResNets (the
    shortcut/downsample 1×1 convs too), MobileNetV2 (depthwise and projection convs).

    The pairs are found on a `torch.fx.symbolic_trace` of the model (parameters of `forward` after
    the input that have defaults are traced at their default, e.g. `channel_mask=None`): a BN call
    whose only input is a conv call that nothing else uses. Only those modules are replaced, in
    place in a deep copy, so the module tree (class, attributes, state_dict paths) is the input's
    outside the folded pairs. Left unfolded: a conv or BN called at more than one site or
    registered under two paths, a BN after anything but a conv, a conv whose output is also used
    elsewhere, subclasses of Conv2d/BatchNorm2d, BN without running statistics, modules with hooks.
    If tracing fails (e.g. data-dependent control flow in `forward`), it warns and falls back to
    the rule "a BatchNorm2d whose preceding sibling in an nn.Sequential is a Conv2d of as many
    output channels"; pairs outside Sequentials then stay unfolded.

    Measured against (tests/test_formats.py): the folded model equals the unfolded one in eval
    mode to float32 tolerances (1e-5 relative) with randomised BN statistics, and no BatchNorm2d
    is left, for pair_cnn, simple_cnn, torchvision resnet18 and mobilenet_v2 and a CIFAR ResNet
    with 1×1-conv shortcuts; for pair_cnn the result was checked bitwise equal (state_dict and
    module types) to the earlier fold along `PrunableNet.chain()`.
    """
    folded = copy.deepcopy(model).eval()
    try:
        pairs = _traced_pairs(folded)
    except Exception as error:  # noqa: BLE001 - tracing runs arbitrary forward code on proxies; any failure means "untraceable"
        warnings.warn(
            f"fold_batchnorm: {type(folded).__name__} cannot be symbolically traced ({type(error).__name__}: {error}); "
            "folding only conv → BatchNorm pairs that are neighbours in an nn.Sequential",
            stacklevel=2,
        )
        pairs = _sequential_pairs(folded)
    paths = Counter(id(module) for _, module in folded.named_modules(remove_duplicate=False))
    for conv_path, bn_path in pairs:
        conv, bn = folded.get_submodule(conv_path), folded.get_submodule(bn_path)
        if _foldable(conv, bn) and paths[id(conv)] == 1 and paths[id(bn)] == 1:
            folded.set_submodule(conv_path, fuse_conv_bn_eval(conv, bn))
            folded.set_submodule(bn_path, nn.Identity())
    return folded


class Deployed(nn.Module):
    """The shipped format: a BatchNorm-folded net that runs on channels-last maps. The input is
    converted on the way in, so callers pass either layout. The weights stay in the ordinary
    layout: channels-last weights run a little faster still, but `torch.export.load` then warns
    about them in the user's process."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


def deployed(model: nn.Module) -> Deployed:
    """`model` in the shipped format (BatchNorm folded, channels-last maps), in eval mode."""
    return Deployed(fold_batchnorm(model)).eval()
