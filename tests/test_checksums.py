"""sha256 manifests (analysis.checksums): format, and each kind of tampering found with its path."""
import hashlib
import shutil
from pathlib import Path

import pytest

from analysis import checksums as cs

REPO = Path(__file__).resolve().parent.parent
N12 = "artifacts/reference/released/paper5/analysis/n12_output/n12_analysis_results.json"
XB = "artifacts/reference/released/paper5/analysis/h2_pilot/cross_backend_test.json"
H2 = "artifacts/reference/released/paper5/analysis/h2_pilot/h2_pilot_results.json"


@pytest.fixture
def tree(tmp_path):
    """A copy of artifacts/reference and its committed manifest (nothing else)."""
    shutil.copytree(REPO / "artifacts" / "reference", tmp_path / "artifacts" / "reference")
    (tmp_path / "checksums").mkdir()
    shutil.copyfile(REPO / "checksums" / "reference.sha256", tmp_path / "checksums" / "reference.sha256")
    return tmp_path


def test_committed_manifest_matches_tree_and_format():
    text = (REPO / "checksums" / "reference.sha256").read_text()
    lines = text.splitlines()
    paths = [ln.split("  ", 1)[1] for ln in lines]
    assert paths == sorted(paths) and all(p.startswith("artifacts/reference/") for p in paths)
    assert "artifacts/reference/paper_numbers.json" in paths and "artifacts/reference/released/PROVENANCE.json" in paths
    for ln in lines:
        digest, rel = ln.split("  ", 1)
        assert hashlib.sha256((REPO / rel).read_bytes()).hexdigest() == digest
    assert cs.check_manifest(REPO, "reference") == []


def test_untouched_copy_is_clean(tree):
    assert cs.check_manifest(tree, "reference") == []
    rows = cs.integrity(tree)
    assert [r["status"] for r in rows] == ["OK", "NOT RUN"] and not cs.integrity_failed(rows)


def test_flipped_byte_is_modified(tree):
    p = tree / N12
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))
    [f] = cs.check_manifest(tree, "reference")
    assert (f.path, f.status) == (N12, cs.MODIFIED)
    assert cs.integrity_failed(cs.integrity(tree))


def test_deleted_file_is_missing(tree):
    (tree / XB).unlink()
    [f] = cs.check_manifest(tree, "reference")
    assert (f.path, f.status) == (XB, cs.MISSING)


def test_extra_file_is_unexpected(tree):
    extra = tree / "artifacts/reference/released/extra.json"
    extra.write_text("{}")
    [f] = cs.check_manifest(tree, "reference")
    assert (f.path, f.status) == ("artifacts/reference/released/extra.json", cs.UNEXPECTED)


def test_renamed_file_is_missing_plus_unexpected_with_hint(tree):
    (tree / XB).rename(tree / (XB + ".bak"))
    found = {f.path: f for f in cs.check_manifest(tree, "reference")}
    assert found[XB].status == cs.MISSING
    assert found[XB + ".bak"].status == cs.UNEXPECTED and "renamed" in found[XB + ".bak"].detail


def test_swapped_files_are_swapped(tree):
    a, b = tree / XB, tree / H2
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    found = {f.path: f.status for f in cs.check_manifest(tree, "reference")}
    assert found == {XB: cs.SWAPPED, H2: cs.SWAPPED}


def test_two_independent_edits_are_not_a_swap(tree):
    for rel in (XB, H2):
        (tree / rel).write_bytes((tree / rel).read_bytes() + b"\n")
    assert {f.status for f in cs.check_manifest(tree, "reference")} == {cs.MODIFIED}


def test_temp_and_partial_files_are_skipped(tmp_path):
    run = tmp_path / "artifacts/runs/m/comprehension-fp32-tl"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text("{}")
    (run / ".metadata.json.abc123").write_text("tmp")
    (tmp_path / "artifacts/runs/m/comprehension-fp16-tl.partial").mkdir()
    (tmp_path / "artifacts/runs/m/comprehension-fp16-tl.partial/p0.safetensors").write_text("x")
    (tmp_path / "artifacts/runs/m/.comprehension-fp16-hf.tmp-xyz").mkdir()
    (tmp_path / "artifacts/runs/m/.comprehension-fp16-hf.tmp-xyz/metadata.json").write_text("x")
    assert cs.tracked_files(tmp_path, "artifacts/runs") == ["artifacts/runs/m/comprehension-fp32-tl/metadata.json"]


