"""The invoke layer: every task listed with help, user errors end in one clear line."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _invoke(*args, env=None):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_list_shows_tasks_with_help():
    out = _invoke("--list").stdout
    for name in ("extract", "equivalence", "bench", "reproduce", "test"):
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(name + " ")), "")
        assert line.strip() != name and len(line.split()) > 1, f"task {name} missing or without help: {out}"


def test_unknown_model_is_one_clear_error():
    proc = _invoke("extract", "--model", "no-such-model")
    assert proc.returncode == 2
    assert "unknown model 'no-such-model'" in proc.stderr and "Traceback" not in proc.stderr
    assert "smollm2-135m-instruct" in proc.stderr  # the aliases are listed


def test_missing_stimuli_file_is_named(tmp_path):
    proc = _invoke("extract", "--stimuli", str(tmp_path / "nope.csv"))
    assert proc.returncode == 2 and "nope.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_offline_hub_model_says_so(tmp_path):
    proc = _invoke("extract", "--model", "qwen2.5-1.5b", env={"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert "Qwen/Qwen2.5-1.5B" in proc.stderr and "hub" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_protocol_and_malformed_quirk_are_one_line():
    proc = _invoke("extract", "--protocol", "faithful")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown protocol 'faithful'" in proc.stderr and "--protocol corrected" in proc.stderr
    proc = _invoke("report", "--quirk", "hf_neutral_first10=maybe")
    assert proc.returncode == 2 and "write ID=on or ID=off" in proc.stderr and "Traceback" not in proc.stderr
