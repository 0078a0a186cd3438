"""`invoke runs list`: one row per run, finished or interrupted, read from its metadata."""
from __future__ import annotations

import json

from analysis.runindex import format_rows, list_runs
from repro import artifacts


def _run(root, slug, name, meta):
    d = root / "runs" / slug / name
    d.mkdir(parents=True)
    (d / "metadata.json").write_text(json.dumps(meta))
    return d


def test_rows_name_model_kind_stimuli_dtype_backend_date_and_status(tmp_path):
    _run(tmp_path, "m", "comprehension-fp32-tl", {"kind": "comprehension", "model": {"hub_id": "org/m"},
                                                  "dtype": "fp32", "backend": "tl", "created_unix": 0,
                                                  "stimuli": {"default": True}})
    _run(tmp_path, "m", "comprehension-fp32-hf-stimabcdef12", {
        "kind": "comprehension", "model": {"hub_id": "org/m"}, "dtype": "fp32", "backend": "hf", "created_unix": 0,
        "stimuli": {"default": False, "comprehension": "/x/theirs.csv", "sha256": "abcdef12" + "0" * 56},
        "method_departures": ["backend hf instead of Table A1's tl (asked for explicitly with --backend)"]})
    (tmp_path / "runs" / "m" / "generation-loose-fp16.partial").mkdir()
    rows = list_runs(tmp_path)
    assert [(r["run"], r["stimuli"], r["backend"], r["status"]) for r in rows] == [
        ("m/comprehension-fp32-hf-stimabcdef12", "/x/theirs.csv (abcdef12)", "hf", "finished, NOT the paper's method"),
        ("m/comprehension-fp32-tl", "emogeo (shipped)", "tl", "finished"),
        ("m/generation-loose-fp16", "?", "?", "partial (rerun the same command to resume)")]
    assert rows[1]["date"] == "1970-01-01 00:00" and rows[1]["model"] == "org/m"
    table = format_rows(rows).splitlines()
    assert table[0].split() == ["model", "run", "kind", "stimuli", "protocol", "dtype", "backend", "date", "status"]
    assert [r["protocol"] for r in rows] == ["corrected", "corrected", "?"]  # HF/TL runs before protocols
    assert len(table) == 5


def test_no_runs_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    assert list_runs() == [] and format_rows([]) == f"no runs under {artifacts.runs_dir()}"


def test_old_layout_folders_are_refused_listed_and_migrated(tmp_path, monkeypatch):
    """A run whose folder name is not the one its config calls for (the old one-folder-per-kind layout)
    is skipped by the analysis, flagged by `runs list`, and moved by `runs migrate`."""
    import json

    from analysis.runindex import list_runs
    from analysis.runs import collect
    from repro import generation as G
    from repro.layout import migrate

    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    cfg = G.PRESETS["protocol_matched"].replace(max_new_tokens=32)
    old = tmp_path / "runs" / "m" / "generation-protocol_matched-fp32"
    old.mkdir(parents=True)
    meta = {"kind": "generation", "preset": "protocol_matched", "precision": "fp32",
            "generation_config": cfg.to_dict(), "stimuli_sha256": G.shipped().generation_digest(),
            "emotions": ["a", "b", "c"], "rdm": [[0, 1, 1], [1, 0, 1], [1, 1, 0]], "created_unix": 0}
    (old / "metadata.json").write_text(json.dumps(meta))
    runs = collect(tmp_path)
    assert not runs.generation and "old layout" in runs.skipped[0] and "tok32" in runs.skipped[0]
    assert list_runs()[0]["status"] == ("old layout (now named generation-protocol_matched-fp32-tok32): "
                                        "invoke runs migrate")
    moved = migrate()
    assert [(o.name, n.name, w) for o, n, w in moved] == [
        ("generation-protocol_matched-fp32", "generation-protocol_matched-fp32-tok32", "moved")]
    assert [g.kind for g in collect(tmp_path).generation] == ["generation-protocol_matched-fp32-tok32"]
    assert list_runs()[0]["status"] == "finished" and migrate() == []
