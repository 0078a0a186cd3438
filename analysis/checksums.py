"""sha256 manifests of the frozen reference data and of the run artifacts.

Manifests are ``checksums/<name>.sha256`` in ``sha256sum`` format (``<hex>  <path>``, path relative to
the repository root, lines sorted by path), so ``sha256sum -c checksums/reference.sha256`` works from the
root too:

- ``checksums/reference.sha256`` over ``artifacts/reference/**`` (committed);
- ``checksums/runs.sha256`` over ``artifacts/runs/**`` (produced by ``invoke checksums`` after
  ``invoke reproduce``; gitignored like the runs themselves).

Skipped when hashing: dotfiles and dot-directories (the temp files and ``.<name>.tmp-*`` directories of
``repro.artifacts``' atomic writes) and ``*.partial/`` directories (resumable progress of unfinished runs).

``check_manifest`` reports, per path: MODIFIED (content changed), MISSING (listed, not on disk),
UNEXPECTED (on disk, not listed) and SWAPPED (two listed files each hold the other's content).
Every function takes the root directory explicitly so that tests can work on copies.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKSUM_DIR = "checksums"
# manifest name -> the directory it covers (relative to the root)
MANIFESTS: dict[str, str] = {"reference": "artifacts/reference", "runs": "artifacts/runs"}

OK, MODIFIED, MISSING, UNEXPECTED, SWAPPED = "OK", "MODIFIED", "MISSING", "UNEXPECTED", "SWAPPED"


@dataclass
class Finding:
    path: str
    status: str
    expected: str | None = None  # sha256 in the manifest
    actual: str | None = None  # sha256 on disk
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def manifest_path(root: Path, name: str) -> Path:
    return Path(root) / CHECKSUM_DIR / f"{name}.sha256"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _skipped(part: str) -> bool:
    return part.startswith(".") or part.endswith(".partial")


def tracked_files(root: Path, subdir: str) -> list[str]:
    """Files under ``root/subdir`` that a manifest covers, as sorted root-relative POSIX paths."""
    root = Path(root)
    base = root / subdir
    if not base.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        for fn in filenames:
            if fn.startswith("."):
                continue
            p = Path(dirpath) / fn
            if p.is_file() and not p.is_symlink():
                out.append(p.relative_to(root).as_posix())
    return sorted(out)


def compute(root: Path, subdir: str) -> dict[str, str]:
    root = Path(root)
    return {rel: sha256_file(root / rel) for rel in tracked_files(root, subdir)}


def format_manifest(entries: dict[str, str]) -> str:
    return "".join(f"{h}  {p}\n" for p, h in sorted(entries.items()))


def parse_manifest(text: str) -> dict[str, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or not path:
            raise ValueError(f"line {n}: not '<sha256>  <path>': {line!r}")
        out[path.lstrip("*")] = digest.lower()
    return out


def read_manifest(path: Path) -> dict[str, str]:
    return parse_manifest(Path(path).read_text(encoding="utf-8"))


def write_manifest(root: Path, name: str, subdir: str | None = None) -> Path:
    """Hash ``root/subdir`` and write ``root/checksums/<name>.sha256`` atomically."""
    root = Path(root)
    subdir = subdir or MANIFESTS[name]
    target = manifest_path(root, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(format_manifest(compute(root, subdir)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def check(root: Path, expected: dict[str, str], subdir: str) -> list[Finding]:
    """Compare a manifest's entries with the files on disk; only problems are returned."""
    root = Path(root)
    on_disk = set(tracked_files(root, subdir))
    findings: dict[str, Finding] = {}
    actual: dict[str, str] = {}
    for rel, digest in sorted(expected.items()):
        p = root / rel
        if not p.is_file():
            findings[rel] = Finding(rel, MISSING, expected=digest, detail="listed in the manifest, not on disk")
            continue
        actual[rel] = sha256_file(p)
        if actual[rel] != digest:
            findings[rel] = Finding(rel, MODIFIED, expected=digest, actual=actual[rel], detail="content changed")
    # Two modified files holding each other's content: a swap, not two independent edits.
    modified = [r for r, f in findings.items() if f.status == MODIFIED]
    by_expected: dict[str, list[str]] = {}
    for r in modified:
        by_expected.setdefault(expected[r], []).append(r)
    for a in modified:
        for b in by_expected.get(actual[a], []):
            if b != a and actual.get(b) == expected[a]:
                findings[a].status = SWAPPED
                findings[a].detail = f"holds the content listed for {b} (and {b} holds this file's)"
    for rel in sorted(on_disk - set(expected)):
        digest = sha256_file(root / rel)
        same = [r for r, f in findings.items() if f.status == MISSING and f.expected == digest]
        detail = f"not in the manifest; same content as missing {same[0]} (renamed?)" if same else "not in the manifest"
        findings[rel] = Finding(rel, UNEXPECTED, actual=digest, detail=detail)
    return [findings[k] for k in sorted(findings)]


