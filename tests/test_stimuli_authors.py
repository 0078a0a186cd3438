"""`invoke stimuli --import-authors DIR`: a fixture clone of the authors' layout that we write ourselves
(our own sentences, their file names and literal names), parsed, checked against digests, written as a set."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.stimuli import (EMOTIONS, GENERATION_EMOTIONS, StimulusError, load_comprehension,
                           load_generation_templates, load_neutral_sentences, load_neutral_template,
                           load_neutral_topics)
from repro.stimuli.authors import RECORDED, canonical_digest, import_authors, record
from repro.stimuli.sets import load_loose_prompts, load_steering_scenarios, resolve_set, sets_dir

CSV = "backend/neural_mri/data/emotion_comprehension_texts.csv"
EXTRACT = "scripts/paper5_extract.py"
MATCHED = "scripts/paper5_extract_protocol_matched.py"
NEUTRAL = [f"Fixture fact number {i} is stated plainly." for i in range(1, 7)]


def _write_clone(root: Path, extract_extra: str = "") -> Path:
    """A directory laid out like their repository, with our own texts in their literals' places."""
    (root / "backend/neural_mri/data").mkdir(parents=True)
    (root / "scripts").mkdir()
    lines = ["# fixture comprehension texts", "# Format: emotion, passage_id, text", ""]
    for emo in EMOTIONS:
        lines += [f'{emo},{i},"A fixture passage, number {i}, about {emo} things."' for i in (1, 2)] + [""]
    (root / CSV).write_text("\n".join(lines) + "\n", encoding="utf-8")
    prompts = ",\n".join(f'    "{e}": "Fixture loose prompt, feeling {e}:"' for e in GENERATION_EMOTIONS)
    (root / EXTRACT).write_text(f'''import sys
raise SystemExit("this script must never run during an import")
open("/tmp/emogeo-fixture-was-executed", "w")
STEERING_SCENARIOS = [
    {{"name": "a_to_calm", "prompt": "Fixture provocation.", "emotion": "calm", "strengths": [0.01, 0.05]}},
]
GENERATION_PROMPTS = {{
{prompts}
}}
def compute_anisotropy_hf(model):
    neutral = {NEUTRAL[:3]!r}
    return neutral
def compute_anisotropy(model, n_sentences: int = 20):
    neutral_sentences = {NEUTRAL!r}
    return neutral_sentences
{extract_extra}''', encoding="utf-8")
    (root / MATCHED).write_text('''
def make_emotion_prompt(emotion: str, variant: int = 0) -> str:
    templates = [
        f"Fixture story one about {emotion}, with a comma.",
        f"Fixture story two: someone feels {emotion}.",
    ]
    return templates[variant % len(templates)]

def make_neutral_prompt(idx: int) -> str:
    topics = ["a fixture topic", "another fixture topic", "a third fixture topic"]
    return (
        f"Fixture neutral story about {topics[idx % len(topics)]}. "
        f"Plain tone."
    )
''', encoding="utf-8")
    return root


@pytest.fixture
def clone(tmp_path):
    return _write_clone(tmp_path / "Neural-MRI")


@pytest.fixture
def recorded(clone):
    return record(clone, json.loads(RECORDED.read_text()))


def test_import_writes_a_set_every_loader_reads(clone, recorded):
    sset = import_authors(clone, recorded=recorded)
    assert sset.name == "authors" and not sset.default and sset == resolve_set("authors")
    passages = load_comprehension(sset.comprehension)
    assert len(passages) == 2 * len(EMOTIONS)
    assert passages[0].text == "A fixture passage, number 1, about afraid things."
    assert load_neutral_sentences(sset.neutral_sentences) == NEUTRAL
    assert load_generation_templates(sset.generation_templates) == [
        "Fixture story one about {emotion}, with a comma.", "Fixture story two: someone feels {emotion}."]
    assert load_neutral_topics(sset.neutral_topics) == ["a fixture topic", "another fixture topic",
                                                        "a third fixture topic"]
    assert load_neutral_template(sset.neutral_template) == "Fixture neutral story about {topic}. Plain tone."
    loose = load_loose_prompts(sset.loose_prompts, GENERATION_EMOTIONS)
    assert loose["hopeful"] == "Fixture loose prompt, feeling hopeful:" and len(loose) == 20
    assert load_steering_scenarios(sset.steering_scenarios) == (
        {"name": "a_to_calm", "prompt": "Fixture provocation.", "emotion": "calm", "strengths": [0.01, 0.05]},)
    man = sset.manifest()
    assert man["lists"]["neutral_sentences_hf"]["count"] == 3
    assert man["source"]["files"][EXTRACT]["sha256"] == recorded["files"][EXTRACT]["sha256"]
    assert not Path("/tmp/emogeo-fixture-was-executed").exists()  # their code was parsed, never run


