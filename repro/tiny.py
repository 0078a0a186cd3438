"""Tiny random models of each paper family, built from transformers configs (no download).

Sizes are multiples of 32 so bitsandbytes NF4 can quantize every linear layer. The tokenizer is the
embedded SmolLM2 tokenizer when available (a real BPE tokenizer, offline), with the vocabulary size
of the tiny model matching it.
"""
from __future__ import annotations

import json
from pathlib import Path

FAMILIES = ("llama", "qwen2", "mistral", "gemma3")


def _config(family: str, vocab: int, hidden: int, layers: int):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  tie_word_embeddings=True)
    if family == "llama":
        return LlamaConfig(**common, rope_theta=10000.0)
    if family == "qwen2":
        return Qwen2Config(**common, rope_theta=10000.0)
    if family == "mistral":
        return MistralConfig(**common, rope_theta=10000.0, sliding_window=None)
    if family == "gemma3":
        return Gemma3TextConfig(**common, head_dim=hidden // 4, sliding_window=16, query_pre_attn_scalar=hidden // 4)
    raise ValueError(f"family {family!r}: choose one of {', '.join(FAMILIES)}")


def _tokenizer():
    """The SmolLM2 tokenizer from the embedded model (offline); it has a ChatML template."""
    from transformers import AutoTokenizer

    from .loading import embedded_hf_dir
    from .models import resolve

    path, _ = embedded_hf_dir(resolve("smollm2-135m-instruct"))
    return AutoTokenizer.from_pretrained(str(path))


def build_tiny_model(family: str, out_dir: Path, hidden: int = 64, layers: int = 4, seed: int = 0) -> Path:
    """Save a randomly initialised ``family`` model + tokenizer to ``out_dir``; returns the directory."""
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir
    tok = _tokenizer()
    cfg = _config(family, len(tok), hidden, layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # random init is tiny in magnitude; scale so activations are O(1)
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.08)
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    (out_dir / "emogeo-tiny.json").write_text(json.dumps({"family": family, "hidden": hidden, "layers": layers,
                                                          "seed": seed, "weights": "random"}))
    return out_dir
