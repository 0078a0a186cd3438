"""Fault injection on the tiny models: concurrency, torn progress, kills, bad input, read-only and full disks.

Every test injects one fault and checks what docs/ARTIFACTS.md ("Faults") promises: nothing is mixed, nothing
already computed is lost, a resumed run equals an uninterrupted one, and the user gets one line naming the fix.
The subprocess tests slow the forward pass down (tests/data/slow_invoke.py) so that two processes really overlap.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repro import artifacts, stimuli
from repro.extraction import extract
from repro.runlock import RunLockedError, lock_path, run_lock

ROOT = Path(__file__).resolve().parent.parent
SLOW = ROOT / "tests" / "data" / "slow_invoke.py"


def _spawn(args, env, delay=0.15):
    """``invoke ARGS`` in a subprocess whose every forward pass sleeps ``delay`` seconds."""
    return subprocess.Popen([sys.executable, str(SLOW), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env, "EMOGEO_TEST_SLOW": str(delay), "EMOGEO_THREADS": "1"})


def _wait_for(path_glob: Path, pattern: str, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list(path_glob.glob(pattern)):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing matched {path_glob}/{pattern} within {timeout}s")


def _other_stimuli(tmp_path) -> Path:
    """A valid comprehension CSV different from the shipped one: every emotion, one passage fewer each."""
    rows = stimuli.load_comprehension()
    keep, seen = [], {}
    for p in rows:
        seen[p.emotion] = seen.get(p.emotion, 0) + 1
        if seen[p.emotion] > 1:
            keep.append(p)
    out = tmp_path / "other.csv"
    import csv

    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "passage_id", "text"])
        for p in keep:
            w.writerow([p.emotion, p.passage_id, p.text])
    return out


def _vectors(run: Path) -> torch.Tensor:
    return artifacts.load_vectors(run)["vectors"]


@pytest.mark.slow
def test_concurrent_mixed_config_extracts_never_mix(tiny_model_path, tmp_path):
    """The hostile trial's case: `extract --force & extract --force --stimuli other.csv`. Two correct runs."""
    model = str(tiny_model_path("llama"))
    other = _other_stimuli(tmp_path)
    env = {"EMOGEO_ARTIFACTS": os.environ["EMOGEO_ARTIFACTS"]}
    a = _spawn(["extract", "--model", model, "--force"], env)
    _wait_for(artifacts.runs_dir(), "*/*.partial/p0000.safetensors")
    b = _spawn(["extract", "--model", model, "--force", "--stimuli", str(other)], env)
    outs = [p.communicate(timeout=300) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    runs = sorted(p for p in artifacts.runs_dir().glob("*/comprehension-*") if p.is_dir()
                  and not p.name.endswith(".partial"))
    assert len(runs) == 2, runs  # the stimuli digest is in the run's name: two folders, never one mixed
    # Each equals a clean, sequential run of its own config, bit for bit.
    for run in runs:
        meta = artifacts.load_metadata(run)
        got = _vectors(run)
        clean = extract(model, stimuli_path=meta["config"]["stimuli"], force=True, progress=False)
        assert clean == run
        assert torch.equal(got, _vectors(clean)), run
        assert meta["resume"]["discarded_partial"] == []


@pytest.mark.slow
def test_concurrent_same_run_one_clear_refusal(tiny_model_path):
    """Two writers of the SAME run: the second is refused in one line (exit 2), the first's run is whole."""
    model = str(tiny_model_path("llama"))
    env = {"EMOGEO_ARTIFACTS": os.environ["EMOGEO_ARTIFACTS"]}
    a = _spawn(["extract", "--model", model, "--force"], env, delay=1.0)  # ~20 s: B starts well inside it
    _wait_for(artifacts.runs_dir(), "*/*.partial/p0000.safetensors")
    b = _spawn(["extract", "--model", model, "--force"], env)
    out_b = b.communicate(timeout=300)
    out_a = a.communicate(timeout=300)
    assert a.returncode == 0, out_a
    assert b.returncode == 2, out_b
    err = [ln for ln in out_b[1].splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "being written by another process" in err[0] and f"pid {a.pid}" in err[0], out_b
    assert "Traceback" not in out_b[1]
    run = next(p for p in artifacts.runs_dir().glob("*/comprehension-fp32-tl"))
    assert torch.equal(_vectors(run), _vectors(extract(model, force=True, progress=False)))


def test_lock_refuses_second_holder_and_frees_on_release(tiny_lm):
    lm = tiny_lm("llama")
    run = extract(lm.spec, lm=lm, progress=False)
    before = _vectors(run)
    with run_lock(run):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            extract(lm.spec, lm=lm, progress=False, force=True)
    assert torch.equal(_vectors(run), before)  # the refused writer touched nothing
    assert not Path(str(run) + ".partial").exists()
    again = extract(lm.spec, lm=lm, progress=False, force=True)  # released: the next writer proceeds
    assert torch.equal(_vectors(again), before)


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    final = artifacts.run_dir("m", "comprehension-fp32-tl")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from repro.runlock import run_lock\n"
        "with run_lock(sys.argv[2]):\n    print('held', flush=True); time.sleep(60)"), str(ROOT), str(final)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
        with run_lock(final):
            pass
    holder.kill()
    holder.wait(timeout=30)
    said = []
    with run_lock(final, log=said.append) as path:  # the kernel dropped the dead holder's lock
        assert path == lock_path(final)
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert said and f"stale lock of pid {holder.pid}" in said[0]


def test_torn_and_foreign_partial_batches_are_recomputed(tiny_lm, monkeypatch):
    """A corrupt batch file and one written for another config are discarded, said so, recomputed."""
    lm = tiny_lm("llama")
    clean = _vectors(extract(lm.spec, lm=lm, progress=False))
    from repro import backends

    calls = {"n": 0}
    real = backends.TLBackend.residuals

    def dies_on_third(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the sweep
        return real(self, *a, **k)

    monkeypatch.setattr(backends.TLBackend, "residuals", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract(lm.spec, lm=lm, progress=False, force=True)
    monkeypatch.setattr(backends.TLBackend, "residuals", real)
    partial = next(artifacts.runs_dir().glob("*/*.partial"))
    done = sorted(partial.glob("p*.safetensors"))
    assert [p.name for p in done] == ["p0000.safetensors", "p0001.safetensors"]
    done[0].write_bytes(b"\xff" * 64)  # torn / corrupt: "header too large" in safetensors
    from safetensors.torch import save_file

    save_file({"acts": torch.zeros(4, 16, 64)}, str(done[1]), metadata={"config_hash": "0" * 16})  # foreign
    run = extract(lm.spec, lm=lm, progress=False, force=True)
    meta = artifacts.load_metadata(run)
    assert len(meta["resume"]["discarded_partial"]) == 2
    assert torch.equal(_vectors(run), clean)


def test_partial_batch_files_carry_the_config_hash(tmp_path):
    store = artifacts.PartialStore(tmp_path / "run", {"a": 1})
    store.save("b0", {"x": torch.ones(2)})
    assert torch.equal(store.get("b0")["x"], torch.ones(2))
    other = artifacts.PartialStore(tmp_path / "run2", {"a": 2})
    os.replace(store.dir / "b0.safetensors", other.dir / "b0.safetensors")  # swapped between runs
    assert other.get("b0") is None and not (other.dir / "b0.safetensors").exists()
    assert "written for config" in other.discarded[0]
    store.save_json("u", {"k": 1})
    assert store.get_json("u") == {"k": 1}
    (store.dir / "u.json").write_text("{not json")
    assert store.get_json("u") is None and store.discarded
