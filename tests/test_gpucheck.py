"""invoke gpu-check: the refusal without CUDA, and the same code run on a CPU with a tiny model (the JSON's shape,
its checks and its failure path)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible: the refusal cannot be shown here")
def test_gpu_check_refuses_without_cuda_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "invoke", "gpu-check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: gpu-check needs a CUDA GPU"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_gpu_check_json_on_cpu_with_a_tiny_model(tiny_model_path, tmp_path):
    from tools.gpucheck import STAGE_KEYS, TOP_KEYS, run_gpu_check

    model = str(tiny_model_path("llama"))
    out = tmp_path / "gpu_check.json"
    rec = run_gpu_check(models=[model], device="cpu", dtype="fp32", precisions=("fp32", "int8"), max_new_tokens=3,
                        generations_per_template=1, out=out)
    doc = json.loads(out.read_text())
    assert tuple(doc) == TOP_KEYS
    names = [s["name"] for s in doc["stages"]]
    assert names == ["extract-fp32-tl", "extract-fp32-hf", "equivalence-fp32", "generation-protocol_matched-fp32",
                     "generation-protocol_matched-int8", "steering-fp32"]
    for s in doc["stages"]:
        assert tuple(s) == STAGE_KEYS and s["seconds"] > 0 and s["peak_gpu_mb"] is None
        assert s["passed"] and s["checks"] and all(s["checks"].values()), s
    assert doc["passed"] and doc["failed_checks"] == [] and rec["path"] == str(out)
    assert doc["stages"][2]["checks"] == {"every_layer_cos_min_ge_0.9999": True}
    assert re.fullmatch(r"RDM Spearman vs fp32: -?[01]\.\d{3}", doc["stages"][4]["note"])
    assert doc["budget"] == {"max_new_tokens": 3, "generations_per_template": 1, "dtype": "fp32",
                             "precisions": ["fp32", "int8"]}
    assert doc["device"]["requested"] == "cpu" and doc["device"]["cuda_available"] is False
    assert set(doc["determinism"]) >= {"deterministic_algorithms", "cublas_workspace_config", "cudnn_benchmark"}
    # the scratch runs never land in the user's artifacts
    assert not list((Path(os.environ["EMOGEO_ARTIFACTS"]) / "runs").glob("*"))


def test_gpu_check_reports_a_failing_stage_and_goes_on(tiny_model_path, tmp_path):
    from tools.gpucheck import run_gpu_check

    rec = run_gpu_check(models=[str(tiny_model_path("llama"))], device="cpu", dtype="fp32",
                        precisions=("fp32", "fp8"), max_new_tokens=2, generations_per_template=1,
                        out=tmp_path / "g.json")
    bad = [s for s in rec["stages"] if not s["passed"]]
    assert [s["name"] for s in bad] == ["generation-protocol_matched-fp8"]
    assert bad[0]["status"] == "failed" and "--precision 'fp8'" in bad[0]["note"]
    assert rec["stages"][-1]["name"] == "steering-fp32" and rec["stages"][-1]["passed"]  # the rest still ran
    assert not rec["passed"] and len(rec["failed_checks"]) == 1


def test_the_schema_is_documented():
    from tools.gpucheck import STAGE_KEYS, TOP_KEYS

    doc = (ROOT / "docs" / "ENVIRONMENTS.md").read_text()
    section = doc[doc.index("### `invoke gpu-check`"):]
    for key in TOP_KEYS + STAGE_KEYS:
        assert f"`{key}`" in section, key


def test_a_model_the_stack_cannot_load_is_not_run_not_failed(tiny_model_path, tmp_path):
    from tools.gpucheck import run_gpu_check

    tiny = str(tiny_model_path("llama"))
    rec = run_gpu_check(models=["qwen2.5-1.5b", tiny], generation_model=tiny, device="cpu", dtype="fp32",
                        precisions=("fp32",), max_new_tokens=2, generations_per_template=1, out=tmp_path / "g.json")
    qwen = [s for s in rec["stages"] if s["model"] == "qwen2.5-1.5b"]
    assert [s["status"] for s in qwen] == ["not-run"] * 3 and all(s["passed"] is None for s in qwen)
    assert "HuggingFace hub" in qwen[0]["note"]
    assert rec["passed"] and rec["failed_checks"] == []
