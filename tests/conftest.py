"""Shared fixtures: offline mode, a private artifacts dir per test, tiny random family models."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_artifacts(tmp_path, monkeypatch):
    """Every test writes runs under its own tmp dir, never into the repo's artifacts/."""
    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path / "artifacts"))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_model_path(tiny_dir):
    """tiny_model_path(family) -> directory of a saved random model of that family."""
    from repro.tiny import build_tiny_model

    def make(family: str, **kw):
        return build_tiny_model(family, tiny_dir / family, **kw)

    return make


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_path):
    """tiny_lm(family) -> LoadedModel (fp32, CPU), cached per family."""
    from repro.loading import load_model
    from repro.models import resolve

    cache = {}

    def get(family: str):
        if family not in cache:
            cache[family] = load_model(resolve(str(tiny_model_path(family))), "fp32", "cpu")
        return cache[family]

    return get


@pytest.fixture(scope="session")
def smollm2():
    from repro.loading import load_model
    from repro.models import resolve

    return load_model(resolve("smollm2-135m-instruct"), "fp32", "cpu")
