"""Tests for the shipped stimulus set and the loaders in repro.stimuli."""

import csv
import json
import re
import string
from collections import Counter

import pytest

from repro.stimuli import (
    ALL_FILES,
    COMPREHENSION_CSV,
    EMOTIONS,
    GENERATION_EMOTIONS,
    Passage,
    StimulusError,
    load_comprehension,
    load_generation_templates,
    load_neutral_sentences,
    load_neutral_template,
    load_neutral_topics,
    stimuli_digest,
)

# Each emotion's own word plus its obvious derivatives/synonyms, which must not
# appear in that emotion's passages.
FORBIDDEN = {
    "afraid": r"afraid|fear\w*|scared|scary|fright\w*|terrif\w*|terror",
    "angry": r"angr\w*|anger\w*|furious|fury|rage\w*|mad",
    "anxious": r"anxi\w*|worr\w*",
    "blissful": r"bliss\w*",
    "brooding": r"brood\w*",
    "calm": r"calm\w*",
    "desperate": r"desperat\w*",
    "enthusiastic": r"enthusias\w*",
    "exasperated": r"exasperat\w*",
    "gloomy": r"gloom\w*",
    "grateful": r"grateful\w*|gratitude|thankful\w*",
    "guilty": r"guilt\w*",
    "happy": r"happy|happi\w*|joy\w*",
    "hopeful": r"hope\w*|hoping",
    "hostile": r"hostil\w*",
    "loving": r"love|loved|loves|loving\w*",
    "nervous": r"nervous\w*|nerves?",
    "proud": r"proud\w*|pride",
    "reflective": r"reflect\w*",
    "sad": r"sad|sadden\w*|sadness|sadly",
}


def _write_csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def _valid_rows():
    """A minimal valid comprehension table: one passage per emotion (rows 2..22)."""
    rows = [["emotion", "passage_id", "text"]]
    rows += [[e, f"{e}_01", f"A distinct placeholder passage number {i}."] for i, e in enumerate(EMOTIONS)]
    return rows


# --- shipped files -----------------------------------------------------------

def test_emotion_constants():
    assert len(EMOTIONS) == 21 and len(set(EMOTIONS)) == 21
    assert list(EMOTIONS) == sorted(EMOTIONS)
    assert GENERATION_EMOTIONS == tuple(e for e in EMOTIONS if e != "neutral")
    assert len(GENERATION_EMOTIONS) == 20


def test_shipped_comprehension_shape():
    passages = load_comprehension()
    assert len(passages) == 21 * 12
    assert all(isinstance(p, Passage) for p in passages)
    assert Counter(p.emotion for p in passages) == {e: 12 for e in EMOTIONS}
    # sorted by EMOTIONS order, ids run _01.._12 within each emotion
    assert [p.passage_id for p in passages] == [f"{e}_{i:02d}" for e in EMOTIONS for i in range(1, 13)]
    assert len({p.text for p in passages}) == len(passages)


