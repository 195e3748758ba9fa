"""A model's forward pass as a graph (torch.fx), cut into the pieces the study evaluates.

The fast sweep, the statistics and masking need more than a module list: what runs before a
tensor, what runs after it, and which *other* tensors the part after it reads (a ResNet
block's skip tensor). `torch.fx.symbolic_trace` gives the forward pass as a graph of nodes;
`subgraph` copies the nodes that compute some outputs from some inputs into a module of its
own, so `x → (map, skip)` and `(consumer output, skip) → logits` are two small modules that
together are the forward pass (tested on every architecture). Only the pieces that depend on a
pruning run per K; everything else is computed once.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import fx, nn

from prunelab.errors import UserError

# Per-channel modules: channel c of the output depends on channel c of the input only.
PER_CHANNEL_MODULES = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.LeakyReLU, nn.ELU,
    nn.Sigmoid, nn.Tanh, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout,
    nn.Dropout2d, nn.Identity,
)  # fmt: skip
PER_CHANNEL_FUNCTIONS = {
    torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6, torch.nn.functional.silu,
    torch.nn.functional.hardswish, torch.nn.functional.gelu, torch.nn.functional.max_pool2d,
    torch.nn.functional.avg_pool2d, torch.nn.functional.adaptive_avg_pool2d, torch.nn.functional.dropout,
    torch.sigmoid, torch.tanh,
}  # fmt: skip
PER_CHANNEL_METHODS = {"relu", "relu_", "sigmoid", "tanh"}
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
POOL_FUNCTIONS = {
    torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool2d, torch.nn.functional.adaptive_avg_pool2d,
}  # fmt: skip
# Between a channel map and a Linear: reshapes that keep channel c's values together, and no-ops in eval.
FLATTENING_FUNCTIONS = {torch.flatten}
FLATTENING_METHODS = {"flatten", "view", "reshape"}


def trace(model: nn.Module) -> fx.GraphModule:
    """The model's forward pass as an fx graph (parameters shared with `model`). Arguments after
    the input that have defaults are traced at their defaults. A model fx cannot trace (Python
    control flow on tensor values) is refused in one line naming `model.arch`."""
    signature = inspect.signature(model.forward)
    names = list(signature.parameters)
    later = list(signature.parameters.items())[1:]
    concrete = {name: p.default for name, p in later if p.default is not inspect.Parameter.empty}
    try:
        return fx.symbolic_trace(model, concrete_args=concrete or None)
    except Exception as err:  # noqa: BLE001 - fx raises many kinds; any of them means "cannot trace"
        first = names[0] if names else "input"
        raise UserError(
            f"model.arch: {type(model).__name__}.forward({first}) cannot be traced by torch.fx "
            f"({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}); "
            "the study needs a forward pass without Python control flow on tensor values"
        ) from None


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def is_per_channel(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether channel c of `node`'s output depends on channel c of its (one tensor) input only:
    BN, element-wise activations, pooling, dropout, and depthwise convs."""
    module = module_of(gm, node)
    if module is not None:
        if isinstance(module, nn.Conv2d):
            return module.groups > 1 and module.groups == module.in_channels == module.out_channels
        return isinstance(module, PER_CHANNEL_MODULES)
    if node.op == "call_function":
        return node.target in PER_CHANNEL_FUNCTIONS
    return node.op == "call_method" and node.target in PER_CHANNEL_METHODS


def is_pool(gm: fx.GraphModule, node: fx.Node) -> bool:
    module = module_of(gm, node)
    return isinstance(module, POOLS) if module is not None else node.target in POOL_FUNCTIONS


def is_reshape(gm: fx.GraphModule, node: fx.Node) -> bool:
    """A flatten (module, function or method) or a view / reshape: what puts a map's channels into
    a Linear's columns, channel c's values together."""
    module = module_of(gm, node)
    if module is not None:
        return isinstance(module, nn.Flatten)
    if node.op == "call_function":
        return node.target in FLATTENING_FUNCTIONS
    return node.op == "call_method" and node.target in FLATTENING_METHODS


def is_flattening(gm: fx.GraphModule, node: fx.Node) -> bool:
    """A reshape that keeps each channel's values together before a Linear, or a no-op in eval."""
    module = module_of(gm, node)
    if isinstance(module, nn.Dropout | nn.Identity) or node.target is torch.nn.functional.dropout:
        return True
    return is_reshape(gm, node)


