"""Run artifacts: atomic directories of safetensors + JSON, run identity, resume, environment stamp.

A run directory is written under a temporary name and renamed into place only when every file is
complete, so a reader never sees half a run. Partial progress of a long run lives in
``<run>.partial/`` (one safetensors shard per finished unit of work) and is reused on restart.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ARTIFACTS = Path(os.environ.get("EMOGEO_ARTIFACTS", Path(__file__).resolve().parent.parent / "artifacts"))
RUNS = ARTIFACTS / "runs"
SCHEMA_VERSION = 1


class ArtifactError(RuntimeError):
    """A run directory is missing, incomplete or does not match its recorded config."""


def runs_dir() -> Path:
    return Path(os.environ.get("EMOGEO_ARTIFACTS", ARTIFACTS)) / "runs"


def run_dir(slug: str, kind: str) -> Path:
    """artifacts/runs/<model-slug>/<kind>, e.g. kind='comprehension-fp32-tl'."""
    return runs_dir() / slug / kind


def check_writable(folder: Path | None = None) -> None:
    """One clear line (ArtifactError) when runs cannot be written to ``folder`` (default: the runs folder),
    raised before any compute so that nothing is computed only to be lost."""
    import errno

    folder = Path(folder) if folder else runs_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.ENOSPC: "disk full"}.get(exc.errno, exc.strerror)
        raise ArtifactError(f"cannot write runs to {folder} ({why}); make it writable, free space, or point "
                            "EMOGEO_ARTIFACTS at a writable folder") from None


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """NaN/inf -> None so the JSON is standard (the released files use bare NaN; we do not)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def dumps(obj) -> str:
    return json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default))), indent=2, sort_keys=False,
                      allow_nan=False) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that a reader sees the old file or the whole new one, never a part (same-directory
    temp file, fsync, rename); readable by all (0644) like any other artifact, not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, dumps(obj))


def file_mode() -> int:
    """Mode of every artifact file: readable by all (0644) under the usual umask 022, so another uid (a
    container user, a reviewer) can read a run; a stricter umask (e.g. 077) is the way to ask otherwise."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_tensors_atomic(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """safetensors written like write_text_atomic: whole or not at all, no temp file left on failure."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


RUN_SUMS = "SHA256SUMS"  # in every run folder: sha256sum lines of its other files (checked by `invoke runs merge`)


def write_run_sums(folder: Path) -> None:
    """``SHA256SUMS`` (``sha256sum -c`` format, from inside the folder) over the folder's other files."""
    folder = Path(folder)
    lines = [f"{sha256_file(p)}  {p.relative_to(folder)}" for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != RUN_SUMS]
    write_text_atomic(folder / RUN_SUMS, "\n".join(lines) + "\n")