def test_a_changed_stimulus_names_the_file_and_the_list(clone, recorded):
    text = (clone / MATCHED).read_text().replace("another fixture topic", "another, changed topic")
    (clone / MATCHED).write_text(text)
    with pytest.raises(StimulusError, match=r"paper5_extract_protocol_matched\.py: list "
                                            r"make_neutral_prompt\.topics \(neutral_topics\) differs"):
        import_authors(clone, recorded=recorded)
    assert not (sets_dir() / "authors").exists()  # nothing half-written


def test_a_changed_passage_in_the_csv_is_refused(clone, recorded):
    p = clone / CSV
    p.write_text(p.read_text().replace("about calm things", "about calm matters", 1))
    with pytest.raises(StimulusError, match=r"emotion_comprehension_texts\.csv: list csv \(comprehension\)"):
        import_authors(clone, recorded=recorded)


def test_edits_elsewhere_in_their_files_do_not_matter(tmp_path, recorded):
    other = _write_clone(tmp_path / "edited", extract_extra="def new_helper():\n    x = [1, 2]  # unrelated\n")
    assert import_authors(other, recorded=recorded).manifest()["lists"]["loose_prompts"]["matches_recorded"]


def test_a_missing_file_or_list_says_what_is_needed(clone, recorded, tmp_path):
    (clone / MATCHED).write_text("def make_emotion_prompt(emotion):\n    return emotion\n")
    with pytest.raises(StimulusError, match=r"list make_emotion_prompt\.templates \(generation_templates\) not "
                                            r"found"):
        import_authors(clone, recorded=recorded)
    (clone / CSV).unlink()
    with pytest.raises(StimulusError, match=r"not found; DIR must be a clone of JihoonJeong/Neural-MRI"):
        import_authors(clone, recorded=recorded)
    with pytest.raises(StimulusError, match="not a directory"):
        import_authors(tmp_path / "nowhere", recorded=recorded)


def test_an_unknown_set_says_how_to_make_it():
    with pytest.raises(StimulusError, match=r"stimuli set 'authors' not found .*invoke stimuli --import-authors"):
        resolve_set("authors")
    assert resolve_set(None).default and resolve_set("emogeo").default


def test_the_recorded_digests_describe_the_studys_inputs():
    doc = json.loads(RECORDED.read_text())
    counts = {k: v["count"] for k, v in doc["lists"].items()}
    assert counts == {"comprehension": 63, "neutral_sentences": 20, "neutral_sentences_hf": 10,
                      "loose_prompts": 20, "steering_scenarios": 2, "generation_templates": 5,
                      "neutral_topics": 10, "neutral_template": 1}
    assert all(len(v["sha256"]) == 64 for v in doc["lists"].values())
    assert canonical_digest(["a", "é"]) == canonical_digest(["a", "\u00e9"]) != canonical_digest(["a", "e"])


def test_extract_with_the_imported_set_runs_beside_the_default(clone, recorded, tiny_lm):
    from analysis.runindex import list_runs
    from repro.extraction import extract

    import_authors(clone, recorded=recorded)
    lm = tiny_lm("llama")
    ours = extract(lm.spec, lm=lm, progress=False)
    theirs = extract(lm.spec, lm=lm, progress=False, stimuli_set="authors")
    assert ours.name == "comprehension-fp32-tl" and theirs.name.startswith("comprehension-fp32-tl-stim")
    meta = json.loads((theirs / "metadata.json").read_text())
    assert meta["stimuli"]["set"] == "authors" and meta["n_neutral_sentences"] == len(NEUTRAL)
    assert len(meta["passages"]["ids"]) == 2 * len(EMOTIONS)
    rows = {r["run"].split("/")[1]: r["stimuli"] for r in list_runs()}
    assert rows[ours.name] == "emogeo (shipped)" and rows[theirs.name].startswith("set authors (")
    with pytest.raises(StimulusError, match="not both"):
        extract(lm.spec, lm=lm, progress=False, stimuli_set="authors", stimuli_path=str(clone / CSV))
