"""Threads that fit the cores this process may use, and the machine recorded beside every number."""
import os

import pytest
import torch

from repro import artifacts, machine


def test_thread_count_follows_the_affinity_mask_then_overrides(monkeypatch):
    monkeypatch.delenv(machine.THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})  # e.g. taskset -c 0,3,5
    assert machine.available_cores() == 3 and machine.thread_count() == 3
    monkeypatch.setenv(machine.THREADS_ENV, "1")
    assert machine.thread_count() == 1
    assert machine.thread_count(2) == 2  # --threads wins over the environment
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match="--threads"):
            machine.thread_count(bad)


def test_configure_threads_sets_torch_and_the_artifacts_record_it(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(machine.THREADS_ENV, "1")
        assert machine.configure_threads() == 1 and torch.get_num_threads() == 1
        env = artifacts.environment("cpu")
        assert env["torch_threads"] == 1
        cpu = env["cpu"]
        assert cpu["cores_available"] >= 1 and cpu["cores_total"] >= cpu["cores_available"]
        assert isinstance(cpu["flags"], list) and set(cpu["flags"]) <= set(machine.INTERESTING_FLAGS)
    finally:
        torch.set_num_threads(before)
