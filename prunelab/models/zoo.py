"""torchvision's classification models, by name (`model.arch: torchvision:<name>`), untrained.

Built with `torchvision.models.get_model(name, weights=None, num_classes=...)`: never with
weights, since the pipeline runs offline and a study trains its own model from its seed. The
first conv is rebuilt for the data's channel count when that is not 3 (MNIST has 1, the pairs
task 2), so any input spec works without touching the model's code.

torchvision is imported here, on first use only: `import prunelab.models` stays light, and the
params schema (torch-free) cannot know torchvision's names, so an unknown one is refused here.
"""

from __future__ import annotations

import difflib

from torch import nn

from prunelab.data.spec import InputSpec
from prunelab.errors import UserError
from prunelab.models.archs import TORCHVISION


def classification_models() -> list[str]:
    """The names torchvision builds as classifiers (not detection, segmentation, video, …)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def torchvision_model(name: str, spec: InputSpec) -> nn.Module:
    """torchvision's `name`, untrained, for `spec`: spec.n_classes outputs, spec.channels inputs."""
    import torchvision

    known = classification_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {TORCHVISION}{close[0]}? " if close else ""
        raise UserError(
            f"model.arch={TORCHVISION}{name}: torchvision has no classification model {name!r}; "
            f"{hint}allowed: a name of torchvision.models.list_models(module=torchvision.models)"
        )
    model = torchvision.models.get_model(name, weights=None, num_classes=spec.n_classes)
    if spec.channels != 3:
        adapt_first_conv(model, spec.channels)
    return model


def adapt_first_conv(model: nn.Module, channels: int) -> None:
    """Replace the first Conv2d in module order (the stem's) by a fresh one with the same geometry
    reading `channels` input channels, at the same module path, so state_dict keys are unchanged.
    The new conv has PyTorch's default initialisation, not the model's own (which differs by model)."""
    path, conv = next((p, m) for p, m in model.named_modules() if isinstance(m, nn.Conv2d))
    fresh = nn.Conv2d(
        channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    model.set_submodule(path, fresh)
