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


# ---- kills and Ctrl-C: the resume recomputes only the unfinished batches and equals a clean run ----------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_extract_resumes_bit_equal(tiny_model_path, sig):
    model = str(tiny_model_path("qwen2"))
    env = {"EMOGEO_ARTIFACTS": os.environ["EMOGEO_ARTIFACTS"]}
    proc = _spawn(["extract", "--model", model], env, delay=0.5)
    _wait_for(artifacts.runs_dir(), "*/*.partial/p0002.safetensors")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:  # Ctrl-C: one line, exit 130
        assert proc.returncode == 130, (out, err)
        said = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
        assert len(said) == 1 and "rerun the same command to resume" in said[0], err
        assert "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    partial = next(artifacts.runs_dir().glob("*/*.partial"))
    done = len(list(partial.glob("p*.safetensors")))
    assert done >= 3
    run = extract(model, progress=False)  # the same command again: resumes
    meta = artifacts.load_metadata(run)
    assert meta["resume"] == {"reused_batches": done, "discarded_partial": []}
    assert not partial.exists()
    assert torch.equal(_vectors(run), _vectors(extract(model, progress=False, force=True)))


def test_task_guard_turns_interrupts_and_full_disks_into_one_line(capsys):
    import errno

    from invoke import Context

    import tasks

    def raiser(exc):
        def body(c):
            raise exc
        body.__name__ = "demo"
        return tasks.task(body).body

    for exc, code, text in [(KeyboardInterrupt(), 130, "interrupted: finished work is kept"),
                            (OSError(errno.ENOSPC, "No space left on device", "/x/run"), 2, "error: disk full (/x/run)"),
                            (OSError(errno.EROFS, "Read-only file system"), 2, "error: read-only file system")]:
        with pytest.raises(SystemExit) as ex:
            raiser(exc)(Context())
        assert ex.value.code == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(text), err


# ---- read-only folders and full disks -------------------------------------------------------------------------

def _refuse_writes_under(monkeypatch, folder: Path, err=None):
    """Every file or folder creation under ``folder`` fails like a read-only mount (or with ``err``)."""
    import errno
    import tempfile

    code = err or errno.EROFS
    folder = Path(folder).resolve()

    def under(p):
        try:
            Path(p).resolve().relative_to(folder)
            return True
        except ValueError:
            return False

    def guard(real, arg_of):
        def wrapped(*a, **k):
            target = arg_of(a, k)
            if target is not None and under(target):
                raise OSError(code, os.strerror(code), str(target))
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(tempfile, "mkstemp", guard(tempfile.mkstemp, lambda a, k: k.get("dir")))
    monkeypatch.setattr(tempfile, "mkdtemp", guard(tempfile.mkdtemp, lambda a, k: k.get("dir")))
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        if under(self) and not self.exists():
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, flags, *a, **k: (_ for _ in ()).throw(OSError(code, os.strerror(code), p))
                        if (flags & os.O_CREAT) and under(p) else real_open(p, flags, *a, **k))


def test_read_only_artifacts_fail_before_any_compute(tiny_model_path, monkeypatch):
    from repro.loading import LOADS

    model = str(tiny_model_path("llama"))
    root = artifacts.runs_dir().parent
    root.mkdir(parents=True, exist_ok=True)
    _refuse_writes_under(monkeypatch, root)
    n = len(LOADS)
    with pytest.raises(artifacts.ArtifactError, match="cannot write runs to .*read-only file system"):
        extract(model, progress=False)
    assert len(LOADS) == n  # refused before the model was even loaded
    from repro.generation import run_generation

    with pytest.raises(artifacts.ArtifactError, match="read-only"):
        run_generation(model, "protocol_matched", "fp32", max_new_tokens=2, progress=False)
    assert len(LOADS) == n


def test_verify_still_reports_on_a_read_only_tree(monkeypatch, capsys):
    import shutil

    from analysis import verify

    tree = Path(os.environ["EMOGEO_ARTIFACTS"]).parent / "tree"
    shutil.copytree(ROOT / "artifacts" / "reference", tree / "artifacts" / "reference")
    (tree / "checksums").mkdir()
    shutil.copyfile(ROOT / "checksums" / "reference.sha256", tree / "checksums" / "reference.sha256")
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tree / "artifacts"))
    writable = verify.run_verify(tree, write=False).exit_code
    _refuse_writes_under(monkeypatch, tree)
    code = verify.main(root=tree)
    assert code == writable and code in (0, 1)  # the claims' verdict, never a crash
    captured = capsys.readouterr()
    assert "not written (Read-only file system)" in captured.err
    assert "PASS" in captured.out
    assert not (tree / "artifacts" / "verify").exists()


def test_disk_full_mid_run_leaves_no_half_file_and_resumes(tiny_lm, monkeypatch):
    import errno

    import safetensors.torch as st

    lm = tiny_lm("llama")
    clean = _vectors(extract(lm.spec, lm=lm, progress=False))
    real = st.save_file
    calls = {"n": 0}

    def full_on_fourth(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 4:
            Path(filename).write_bytes(b"\0" * 10)  # a torn temp file, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(st, "save_file", full_on_fourth)
    with pytest.raises(OSError) as exc:
        extract(lm.spec, lm=lm, progress=False, force=True)
    assert exc.value.errno == errno.ENOSPC
    monkeypatch.setattr(st, "save_file", real)
    run_parent = artifacts.runs_dir() / lm.spec.slug
    leftovers = [p.name for p in run_parent.rglob(".*") if p.name != ".locks"]
    assert leftovers == [], leftovers  # no temp file, no half artifact under any name
    assert torch.equal(_vectors(run_parent / "comprehension-fp32-tl"), clean)  # the old run is whole
    run = extract(lm.spec, lm=lm, progress=False, force=True)
    meta = artifacts.load_metadata(run)
    assert meta["resume"]["reused_batches"] == 3 and meta["resume"]["discarded_partial"] == []
    assert torch.equal(_vectors(run), clean)


def test_disk_full_in_a_json_write_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "x.json"
    artifacts.write_json_atomic(target, {"v": 1})
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OSError):
        artifacts.write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_run_files_are_readable_by_others(tiny_lm):
    import stat

    lm = tiny_lm("llama")
    run = extract(lm.spec, lm=lm, progress=False)
    assert stat.S_IMODE(run.stat().st_mode) == 0o755
    for f in run.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_a_stray_pickle_is_flagged_and_never_loaded(tiny_lm, monkeypatch):
    import pickle

    from analysis.runindex import list_runs

    lm = tiny_lm("llama")
    run = extract(lm.spec, lm=lm, progress=False)
    (run / "evil.pkl").write_bytes(pickle.dumps({"x": 1}))
    (run / ".hidden").write_text("x")
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a pickle was loaded"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    row = next(r for r in list_runs() if r["run"].endswith(run.name))
    assert "UNEXPECTED FILES" in row["status"] and "evil.pkl" in row["status"] and ".hidden" in row["status"]
    assert extract(lm.spec, lm=lm, progress=False) == run  # the finished run is reused; nothing unpickled
    artifacts.load_vectors(run)


# ---- bad input: every one ends in one line naming the fix (exit 2), before any compute ----------------------------

def _stimuli_case(tmp_path, case: str) -> Path:
    import csv

    rows = [(p.emotion, p.passage_id, p.text) for p in stimuli.load_comprehension()]
    path = tmp_path / f"{case}.csv"

    def write(data, header=True, encoding="utf-8"):
        with open(path, "w", newline="", encoding=encoding) as f:
            w = csv.writer(f)
            if header:
                w.writerow(["emotion", "passage_id", "text"])
            w.writerows(data)

    if case == "missing":
        return tmp_path / "nope.csv"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_text("")
    elif case == "header_only":
        write([])
    elif case == "utf16":
        write(rows, encoding="utf-16")
    elif case == "binary":
        path.write_bytes(bytes(range(128, 256)) * 8)
    elif case == "lacks_an_emotion":
        write([r for r in rows if r[0] != "angry"])
    elif case == "unknown_label":
        write(rows + [("grumpy", "grumpy_01", "He grumbled at the rain.")])
    elif case == "duplicate_id":
        write(rows + [rows[0]])
    elif case == "huge_text":
        write(rows[:-1] + [(rows[-1][0], rows[-1][1], "word " * 40000)])
    elif case == "quotes_newlines_emoji":  # valid: must be accepted as written
        write(rows[:-1] + [(rows[-1][0], rows[-1][1], 'She said "wait,\nplease" 😀, then left.')])
    return path


STIMULI_CASES = {"missing": "file not found", "directory": "is a directory", "empty": "no data rows",
                 "header_only": "only a header", "utf16": "UTF-16", "binary": "not UTF-8",
                 "lacks_an_emotion": "missing emotion(s)", "unknown_label": "unknown emotion 'grumpy'",
                 "duplicate_id": "duplicate passage_id", "huge_text": "longer than"}


@pytest.mark.parametrize("case", sorted(STIMULI_CASES))
def test_bad_stimuli_file_is_one_line(tmp_path, case):
    with pytest.raises(stimuli.StimulusError) as exc:
        stimuli.load_comprehension(_stimuli_case(tmp_path, case))
    msg = str(exc.value)
    assert STIMULI_CASES[case] in msg and "\n" not in msg, msg


def test_quotes_newlines_and_emoji_are_read_as_written(tmp_path):
    got = stimuli.load_comprehension(_stimuli_case(tmp_path, "quotes_newlines_emoji"))
    assert got[-1].text == 'She said "wait,\nplease" 😀, then left.'


def _bad_model_dir(tmp_path, case):
    d = tmp_path / case
    d.mkdir()
    if case == "empty_config":
        (d / "config.json").write_text("{}")
    elif case == "broken_config":
        (d / "config.json").write_text("{not json")
    elif case == "empty_gguf":
        (d / "model.gguf").write_bytes(b"")
    return d


@pytest.mark.parametrize("case,text", [("empty_config", "names no model_type"), ("broken_config", "not readable JSON"),
                                       ("empty_gguf", "empty or not a GGUF"), ("no_files", "neither config.json")])
def test_bad_model_directory_is_one_line(tmp_path, case, text):
    from repro.models import UnknownModelError, resolve

    with pytest.raises(UnknownModelError, match=text):
        resolve(str(_bad_model_dir(tmp_path, case)))


BAD_OPTIONS = [
    # (call, expected text): every one is refused before a model is loaded
    (lambda m: extract(m, dtype="fp8"), "--dtype 'fp8': choose one of fp16, bf16, fp32"),
    (lambda m: extract(m, dtype="FP16"), "did you mean fp16?"),
    (lambda m: extract(m, dtype=""), "--dtype ''"),
    (lambda m: extract(m, backend="foo"), "--backend 'foo': choose one of auto, tl, hf"),
    (lambda m: extract(m, device="gpu"), "--device 'gpu': choose cpu, cuda or cuda:N"),
    pytest.param(lambda m: extract(m, device="cuda"), "no CUDA device is visible",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible here")),
    (lambda m: extract(m, batch_size=0), "--batch-size 0: must be at least 1"),
    (lambda m: _gen(m, max_new_tokens=0), "--max-new-tokens 0: must be at least 1"),
    (lambda m: _gen(m, max_new_tokens=-5), "--max-new-tokens -5: must be at least 1"),
    (lambda m: _gen(m, max_new_tokens="abc"), "--max-new-tokens 'abc': give a whole number"),
    (lambda m: _gen(m, generations_per_template=0), "--generations-per-template 0"),
    (lambda m: _gen(m, precision="fp8"), "--precision 'fp8'"),
    (lambda m: _gen(m, preset_name="strict"), "--preset 'strict'"),
    (lambda m: _steer(m, max_new_tokens=0), "--max-new-tokens 0"),
    (lambda m: _steer(m, layers="middle"), "--layers 'middle'"),
    (lambda m: _ablate(m, max_new_tokens=-1), "--max-new-tokens -1"),
    (lambda m: _reproduce(m, dtype="fp8"), "--dtype 'fp8'"),
    (lambda m: _reproduce(m, max_new_tokens="0"), "--max-new-tokens 0"),
    (lambda m: _reproduce(m, max_new_tokens="abc"), "--max-new-tokens 'abc'"),
    (lambda m: _reproduce(m, stimuli_set="nosuchset"), "stimuli set 'nosuchset' not found"),
]


def _gen(m, **kw):
    from repro.generation import run_generation

    return run_generation(m, **{"progress": False, **kw})


def _steer(m, **kw):
    from repro.steering import run_steering

    return run_steering(m, progress=False, **kw)


def _ablate(m, **kw):
    from repro.ablation import run_ablation

    return run_ablation(m, progress=False, **kw)


def _reproduce(m, max_new_tokens=None, **kw):
    from emogeo.pipeline import default_options, reproduce

    return reproduce(m, default_options(max_new_tokens=max_new_tokens, **kw))


@pytest.mark.parametrize("call,text", BAD_OPTIONS)
def test_bad_option_is_refused_before_any_compute(tiny_model_path, call, text):
    from repro.loading import LOADS

    model = str(tiny_model_path("llama"))
    n = len(LOADS)
    with pytest.raises(ValueError) as exc:  # OptionError, StimulusError: both one-line ValueErrors
        call(model)
    assert text in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert len(LOADS) == n, "a model was loaded before the option was checked"
    assert not (artifacts.runs_dir().parent / "reproduce.json").exists()


@pytest.mark.parametrize("args,text", [
    (["reproduce", "--max-new-tokens", "0"], "--max-new-tokens 0: must be at least 1"),
    (["reproduce", "--dtype", "fp8"], "--dtype 'fp8'"),
    (["extract", "--dtype", "FP16"], "did you mean fp16?"),
    (["steer", "--max-new-tokens", "-5"], "--max-new-tokens -5"),
])
def test_bad_options_on_the_command_line_are_one_line(args, text):
    proc = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and text in err[0], proc.stderr


def test_fake_hf_token_is_never_written(tiny_model_path, monkeypatch):
    """HF_TOKEN reaches the hub loader only: no artifact, log or cache file holds it."""
    from repro.generation import run_generation

    token = "hf_FAKEfaketokenDoNotUse0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    model = str(tiny_model_path("llama"))
    extract(model, progress=False)
    run_generation(model, "protocol_matched", "fp32", max_new_tokens=2, generations_per_template=1, progress=False)
    from analysis.report import build_report

    build_report(from_reference=False)
    written = [p for p in artifacts.runs_dir().parent.rglob("*") if p.is_file()]
    assert len(written) > 5
    for p in written:
        assert token.encode() not in p.read_bytes(), p


@pytest.mark.slow
def test_killed_generation_resumes_unit_by_unit(tiny_model_path):
    from repro.generation import run_generation

    model = str(tiny_model_path("llama"))
    env = {"EMOGEO_ARTIFACTS": os.environ["EMOGEO_ARTIFACTS"]}
    args = ["generate", "--model", model, "--precision", "fp32", "--max-new-tokens", "4",
            "--generations-per-template", "1", "--device", "cpu"]
    proc = _spawn(args, env, delay=0.3)
    _wait_for(artifacts.runs_dir(), "*/*.partial/unit-*.json")
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    partial = next(artifacts.runs_dir().glob("*/generation-*.partial"))
    saved = len(list(partial.glob("unit-*.json")))
    assert saved >= 1
    kw = dict(max_new_tokens=4, generations_per_template=1, device="cpu", progress=False)
    run = run_generation(model, "protocol_matched", "fp32", **kw)
    meta = artifacts.load_metadata(run)
    assert meta["counts"]["resumed_units"] == saved and meta["counts"]["discarded_partial"] == []
    clean = run_generation(model, "protocol_matched", "fp32", force=True, **kw)
    assert torch.allclose(_vectors(run), _vectors(clean), atol=1e-5)


