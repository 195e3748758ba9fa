"""The user's own model: `model.arch: <module>:<function>` and `model.weights: <state_dict file>`.

A builder is any function `function(num_classes=N, in_channels=C) -> nn.Module` in a Python file
importable from the project root (where DVC runs the stages) or PYTHONPATH. It goes through the same
dependency graph as every other model (`prunelab.models.groups.find_groups`), so nothing downstream
knows it is the user's. Every way a builder or a weights file can be wrong is refused in one line
naming the key, before any training.

Weights are read with `torch.load(weights_only=True)` (`prunelab.runtime.load_torch`): a state_dict
holds tensors, and a file that would run code on loading is refused, as every checkpoint here is.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import user_builder
from prunelab.runtime import load_torch


def user_model(arch: str, spec: InputSpec) -> nn.Module:
    """The user's builder of `arch` (`<module>:<function>`) called for `spec`; a UserError naming
    `model.arch` if the module does not import, lacks the function, the call raises, or what it
    returns is not an `nn.Module`."""
    found = user_builder(arch)
    if found is None:
        raise UserError(f"model.arch={arch!r} is not <module>:<function>")
    module_name, function_name = found
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the project root, as `python -m stages.<name>` has it
    importlib.invalidate_caches()  # a builder written since the interpreter started (a notebook) is found
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure of the user's import is the same one line
        raise UserError(
            f"model.arch={arch}: importing {module_name} failed ({type(err).__name__}: {_first_line(err)}); "
            "allowed: a module importable from the project root or PYTHONPATH"
        ) from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise UserError(
            f"model.arch={arch}: {module_name} has no function {function_name}; "
            f"allowed: <module>:<function> naming a function of {module_name}"
        )
    try:
        model = builder(num_classes=spec.n_classes, in_channels=spec.channels)
    except Exception as err:  # noqa: BLE001 - the user's code may raise anything
        raise UserError(
            f"model.arch={arch}: {function_name}(num_classes={spec.n_classes}, in_channels={spec.channels}) "
            f"raised {type(err).__name__}: {_first_line(err)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise UserError(
            f"model.arch={arch}: {function_name}(num_classes=..., in_channels=...) returned "
            f"{type(model).__name__}; allowed: a builder that returns a torch.nn.Module"
        )
    return model


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "no message"


def load_weights(model: nn.Module, path: Path, n_classes: int) -> None:
    """Load a state_dict saved by `torch.save(model.state_dict(), path)` into `model`, after checking
    it fits: a mapping of tensors, the same names (missing and unexpected ones named), the output
    layer sized for `n_classes`, every shape, finite values. A UserError naming `model.weights`."""
    key = f"model.weights={path}"
    try:
        state = load_torch(path, "weights file")
    except UserError as err:
        reason = str(err).removeprefix(f"{path}: ").split(";")[0]
        raise UserError(
            f"{key}: {reason}: not a state_dict readable with weights_only=True (a whole pickled model, or a "
            "damaged file); allowed: a file written by torch.save(model.state_dict(), path)"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{key}: not a state_dict (torch.save(model.state_dict(), path)); allowed: a state_dict")
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        parts = [f"missing {', '.join(missing[:3])}"] if missing else []
        parts += [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []
        detail = "; ".join(parts)
        raise UserError(f"{key}: keys do not fit model.arch ({detail}); allowed: the state_dict of this model")
    output = _output_weight(model)
    if output is not None and output in state and state[output].shape[0] != expected[output].shape[0]:
        raise UserError(
            f"{key}: saved for {state[output].shape[0]} classes ({output} has {state[output].shape[0]} rows), "
            f"the data has {n_classes}; allowed: weights trained on these classes"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(
                f"{key}: {name} has shape {tuple(state[name].shape)}, the model's is {tuple(tensor.shape)}; "
                "allowed: the state_dict of this model"
            )
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{key}: {name} holds NaN or infinite values; allowed: finite weights")
    model.load_state_dict(state)


def _output_weight(model: nn.Module) -> str | None:
    """The state_dict key of the output layer's weight (the last Linear or conv in module order)."""
    last = None
    for path, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            last = path
    return f"{last}.weight" if last is not None else None
