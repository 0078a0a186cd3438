"""`scripts/lock.sh --check` proves the committed locks are a complete resolution of their *.in files.

It runs the pinned uv against the package index (reachable here and in CI, never the model hub), on a
copy of scripts/ and requirements/ so the repository's own locks are never touched. The index moves
(new patch releases keep appearing under UV_EXCLUDE_NEWER), so the check seeds uv with the committed
locks: only a disagreement between a .in file and its lock can make it fail.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # resolves against the package index (~10 s a run)


def _copy_tree(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "lock.sh", work / "scripts" / "lock.sh")
    shutil.copytree(ROOT / "requirements", work / "requirements")
    return work


def _check(work: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(work / "scripts" / "lock.sh"), "--check"], capture_output=True,
                          text=True, timeout=900)


def test_committed_locks_pass_the_check(tmp_path):
    work = _copy_tree(tmp_path)
    r = _check(work)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "locks agree with their .in files" in r.stdout
    # the check writes nothing into the tree it checks
    for lock in (ROOT / "requirements").glob("*.lock"):
        assert (work / "requirements" / lock.name).read_bytes() == lock.read_bytes()


def test_a_requirement_missing_from_its_lock_fails_the_check(tmp_path):
    work = _copy_tree(tmp_path)
    models_in = work / "requirements" / "models.in"
    assert "six" not in (work / "requirements" / "models.lock").read_text()
    models_in.write_text(models_in.read_text() + "six==1.17.0\n")
    r = _check(work)
    assert r.returncode == 1
    assert "+six==1.17.0" in r.stdout  # the diff names what the lock lacks
    assert "requirements/models.lock is not a resolution of requirements/models.in" in r.stderr
    # only the disagreeing lock is reported: the others still pass against the same moving index
    for other in ("cpu", "cuda", "tools"):
        assert f"requirements/{other}.lock is not" not in r.stderr


def test_a_removed_requirement_fails_the_check(tmp_path):
    work = _copy_tree(tmp_path)
    cpu_in = work / "requirements" / "cpu.in"
    lines = cpu_in.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith("rsatoolbox")]
    assert len(kept) == len(lines) - 1
    cpu_in.write_text("".join(kept))
    r = _check(work)
    assert r.returncode == 1
    assert "-rsatoolbox==" in r.stdout
    assert "requirements/cpu.lock is not a resolution of requirements/cpu.in" in r.stderr


def test_unknown_argument_is_one_clear_line(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "scripts" / "lock.sh"), "--frobnicate"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: unknown argument '--frobnicate' (usage: lock.sh [--check|--upgrade])"
