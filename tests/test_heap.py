"""trim_memory: freed heap memory goes back to the system after every step, and changes nothing else."""
import ctypes
import sys

import pytest

from crslab_c2crs import heap
from tests.test_c2crs_end_to_end import run_c2crs

glibc = pytest.mark.skipif(not (sys.platform.startswith("linux") and heap.can_trim()),
                           reason="malloc_trim is glibc's (Linux)")


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2 ** 20


@glibc
def test_trimming_returns_the_free_blocks_a_heap_keeps():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # freeing a mmapped 8 MiB block raises glibc's mmap threshold, so the 1 MiB blocks below come from the heap
    libc.free(libc.malloc(8 << 20))
    blocks = [libc.malloc(1 << 20) for _ in range(200)]
    for block in blocks:
        ctypes.memset(block, 1, 1 << 20)
    for block in blocks[:-1]:  # the last block pins the heap's top: nothing is returned by free alone
        libc.free(block)
    kept = resident_mb()
    assert heap.trim_heap()
    assert resident_mb() < kept - 100
    libc.free(blocks[-1])


def test_without_malloc_trim_nothing_happens(monkeypatch):
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: object())  # a C library without malloc_trim
    try:
        assert not heap.can_trim() and not heap.trim_heap()
    finally:
        heap._malloc_trim.cache_clear()


def test_every_step_trims_and_the_run_is_unchanged(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr("crslab_c2crs.system.c2crs.trim_heap", lambda: calls.append(1))
    code, trimmed = run_c2crs(tiny_root, tmp_path, "trimmed", ["end_stage=coarse", "trim_memory=true"])
    assert code == 0 and calls
    steps = len(calls)
    code, plain = run_c2crs(tiny_root, tmp_path, "plain", ["end_stage=coarse"])
    assert code == 0 and len(calls) == steps  # off by default
    assert [entry["metrics"] for entry in trimmed["history"]] == [entry["metrics"] for entry in plain["history"]]


def test_a_bad_trim_memory_value_is_named(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _ = run_c2crs(tiny_root, tmp_path, "bad", ["trim_memory=maybe"])
    assert code != 0 and "trim_memory: 'maybe' is not true or false" in capsys.readouterr().err
