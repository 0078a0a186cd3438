"""TransformerLens and HF backends extract the same vectors at every layer."""
import json

import pytest

from repro.equivalence import run_equivalence


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_tiny_families_equivalent(tiny_model_path, family):
    out = run_equivalence(str(tiny_model_path(family)), progress=False)
    res = json.loads(out.read_text())
    assert res["passed"] is True
    assert len(res["per_layer"]) == 4 and all(r["passed"] for r in res["per_layer"])
    from analysis.run_values import equivalence_values

    got, problems = equivalence_values(out.parent, res)  # recomputed from the two runs' saved vectors
    assert problems == [] and got["rdm_spearman"] == pytest.approx(res["rdm_spearman"], abs=1e-9)
    assert res["cos_min"] >= 0.9999 and res["rdm_spearman"] > 0.999


def test_gemma3_tiny_refused_with_reason(tiny_model_path):
    from repro.backends import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="Gemma3ForCausalLM"):
        run_equivalence(str(tiny_model_path("gemma3")), progress=False)


@pytest.mark.slow
def test_embedded_smollm2_equivalent():
    out = run_equivalence("smollm2-135m-instruct", progress=False)
    res = json.loads(out.read_text())
    assert res["passed"] and len(res["per_layer"]) == 30
    assert res["per_layer"][-1]["cos_min"] >= 0.9999  # the last layer too (no final norm on either side)


@pytest.mark.slow
def test_embedded_gemma3_equivalent():
    """Gemma-3 270M is an official TransformerLens name: built from the loaded weights, no hub call."""
    out = run_equivalence("gemma-3-270m", progress=False)
    res = json.loads(out.read_text())
    assert res["passed"] and len(res["per_layer"]) == 18
