"""One writer per run: an advisory file lock held while a process computes and finalises a run.

Two processes that target the same run folder (same model, kind and identity in its name) would otherwise
share its ``.partial/`` progress and race on the final rename. The first takes the lock; the second is
refused with one line naming the holder (pid, host, since when), so nothing is ever mixed and nothing
already computed is lost.

The lock is ``fcntl.flock`` on ``<artifacts>/.locks/<slug>--<kind>.lock``: the kernel drops it when its
holder dies, however it dies (SIGKILL included), so a lock of a dead process is never "held" and needs no
cleaning up. The file itself is kept (deleting a lock file while others may open it is racy) and only says
who held it last; a holder that is not running any more is reported as a stale lock taken over. flock is
reliable on local file systems; on NFS use one machine per artifacts root or ``invoke runs merge``.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from .artifacts import ArtifactError, runs_dir


class RunLockedError(ArtifactError):
    """Another live process is writing this run (one line: who, where, since when, what to do)."""


def lock_path(final: Path) -> Path:
    final = Path(final)
    root = runs_dir().parent / ".locks"
    return root / f"{final.parent.name}--{final.name}.lock"


def _alive(pid: int, host: str) -> bool | None:
    """Is the recorded holder still running? None when it ran on another host (cannot tell)."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(final: Path, log=None):
    """Hold the run's lock for the block, or raise ``RunLockedError`` at once (never wait silently)."""
    import fcntl

    path = lock_path(final)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ArtifactError(f"cannot create the run lock {path} ({exc.strerror}): make {path.parent.parent} "
                            "writable or point EMOGEO_ARTIFACTS at a writable folder") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _read(fd)
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0))) if holder else "?"
            raise RunLockedError(
                f"{final} is being written by another process (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {since}); wait for it to finish and rerun (its finished run "
                "is then reused), or stop that process") from None
        old = _read(fd)
        if old and log is not None and _alive(int(old.get("pid", -1)), old.get("host", "")) is False \
                and old.get("running"):
            log(f"stale lock of pid {old['pid']} (not running any more) taken over: {path}")
        _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "run": str(final),
                    "running": True})
        try:
            yield path
        finally:
            _write(fd, {**(_read(fd) or {}), "running": False, "released": time.time()})
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        return json.loads(data.decode()) if data.strip() else {}
    except (OSError, ValueError):
        return {}


def _write(fd: int, record: dict) -> None:
    data = json.dumps(record).encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
