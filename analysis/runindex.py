"""`invoke runs list`: every run under artifacts/runs, one row each, read from its metadata.json.

A row says which model, what kind of run, on which stimuli, under which protocol (docs/PROTOCOLS.md:
the named protocols a comprehension run is a run of), at which dtype/precision, through which
backend, when, and whether it finished (metadata.json, the last file a run gets) or stopped part-way
(only its ``<run>.partial/`` progress exists; rerunning the same command resumes it).
"""
from __future__ import annotations

import time
from pathlib import Path

from repro import artifacts

COLUMNS = ("model", "run", "kind", "stimuli", "protocol", "dtype", "backend", "date", "status")


def _stimuli(meta: dict) -> str:
    stim = meta.get("stimuli")
    if isinstance(stim, dict):
        if stim.get("default"):
            return "emogeo (shipped)"
        what = f"set {stim['set']}" if stim.get("set") else stim.get("comprehension")
        return f"{what} ({stim.get('sha256', '')[:8]})"
    return "emogeo (shipped)"  # runs written before stimuli were recorded used the shipped set


def _protocol(meta: dict) -> str:
    if meta.get("kind") not in ("comprehension", "generation"):
        return "-"  # steering and other runs: no protocol switch reaches them yet (issue 23)
    from repro.protocol import run_protocol_label

    return run_protocol_label(meta)


def _row(path: Path, meta: dict | None) -> dict:
    slug = path.parent.name
    if meta is None:
        return {"model": slug, "run": f"{slug}/{path.name}", "kind": path.name.split("-", 1)[0], "stimuli": "?",
                "protocol": "?",
                "dtype": "?", "backend": "?", "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(
                    (path if path.exists() else Path(f"{path}.partial")).stat().st_mtime)),
                "status": "partial (rerun the same command to resume)"}
    model = (meta.get("model") or {}).get("hub_id") or slug
    # Not every kind stamps its creation time: the metadata file's own time is when the run finished.
    created = meta.get("created_unix")
    if created is None:
        created = (path / "metadata.json").stat().st_mtime
    from repro.layout import expected_name

    status = "finished" if not meta.get("method_departures") else "finished, NOT the paper's method"
    want = expected_name(meta)
    if want is not None and want != path.name:
        status = f"old layout (now named {want}): invoke runs migrate"
    return {"model": model, "run": f"{slug}/{path.name}", "kind": meta.get("kind") or path.name.split("-", 1)[0],
            "stimuli": _stimuli(meta), "protocol": _protocol(meta), "dtype": meta.get("dtype") or meta.get("precision") or "?",
            "backend": meta.get("backend") or "?",
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(created)), "status": status}


# The files a run folder may hold (the writers in repro/); anything else is flagged, never read.
RUN_FILES = {"metadata.json", "vectors.safetensors", "generations.json", "steering.json", artifacts.RUN_SUMS}


def stray_files(path: Path) -> list[str]:
    """Files in a run folder that no emogeo writer puts there (a pickle, a dotfile, a leftover temp file). emogeo
    never loads them (it reads safetensors and JSON by name only); `invoke runs list` flags them."""
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*")
                  if p.is_file() and not (p.parent == Path(path) and p.name in RUN_FILES))


def list_runs(root: Path | None = None) -> list[dict]:
    """Rows for every finished run and every interrupted one (a ``.partial`` folder without its run)."""
    runs = Path(root) / "runs" if root else artifacts.runs_dir()
    rows = []
    for path in artifacts.list_runs(runs):
        try:
            meta = artifacts.load_metadata(path)
        except artifacts.ArtifactError:
            rows.append({**_row(path, None), "status": "unreadable metadata.json (delete the run and rerun)"})
            continue
        row = _row(path, meta)
        stray = stray_files(path)
        if stray:
            row["status"] += f"; UNEXPECTED FILES (never loaded, delete them): {', '.join(stray)}"
        rows.append(row)
    for partial in sorted(runs.glob("*/*.partial")):
        final = partial.with_name(partial.name[:-len(".partial")])
        if not (final / "metadata.json").exists():
            rows.append(_row(final, None))
    return sorted(rows, key=lambda r: r["run"])


def format_rows(rows: list[dict]) -> str:
    if not rows:
        return f"no runs under {artifacts.runs_dir()}"
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    line = lambda vals: "  ".join(str(v).ljust(widths[c]) for c, v in zip(COLUMNS, vals))  # noqa: E731
    return "\n".join([line(COLUMNS), line("-" * widths[c] for c in COLUMNS)] + [line(r[c] for c in COLUMNS)
                                                                             for r in rows])
