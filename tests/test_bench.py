"""`invoke bench`: the original counted as it runs, and the main job timed stage by stage with its machine."""
import json

import pytest

from tools.bench import original_passes
from tools.bench_reproduce import bound


def test_original_is_counted_as_its_script_runs_it():
    # paper5_extract.py: one pass per layer of the sweep, then one per target layer (25/50/75%, best).
    assert original_passes(30) == 34 and original_passes(24) == 28


def test_bound_reads_cpu_time_against_wall_time():
    assert bound(10.0, 19.0, 2) == {"utilisation": 0.95, "bound": "compute or memory bandwidth (cores busy)"}
    assert bound(10.0, 5.0, 2)["bound"].startswith("Python overhead")
    assert bound(10.0, 12.0, 2)["bound"] == "mixed"
    assert bound(0.0, 1.0, 2)["bound"] == "not measured"


@pytest.mark.slow
def test_reproduce_bench_writes_stages_and_machine(tiny_model_path, tmp_path):
    from tools.bench_reproduce import run_reproduce_bench

    model = str(tiny_model_path("llama"))
    out = run_reproduce_bench(model, out=tmp_path / "reproduce.json", generation_models="none")
    doc = json.loads(out.read_text())
    stages = {s["stage"]: s for s in doc["stages"]}
    assert stages["extract"]["status"] == "done" and stages["extract"]["seconds"] > 0
    assert stages["extract"]["cpu_seconds"] is not None and stages["extract"]["bound"] != "not measured"
    assert stages["verify"]["status"] == "skipped"  # scratch artifacts: verify covers the repository's only
    assert doc["machine"]["cpu"]["cores_available"] >= 1 and doc["machine"]["torch_threads"] >= 1
    assert doc["goal"]["total_seconds_max"] == 360.0 and isinstance(doc["goal"]["met"], bool)
