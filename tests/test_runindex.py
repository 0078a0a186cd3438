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
    assert table[0].split() == ["model", "run", "kind", "stimuli", "dtype", "backend", "date", "status"]
    assert len(table) == 5


def test_no_runs_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    assert list_runs() == [] and format_rows([]) == f"no runs under {artifacts.runs_dir()}"
