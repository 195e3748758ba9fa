"""The machine a measurement ran on, as the timing tools record it (benchmarks/run.py, tools/time_pipeline.py).

Plain standard library: the tools that import it must not pay for torch to name the CPU."""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str | None:
    """The processor's model name as /proc/cpuinfo gives it (Linux); None where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