def check_run_sums(folder: Path) -> list[str]:
    """What disagrees with the folder's ``SHA256SUMS``: changed, missing or unlisted files (empty: all agree)."""
    folder = Path(folder)
    sums = folder / RUN_SUMS
    if not sums.exists():
        return [f"no {RUN_SUMS} (a run written before runs carried one)"]
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    problems = [f"{n}: missing" for n in listed if not (folder / n).is_file()]
    problems += [f"{n}: changed" for n, d in listed.items() if (folder / n).is_file() and sha256_file(folder / n) != d]
    problems += [f"{p.relative_to(folder)}: not listed" for p in sorted(folder.rglob("*"))
                 if p.is_file() and p.name != RUN_SUMS and str(p.relative_to(folder)) not in listed]
    return problems


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (the one file digest: runs, manifests, GGUFs, wheels)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_dir(final: Path, sums: bool = False):
    """Yield a temp dir next to ``final``; rename it to ``final`` only if the block succeeds (with ``sums``, after
    writing its ``SHA256SUMS``)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if sums:
            write_run_sums(tmp)
        mode = file_mode()
        os.chmod(tmp, mode | (mode & 0o444) >> 2)  # mkdtemp makes 0700; a run folder is 0755 beside 0644 files
        old = None
        if final.exists():  # moved aside, not deleted first: the old run stays whole until the new one is in
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)  # left by a crash between the two renames
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def finished(path: Path, config: dict) -> bool:
    """A complete run with the same config exists (metadata.json is the last file a run gets)."""
    meta = Path(path) / "metadata.json"
    if not meta.exists():
        return False
    try:
        return json.loads(meta.read_text()).get("config_hash") == config_hash(config)
    except (json.JSONDecodeError, OSError):
        return False


class PartialStore:
    """Resumable progress: one safetensors (or JSON) file per finished unit (batch, emotion, ...).

    Every unit file carries the run's config hash. A unit that is unreadable (a torn or corrupt file) or was
    written for another config is discarded and recomputed, and said so (``discarded``; the run's metadata
    records it), never loaded into this run. Only the holder of the run's lock (repro.runlock) uses a store.
    """

    def __init__(self, final: Path, config: dict, log=None):
        self.dir = Path(str(final) + ".partial")
        self.hash = config_hash(config)
        self.discarded: list[str] = []
        self.reused = 0  # units read back from earlier progress (a resumed run recomputes only the rest)
        self._log = log or (lambda msg: print(f"[resume] {msg}", file=sys.stderr, flush=True))
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp = self.dir / "config.json"
        try:
            stale = stamp.exists() and json.loads(stamp.read_text()).get("config_hash") != self.hash
        except (json.JSONDecodeError, OSError, AttributeError):
            stale = True
        if stale:
            shutil.rmtree(self.dir)  # progress from a different config is not reusable
            self.dir.mkdir(parents=True)
        write_json_atomic(stamp, {"config_hash": self.hash})

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.safetensors"

    def _discard(self, path: Path, why: str) -> None:
        self.discarded.append(f"{path.name}: {why}")
        self._log(f"discarded {path} ({why}); recomputing it")
        path.unlink(missing_ok=True)

    def get(self, key: str) -> dict | None:
        """The unit's tensors, or None when it is missing, unreadable or another config's (then deleted)."""
        from safetensors import safe_open

        p = self._path(key)
        if not p.exists():
            return None
        try:
            with safe_open(str(p), framework="pt") as f:
                got = (f.metadata() or {}).get("config_hash")
                if got != self.hash:
                    raise ValueError(f"written for config {got or 'unknown'}, not {self.hash}")
                out = {k: f.get_tensor(k) for k in f.keys()}
            self.reused += 1
            return out
        except Exception as exc:  # any unreadable file is recomputed; nothing half-read is ever used
            self._discard(p, f"{type(exc).__name__}: {str(exc)[:120]}")
            return None

    def save(self, key: str, tensors: dict) -> None:
        save_tensors_atomic(self._path(key), tensors, metadata={"config_hash": self.hash})

    def save_json(self, key: str, obj) -> None:
        write_json_atomic(self.dir / f"{key}.json", {"config_hash": self.hash, "data": obj})

    def get_json(self, key: str):
        """The unit's JSON record, or None (missing, unreadable or another config's: then deleted)."""
        p = self.dir / f"{key}.json"
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_text())
            if not isinstance(rec, dict) or rec.get("config_hash") != self.hash or "data" not in rec:
                raise ValueError("written for another config")
            return rec["data"]
        except (ValueError, OSError) as exc:
            self._discard(p, f"{type(exc).__name__}: {str(exc)[:120]}")
            return None

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (rev + ("-dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str | None = None) -> dict:
    """Software versions, device and git revision: stamped into every artifact."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "transformer_lens", "bitsandbytes", "numpy", "scipy", "safetensors",
                "gguf", "statsmodels"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    from .machine import cpu_info

    env = {"python": platform.python_version(), "platform": platform.platform(), "versions": versions,
           "git_revision": git_revision(), "emogeo": _own_version(), "cpu": cpu_info()}
    torch = sys.modules.get("torch")  # only when this process computed with it: analysis never imports torch
    if torch is not None:  # the thread count every timing depends on (repro.machine.configure_threads)
        from .machine import determinism_record

        env["torch_threads"] = torch.get_num_threads()
        env["determinism"] = determinism_record()  # CUDA settings (repro.machine.configure_determinism)
    if device is not None:
        env["device"] = device
        try:
            import torch

            if device.startswith("cuda") and torch.cuda.is_available():
                env["device_name"] = torch.cuda.get_device_name(0)
        except ImportError:
            pass
    return env


def _own_version() -> str:
    from . import __version__

    return __version__


class Timer:
    """Named wall-clock timings for the metadata's ``timings`` block."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 3)


def load_metadata(path: Path) -> dict:
    meta = Path(path) / "metadata.json"
    if not meta.exists():
        raise ArtifactError(f"{path}: no metadata.json (run missing or incomplete)")
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta}: corrupted JSON ({exc}); delete the run directory and rerun") from exc


def load_vectors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    f = Path(path) / "vectors.safetensors"
    if not f.exists():
        raise ArtifactError(f"{path}: vectors.safetensors missing")
    try:
        return load_file(f)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{f}: unreadable safetensors ({exc}); delete the run directory and rerun") from exc


def list_runs(root: Path | None = None) -> list[Path]:
    root = Path(root) if root else runs_dir()
    return sorted(p.parent for p in root.glob("*/*/metadata.json"))
