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

A manifest is checked before it is written (``stamp``): a listed file that changed, vanished or swapped
is refused (``ManifestMismatch``, naming the files) unless the caller accepts the changes; new files are
added. The reference manifest is written only when asked for (``invoke checksums --reference``). What this
cannot detect: someone who rewrites a file *and* its manifest (docs/ARTIFACTS.md).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from repro.artifacts import sha256_file

REPO = Path(__file__).resolve().parent.parent


def artifacts_elsewhere(root: Path = REPO) -> Path | None:
    """$EMOGEO_ARTIFACTS when it points away from ``root``/artifacts, else None. The manifests and verify are
    written for ``root``/artifacts (paths relative to ``root``, `sha256sum -c` from there), so a run elsewhere
    is not covered by them: the callers say so instead of checking the wrong directory."""
    from repro.artifacts import runs_dir

    here = (Path(root) / "artifacts").resolve()
    there = runs_dir().parent.resolve()
    return None if there == here else there
CHECKSUM_DIR = "checksums"
# manifest name -> the directory it covers (relative to the root)
MANIFESTS: dict[str, str] = {"reference": "artifacts/reference", "runs": "artifacts/runs"}

OK, MODIFIED, MISSING, UNEXPECTED, SWAPPED = "OK", "MODIFIED", "MISSING", "UNEXPECTED", "SWAPPED"
REFUSED = (MODIFIED, MISSING, SWAPPED)  # changes to listed files: never re-stamped silently


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
    / SWAPPED for problems), detail. The reference manifest must exist; the runs manifest must exist when there are runs (no runs:
    NOT RUN).
    """
    root = Path(root)
    rows: list[dict] = []
    for name, subdir in MANIFESTS.items():
        mpath = manifest_path(root, name)
        rel_m = mpath.relative_to(root).as_posix()
        if not mpath.exists():
            n = len(tracked_files(root, subdir)) if name == "runs" else 0
            if name == "runs" and n == 0:
                rows.append({"manifest": rel_m, "path": None, "status": "NOT RUN",
                             "detail": f"no runs under {subdir}, no runs manifest"})
            elif name == "runs":  # runs without a manifest cannot be told from tampered ones
                rows.append({"manifest": rel_m, "path": None, "status": "FAIL",
                             "detail": f"{n} run files under {subdir} but no runs manifest: nothing vouches for "
                                       "them; `invoke checksums` writes it (`invoke reproduce` does at its end)"})
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


class ManifestMismatch(RuntimeError):
    """Listed files changed since their manifest was written; the message names them and the way out."""

    def __init__(self, name: str, findings: list[Finding], how: str):
        self.name, self.findings = name, findings
        shown = ", ".join(f"{f.path} ({f.status})" for f in findings[:5])
        more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
        super().__init__(f"checksums/{name}.sha256 does not match the files: {shown}{more}; refusing to "
                         f"re-stamp. If the changes are yours, {how}")


ACCEPT_HINT = {"runs": "rerun with --accept-changes (invoke checksums --accept-changes, or invoke reproduce "
                       "--accept-changes)",
               "reference": "re-stamp them on purpose: invoke checksums --reference --accept-changes"}


def mismatches(root: Path, name: str) -> list[Finding]:
    """Listed files of manifest ``name`` that changed, vanished or swapped (none when it does not exist)."""
    root = Path(root)
    mpath = manifest_path(root, name)
    if not mpath.exists():
        return []
    try:
        expected = read_manifest(mpath)
    except (ValueError, UnicodeDecodeError) as exc:
        return [Finding(mpath.relative_to(root).as_posix(), MODIFIED, detail=f"unreadable manifest: {exc}")]
    return [f for f in check(root, expected, MANIFESTS[name]) if f.status in REFUSED]


def check_unchanged(root: Path = REPO, names=("reference", "runs")) -> None:
    """Raise ``ManifestMismatch`` when a listed file of any of ``names`` changed (``invoke reproduce`` runs
    this before any stage, so a tampered run is never re-stamped as the pipeline's own)."""
    for name in names:
        bad = mismatches(root, name)
        if bad:
            raise ManifestMismatch(name, bad, ACCEPT_HINT[name])


def stamp(root: Path, name: str, accept_changes: bool = False) -> Path:
    """Write manifest ``name`` after checking the existing one (``ManifestMismatch`` unless accepted)."""
    bad = mismatches(root, name)
    if bad and not accept_changes:
        raise ManifestMismatch(name, bad, ACCEPT_HINT[name])
    return write_manifest(root, name)


def write_all(root: Path = REPO, accept_changes: bool = False, reference: bool = False) -> dict[str, Path | None]:
    """``invoke checksums``: the runs manifest when runs exist, and the reference manifest only when asked
    (``reference``); each checked first (``stamp``). With no runs at all (a fresh start) a stale runs
    manifest is removed."""
    root = Path(root)
    out: dict[str, Path | None] = {}
    if reference:
        out["reference"] = stamp(root, "reference", accept_changes)
    if tracked_files(root, MANIFESTS["runs"]):
        out["runs"] = stamp(root, "runs", accept_changes)
    else:
        stale = manifest_path(root, "runs")
        if stale.exists():
            stale.unlink()
        out["runs"] = None
    return out
