"""`python -m tools.gguf_token_ids`: write tests/data/gguf_token_ids.json, the token ids the CPU stack's GGUF
converter (transformers 5.x, which reads the embedded GGUFs right) gives the embedded models on the study's
own texts. tests/test_gguf_tokenizer.py holds every other stack (the paper's transformers 4.57.6 with the
repairs of repro.gguf_tokenizer) to these ids. Run it on the CPU stack only; it refuses anything else.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "gguf_token_ids.json"
MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
# Beyond the stimuli: runs of spaces, tabs, newlines, accents, CJK, emoji and a literal special token.
EDGE_TEXTS = ["  two  spaces\tand a tab\n\nnew lines", "café naïve über 日本語 🙂", "<|im_start|>user hi<|im_end|>",
              "<start_of_turn>user\nhi<end_of_turn>", " happy", "I am happy"]


def texts() -> list[str]:
    from repro import stimuli

    return [p.text for p in stimuli.load_comprehension()] + stimuli.load_neutral_sentences() + EDGE_TEXTS


def chat_ids(tok) -> list[int]:
    """The chat template rendered to text, then tokenised (the same call on every transformers version)."""
    chat = [{"role": "user", "content": "Write a short story about a happy day."}]
    text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False).input_ids


def token_ids(alias: str) -> dict:
    from transformers import AutoTokenizer

    from repro.loading import embedded_hf_dir
    from repro.models import resolve

    tok = AutoTokenizer.from_pretrained(str(embedded_hf_dir(resolve(alias))[0]))
    out = {"special": {k: getattr(tok, k) for k in ("bos_token", "eos_token", "pad_token")},
           "ids": [tok(t).input_ids for t in texts()]}
    if tok.chat_template:
        out["chat_ids"] = chat_ids(tok)
    return out


def main() -> int:
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        print(f"error: run this on the CPU stack (transformers 5.x), not {transformers.__version__}", file=sys.stderr)
        return 2
    data = {"transformers": transformers.__version__, "texts_sha": None, "models": {m: token_ids(m) for m in MODELS}}
    import hashlib

    data["texts_sha"] = hashlib.sha256(json.dumps(texts()).encode()).hexdigest()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