def test_shipped_comprehension_header_exact():
    with COMPREHENSION_CSV.open(newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == ["emotion", "passage_id", "text"]


def test_shipped_passages_length():
    for p in load_comprehension():
        n = len(p.text.split())
        assert 25 <= n <= 55, (p.passage_id, n)


@pytest.mark.parametrize("emotion", sorted(FORBIDDEN))
def test_passages_do_not_name_their_emotion(emotion):
    assert "neutral" not in FORBIDDEN and set(FORBIDDEN) == set(GENERATION_EMOTIONS)
    pattern = re.compile(rf"\b({re.escape(emotion)}|{FORBIDDEN[emotion]})\b", re.IGNORECASE)
    passages = [p for p in load_comprehension() if p.emotion == emotion]
    assert len(passages) == 12
    hits = [(p.passage_id, m.group(0)) for p in passages for m in [pattern.search(p.text)] if m]
    assert hits == []


def test_shipped_neutral_sentences():
    sentences = load_neutral_sentences()
    assert len(sentences) == 20 and len(set(sentences)) == 20
    assert all(s.endswith(".") for s in sentences)


def test_shipped_generation_templates():
    templates = load_generation_templates()
    assert len(templates) == 5 and len(set(templates)) == 5
    for t in templates:
        assert t.count("{emotion}") == 1
        assert "calm" in t.format(emotion="calm")


def test_shipped_neutral_topics_and_template():
    topics = load_neutral_topics()
    assert len(topics) == 10 and len(set(topics)) == 10
    template = load_neutral_template()
    assert template.count("{topic}") == 1 and "\n" not in template
    assert topics[0] in template.format(topic=topics[0])


def test_digest_is_stable_and_content_sensitive(tmp_path):
    d1 = stimuli_digest(ALL_FILES)
    assert re.fullmatch(r"[0-9a-f]{64}", d1)
    assert stimuli_digest(reversed(ALL_FILES)) == d1
    a = tmp_path / "a.csv"
    a.write_text("x\n")
    before = stimuli_digest([a])
    a.write_text("y\n")
    assert stimuli_digest([a]) != before
    with pytest.raises(StimulusError, match="missing.csv"):
        stimuli_digest([tmp_path / "missing.csv"])


# --- comprehension validation errors ----------------------------------------

def test_valid_minimal_file_loads_in_emotion_order(tmp_path):
    rows = _valid_rows()
    rows = [rows[0]] + rows[1:][::-1]  # reversed order in the file
    passages = load_comprehension(_write_csv(tmp_path / "ok.csv", rows))
    assert [p.emotion for p in passages] == list(EMOTIONS)


def test_extra_columns_allowed_and_original_filename_accepted(tmp_path):
    rows = [r + ["extra"] for r in _valid_rows()]
    rows[0][-1] = "source"
    path = _write_csv(tmp_path / "emotion_comprehension_texts.csv", rows)
    assert len(load_comprehension(path)) == 21


def test_empty_text_reports_row(tmp_path):
    rows = _valid_rows()
    rows[13][2] = "   "  # row 14 (header is row 1)
    path = _write_csv(tmp_path / "comprehension.csv", rows)
    with pytest.raises(StimulusError) as exc:
        load_comprehension(path)
    msg = str(exc.value)
    assert "comprehension.csv row 14" in msg and "empty text" in msg and rows[13][1] in msg


def test_duplicate_passage_id_within_an_emotion_names_both_rows(tmp_path):
    rows = _valid_rows()
    rows.insert(7, [rows[3][0], rows[3][1], "Another passage for the same emotion, same id."])  # row 8
    path = _write_csv(tmp_path / "dup.csv", rows)
    with pytest.raises(StimulusError) as exc:
        load_comprehension(path)
    msg = str(exc.value)
    assert "dup.csv row 8" in msg and f"duplicate passage_id {rows[3][1]!r} for emotion {rows[3][0]!r}" in msg
    assert "rows 4 and 8" in msg


def test_ids_restarting_per_emotion_load_in_our_format(tmp_path):
    rows = [["emotion", "passage_id", "text"]]
    rows += [[e, str(i), f"A {e} passage, number {i}."] for e in EMOTIONS for i in (1, 2)]
    passages = load_comprehension(_write_csv(tmp_path / "ours.csv", rows))
    assert len(passages) == 42 and [p.passage_id for p in passages[:4]] == ["1", "2", "1", "2"]


def _authors_layout(path):
    """The layout of the original study's emotion_comprehension_texts.csv (text written here): '#' comments,
    blank lines between emotions, no header, ids restarting at 1, quoted texts with commas and quotes."""
    lines = ["# Emotion Comprehension Texts", "# 20 emotions x 2 passages each", "#",
             "# Format: emotion, passage_id, text", ""]
    for e in EMOTIONS:
        if e == "neutral":
            lines.append("# NEUTRAL (baseline)")
        lines += [f'{e},1,"The first {e} scene, told plainly. She said \'{e}\' once."',
                  f'{e},2,"Then a second {e} scene, with a comma, and \u2014 a dash."', ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_original_csv_layout_loads_as_it_is(tmp_path):
    path = _authors_layout(tmp_path / "emotion_comprehension_texts.csv")
    passages = load_comprehension(path)
    assert len(passages) == 42
    assert (passages[0].emotion, passages[0].passage_id) == ("afraid", "1")
    assert passages[0].text == "The first afraid scene, told plainly. She said 'afraid' once."
    assert [p.passage_id for p in passages if p.emotion == "neutral"] == ["1", "2"]


def test_the_original_layout_with_a_short_row_names_its_line(tmp_path):
    path = _authors_layout(tmp_path / "broken.csv")
    lines = path.read_text().splitlines()
    lines[9] = "sad,3"  # a row that lost its text
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StimulusError, match=r"broken\.csv row 10: expected 3 columns \(emotion,passage_id,text\), "
                                            r"found 2; quote texts that contain commas"):
        load_comprehension(path)


def test_a_file_that_is_neither_layout_says_what_it_needs(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("# comment\nfoo,bar\n1,2\n")
    with pytest.raises(StimulusError, match=r"odd\.csv row 2: first row \['foo', 'bar'\] is not a header naming "
                                            r"emotion,passage_id,text, or headerless rows of exactly 3 columns"):
        load_comprehension(path)


def test_duplicate_text_names_both_rows(tmp_path):
    rows = _valid_rows()
    rows[9][2] = "  " + rows[2][2].upper() + " "  # row 10 repeats row 3 (case/space-insensitive)
    path = _write_csv(tmp_path / "duptext.csv", rows)
    with pytest.raises(StimulusError, match=r"duptext\.csv row 10: duplicate text .*rows 3 and 10"):
        load_comprehension(path)


def test_unknown_emotion_reports_row(tmp_path):
    rows = _valid_rows()
    rows.insert(5, ["jealous", "jealous_01", "A passage with an unlisted label."])  # row 6
    path = _write_csv(tmp_path / "unknown.csv", rows)
    with pytest.raises(StimulusError) as exc:
        load_comprehension(path)
    msg = str(exc.value)
    assert "unknown.csv row 6" in msg and "jealous" in msg


def test_missing_emotion_lists_them(tmp_path):
    rows = [r for r in _valid_rows() if r[0] not in ("sad", "hostile")]
    path = _write_csv(tmp_path / "partial.csv", rows)
    with pytest.raises(StimulusError) as exc:
        load_comprehension(path)
    msg = str(exc.value)
    assert "partial.csv" in msg and "sad" in msg and "hostile" in msg and "missing emotion" in msg
    # restricting the emotion set makes the same file valid
    subset = [e for e in EMOTIONS if e not in ("sad", "hostile")]
    assert len(load_comprehension(path, emotions=subset)) == 19


def test_min_per_emotion(tmp_path):
    path = _write_csv(tmp_path / "one_each.csv", _valid_rows())
    with pytest.raises(StimulusError, match=r"one_each\.csv.*at least 2"):
        load_comprehension(path, min_per_emotion=2)


def test_missing_column_reports_header_row(tmp_path):
    rows = [[r[0], r[2]] for r in _valid_rows()]  # drop passage_id
    path = _write_csv(tmp_path / "nocol.csv", rows)
    with pytest.raises(StimulusError) as exc:
        load_comprehension(path)
    msg = str(exc.value)
    assert "nocol.csv row 1" in msg and "passage_id" in msg


def test_missing_file(tmp_path):
    path = tmp_path / "does_not_exist.csv"
    with pytest.raises(StimulusError, match="does_not_exist.csv"):
        load_comprehension(path)
    with pytest.raises(StimulusError, match="does_not_exist.csv"):
        load_neutral_sentences(path)


def test_stimulus_error_is_value_error():
    assert issubclass(StimulusError, ValueError)


# --- other loaders ------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    "Write a story about a person.",
    "Write about {emotion} and {emotion}.",
    "Write about {emotion} in {place}.",
    "Write about {emotion} {",
])
def test_template_slot_validation(tmp_path, bad):
    rows = [["template_id", "text"], ["t1", "Describe feeling {emotion}."], ["t2", bad]]
    path = _write_csv(tmp_path / "templates.csv", rows)
    with pytest.raises(StimulusError, match=r"templates\.csv row 3"):
        load_generation_templates(path)


