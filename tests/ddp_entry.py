"""``run_crslab.py`` as the distributed tests start it under torchrun (tests/test_distributed.py), with what a test
must see or do inside the ranks:

* ``DDP_TEST_WRITES=FILE``: every atomic file write (checkpoints, saved systems, ``--results``, dumps) is noted in
  FILE as a line ``<rank> <path>``.
* ``DDP_TEST_FAIL=crash`` or ``hang``: rank ``DDP_TEST_FAIL_RANK`` (default 1) raises, or stops answering, at its
  first training step.
"""
import os
import sys
import time


def note_writes(log: str) -> None:
    from crslab_c2crs import atomic, predictions

    write = atomic.atomic_write

    def noted(path, *args, **kwargs):
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.environ.get('RANK', '0')} {path}\n")
        return write(path, *args, **kwargs)

    atomic.atomic_write = noted
    predictions.atomic_write = noted


def fail_first_step(how: str, rank: str) -> None:
    from crslab.system.base import BaseSystem

    backward = BaseSystem.backward

    def failing(self, loss):
        if os.environ.get("RANK") == rank:
            if how == "hang":
                time.sleep(3600)
            raise RuntimeError(f"injected failure on rank {rank}")
        return backward(self, loss)

    BaseSystem.backward = failing


if __name__ == "__main__":
    from crslab_c2crs.cli import main

    if os.environ.get("DDP_TEST_WRITES"):
        note_writes(os.environ["DDP_TEST_WRITES"])
    if os.environ.get("DDP_TEST_FAIL"):
        fail_first_step(os.environ["DDP_TEST_FAIL"], os.environ.get("DDP_TEST_FAIL_RANK", "1"))
    sys.exit(main())
