"""What tools.envcheck and tools.envcheck_docker share: a step of `invoke env-check` (PASS, FAIL, SKIP or NOT RUN,
with seconds), the helpers every step uses, and reading a hashed pip lock."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass


@dataclass
class Step:
    name: str
    status: str  # PASS | FAIL | SKIP | NOT RUN
    detail: str
    seconds: float = 0.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def _run(cmd, timeout=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, timeout=timeout, **kw)


def _tail(text: str, n: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def normalize(name: str) -> str:
    """PEP 503 name normalization: Transformer_Lens -> transformer-lens."""
    return re.sub(r"[-_.]+", "-", name).lower()


_LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def parse_lock(text: str) -> dict[str, str]:
    """{normalized name: version} of a pip requirements/lock file (`name==ver` lines only)."""
    return {normalize(m.group(1)): m.group(2) for line in text.splitlines() if (m := _LOCK_LINE.match(line))}


def parse_lock_hashes(text: str) -> dict[str, set[str]]:
    """{normalized name: {sha256,...}} of a hashed lock (hashes on the continuation lines)."""
    out: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        m = _LOCK_LINE.match(line)
        if m:
            current = normalize(m.group(1))
            out[current] = set()
        elif not line.startswith((" ", "\t")):
            current = None
        if current is not None:
            out[current].update(_HASH.findall(line))
    return out
