import pytest

from repro.loading import ModelUnavailableError, load_model
from repro.models import (EMBEDDED_MODELS, MODEL_SETS, PAPER_MODELS, UnknownModelError, resolve, resolve_many,
                          slugify)

# Table A1 of the paper: hub id, size (B), layers, d_model, backend.
TABLE_A1 = [
    ("Qwen/Qwen2.5-1.5B", 1.5, 28, 1536, "TL"), ("Qwen/Qwen2.5-1.5B-Instruct", 1.5, 28, 1536, "TL"),
    ("HuggingFaceTB/SmolLM2-1.7B", 1.7, 24, 2048, "HF"), ("HuggingFaceTB/SmolLM2-1.7B-Instruct", 1.7, 24, 2048, "HF"),
    ("google/gemma-3-1b-pt", 1.0, 26, 1152, "TL"), ("google/gemma-3-1b-it", 1.0, 26, 1152, "TL"),
    ("meta-llama/Llama-3.2-3B", 3.0, 28, 3072, "TL"), ("meta-llama/Llama-3.2-3B-Instruct", 3.0, 28, 3072, "TL"),
    ("mistralai/Mistral-7B-v0.3", 7.0, 32, 4096, "HF"), ("mistralai/Mistral-7B-Instruct-v0.3", 7.0, 32, 4096, "HF"),
    ("meta-llama/Llama-3.1-8B", 8.0, 32, 4096, "TL"), ("meta-llama/Llama-3.1-8B-Instruct", 8.0, 32, 4096, "TL"),
]


def test_registry_matches_table_a1():
    got = [(m.hub_id, m.size_b, m.n_layers, m.d_model, m.paper_backend) for m in PAPER_MODELS]
    assert got == TABLE_A1
    assert [m.variant for m in PAPER_MODELS] == ["B", "I"] * 6
    assert len(MODEL_SETS["paper"]) == 12


def test_resolve_alias_hub_id_and_case():
    assert resolve("llama-3.2-3b-instruct").hub_id == "meta-llama/Llama-3.2-3B-Instruct"
    assert resolve("META-LLAMA/llama-3.2-3b-instruct").alias == "llama-3.2-3b-instruct"
    assert resolve("smollm2-135m-instruct").source == "embedded"
    assert resolve("someorg/some-model").source == "hub"


def test_resolve_local_dir(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    spec = resolve(str(tmp_path))
    assert spec.source == "local" and spec.local_dir == str(tmp_path.resolve())


def test_unknown_model_lists_aliases():
    with pytest.raises(UnknownModelError) as err:
        resolve("not a model")
    msg = str(err.value)
    assert "not a model" in msg and "qwen2.5-1.5b-instruct" in msg and "smollm2-135m-instruct" in msg


def test_empty_dir_is_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="config.json"):
        resolve(str(tmp_path))


def test_resolve_many_sets():
    assert [m.alias for m in resolve_many("embedded")] == ["smollm2-135m-instruct", "gemma-3-270m",
                                                           "qwen2.5-coder-0.5b-instruct"]
    assert {m.family for m in resolve_many("embedded")} == {"SmolLM2", "Gemma-3", "Qwen 2.5"}
    assert [m.alias for m in resolve_many("embedded-one")] == ["smollm2-135m-instruct"]
    assert len(resolve_many("paper")) == 12
    assert [m.alias for m in resolve_many("gemma-3-270m,qwen2.5-1.5b")] == ["gemma-3-270m", "qwen2.5-1.5b"]


def test_slug():
    assert slugify("Qwen/Qwen2.5-1.5B") == "Qwen_Qwen2.5-1.5B"
    assert resolve("gemma-3-1b-pt").slug == "google_gemma-3-1b-pt"


def test_hub_model_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-emogeo-hf-home")
    with pytest.raises(ModelUnavailableError) as err:
        load_model(resolve("qwen2.5-1.5b"), "fp32", "cpu")
    msg = str(err.value)
    assert "Qwen/Qwen2.5-1.5B" in msg and "HF_HUB_OFFLINE=1" in msg and "hub" in msg


def test_embedded_models_declared():
    assert {m.alias for m in EMBEDDED_MODELS} >= {"smollm2-135m-instruct", "gemma-3-270m"}
    assert all("dequantised GGUF" in m.note for m in EMBEDDED_MODELS)


def test_generation_stages_follow_the_paper():
    from emogeo.pipeline import stage_models

    # The embedded study: generation, ablation and steering on the default model only.
    assert stage_models(resolve_many("embedded")) == {"smollm2-135m-instruct"}
    # The paper's twelve: generation on its Section 4.3 pair only.
    assert stage_models(resolve_many("paper")) == {"mistral-7b-instruct-v0.3", "llama-3.1-8b-instruct"}
    assert stage_models(resolve_many("gemma-3-270m,qwen2.5-1.5b")) == {"gemma-3-270m"}
    assert stage_models(resolve_many("embedded"), "none") == set()
    assert len(stage_models(resolve_many("embedded"), "all")) == 3
    assert stage_models(resolve_many("embedded"), "gemma-3-270m") == {"gemma-3-270m"}
    with pytest.raises(UnknownModelError, match="does not run"):
        stage_models(resolve_many("embedded-one"), "gemma-3-270m")
