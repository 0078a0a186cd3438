"""`invoke runs merge SRC[,SRC...]`: bring finished runs made on other machines into this artifact root.

Pods without a shared volume each write their own artifact root; this copies their finished runs here, after two
checks per run: its own ``SHA256SUMS`` agree with its files (a run damaged in transit, or edited, is refused), and no
run of the same identity (the same folder name: everything that changes the numbers is in it) with a different config
already exists here (refused, naming both). A run already here with the same config is left alone. Each run is
copied under a temporary name and renamed into place, so nothing half-copied ever looks finished. The run-level
JSON files beside the run folders (``equivalence.json``, ``ablation*.json``) come along under the same rules.
Afterwards ``invoke checksums``, ``verify`` and ``report`` see the merged runs as local ones.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import artifacts

MERGED_FILES = ("equivalence.json", "ablation*.json")


class MergeConflict(artifacts.ArtifactError):
    """A source run cannot be merged (one line: which run, why, what to do)."""


@dataclass
class Merged:
    run: str  # <slug>/<name>
    action: str  # copied | already here | refused
    source: str
    note: str = ""


def _config_hash(path: Path) -> str | None:
    meta = path / "metadata.json" if path.is_dir() else path
    try:
        return json.loads(meta.read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def _candidates(src_runs: Path):
    for run in artifacts.list_runs(src_runs):
        yield run
    for pattern in MERGED_FILES:
        yield from sorted(src_runs.glob(f"*/{pattern}"))


def plan_merge(sources: list[Path], dest_runs: Path | None = None) -> list[tuple[Path, Path, str]]:
    """(source, destination, action) for every run of every source; raises ``MergeConflict`` before copying
    anything when one source run is damaged or conflicts with a run here (or with another source's)."""
    dest_runs = Path(dest_runs) if dest_runs else artifacts.runs_dir()
    plan, claimed = [], {}
    for src in sources:
        src = Path(src)
        src_runs = src / "runs" if (src / "runs").is_dir() else src
        if not src_runs.is_dir():
            raise MergeConflict(f"{src}: no such artifact root (expected {src}/runs/<model>/<run>/)")
        if src_runs.resolve() == dest_runs.resolve():
            raise MergeConflict(f"{src} is this artifact root; name another machine's artifacts folder")
        for run in _candidates(src_runs):
            rel = f"{run.parent.name}/{run.name}"
            if run.is_dir():
                bad = artifacts.check_run_sums(run)
                if bad:
                    raise MergeConflict(f"{run}: its SHA256SUMS do not hold ({'; '.join(bad[:3])}); rerun it there "
                                        "or copy it again")
            target = dest_runs / rel
            other = claimed.get(rel)
            if other is not None and _config_hash(other) != _config_hash(run):
                raise MergeConflict(f"{rel}: {other} and {run} are two different configs under one name; merge "
                                    "one of them")
            claimed[rel] = run
            if target.exists():
                same = (_same_bytes(run, target) if run.is_file() else
                        _config_hash(run) is not None and _config_hash(run) == _config_hash(target))
                if not same:
                    raise MergeConflict(f"{rel}: the run here ({target}, config {_config_hash(target)}) and the one "
                                        f"in {run} (config {_config_hash(run)}) differ; move one aside, then merge")
                plan.append((run, target, "already here"))
            else:
                plan.append((run, target, "copied"))
    return plan


def merge(sources: list[Path], dest_runs: Path | None = None) -> list[Merged]:
    """Check everything first (``plan_merge``), then copy each new run atomically."""
    dest_runs = Path(dest_runs) if dest_runs else artifacts.runs_dir()
    artifacts.check_writable(dest_runs)
    done = []
    for src, target, action in plan_merge(sources, dest_runs):
        rel = f"{target.parent.name}/{target.name}"
        if action == "copied":
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.merge-", dir=target.parent))
                try:
                    shutil.copytree(src, tmp, dirs_exist_ok=True)
                    bad = artifacts.check_run_sums(tmp)
                    if bad:
                        raise MergeConflict(f"{src}: changed while copying ({'; '.join(bad[:3])}); merge again")
                    tmp.chmod(0o755)
                    tmp.replace(target)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            else:
                artifacts.write_text_atomic(target, src.read_text())
        done.append(Merged(rel, action, str(src)))
    return done
