"""`python -m tools.smoke`: can this environment run the paper's method?

Both Dockerfiles run it at build time, so an image whose stack cannot run the method is never built (the GPU
image once shipped a lock in which `import transformer_lens` failed, and every TL model of Table A1 would
have run through HF). `invoke paper-stack-check` runs it in the paper-stack venv too.

It imports the method's stack, then extracts the comprehension vectors of a tiny random llama model through
TransformerLens and through raw HF hooks and checks they agree at every layer (the paper's bar, per-vector
cosine >= 0.9999). The tiny model borrows the embedded SmolLM2 tokenizer, so the GGUF conversion runs too.
Artifacts go to a temporary directory; nothing is left behind.

Exit codes: 0 ok, 1 the method cannot run here (one line says why).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

def check_imports() -> dict:
    """Import what the method needs; return the versions that matter."""
    import importlib.metadata as md

    import analysis  # noqa: F401
    import bitsandbytes  # noqa: F401
    import torch
    import transformer_lens  # noqa: F401
    import transformers

    import repro  # noqa: F401

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "transformer_lens": md.version("transformer_lens"), "bitsandbytes": md.version("bitsandbytes"),
            "numpy": md.version("numpy"), "cuda_build": torch.version.cuda}


def tiny_equivalence(workdir: Path, family: str = "llama") -> dict:
    """Both backends on a tiny random model of ``family``; returns the equivalence summary."""
    os.environ["EMOGEO_ARTIFACTS"] = str(workdir / "artifacts")
    from repro.equivalence import run_equivalence
    from repro.tiny import build_tiny_model

    path = build_tiny_model(family, workdir / f"tiny-{family}")
    res = json.loads(run_equivalence(str(path), progress=False).read_text())
    return {"family": family, "passed": bool(res["passed"]), "cos_min": min(
        r["cos_min"] for r in res["per_layer"] if r.get("cos_min") is not None), "layers": len(res["per_layer"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0])
    ap.add_argument("--imports-only", action="store_true", help="only import the stack")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        versions = check_imports()
    except ImportError as exc:
        print(f"error: smoke: the method's stack does not import: {exc}", file=sys.stderr)
        return 1
    print("smoke: imports ok " + " ".join(f"{k}={v}" for k, v in versions.items()), flush=True)
    if args.imports_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="emogeo-smoke-") as tmp:
        try:
            eq = tiny_equivalence(Path(tmp))
        except Exception as exc:  # any failure means this environment cannot run the method: one line
            print(f"error: smoke: tiny-model extraction failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if not eq["passed"]:
        print(f"error: smoke: TransformerLens and HF disagree on a tiny {eq['family']} model "
              f"(cos min {eq['cos_min']:.7f} < 0.9999)", file=sys.stderr)
        return 1
    print(f"smoke: TL and HF agree on a tiny {eq['family']} model ({eq['layers']} layers, cos min "
          f"{eq['cos_min']:.7f}); {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