def check_manifest(root: Path, name: str, subdir: str | None = None) -> list[Finding]:
    root = Path(root)
    return check(root, read_manifest(manifest_path(root, name)), subdir or MANIFESTS[name])


def integrity(root: Path) -> list[dict]:
    """Integrity rows for ``invoke verify``: one summary row per manifest, then one row per problem.

    Row keys: manifest, path, status (OK / FAIL / NOT RUN for summaries, MODIFIED / MISSING / UNEXPECTED
    / SWAPPED for problems), detail. The reference manifest must exist; the runs manifest is optional
    (absent: NOT RUN).
    """
    root = Path(root)
    rows: list[dict] = []
    for name, subdir in MANIFESTS.items():
        mpath = manifest_path(root, name)
        rel_m = mpath.relative_to(root).as_posix()
        if not mpath.exists():
            if name == "runs":
                n = len(tracked_files(root, subdir))
                rows.append({"manifest": rel_m, "path": None, "status": "NOT RUN",
                             "detail": f"no runs manifest ({n} run files under {subdir}); "
                                       "`invoke checksums` writes it after `invoke reproduce`"})
            else:
                rows.append({"manifest": rel_m, "path": None, "status": "FAIL",
                             "detail": f"{rel_m} is missing; `invoke checksums` writes it"})
            continue
        try:
            expected = read_manifest(mpath)
        except (ValueError, UnicodeDecodeError) as exc:
            rows.append({"manifest": rel_m, "path": None, "status": "FAIL", "detail": f"unreadable manifest: {exc}"})
            continue
        problems = check(root, expected, subdir)
        if problems:
            counts: dict[str, int] = {}
            for f in problems:
                counts[f.status] = counts.get(f.status, 0) + 1
            rows.append({"manifest": rel_m, "path": None, "status": "FAIL",
                         "detail": ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                                   + f" (of {len(expected)} listed files)"})
            rows.extend({"manifest": rel_m, "path": f.path, "status": f.status, "detail": f.detail,
                         "expected": f.expected, "actual": f.actual} for f in problems)
        else:
            rows.append({"manifest": rel_m, "path": None, "status": "OK",
                         "detail": f"{len(expected)} files verified (sha256)"})
    return rows


def integrity_failed(rows: list[dict]) -> bool:
    return any(r["status"] not in ("OK", "NOT RUN") for r in rows)


def write_all(root: Path = REPO) -> dict[str, Path | None]:
    """``invoke checksums``: write the reference manifest, and the runs manifest when runs exist
    (a stale runs manifest is removed when there are no runs)."""
    root = Path(root)
    out: dict[str, Path | None] = {"reference": write_manifest(root, "reference")}
    if tracked_files(root, MANIFESTS["runs"]):
        out["runs"] = write_manifest(root, "runs")
    else:
        stale = manifest_path(root, "runs")
        if stale.exists():
            stale.unlink()
        out["runs"] = None
    return out
