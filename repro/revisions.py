"""Which weights a run loaded: the hub revision asked for and the commit it resolved to, or a local folder's digest.

A hub id names a repository whose ``main`` moves; two runs of "the same model" a month apart may read different
weights. So the registry may pin a ``revision`` per model (``ModelSpec.revision``; none of the paper's twelve is
pinned, because the paper and the authors' released files do not state one: ``PAPER_REVISION_NOTE``), ``--revision``
overrides it, and every artifact records ``weights_revision``:

* hub: ``requested`` (the pin, the override, or ``main``), ``commit`` (the 40-hex commit the files came from,
  from transformers' ``config._commit_hash``) and where the request came from;
* local folder: the commit when the folder is a hub cache snapshot (``.../snapshots/<commit>``), and always the
  sha256 of its weight and config files (name and content), so a local copy is identified by what it holds;
* embedded: the PyPI package and version and the GGUF's sha256 (the package lock pins the bytes).
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from pathlib import Path

from .models import ModelSpec
from .options import OptionError

PAPER_REVISION_NOTE = ("the paper and the authors' released files do not state which hub revision was loaded; "
                       "the hub's main at load time was used and its commit is recorded")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_HEX40 = re.compile(r"[0-9a-f]{40}")


def with_revision(spec: ModelSpec, revision: str | None) -> ModelSpec:
    """``spec`` at hub ``revision`` (a branch, tag or commit). A revision other than the registry's pin is a
    different model for the runs: its folder is ``<slug>@<revision>`` so it never shares a run with ``main``."""
    if revision in (None, ""):
        return spec
    revision = str(revision).strip()
    if not re.fullmatch(r"[\w./-]{1,100}", revision):
        raise OptionError(f"--revision {revision!r}: give a branch, tag or commit hash of the hub repository")
    if spec.source != "hub":
        raise OptionError(f"--revision applies to hub models only; {spec.alias} is {spec.source} (its bytes are "
                          "pinned by its package or folder)")
    if revision == spec.revision:
        return spec
    return replace(spec, revision=revision, extra={**spec.extra, "revision_override": True})


def hub_kwargs(spec: ModelSpec) -> dict:
    return {"revision": spec.revision} if spec.revision else {}


def weights_revision(spec: ModelSpec, model, src: str, provenance: dict | None = None) -> dict:
    """What ``load_model`` records as the weights it loaded (see the module docstring)."""
    if spec.source == "hub":
        commit = getattr(getattr(model, "config", None), "_commit_hash", None)
        if spec.extra.get("revision_override"):
            why = "--revision"
        elif spec.revision:
            why = "registry pin"
        else:
            why = PAPER_REVISION_NOTE if spec.is_paper_model else "no pin: the hub's main at load time"
        return {"source": "hub", "repo": spec.hub_id, "requested": spec.revision or "main", "requested_by": why,
                "commit": commit}
    if spec.source == "embedded":
        prov = provenance or {}
        return {"source": "embedded", "package": prov.get("package") or spec.gguf_package,
                "package_version": prov.get("package_version"), "gguf_file": prov.get("gguf_file"),
                "gguf_sha256": prov.get("gguf_sha256"), "commit": None}
    folder = Path(src)
    snap = folder.name if folder.parent.name == "snapshots" and _HEX40.fullmatch(folder.name) else None
    return {"source": "local", "path": str(folder), "commit": snap, **folder_digest(folder)}


def folder_digest(folder: Path) -> dict:
    """sha256 over the names and bytes of a model folder's weight files and config.json (sorted by name)."""
    t0 = time.perf_counter()
    h = hashlib.sha256()
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"))
    for p in files:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    return {"sha256": h.hexdigest(), "files": [p.name for p in files],
            "digest_seconds": round(time.perf_counter() - t0, 2)}
