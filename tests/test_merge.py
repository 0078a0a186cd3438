"""invoke runs merge: runs from another machine's artifact root come in checked, atomically, never over a
different run of the same name; every run folder carries its own SHA256SUMS."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro import artifacts
from repro.extraction import extract
from repro.merge import MergeConflict, merge

ROOT = Path(__file__).resolve().parent.parent


def _run_in(root: Path, monkeypatch, model, **kw):
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(root))
    return extract(model, progress=False, **kw)


def test_every_run_folder_carries_sha256sums_that_catch_an_edit(tiny_lm):
    lm = tiny_lm("llama")
    run = extract(lm.spec, lm=lm, progress=False)
    assert artifacts.check_run_sums(run) == []
    listed = (run / artifacts.RUN_SUMS).read_text()
    assert "metadata.json" in listed and "vectors.safetensors" in listed
    proc = subprocess.run(["sha256sum", "-c", artifacts.RUN_SUMS], cwd=run, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout  # the usual tool reads it too
    meta = json.loads((run / "metadata.json").read_text())
    meta["best_layer"] = 0
    (run / "metadata.json").write_text(json.dumps(meta))
    assert artifacts.check_run_sums(run) == ["metadata.json: changed"]


def test_merge_copies_runs_from_two_machines_and_the_analysis_sees_them(tiny_model_path, tmp_path, monkeypatch):
    a, b, here = tmp_path / "podA", tmp_path / "podB", tmp_path / "here"
    llama, qwen = str(tiny_model_path("llama")), str(tiny_model_path("qwen2"))
    ra = _run_in(a, monkeypatch, llama)
    rb = _run_in(b, monkeypatch, qwen)
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(here))
    done = merge([a, b])
    assert sorted((m.run, m.action) for m in done) == [("llama/comprehension-fp32-tl", "copied"),
                                                      ("qwen2/comprehension-fp32-tl", "copied")]
    for src in (ra, rb):
        got = here / "runs" / src.parent.name / src.name
        assert artifacts.check_run_sums(got) == []
        assert torch.equal(artifacts.load_vectors(got)["vectors"], artifacts.load_vectors(src)["vectors"])
    from analysis.runindex import list_runs

    assert {r["run"] for r in list_runs()} == {"llama/comprehension-fp32-tl", "qwen2/comprehension-fp32-tl"}
    # merging again changes nothing
    assert {m.action for m in merge([a, b])} == {"already here"}


def test_merge_refuses_a_conflicting_run_naming_both(tiny_model_path, tmp_path, monkeypatch):
    llama = str(tiny_model_path("llama"))
    here, pod = tmp_path / "here", tmp_path / "pod"
    mine = _run_in(here, monkeypatch, llama)
    theirs = _run_in(pod, monkeypatch, llama, batch_size=8)  # the same name, another config (batch size)
    assert mine.name == theirs.name and _hash(mine) != _hash(theirs)
    before = (mine / "metadata.json").read_bytes()
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(here))
    with pytest.raises(MergeConflict) as exc:
        merge([pod])
    msg = str(exc.value)
    assert str(mine) in msg and str(theirs) in msg and "differ" in msg and "\n" not in msg
    assert (mine / "metadata.json").read_bytes() == before  # nothing touched


def test_merge_refuses_a_damaged_run_before_copying_anything(tiny_model_path, tmp_path, monkeypatch):
    a, b, here = tmp_path / "a", tmp_path / "b", tmp_path / "here"
    _run_in(a, monkeypatch, str(tiny_model_path("llama")))
    rb = _run_in(b, monkeypatch, str(tiny_model_path("qwen2")))
    with open(rb / "vectors.safetensors", "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\1")
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(here))
    with pytest.raises(MergeConflict, match="SHA256SUMS do not hold .*vectors.safetensors: changed"):
        merge([a, b])
    assert not (here / "runs").exists() or not list((here / "runs").rglob("metadata.json"))


def test_runs_merge_on_the_command_line(tiny_model_path, tmp_path, monkeypatch):
    _run_in(tmp_path / "pod", monkeypatch, str(tiny_model_path("llama")))
    env = {**os.environ, "EMOGEO_ARTIFACTS": str(tmp_path / "here")}
    proc = subprocess.run([sys.executable, "-m", "invoke", "runs", "merge", str(tmp_path / "pod")], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "copied        llama/comprehension-fp32-tl" in proc.stdout and "1 run(s) copied" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "invoke", "runs", "merge", str(tmp_path / "nowhere")], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: ") and "no such artifact root" in proc.stderr


def _hash(run):
    return artifacts.load_metadata(run)["config_hash"]
