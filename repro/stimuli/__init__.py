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


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for every line that is not a '#' comment; blank lines are kept for csv (which
    skips them) so that quoted fields spanning lines stay whole."""
    head = path.read_bytes()[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise _err(path, None, "file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8 CSV")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [(n, ln) for n, ln in enumerate(f, start=1) if not ln.lstrip().startswith("#")]
    except UnicodeDecodeError as exc:
        raise _err(path, None, f"not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 CSV") from None


def _read_rows(path: Path, required: Sequence[str],
               positional: bool = False) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV into (line number, {column: stripped value}) pairs.

    '#' comment lines and blank lines are skipped anywhere. The first data row is the header when it
    names every ``required`` column; otherwise, with ``positional``, the file has no header and its rows
    are read by position as ``required`` (the original study's emotion_comprehension_texts.csv).
    Row numbers in errors are the file's line numbers."""
    if path.is_dir():
        raise _err(path, None, "is a directory, not a CSV file; pass the CSV inside it")
    if not path.is_file():
        raise _err(path, None, "file not found; check the path or restore the file")
    lines = _data_lines(path)
    reader = csv.reader(ln for _, ln in lines)

    def lineno() -> int:  # the file line where the reader's current record started or ended
        return lines[min(reader.line_num, len(lines)) - 1][0] if lines else 1

    rows: list[tuple[int, list[str]]] = []
    try:
        for values in reader:
            if any(v.strip() for v in values):
                rows.append((lineno(), [v.strip() for v in values]))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise _err(path, lineno(), f"a text longer than {csv.field_size_limit()} characters (or an unclosed "
                                       "quote that swallows the rest of the file); shorten it or close the "
                                       "quote") from None
        raise _err(path, lineno(), f"malformed CSV ({exc}); check quoting") from None
    except OSError as exc:
        raise _err(path, None, f"cannot read it ({exc.strerror})") from None
    if not rows:
        raise _err(path, None, f"file has no data rows; expected columns {','.join(required)}")
    first_row, first = rows[0]
    headerless = False
    if all(c in first for c in required):
        header, data = first, rows[1:]
        if not data:
            raise _err(path, None, f"only a header, no data rows; add rows of {','.join(required)}")
    elif positional and len(first) == len(required) and first[0].lower() in EMOTIONS:
        header, data, headerless = list(required), rows, True
    else:
        hint = (f"a header naming {','.join(required)}, or headerless rows of exactly {len(required)} "
                f"columns ({','.join(required)}) starting with an emotion" if positional
                else f"a header naming {','.join(required)}")
        raise _err(path, first_row, f"first row {first} is not {hint}")
    out = []
    for row, values in data:
        if not headerless:
            rec = {h: (values[i] if i < len(values) else "") for i, h in enumerate(header)}
        else:
            if len(values) != len(required):
                raise _err(path, row, f"expected {len(required)} columns ({','.join(required)}), found "
                                      f"{len(values)}; quote texts that contain commas")
            rec = dict(zip(required, values))
        out.append((row, rec))
    return out


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

    Accepts a CSV with a header naming (at least) emotion,passage_id,text, or the original study's
    ``emotion_comprehension_texts.csv`` as it is downloaded: '#' comment lines, blank lines, no header,
    rows of emotion,passage_id,text read by position. Passage ids need only be unique within an emotion
    (the original's restart at 1 for each): a passage's key is (emotion, passage_id).
    """
    path = Path(path) if path is not None else COMPREHENSION_CSV
    emotions = tuple(emotions)
    rank = {e: i for i, e in enumerate(emotions)}
    seen_id: dict[tuple[str, str], int] = {}
    seen_text: dict[str, int] = {}
    passages: list[Passage] = []
    for row, rec in _read_rows(path, ("emotion", "passage_id", "text"), positional=True):
        emotion, pid, text = rec["emotion"].lower(), rec["passage_id"], rec["text"]
        if emotion not in rank:
            raise _err(path, row, f"unknown emotion {rec['emotion']!r}; expected one of {', '.join(emotions)}")
        if not pid:
            raise _err(path, row, f"empty passage_id for emotion {emotion!r}; give every passage an id")
        if not text:
            raise _err(path, row, f"empty text for emotion {emotion!r} (passage_id {pid}); "
                                  "fill it in or delete the row")
        if (emotion, pid) in seen_id:
            raise _err(path, row, f"duplicate passage_id {pid!r} for emotion {emotion!r} (rows "
                                  f"{seen_id[(emotion, pid)]} and {row}); ids must be unique within an emotion")
        key = _norm(text)
        if key in seen_text:
            raise _err(path, row, f"duplicate text for passage_id {pid!r} (rows {seen_text[key]} and {row}); "
                                  "remove or rewrite one")
        seen_id[(emotion, pid)] = row
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
