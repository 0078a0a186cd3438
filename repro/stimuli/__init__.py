"""Stimulus set for emogeo: loaders and validators for the shipped CSV/text files.

All loaders raise :class:`StimulusError` with the file path, the 1-based CSV row
number (the header is row 1) and a hint on what to fix.
"""

from __future__ import annotations

import csv
import hashlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

EMOTIONS: tuple[str, ...] = (
    "afraid", "angry", "anxious", "blissful", "brooding", "calm", "desperate",
    "enthusiastic", "exasperated", "gloomy", "grateful", "guilty", "happy",
    "hopeful", "hostile", "loving", "nervous", "neutral", "proud", "reflective",
    "sad",
)
GENERATION_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e != "neutral")

DATA_DIR = Path(__file__).parent / "data"
COMPREHENSION_CSV = DATA_DIR / "comprehension.csv"
NEUTRAL_SENTENCES_CSV = DATA_DIR / "neutral_sentences.csv"
GENERATION_TEMPLATES_CSV = DATA_DIR / "generation_templates.csv"
NEUTRAL_TOPICS_CSV = DATA_DIR / "neutral_topics.csv"
NEUTRAL_TEMPLATE_TXT = DATA_DIR / "neutral_template.txt"
ALL_FILES: tuple[Path, ...] = (
    COMPREHENSION_CSV, NEUTRAL_SENTENCES_CSV, GENERATION_TEMPLATES_CSV,
    NEUTRAL_TOPICS_CSV, NEUTRAL_TEMPLATE_TXT,
)


class StimulusError(ValueError):
    """A stimulus file is missing or malformed."""


@dataclass(frozen=True)
class Passage:
    emotion: str
    passage_id: str
    text: str


def _err(path: Path, row: int | None, msg: str) -> StimulusError:
    where = f"{path} row {row}" if row is not None else str(path)
    return StimulusError(f"{where}: {msg}")


def _norm(text: str) -> str:
    """Whitespace- and case-insensitive key used for duplicate detection."""
    return " ".join(text.split()).casefold()


