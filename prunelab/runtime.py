"""What every stage shares at run time: entry point, seeding, device, progress, atomic writes.

torch is imported only inside the functions that need it: stages that do no tensor math
(prepare_data, aggregate, plots) use this module too, and importing torch costs about 2.5 s
on 2 cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm import tqdm

from prunelab import _speed
from prunelab.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    import torch

T = TypeVar("T")


class Terminated(Exception):
    """SIGTERM (a CI timeout, `kill`, a container stop), raised so that clean-up runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def stage_main(main: Callable[[], None]) -> None:
    """Run a stage; a UserError becomes one line on stderr and exit status 2.

    Ctrl-C and SIGTERM unwind the stack, so `atomic_path` deletes its temporary file; the
    default SIGTERM action would end the process on the spot and leave it behind. A stage
    process also switches on the private speed tricks (`prunelab._speed`; same bits).
    """
    _speed.enable()
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted: no partial outputs were written", file=sys.stderr)
        raise SystemExit(130) from None
    except Terminated:
        print("terminated: no partial outputs were written", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels (cuDNN autotuning off)."""
    import torch

    # cuBLAS needs this set before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    _speed.deterministic_algorithms()
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present. `cuda` without CUDA was already refused in params."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on stderr, silent under CI (CI=true) or when TQDM_DISABLE is set."""
    quiet = bool(os.environ.get("CI")) or bool(os.environ.get("TQDM_DISABLE"))
    return iter(tqdm(items, desc=desc, total=total, disable=quiet, leave=False, file=sys.stderr))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- atomic writes
TMP_SUFFIX = ".tmp"


def temp_name_pattern(path: Path) -> str:
    """Glob for the temporary siblings `atomic_path` creates for `path` (hidden: a leading dot)."""
    return f".{path.name}.*{TMP_SUFFIX}"


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only on success.

    An interrupted or failing stage therefore never leaves a half-written output, and the
    previous version of the file stays intact until the new one is complete. The temporary
    file lives in the same folder (so the rename is atomic: same file system) under a hidden
    name. A SIGKILL skips the `finally` below and can leave one behind; it is never read as
    an output, and the next write of the same output deletes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of a killed earlier write of this output (one writer per output path).
    for stale in path.parent.glob(temp_name_pattern(path)):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        # On disk before the rename, so a crash cannot leave a renamed but empty file.
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_table(path: Path | str, table: Any, float_format: str | None = None) -> None:
    """A pandas DataFrame as CSV without the index, atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format=float_format)


def write_json(path: Path | str, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_torch(path: Path | str, obj: Any) -> None:
    """torch.save, atomically and byte-for-byte reproducibly.

    Given a file *name*, torch.save names the records inside its zip archive after that
    name, here the random temporary one, so equal tensors gave different bytes (and a new
    DVC hash) on every run. Given an open file it always uses the fixed name `archive`.
    """
    import torch

    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.save(obj, handle)


def load_torch(path: Path | str, what: str) -> Any:
    """torch.load with weights_only=True; a missing or unreadable file is a one-line UserError."""
    import torch

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found; run the stage that writes it (dvc repro)")
    # torch.save writes a zip whose records carry CRC-32s, but torch.load does not check them: a
    # flipped byte in a weight would load as a silently different model. zipfile checks them.
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise UserError(f"{path}: cannot read {what} ({type(err).__name__}); delete it and rerun") from None
    if damaged is not None:
        raise UserError(f"{path}: damaged {what} (CRC mismatch in {damaged!r}); delete it and rerun")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise UserError(f"{path}: cannot read {what} ({type(err).__name__}); delete it and rerun") from None


# --------------------------------------------------------------------------- checked reads
def read_text(path: Path | str, what: str, stage: str) -> str:
    """A text file a stage reads; missing or undecodable is a one-line UserError naming `stage`."""
    path = Path(path)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found; run the {stage} stage (dvc repro)") from None
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{path}: unreadable {what} ({type(err).__name__}); rerun the {stage} stage") from None


def read_json(path: Path | str, what: str, stage: str) -> Any:
    """A JSON file a stage reads (the caller checks its content: one module per document in `prunelab.checks`)."""
    text = read_text(path, what, stage)
    try:
        return json.loads(text)
    except ValueError as err:
        raise UserError(f"{path}: unreadable {what} ({type(err).__name__}); rerun the {stage} stage") from None


def read_table(path: Path | str, what: str, stage: str, check: Callable[[Path, str], None]) -> pd.DataFrame:
    """A CSV table a stage reads: its text is checked (`check(path, text)`, one of
    `prunelab.checks.tables`) before pandas parses it, so a damaged table never reaches a result."""
    import io

    import pandas as pd

    path = Path(path)
    text = read_text(path, what, stage)
    check(path, text)
    try:
        return pd.read_csv(io.StringIO(text))
    except ValueError as err:
        raise UserError(f"{path}: unreadable {what} ({type(err).__name__}); rerun the {stage} stage") from None