def as_tuple(value: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A subgraph's result as a tuple: one output comes back as the tensor itself (`subgraph`)."""
    return value if isinstance(value, tuple) else (value,)


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    return [n for n in node.all_input_nodes if n.op != "get_attr"]


def _reachable(node: fx.Node, step: Callable[[fx.Node], Iterable[fx.Node]]) -> set[fx.Node]:
    found: set[fx.Node] = set()
    stack = [node]
    while stack:
        for near in step(stack.pop()):
            if near not in found:
                found.add(near)
                stack.append(near)
    return found


def descendants(node: fx.Node) -> set[fx.Node]:
    """Every node whose value depends on `node`'s, `node` included."""
    return _reachable(node, lambda n: n.users) | {node}


def ancestors(node: fx.Node) -> set[fx.Node]:
    """Every node `node`'s value depends on."""
    return _reachable(node, lambda n: n.all_input_nodes)


def output_node(gm: fx.GraphModule) -> fx.Node:
    return next(n for n in gm.graph.nodes if n.op == "output")


def subgraph(gm: fx.GraphModule, inputs: Sequence[fx.Node], outputs: Sequence[fx.Node]) -> fx.GraphModule:
    """A module computing `outputs` from `inputs` by the nodes of `gm` between them (copied, with
    the same submodules and parameters). One output is returned as a tensor, several as a tuple.
    Raises ValueError when an output needs a value that `inputs` do not provide."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for i, node in enumerate(inputs):
        env[node] = graph.placeholder(f"input_{i}")
    needed: list[fx.Node] = []
    seen: set[fx.Node] = set(inputs)

    def visit(node: fx.Node) -> None:
        # Iterative post-order: deep networks exceed Python's recursion limit.
        stack: list[tuple[fx.Node, bool]] = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            if current in seen and not expanded:
                continue
            if expanded:
                needed.append(current)
                continue
            if current.op == "placeholder":
                raise ValueError(f"{current.name} is needed but not among the inputs")
            seen.add(current)
            stack.append((current, True))
            stack.extend((n, False) for n in reversed(current.all_input_nodes) if n not in seen)

    for node in outputs:
        visit(node)
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for node in sorted(needed, key=order.__getitem__):
        env[node] = graph.node_copy(node, lambda n: env[n])
    values = [env[n] for n in outputs]
    graph.output(values[0] if len(values) == 1 else tuple(values))
    return fx.GraphModule(gm, graph)


def placeholders(gm: fx.GraphModule) -> list[fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "placeholder"]


def extras_after(gm: fx.GraphModule, cut: fx.Node) -> tuple[set[fx.Node], list[fx.Node]]:
    """The nodes that depend on `cut`, and the values computed without it that they also read
    (a block's skip tensor): what runs per K, and what is computed once for it."""
    after = descendants(cut)
    extras = [
        n for n in gm.graph.nodes
        if n not in after and n.op not in ("get_attr", "output") and any(u in after and u is not cut for u in n.users)
    ]  # fmt: skip
    return after, extras


def chain_from(gm: fx.GraphModule, start: fx.Node) -> list[fx.Node]:
    """The per-channel nodes that follow `start` one after the other (each the only user of the
    one before): the channel map's BN, activation, pooling and depthwise convs."""
    chain: list[fx.Node] = []
    node = start
    while len(node.users) == 1:
        (user,) = node.users
        if not is_per_channel(gm, user) or tensor_inputs(user) != [node]:
            break
        chain.append(user)
        node = user
    return chain


def call_order(model: nn.Module, example: torch.Tensor, kinds: tuple[type, ...] = (nn.Conv2d, nn.Linear)) -> list[str]:
    """Module paths of `kinds` in the order a forward pass first calls them."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []

    def hook(module: nn.Module, *_: object) -> None:
        if names[module] not in order:
            order.append(names[module])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first = next(model.parameters())
            model(example.to(first.device, first.dtype))
    except Exception as err:  # noqa: BLE001 - whatever the model raises, the input does not fit it
        shape = "×".join(str(n) for n in example.shape[1:])
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UserError(
            f"model.arch: the model cannot take the prepared data's input ({shape}): {first}; "
            "allowed: an architecture built for this input size and channel count"
        ) from None
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return order


def as_callables(gm: fx.GraphModule, nodes: Iterable[fx.Node]) -> list[nn.Module]:
    """Each one-input node as a module of its own (a one-node subgraph)."""
    return [subgraph(gm, tensor_inputs(node), [node]) for node in nodes]


def getitem_free(node: fx.Node) -> bool:
    return not (node.op == "call_function" and node.target is operator.getitem)
