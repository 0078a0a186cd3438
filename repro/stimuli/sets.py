"""Named stimulus sets: the shipped one (ours) and any imported one (the authors').

A set is a directory holding the same files under the same names as ``repro/stimuli/data`` (our own
set, named ``emogeo``, the default everywhere). An imported set lives in
``<artifacts>/stimuli/<name>/`` (never committed) with a ``manifest.json`` saying where it came from,
and may add two files ours does not have:

- ``loose_prompts.csv`` (``emotion,text``): one prompt per emotion for the single-prompt (loose) end of
  the template sub-parameter. Without it, the loose end uses the set's first generation template.
- ``steering_scenarios.json``: the steering scenarios (name, emotion, prompt, strengths).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import (COMPREHENSION_CSV, DATA_DIR, GENERATION_TEMPLATES_CSV, NEUTRAL_SENTENCES_CSV, NEUTRAL_TEMPLATE_TXT,
               NEUTRAL_TOPICS_CSV, StimulusError, _err, _read_rows, stimuli_digest)

DEFAULT_SET = "emogeo"
MANIFEST = "manifest.json"
LOOSE_PROMPTS = "loose_prompts.csv"
STEERING_SCENARIOS = "steering_scenarios.json"


def sets_dir() -> Path:
    """Where imported sets live: beside the runs, under the artifacts root (EMOGEO_ARTIFACTS)."""
    from ..artifacts import ARTIFACTS

    return Path(os.environ.get("EMOGEO_ARTIFACTS", ARTIFACTS)) / "stimuli"


@dataclass(frozen=True)
class StimulusSet:
    name: str
    root: Path

    @property
    def default(self) -> bool:
        return self.name == DEFAULT_SET

    @property
    def comprehension(self) -> Path:
        return self.root / COMPREHENSION_CSV.name

    @property
    def neutral_sentences(self) -> Path:
        return self.root / NEUTRAL_SENTENCES_CSV.name

    @property
    def generation_templates(self) -> Path:
        return self.root / GENERATION_TEMPLATES_CSV.name

    @property
    def neutral_topics(self) -> Path:
        return self.root / NEUTRAL_TOPICS_CSV.name

    @property
    def neutral_template(self) -> Path:
        return self.root / NEUTRAL_TEMPLATE_TXT.name

    @property
    def loose_prompts(self) -> Path | None:
        p = self.root / LOOSE_PROMPTS
        return p if p.is_file() else None

    @property
    def steering_scenarios(self) -> Path | None:
        p = self.root / STEERING_SCENARIOS
        return p if p.is_file() else None

    def generation_files(self) -> list[Path]:
        """The files a generation run reads (their digest is part of the run's identity)."""
        files = [self.generation_templates, self.neutral_topics, self.neutral_template]
        return files + ([self.loose_prompts] if self.loose_prompts else [])

    def generation_digest(self) -> str:
        return stimuli_digest(self.generation_files())

    def manifest(self) -> dict:
        p = self.root / MANIFEST
        return json.loads(p.read_text()) if p.is_file() else {}

    def describe(self) -> str:
        return "emogeo (shipped, ours)" if self.default else f"{self.name} ({self.root})"


def shipped() -> StimulusSet:
    return StimulusSet(DEFAULT_SET, DATA_DIR)


def run_stimuli_set(meta: dict) -> str | None:
    """The stimulus set a run's metadata records (None: a loose --stimuli file). Runs written before sets
    were recorded used the shipped set."""
    stim = meta.get("stimuli")
    if not isinstance(stim, dict):
        return DEFAULT_SET
    return stim.get("set") or (DEFAULT_SET if stim.get("default", True) else None)


def resolve_set(name: str | None) -> StimulusSet:
    """``None`` or ``emogeo``: the shipped set. Any other name: an imported set under sets_dir()."""
    if name in (None, "", DEFAULT_SET):
        return shipped()
    if not name.replace("-", "").replace("_", "").isalnum():
        raise StimulusError(f"stimuli set name {name!r}: use letters, digits, '-' and '_' only")
    root = sets_dir() / name
    if not (root / MANIFEST).is_file():
        hint = ("run `invoke stimuli --import-authors DIR` (DIR: your clone of JihoonJeong/Neural-MRI) first"
                if name == "authors" else "import it first")
        raise StimulusError(f"stimuli set {name!r} not found at {root}; {hint}")
    return StimulusSet(name, root)


def load_loose_prompts(path: Path, emotions) -> dict[str, str]:
    """``emotion,text`` rows: exactly one prompt for each of ``emotions``."""
    out: dict[str, str] = {}
    for row, rec in _read_rows(path, ("emotion", "text")):
        emo, text = rec["emotion"].lower(), rec["text"]
        if emo in out:
            raise _err(path, row, f"second prompt for emotion {emo!r}; keep one")
        if not text:
            raise _err(path, row, f"empty prompt for emotion {emo!r}")
        out[emo] = text
    missing = [e for e in emotions if e not in out]
    if missing:
        raise _err(path, None, f"no loose prompt for {', '.join(missing)}; add a row for each")
    return out


def load_steering_scenarios(path: Path) -> tuple[dict, ...]:
    """A JSON list of {name, emotion, prompt[, strengths]}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _err(path, None, f"not readable JSON ({exc}); re-import the set") from None
    if not isinstance(data, list) or not all(isinstance(s, dict) and {"name", "emotion", "prompt"} <= s.keys()
                                             for s in data):
        raise _err(path, None, "expected a list of {name, emotion, prompt, strengths} objects; re-import the set")
    return tuple(data)