def test_runs_manifest_written_only_with_runs(tree):
    out = cs.write_all(tree)
    assert out["runs"] is None and not cs.manifest_path(tree, "runs").exists()
    run = tree / "artifacts/runs/m/comprehension-fp32-tl"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text("{}")
    out = cs.write_all(tree)
    assert out["runs"] == cs.manifest_path(tree, "runs")
    assert [r["status"] for r in cs.integrity(tree)] == ["OK", "OK"]
    (run / "metadata.json").write_text('{"changed": 1}')
    rows = cs.integrity(tree)
    assert cs.integrity_failed(rows)
    assert any(r["path"] == "artifacts/runs/m/comprehension-fp32-tl/metadata.json" and r["status"] == cs.MODIFIED
               for r in rows)
    cs.write_all(tree, accept_changes=True)  # the change was ours: re-stamped on request only
    assert [r["status"] for r in cs.integrity(tree)] == ["OK", "OK"]
    shutil.rmtree(tree / "artifacts/runs")
    cs.write_all(tree)  # no runs any more: the stale runs manifest goes
    assert not cs.manifest_path(tree, "runs").exists()


def test_missing_reference_manifest_is_a_failure(tree):
    (tree / "checksums/reference.sha256").unlink()
    rows = cs.integrity(tree)
    assert rows[0]["status"] == "FAIL" and cs.integrity_failed(rows)


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        cs.parse_manifest("not a manifest line\n")


def test_a_changed_listed_file_is_never_re_stamped_silently(tree):
    run = tree / "artifacts/runs/m/comprehension-fp32-tl"
    run.mkdir(parents=True)
    (run / "vectors.safetensors").write_bytes(b"\x00" * 64)
    cs.write_all(tree)
    blob = bytearray((run / "vectors.safetensors").read_bytes())
    blob[10] ^= 1  # one flipped byte
    (run / "vectors.safetensors").write_bytes(bytes(blob))
    before = cs.manifest_path(tree, "runs").read_text()
    with pytest.raises(cs.ManifestMismatch, match=r"comprehension-fp32-tl/vectors.safetensors \(MODIFIED\).*"
                                                  r"--accept-changes"):
        cs.write_all(tree)
    with pytest.raises(cs.ManifestMismatch):
        cs.check_unchanged(tree)  # what invoke reproduce runs before any stage
    assert cs.manifest_path(tree, "runs").read_text() == before  # nothing re-stamped
    assert cs.integrity_failed(cs.integrity(tree))
    # a new run is an addition, not a change: stamped without asking
    cs.write_all(tree, accept_changes=True)
    (tree / "artifacts/runs/m/other").mkdir()
    (tree / "artifacts/runs/m/other/metadata.json").write_text("{}")
    cs.write_all(tree)
    assert [r["status"] for r in cs.integrity(tree)] == ["OK", "OK"]


def test_reference_manifest_is_written_only_on_purpose(tree):
    before = (tree / "checksums/reference.sha256").read_text()
    p = tree / N12
    p.write_text(p.read_text().replace("0.", "0.9", 1))  # a changed reference value
    cs.write_all(tree)  # runs only: the reference manifest is left alone
    assert (tree / "checksums/reference.sha256").read_text() == before
    with pytest.raises(cs.ManifestMismatch, match="reference.sha256.*--reference --accept-changes"):
        cs.write_all(tree, reference=True)
    cs.write_all(tree, reference=True, accept_changes=True)
    assert cs.check_manifest(tree, "reference") == []


def test_runs_without_a_manifest_fail_integrity(tree):
    run = tree / "artifacts/runs/m/comprehension-fp32-tl"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text("{}")
    rows = cs.integrity(tree)
    assert rows[1]["status"] == "FAIL" and "no runs manifest" in rows[1]["detail"] and cs.integrity_failed(rows)


def test_reproduce_stops_on_tampered_runs_and_exits_with_verify(tree, monkeypatch):
    """invoke reproduce: a tampered run stops it before any stage; a failing verify stage fails the run."""
    from emogeo import pipeline

    run = tree / "artifacts/runs/m/comprehension-fp32-tl"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text("{}")
    cs.write_all(tree)
    (run / "metadata.json").write_text('{"edited": true}')
    original = cs.check_unchanged
    monkeypatch.setattr(cs, "check_unchanged", lambda names=("reference", "runs"): original(tree, names))
    ran = []
    monkeypatch.setattr(pipeline, "resolve_many", lambda models: [])
    monkeypatch.setattr(pipeline.artifacts, "runs_dir", lambda: tree / "artifacts" / "runs")

    def verify():
        ran.append("verify")
        raise pipeline.VerifyFailed(1, "verify exit code 1")

    monkeypatch.setattr(pipeline, "_closing_stages", lambda *a: [("verify", verify)])
    with pytest.raises(cs.ManifestMismatch, match="metadata.json"):
        pipeline.reproduce("embedded", pipeline.ReproduceOptions())
    assert ran == []  # refused before any stage
    results = pipeline.reproduce("embedded", pipeline.ReproduceOptions(accept_changes=True))
    assert ran == ["verify"] and [(r.stage, r.status, r.exit_code) for r in results] == [("verify", "failed", 1)]