def test_neutral_sentences_validation(tmp_path):
    empty = _write_csv(tmp_path / "empty.csv", [["sentence_id", "text"]])
    with pytest.raises(StimulusError, match="empty.csv"):
        load_neutral_sentences(empty)
    dup = _write_csv(tmp_path / "dups.csv", [["sentence_id", "text"], ["n01", "Grass is green."],
                                            ["n02", "Grass is green."]])
    with pytest.raises(StimulusError, match=r"dups\.csv row 3: duplicate text .*row 2"):
        load_neutral_sentences(dup)
    blank = _write_csv(tmp_path / "blank.csv", [["sentence_id", "text"], ["n01", "Grass is green."], ["n02", " "]])
    with pytest.raises(StimulusError, match=r"blank\.csv row 3: empty text"):
        load_neutral_sentences(blank)


def test_neutral_template_validation(tmp_path):
    bad = tmp_path / "tmpl.txt"
    bad.write_text("Write a plain story about a shed.\n")
    with pytest.raises(StimulusError, match=r"tmpl\.txt row 1"):
        load_neutral_template(bad)
    two = tmp_path / "two.txt"
    two.write_text("About {topic}.\nAnd {topic}.\n")
    with pytest.raises(StimulusError, match="two.txt"):
        load_neutral_template(two)
    good = tmp_path / "good.txt"
    good.write_text("\nWrite about {topic}.\n\n")
    assert load_neutral_template(good) == "Write about {topic}."


def test_slot_fields_parse_cleanly():
    fields = [f for _, f, _, _ in string.Formatter().parse(load_neutral_template()) if f is not None]
    assert fields == ["topic"]


def test_two_stimuli_sets_leave_two_runs_and_the_report_names_the_default(tiny_lm, tmp_path):
    from analysis.runs import collect
    from repro import artifacts
    from repro.extraction import extract

    lm = tiny_lm("llama")
    ours = extract(lm.spec, lm=lm, progress=False)
    theirs = extract(lm.spec, stimuli_path=str(_authors_layout(tmp_path / "emotion_comprehension_texts.csv")),
                     lm=lm, progress=False)
    assert ours != theirs and ours.parent == theirs.parent
    assert ours.name == "comprehension-fp32-tl" and theirs.name.startswith("comprehension-fp32-tl-stim")
    meta = json.loads((theirs / "metadata.json").read_text())
    assert meta["stimuli"]["default"] is False and meta["stimuli"]["comprehension"].endswith(
        "emotion_comprehension_texts.csv") and len(meta["passages"]["ids"]) == 42
    assert json.loads((ours / "metadata.json").read_text())["stimuli"]["default"] is True
    # Both stay; rerunning either finds its own run; the analysis picks the shipped set and names it.
    assert extract(lm.spec, lm=lm, progress=False) == ours
    runs = collect(artifacts.runs_dir().parent)
    assert sorted(r.kind for r in runs.comprehension) == sorted([ours.name, theirs.name])
    assert [r.table_row()["run"] for r in runs.primary()] == [f"{lm.spec.slug}/{ours.name}"]
