"""Embedded models tokenise the same on every stack emogeo runs on.

The ids in tests/data/gguf_token_ids.json come from the CPU stack's converter (transformers 5.x), which
reads the embedded GGUFs right. On the paper's GPU stack (transformers 4.57.6) the same ids must come out
of the repaired tokenizers (repro.gguf_tokenizer); `invoke paper-stack-check` runs this file there.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from repro import gguf_tokenizer
from repro.loading import ModelUnavailableError, check_gguf_tokenizer, converter_versions, embedded_hf_dir
from repro.models import resolve
from tools.gguf_token_ids import chat_ids, texts

FIXTURE = json.loads((Path(__file__).parent / "data" / "gguf_token_ids.json").read_text())


def test_fixture_covers_the_current_stimuli():
    assert FIXTURE["texts_sha"] == hashlib.sha256(json.dumps(texts()).encode()).hexdigest(), (
        "stimuli changed: regenerate with `python -m tools.gguf_token_ids` on the CPU stack")


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_embedded_tokenizer_matches_the_reference_ids(alias):
    from transformers import AutoTokenizer

    path, prov = embedded_hf_dir(resolve(alias))
    assert prov["converter"] == converter_versions()
    tok = AutoTokenizer.from_pretrained(str(path))
    want = FIXTURE["models"][alias]
    assert {k: getattr(tok, k) for k in want["special"]} == want["special"]
    got = [tok(t).input_ids for t in texts()]
    bad = [i for i, (a, b) in enumerate(zip(got, want["ids"])) if a != b]
    assert not bad, f"{len(bad)} of {len(got)} texts tokenise differently, first: {texts()[bad[0]]!r}"
    if "chat_ids" in want:
        assert chat_ids(tok) == want["chat_ids"]


def test_merges_in_file_order_ranks_earlier_tokens_and_longer_left_parts_first():
    tokens = ["a", "b", "c", "ab", "bc", "abc"]
    assert gguf_tokenizer.merges_in_file_order(tokens) == [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")]


def test_converter_version_gates_the_embedded_models():
    v4 = {"transformers": "4.57.6", "tokenizers": "0.22.1", "gguf": "0.19.0"}
    assert check_gguf_tokenizer(resolve("smollm2-135m-instruct"), {"transformers": "5.23.0"}) is None
    assert "special tokens" in check_gguf_tokenizer(resolve("smollm2-135m-instruct"), v4)
    assert "merges in file order" in check_gguf_tokenizer(resolve("gemma-3-270m"), v4)
    with pytest.raises(ModelUnavailableError, match="cannot run on transformers 4.57.6: its GGUF tokenizer"):
        check_gguf_tokenizer(resolve("qwen2.5-coder-0.5b-instruct"), v4)


def test_conversion_cache_is_keyed_by_converter_versions():
    from repro.loading import conversion_dir

    a = conversion_dir("0" * 64, {"transformers": "5.23.0", "tokenizers": "0.22.1", "gguf": "0.19.0"})
    b = conversion_dir("0" * 64, {"transformers": "4.57.6", "tokenizers": "0.22.1", "gguf": "0.19.0"})
    assert a != b and a.parent == b.parent and a.name.startswith("0" * 16)