@pytest.mark.slow
def test_interrupted_reproduce_reuses_finished_stages(tiny_model_path):
    from emogeo.pipeline import ReproduceOptions, reproduce

    model = str(tiny_model_path("llama"))
    env = {"EMOGEO_ARTIFACTS": os.environ["EMOGEO_ARTIFACTS"]}
    proc = _spawn(["reproduce", "--models", model, "--max-new-tokens", "2"], env, delay=0.2)
    _wait_for(artifacts.runs_dir(), "*/comprehension-fp32-tl/metadata.json", timeout=120)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert any(ln.startswith("interrupted:") for ln in err.splitlines()), err[-2000:]
    opt = ReproduceOptions(max_new_tokens=2, generation=False, ablation=False, steering=False, report=False)
    results = reproduce(model, opt)
    extract_stage = next(r for r in results if r.stage == "extract")
    assert extract_stage.status == "reused" and "not recomputed" in extract_stage.note


def test_read_only_model_cache_is_one_line_before_the_conversion(tmp_path, monkeypatch):
    from repro.loading import ModelUnavailableError, load_model
    from repro.models import resolve

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("EMOGEO_CACHE", str(cache))
    _refuse_writes_under(monkeypatch, cache)
    with pytest.raises(ModelUnavailableError, match="cannot write the model cache .*read-only.*EMOGEO_CACHE"):
        load_model(resolve("smollm2-135m-instruct"), "fp32", "cpu")
    assert list(cache.rglob("*")) == []
