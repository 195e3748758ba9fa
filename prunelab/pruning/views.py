"""One channel group seen from the forward pass: where its channels are made, read and consumed.

`GroupView.of(model, group)` cuts the traced forward pass (`prunelab.models.graph`) around a
group, once, into the pieces every later step runs:

* the producer (its first conv), what runs before it, and the per-channel ops after it (BN,
  activation, pooling, depthwise convs) up to the *read point*: the channel map the group's
  consumers read, and the map a mask multiplies;
* the *activation*: the map before trailing pooling (a max pool before a ReLU commutes with it),
  where mean activations, APoZ, Taylor terms and the mean feature maps are taken;
* for the fast sweep, the one consumer and everything after it, with the values it also reads
  computed once (`extras`, e.g. a ResNet block's skip tensor).

The fast sweep ("every K for about one forward pass") holds when the group has one producer and
exactly one consumer that mixes channels linearly (a conv with groups=1, or a Linear after a
flatten), only per-channel ops lie between them, and nothing after the consumer reads the
group's channels another way. `fast_reason` says why a group does not qualify (None when it
does); such a group (a residual stream, several consumers through an add) takes the per-K path,
which masks the group's channels at each producer's read point and runs the whole model, many
(order, K) pairs per batch. Masking equals removal there because every op between a mask and
the next add or consumer maps zero to zero; tests check it against physical removal per K.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx, nn

from prunelab.models.graph import (
    ancestors,
    as_callables,
    chain_from,
    extras_after,
    is_flattening,
    is_pool,
    is_reshape,
    module_of,
    output_node,
    placeholders,
    subgraph,
    trace,
)
from prunelab.models.groups import ChannelGroup

MONOTONE = (nn.ReLU, nn.ReLU6)  # activations a max pool commutes with


def _node_of(gm: fx.GraphModule, path: str) -> fx.Node:
    calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == path]
    if len(calls) != 1:
        raise ValueError(f"{path} is called {len(calls)} times in one forward pass; a producer must be called once")
    return calls[0]


def _split_pools(gm: fx.GraphModule, chain: list[fx.Node]) -> tuple[list[fx.Node], list[fx.Node]]:
    """The chain as (activation ops, trailing pools): pools at the end, and max pools that only
    monotone activations follow (max pooling commutes with them), move to the pooling part."""
    act, pools = list(chain), []
    i = len(act) - 1
    while i >= 0:
        node = act[i]
        if is_pool(gm, node):
            later = act[i + 1 :]
            movable = not later or (
                isinstance(module_of(gm, node), nn.MaxPool2d)
                and all(isinstance(module_of(gm, n), MONOTONE) for n in later)
            )
            if not movable:
                break
            pools.insert(0, act.pop(i))
        elif not isinstance(module_of(gm, node), MONOTONE):
            break
        i -= 1
    return act, pools


@dataclass
class GroupView:
    """A group cut out of its model's forward pass (see the module docstring). The pieces share the
    model's parameters; build a new view after the model changes."""

    group: ChannelGroup
    gm: fx.GraphModule
    producer: nn.Module
    before_producer: fx.GraphModule  # x → (producer input, *extras)
    activation: list[nn.Module]  # producer output → the activation map
    pooling: list[nn.Module]  # activation map → read point
    after_read: fx.GraphModule  # (read-point map, *extras) → logits
    fast_reason: str | None
    consumer: nn.Module | None = None  # fast path only
    before_read: fx.GraphModule | None = None  # x → (read-point map, *consumer extras)
    after_consumer: fx.GraphModule | None = None  # (consumer output, *consumer extras) → logits
    mask_points: tuple[str, ...] = field(default=())  # node names a mask multiplies, one per producer

    @property
    def fast(self) -> bool:
        return self.fast_reason is None

    @property
    def path(self) -> str:
        """The sweep path this group takes: `fast` or `per_k`."""
        return "fast" if self.fast else "per_k"

    @staticmethod
    def of(model: nn.Module, group: ChannelGroup, gm: fx.GraphModule | None = None) -> GroupView:
        gm = gm if gm is not None else trace(model)
        (x,) = placeholders(gm)[:1]
        logits = output_node(gm).args[0]
        p_node = _node_of(gm, group.producer)
        chain = chain_from(gm, p_node)
        read = chain[-1] if chain else p_node
        act_nodes, pool_nodes = _split_pools(gm, chain)
        _, extras_read = extras_after(gm, read)
        mask_points = []
        for path in group.producers:
            node = _node_of(gm, path)
            tail = chain_from(gm, node)
            mask_points.append((tail[-1] if tail else node).name)
        view = GroupView(
            group=group,
            gm=gm,
            producer=gm.get_submodule(group.producer),
            before_producer=subgraph(gm, [x], [p_node.args[0], *extras_read]),
            activation=as_callables(gm, act_nodes),
            pooling=as_callables(gm, pool_nodes),
            after_read=subgraph(gm, [read, *extras_read], [logits]),
            fast_reason=None,
            mask_points=tuple(mask_points),
        )
        reason = _fast_reason(gm, group, chain, read)
        if reason is not None:
            view.fast_reason = reason
            return view
        consumer_node = _consumer_after(gm, read)
        _, extras = extras_after(gm, consumer_node)
        if any(e is p_node or p_node in ancestors(e) for e in extras):
            view.fast_reason = "what follows its consumer also reads its channels another way"
            return view
        view.consumer = gm.get_submodule(str(consumer_node.target))
        view.before_read = subgraph(gm, [x], [read, *extras])
        view.after_consumer = subgraph(gm, [consumer_node, *extras], [logits])
        return view