def _read_rows(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV into (row_number, {column: stripped value}) pairs; row 1 is the header."""
    if not path.is_file():
        raise _err(path, None, "file not found; check the path or restore the file")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise _err(path, 1, f"file is empty; expected a header with columns {','.join(required)}") from None
        except csv.Error as exc:
            raise _err(path, 1, f"unreadable CSV header ({exc})") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise _err(path, 1, f"header {header} lacks column(s) {missing}; "
                                f"the header must contain {','.join(required)}")
        rows = []
        row = 1
        try:
            for row, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue  # blank line
                rec = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
                rows.append((row, rec))
        except csv.Error as exc:
            raise _err(path, row + 1, f"malformed CSV ({exc}); check quoting") from None
    return rows


def _load_texts(path: Path, id_col: str, what: str) -> list[tuple[int, str]]:
    """Load a `<id_col>,text` table as (row, text): >=1 row, non-empty unique ids and texts."""
    rows = _read_rows(path, (id_col, "text"))
    if not rows:
        raise _err(path, None, f"no {what} rows; add at least one")
    seen_id: dict[str, int] = {}
    seen_text: dict[str, int] = {}
    out = []
    for row, rec in rows:
        rid, text = rec[id_col], rec["text"]
        if not rid:
            raise _err(path, row, f"empty {id_col}; give every {what} an id")
        if not text:
            raise _err(path, row, f"empty text for {id_col} {rid}; fill it in or delete the row")
        if rid in seen_id:
            raise _err(path, row, f"duplicate {id_col} {rid!r} (also row {seen_id[rid]}); ids must be unique")
        if _norm(text) in seen_text:
            raise _err(path, row, f"duplicate text (same as row {seen_text[_norm(text)]}); remove one")
        seen_id[rid] = row
        seen_text[_norm(text)] = row
        out.append((row, text))
    return out


def _check_slot(path: Path, row: int | None, text: str, slot: str) -> None:
    """Require `{slot}` to be the one and only format field in `text`."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise _err(path, row, f"bad braces in template ({exc}); use {{{slot}}} and double any literal braces") from None
    if fields != [slot]:
        raise _err(path, row, f"template must contain {{{slot}}} exactly once and no other "
                              f"{{...}} fields, found {fields}: {text!r}")


def load_comprehension(path: str | Path | None = None, emotions: Sequence[str] = EMOTIONS,
                       min_per_emotion: int = 1) -> list[Passage]:
    """Load emotion-comprehension passages, sorted by emotion order then file order.

    Accepts any CSV with (at least) the columns emotion,passage_id,text, e.g. the
    original study's ``emotion_comprehension_texts.csv``.
    """
    path = Path(path) if path is not None else COMPREHENSION_CSV
    emotions = tuple(emotions)
    rank = {e: i for i, e in enumerate(emotions)}
    seen_id: dict[str, int] = {}
    seen_text: dict[str, int] = {}
    passages: list[Passage] = []
    for row, rec in _read_rows(path, ("emotion", "passage_id", "text")):
        emotion, pid, text = rec["emotion"].lower(), rec["passage_id"], rec["text"]
        if emotion not in rank:
            raise _err(path, row, f"unknown emotion {rec['emotion']!r}; expected one of {', '.join(emotions)}")
        if not pid:
            raise _err(path, row, f"empty passage_id for emotion {emotion!r}; give every passage an id")
        if not text:
            raise _err(path, row, f"empty text for emotion {emotion!r} (passage_id {pid}); "
                                  "fill it in or delete the row")
        if pid in seen_id:
            raise _err(path, row, f"duplicate passage_id {pid!r} (rows {seen_id[pid]} and {row}); ids must be unique")
        key = _norm(text)
        if key in seen_text:
            raise _err(path, row, f"duplicate text for passage_id {pid!r} (rows {seen_text[key]} and {row}); "
                                  "remove or rewrite one")
        seen_id[pid] = row
        seen_text[key] = row
        passages.append(Passage(emotion, pid, text))
    counts = {e: 0 for e in emotions}
    for p in passages:
        counts[p.emotion] += 1
    short = [e for e in emotions if counts[e] < min_per_emotion]
    if short:
        detail = ", ".join(f"{e} ({counts[e]})" for e in short)
        raise _err(path, None, f"missing emotion(s): need at least {min_per_emotion} passage(s) each for "
                               f"{detail}; add rows for them or pass a smaller `emotions` list")
    return sorted(passages, key=lambda p: rank[p.emotion])  # stable: keeps file order within emotion


def load_neutral_sentences(path: str | Path | None = None) -> list[str]:
    """Neutral factual sentences (``sentence_id,text``) for anisotropy estimates."""
    return [t for _, t in _load_texts(Path(path) if path is not None else NEUTRAL_SENTENCES_CSV,
                                      "sentence_id", "sentence")]


def load_generation_templates(path: str | Path | None = None) -> list[str]:
    """Generation prompt templates (``template_id,text``), each with ``{emotion}`` exactly once."""
    path = Path(path) if path is not None else GENERATION_TEMPLATES_CSV
    rows = _load_texts(path, "template_id", "template")
    for row, text in rows:
        _check_slot(path, row, text, "emotion")
    return [t for _, t in rows]


def load_neutral_topics(path: str | Path | None = None) -> list[str]:
    """Emotionally neutral story topics (``topic_id,text``)."""
    return [t for _, t in _load_texts(Path(path) if path is not None else NEUTRAL_TOPICS_CSV, "topic_id", "topic")]


def load_neutral_template(path: str | Path | None = None) -> str:
    """The single-line neutral story template, containing ``{topic}`` exactly once."""
    path = Path(path) if path is not None else NEUTRAL_TEMPLATE_TXT
    if not path.is_file():
        raise _err(path, None, "file not found; check the path or restore the file")
    lines = [(i, ln.strip()) for i, ln in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1)
             if ln.strip()]
    if len(lines) != 1:
        raise _err(path, None, f"expected exactly one non-blank line, found {len(lines)}")
    row, text = lines[0]
    _check_slot(path, row, text, "topic")
    return text


def stimuli_digest(paths: Iterable[str | Path] = ALL_FILES) -> str:
    """sha256 over the given files (sorted by name); each file contributes name, size and bytes."""
    h = hashlib.sha256()
    for p in sorted((Path(p) for p in paths), key=lambda p: (p.name, str(p))):
        if not p.is_file():
            raise _err(p, None, "file not found; cannot compute stimuli digest")
        data = p.read_bytes()
        h.update(f"{p.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
