"""Which weights a run loaded (repro.revisions) and the recorded CUDA determinism settings (repro.machine)."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from repro import artifacts
from repro.extraction import extract
from repro.models import resolve
from repro.options import OptionError
from repro.revisions import PAPER_REVISION_NOTE, folder_digest, with_revision


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" or p.name == "config.json"):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_every_artifact_of_a_local_model_records_its_weights(tiny_model_path):
    from repro.generation import run_generation
    from repro.steering import run_steering

    folder = tiny_model_path("llama")
    want = _digest(folder)
    assert folder_digest(folder)["sha256"] == want
    run = extract(str(folder), progress=False)
    gen = run_generation(str(folder), "protocol_matched", "fp32", max_new_tokens=2, generations_per_template=1,
                         device="cpu", progress=False)
    steer = run_steering(str(folder), max_new_tokens=2, device="cpu", progress=False, strengths=(0.5,))
    for meta in (artifacts.load_metadata(run), artifacts.load_metadata(gen), artifacts.load_metadata(steer)):
        rev = meta["weights_revision"]
        assert rev["source"] == "local" and rev["sha256"] == want and rev["commit"] is None
        assert "model.safetensors" in rev["files"] and "config.json" in rev["files"]
        assert meta["env"]["determinism"]["requested"] == "deterministic on CUDA"


def test_changed_local_weights_change_the_recorded_digest(tiny_model_path, tmp_path):
    import shutil

    src = tiny_model_path("llama")
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert folder_digest(copy)["sha256"] == folder_digest(src)["sha256"]
    cfg = json.loads((copy / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5 if cfg.get("rms_norm_eps") != 1e-5 else 1e-6
    (copy / "config.json").write_text(json.dumps(cfg))
    assert folder_digest(copy)["sha256"] != folder_digest(src)["sha256"]


def test_hub_snapshot_folder_records_its_commit(tiny_model_path, tmp_path):
    import shutil

    from repro.revisions import weights_revision

    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "models--x--y" / "snapshots" / commit
    shutil.copytree(tiny_model_path("llama"), snap)
    rev = weights_revision(resolve(str(snap)), None, str(snap))
    assert rev["commit"] == commit and rev["sha256"] == _digest(snap)


def test_revision_override_is_its_own_run_folder_and_reaches_the_loader(monkeypatch):
    import transformers

    spec = resolve("mistral-7b-instruct-v0.3")
    assert spec.revision is None  # the paper states none: not guessed
    pinned = with_revision(spec, "abc1234")
    assert pinned.revision == "abc1234" and pinned.slug == spec.slug + "@abc1234"
    assert with_revision(spec, None) is spec
    seen = {}

    def fake(src, **kw):
        seen.update(kw, src=src)
        raise OSError("offline")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    from repro.loading import ModelUnavailableError, _load

    with pytest.raises(ModelUnavailableError):
        _load(pinned, "fp32", "cpu")
    assert seen["src"] == spec.hub_id and seen["revision"] == "abc1234"
    seen.clear()
    with pytest.raises(ModelUnavailableError):
        _load(spec, "fp32", "cpu")
    assert "revision" not in seen  # no pin: the hub's main, and the commit it resolves to is recorded


def test_hub_record_names_the_commit_and_why():
    from types import SimpleNamespace

    from repro.revisions import weights_revision

    spec = resolve("llama-3.1-8b")
    model = SimpleNamespace(config=SimpleNamespace(_commit_hash="f" * 40))
    rec = weights_revision(spec, model, spec.hub_id)
    assert rec == {"source": "hub", "repo": "meta-llama/Llama-3.1-8B", "requested": "main",
                   "requested_by": PAPER_REVISION_NOTE, "commit": "f" * 40}
    rec = weights_revision(with_revision(spec, "v1"), model, spec.hub_id)
    assert rec["requested"] == "v1" and rec["requested_by"] == "--revision"


@pytest.mark.parametrize("model,rev,text", [("smollm2-135m-instruct", "main", "hub models only"),
                                            ("llama-3.1-8b", "bad rev!", "branch, tag or commit")])
def test_bad_revision_is_one_line(model, rev, text):
    with pytest.raises(OptionError, match=text):
        with_revision(resolve(model), rev)


def test_determinism_is_set_on_cuda_only_and_recorded(monkeypatch):
    from repro import machine

    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on, warn_only=False: calls.append((on, warn_only)))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)  # restored after the test
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv(machine.NONDETERMINISTIC_ENV, raising=False)
    machine.configure_determinism("cpu")
    assert calls == []  # CPU: nothing changed
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    rec = machine.configure_determinism("cuda:0")
    assert calls == [(True, True)] and torch.backends.cudnn.benchmark is False
    assert rec["cublas_workspace_config"] == ":4096:8" and rec["cudnn_benchmark"] is False
    calls.clear()
    monkeypatch.setenv(machine.NONDETERMINISTIC_ENV, "1")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    rec = machine.configure_determinism("cuda")
    assert calls == [] and rec["requested"] == "nondeterministic (--nondeterministic)" and rec["cudnn_benchmark"]