def _consumer_after(gm: fx.GraphModule, read: fx.Node) -> fx.Node:
    node = read
    while len(node.users) == 1:
        (node,) = node.users
        if not is_flattening(gm, node):
            return node
    return node


def _fast_reason(gm: fx.GraphModule, group: ChannelGroup, chain: list[fx.Node], read: fx.Node) -> str | None:
    """Why the group cannot take the fast sweep, or None when it can."""
    if len(group.producers) != 1:
        return f"{len(group.producers)} convs produce its channels (they meet in an add)"
    if len(group.consumers) != 1:
        return f"{len(group.consumers)} layers consume its channels"
    in_chain = {str(n.target) for n in chain if n.op == "call_module"}
    if not set(group.depthwise) <= in_chain:
        return "a depthwise conv of the group is not between its producer and its consumer"
    node = _consumer_after(gm, read)
    module = module_of(gm, node)
    if module is None or str(node.target) != group.consumers[0]:
        return "its channels reach the consumer through more than per-channel ops"
    if isinstance(module, nn.Conv2d) and module.groups != 1:
        return "its consumer is a grouped conv"
    if isinstance(module, nn.Linear) and not _flattened_between(gm, read, node):
        return "a Linear consumer reads its channels without a flatten"
    return None


def _flattened_between(gm: fx.GraphModule, read: fx.Node, consumer: fx.Node) -> bool:
    node, flattened = read, False
    while node is not consumer and len(node.users) == 1:
        (node,) = node.users
        flattened = flattened or is_reshape(gm, node)
    return flattened


def apply(modules: list[nn.Module], h: torch.Tensor) -> torch.Tensor:
    for module in modules:
        h = module(h)
    return h


def _masked(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """t × mask over channels (dim 1); a mask is P (every sample) or B×P (one row per sample)."""
    rows = mask.shape[0] if mask.dim() == 2 else 1
    return t * mask.to(t.dtype).reshape(rows, t.shape[1], *([1] * (t.dim() - 2)))


def masked_net(gm: fx.GraphModule, points: list[tuple[str, ...]]) -> fx.GraphModule:
    """The traced model with one extra input per entry of `points`: a channel mask (P, or B×P)
    multiplying the outputs of those nodes (a group's read points, one per producer), so
    `net(x, mask, …)` is the model with the masked channels taken out. Shares `gm`'s parameters."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    inputs = placeholders(gm)
    # The masks come right after the input: later inputs were traced at their defaults (a default
    # must not precede an input without one).
    env[inputs[0]] = graph.node_copy(inputs[0], lambda n: env[n])
    mask_inputs = [graph.placeholder(f"mask_{i}") for i in range(len(points))]
    for node in inputs[1:]:
        env[node] = graph.node_copy(node, lambda n: env[n])
    where = {name: mask_inputs[i] for i, names in enumerate(points) for name in names}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node.name in where:
            env[node] = graph.call_function(_masked, (env[node], where[node.name]))
    return fx.GraphModule(gm, graph)
