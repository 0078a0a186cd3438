"""Embedded models and tiny family models load offline, with the tokenizers pinned down."""
import pytest
import torch

from repro import loading
from repro.loading import ModelUnavailableError, converter_versions, load_model
from repro.models import resolve
from repro.tiny import FAMILIES


@pytest.mark.slow
def test_smollm2_embedded(smollm2):
    tok = smollm2.tokenizer
    assert (smollm2.n_layers, smollm2.d_model) == (30, 576)
    assert tok.eos_token == "<|im_end|>"
    assert len(tok.tokenize(" happy")) == 1
    ids = tok("I am happy").input_ids
    assert ids[0] != tok.bos_token_id  # SmolLM2 adds no BOS (transformers 4.57 wrongly added one)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert "dequantised GGUF" in smollm2.info["provenance"]["weights"]
    assert smollm2.model.config.architectures == ["LlamaForCausalLM"]


@pytest.mark.slow
def test_gemma3_embedded():
    lm = load_model(resolve("gemma-3-270m"), "fp32", "cpu")
    tok = lm.tokenizer
    assert (lm.n_layers, lm.d_model) == (18, 640)
    ids = tok("I am happy").input_ids
    assert ids[0] == 2  # BOS added: transformers 5.23 reads the Gemma-3 GGUF tokenizer right
    assert len(tok.tokenize(" happy")) == 1
    assert not getattr(lm.model.config, "quantization_config", None)
    # A sane language model: the next-token loss on plain English is far below uniform (ln 262k = 12.5).
    enc = tok("The capital of France is Paris. The capital of Germany is Berlin.", return_tensors="pt")
    with torch.no_grad():
        loss = lm.model(**enc, labels=enc.input_ids).loss.item()
    assert loss < 5.0


@pytest.mark.slow
def test_qwen25_coder_embedded():
    """The third family of the embedded study: six part packages joined, checked against the pinned sha256."""
    spec = resolve("qwen2.5-coder-0.5b-instruct")
    if int(converter_versions()["transformers"].split(".")[0]) < loading.GGUF_TOKENIZER_GOOD_FROM:
        # The paper's GPU stack (transformers 4.x) has no checked reading of this GGUF's tokenizer: refused.
        with pytest.raises(ModelUnavailableError, match="cannot run on transformers 4"):
            load_model(spec, "fp32", "cpu")
        return
    lm = load_model(spec, "fp32", "cpu")
    tok = lm.tokenizer
    assert (lm.n_layers, lm.d_model) == (24, 896)
    assert lm.info["provenance"]["gguf_sha256"] == spec.extra["gguf_sha256"]
    assert tok("I am happy").input_ids[0] != tok.bos_token_id  # Qwen adds no BOS
    assert len(tok.tokenize(" happy")) == 1
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>" in tok.chat_template
    enc = tok("The capital of France is Paris. The capital of Germany is Berlin.", return_tensors="pt")
    with torch.no_grad():
        loss = lm.model(**enc, labels=enc.input_ids).loss.item()
    assert loss < 5.0


def test_keep_loaded_reads_weights_once_per_precision(tiny_model_path):
    spec = resolve(str(tiny_model_path("llama")))
    before = len(loading.LOADS)
    with loading.keep_loaded():
        a = load_model(spec, "fp32", "cpu")
        assert load_model(spec, "fp32", "cpu") is a  # kept
        b = load_model(spec, "bf16", "cpu")  # another precision is another load
        assert b is not a and next(b.model.parameters()).dtype == torch.bfloat16
        assert load_model(spec, "bf16", "cpu") is b
    assert [(x["precision"], x["device"]) for x in loading.LOADS[before:]] == [("fp32", "cpu"), ("bf16", "cpu")]
    assert load_model(spec, "fp32", "cpu") is not a  # freed when the block ends
    assert len(loading.LOADS) == before + 3


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_family_loads(tiny_lm, family):
    lm = tiny_lm(family)
    assert lm.n_layers == 4 and lm.d_model == 64
    enc = lm.tokenizer(["hello world"], return_tensors="pt")
    with torch.no_grad():
        out = lm.model(**enc)
    assert torch.isfinite(out.logits).all()
