"""ONNX Runtime as a second deploy target: the shipped model as `model.onnx`, and its CPU latency.

The model is exported with BatchNorm folded (`prunelab.deploy.formats.fold_batchnorm`) in the
ordinary NCHW layout by PyTorch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, opset
`OPSET`, a dynamic batch dimension), and run by ONNX Runtime's CPU execution provider with every
graph optimisation on (`ORT_ENABLE_ALL`) and the same number of threads as torch.

What decides whether pruning pays under ONNX Runtime: at `ORT_ENABLE_ALL` it rewrites convolutions
into its blocked NCHWc layout (blocks of the CPU's vector width in floats: 8 with AVX2, 16 with AVX-512),
and its speed is not monotone in the channel counts: odd counts can run slower than the unpruned model,
and counts between powers of two often buy little (docs/deploy.md). Below `ORT_ENABLE_ALL` no layout
rewrite happens and everything is slower. Hence the export measures the ONNX Runtime speed-up of the
model it ships rather than assuming one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunelab.deploy.formats import fold_batchnorm
from prunelab.runtime import atomic_path

OPSET = 18  # the dynamo exporter's default opset in torch 2.14; stated in efficiency.json


def save_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> int:
    """`model` (BatchNorm folded, NCHW) as an ONNX file with a dynamic batch; returns its size in bytes."""
    folded = fold_batchnorm(copy.deepcopy(model).cpu().eval())
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        folded, (example.cpu(),), dynamo=True, opset_version=OPSET, dynamic_shapes=({0: batch},), verbose=False
    )
    proto = program.model_proto
    strip_metadata(proto)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString(deterministic=True))
    return path.stat().st_size


def strip_metadata(proto) -> None:
    """Drop the exporter's debug metadata (`metadata_props` of the graph, its nodes and values): stack
    traces with this machine's file paths and the export's symbolic ranges, whose symbol names depend
    on what the process exported before. Without it the file is the same bytes on every run and every
    clone (tests/test_reproducibility.py); what ONNX Runtime computes does not read it."""
    graph = proto.graph
    for holder in [graph, *graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        holder.ClearField("metadata_props")


def session(path: Path, threads: int | None = None):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime CPU session for `path`: every graph optimisation, torch's thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(onnx_session, images: torch.Tensor) -> np.ndarray:
    """Logits of `images` (N×C×H×W, float32) under `onnx_session`."""
    name = onnx_session.get_inputs()[0].name
    return onnx_session.run(None, {name: images.detach().cpu().contiguous().numpy()})[0]


def runtime_version() -> str:
    import onnxruntime as ort

    return ort.__version__
