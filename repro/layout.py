"""Run folder names, and the folders of the old layout.

Every run's folder name carries what changes its numbers (``extraction.run_kind``,
``generation.generation_kind``), so the name a run must have follows from its own metadata. Before that
rule there was one folder per kind of run (``generation-<preset>-<precision>`` whatever the budget, and
a comprehension run on other stimuli in the default folder): such a folder holds a run whose name is
now wrong. The analysis refuses it (a wrong name could let it pass for another run) and
``invoke runs migrate`` moves it to its name.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import artifacts


def expected_name(meta: dict) -> str | None:
    """The folder name the run's metadata calls for; None when the metadata cannot say (other kinds,
    or synthetic runs without the fields)."""
    kind = meta.get("kind")
    try:
        if kind == "comprehension":
            from .extraction import run_kind, stimuli_suffix
            from .protocol import suffix as protocol_suffix

            applied = (meta.get("protocol") or {}).get("applied")  # runs before protocols: switches off
            return run_kind(meta["dtype"], meta["backend"], stimuli_suffix(meta["stimuli_sha256"]),
                            protocol_suffix(f"extraction-{meta['backend']}", applied))
        if kind == "generation":
            from .generation import GenerationConfig, generation_kind

            cfg = GenerationConfig(**meta["generation_config"])
            applied = (meta.get("protocol") or {}).get("applied")  # loose runs before protocols: None
            return generation_kind(meta["preset"], meta["precision"], cfg, meta.get("stimuli_sha256"), applied)
    except (KeyError, TypeError):
        return None
    return None


def layout_problem(path: Path, meta: dict) -> str | None:
    """One line when ``path`` is an old-layout folder (its name is not the one its run calls for)."""
    want = expected_name(meta)
    if want is None or Path(path).name == want:
        return None
    return (f"old layout: {Path(path).parent.name}/{Path(path).name} holds the run now named {want}; "
            "run `invoke runs migrate` to move it")


def migrate(runs_root: Path | None = None) -> list[tuple[Path, Path, str]]:
    """Move every old-layout folder to its name: (old, new, what happened). A name already taken is left
    alone and reported (two runs of one config: delete one by hand)."""
    root = Path(runs_root) if runs_root else artifacts.runs_dir()
    done = []
    for path in artifacts.list_runs(root):
        try:
            meta = artifacts.load_metadata(path)
        except artifacts.ArtifactError:
            continue
        want = expected_name(meta)
        if want is None or path.name == want:
            continue
        new = path.with_name(want)
        if new.exists():
            done.append((path, new, "kept: the new name is taken by another run of the same config"))
            continue
        os.replace(path, new)
        done.append((path, new, "moved"))
    return done
