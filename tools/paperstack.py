"""`invoke paper-stack-check`: build the paper's GPU stack (requirements/cuda.lock: torch 2.6.0+cu124,
transformer_lens 2.18.0, transformers 4.57.6, bitsandbytes 0.48.2) into its own venv outside the repository,
exactly as Dockerfile.cuda installs it, and run the method there on CPU (the cu124 torch wheel runs without
a GPU): the image's smoke step, the fast test suite, and TL-vs-HF equivalence on the embedded Gemma-3-270M.

Tests that pin facts true of requirements/cpu.lock only (transformers 5.x GGUF tokenizers) carry the
`cpu_lock` marker and are deselected here, so every other failure is a real failure of the paper stack.

Exit codes: 0 all passed, 1 the stack cannot run the method or a test failed, 2 the venv could not be built.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = "requirements/cuda.lock"
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emogeo" / "venv-cuda"
# `slow` tests load the embedded models or run whole pipelines; `cpu_lock` tests pin CPU-lock facts.
MARKERS = "not slow and not cpu_lock"
# Slow tests the paper stack must pass anyway: the embedded models load and tokenise exactly as on the CPU
# stack (repaired GGUF tokenizers), and TL and HF agree on a real (embedded) model.
PAPER_STACK_SLOW = ["tests/test_gguf_tokenizer.py", "tests/test_loading.py",
                    "tests/test_equivalence.py::test_embedded_gemma3_equivalent"]


def _say(msg: str) -> None:
    print(msg, flush=True)


def build(venv: Path) -> int:
    env = dict(os.environ, EMOGEO_VENV=str(venv), EMOGEO_LOCK=LOCK)
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="invoke paper-stack-check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"venv built from {LOCK} (default {DEFAULT_VENV})")
    ap.add_argument("-k", default=None, help="pytest -k expression (default: the whole fast suite)")
    args = ap.parse_args(argv)
    times = {}
    t0 = time.perf_counter()
    _say(f"--- paper-stack-check: {LOCK} -> {args.venv} (scripts/setup.sh)")
    if build(args.venv):
        print(f"error: scripts/setup.sh could not build {args.venv} from {LOCK}", file=sys.stderr)
        return 2
    times["venv"] = time.perf_counter() - t0
    python = str(args.venv / "bin" / "python")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", VIRTUAL_ENV=str(args.venv))
    env["PATH"] = f"{args.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("EMOGEO_ARTIFACTS", None)
    steps = [
        ("smoke", [python, "-m", "tools.smoke"]),
        ("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", MARKERS]
         + (["-k", args.k] if args.k else [])),
    ]
    if not args.k:
        steps.append(("embedded-equivalence", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                               *PAPER_STACK_SLOW]))
    failed = []
    for name, cmd in steps:
        t = time.perf_counter()
        _say(f"--- paper-stack-check: {name}")
        if subprocess.run(cmd, cwd=ROOT, env=env).returncode:
            failed.append(name)
        times[name] = time.perf_counter() - t
    _say("--- paper-stack-check: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
         + (f"; FAILED: {', '.join(failed)}" if failed else "; all passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
