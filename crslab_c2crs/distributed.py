"""Training on several processes with ``torchrun``: the process group, each rank's share of the batches, the
exchanges the losses and the evaluator need, and the ``DistributedDataParallel`` wrapper of the model.

``torchrun --nproc_per_node N run_crslab.py ...`` starts N processes (ranks) with ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` set; :func:`process_group` joins them (``gloo`` on the CPU, ``nccl`` on GPUs, one GPU per rank).
Without those variables, or with ``WORLD_SIZE=1``, there is no process group: every function here is then the
identity or does nothing, and a run is the single process it always was.

N ranks compute what one process computes on the same global batches:

* ``batch_size`` stays the global batch size. Every rank draws the same seeded batch plan and keeps
  ``batch[rank::N]`` of every batch (:func:`shard`); together the ranks see every sample once per epoch.
* ``DistributedDataParallel`` averages the ranks' gradients, so the loss a rank back-propagates is N times its
  part of the global batch's mean (:func:`mean_over_ranks`: its sum over its samples, or non-pad target tokens,
  over the count of all ranks). The average is then the gradient of the global mean, however unevenly the samples
  or tokens fall, and the mean of the ranks' loss values is the global batch's loss.
* A loss over the whole batch (in-batch negatives, BatchNorm statistics) is computed on every rank from the rows
  of all ranks (:func:`gather_rows`, :func:`gather_cat`): the same loss value on every rank. Another rank's rows
  arrive as constants and this rank's own rows pass N times their gradient back, so DDP's average again gives
  the single process's gradient, with no collective inside the backward pass (where it could interleave with
  DDP's own all-reduces in a rank-dependent order).
* Metrics are sums over samples (or means of such per-rank loss values): the evaluator adds up every rank's
  (:func:`all_objects`), so each rank reports, and stops early on, the numbers of one process.
* Rank 0 alone logs, shows progress bars and writes files (:func:`main_writes`, :func:`main_logs_only`).
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
import weakref
from dataclasses import dataclass
from datetime import timedelta
from functools import partialmethod
from typing import Any, Callable, Iterator, List, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist
from loguru import logger
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from crslab_c2crs.errors import ConfigError

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 600  # the ddp_timeout key: how long a rank waits for the others in one collective


@dataclass(frozen=True)
class Group:
    """The process group this process joined: its rank, the number of ranks, the backend and its device."""

    rank: int
    world_size: int
    backend: str
    device: torch.device


_GROUP: Optional[Group] = None
_WRAPPED: "weakref.WeakSet[DistributedModel]" = weakref.WeakSet()


def launched() -> bool:
    """Whether ``torchrun`` started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether this process is one rank of a process group (inside :func:`process_group`)."""
    return _GROUP is not None


def rank() -> int:
    return _GROUP.rank if _GROUP is not None else 0


def world_size() -> int:
    return _GROUP.world_size if _GROUP is not None else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that logs and writes."""
    return rank() == 0


def backend() -> Optional[str]:
    return _GROUP.backend if _GROUP is not None else None


def launched_rank() -> int:
    """The rank ``torchrun`` gave this process (0 in a single process), known before and after the group."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def rank_label() -> str:
    """``"rank R of N: "`` for messages of a process that ``torchrun`` started, even before the group exists;
    empty in a single process."""
    return f"rank {launched_rank()} of {os.environ['WORLD_SIZE']}: " if launched() else ""


def rank_gpu(value: Optional[str], cuda: bool) -> Optional[str]:
    """This rank's ``-g`` value from the user's: unchanged in a single process. Under ``torchrun``: ``-1`` stays
    the CPU; no ``-g`` means GPU ``LOCAL_RANK`` when CUDA exists (``cuda``), else the CPU; a list of ids gives
    each of the node's processes one of them, in ``LOCAL_RANK`` order."""
    if not launched():
        return value
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    if value is None:
        return str(local_rank) if cuda else "-1"
    ids = [part.strip() for part in value.split(",")]
    if ids == ["-1"]:
        return "-1"
    if len(ids) != local_world:
        raise ConfigError(f"-g {value}: torchrun starts {local_world} processes on this node and each needs its own "
                          f"GPU; list {local_world} ids (e.g. -g {','.join(map(str, range(local_world)))}), leave -g "
                          f"out to give process i GPU i, or use -g -1 for the CPU")
    return ids[local_rank]


# what gloo's errors say when a peer process exited (torchrun then stops this one too) or did not answer in time
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
_PEER_SILENT = ("Timed out", "timed out", "Timeout", "timeout")


def peer_failure(err: BaseException) -> Optional[str]:
    """What ``err`` means when it is a collective's error because another rank failed or hangs: the clause for
    this rank's one error line; None for an error of this rank's own."""
    if not isinstance(err, RuntimeError):  # gloo's and nccl's errors (torch.distributed.DistError among them)
        return None
    text = str(err)
    first_line = (text.strip().splitlines() or [""])[0][:200]
    if any(marker in text for marker in _PEER_GONE):
        return "stopped: another rank failed (its own error line says why)"
    if any(marker in text for marker in _PEER_SILENT):
        return f"stopped: another rank did not answer within the process group's timeout (ddp_timeout): {first_line}"
    if isinstance(err, getattr(dist, "DistError", ())):
        return f"stopped: an exchange between the ranks failed: {first_line}"
    return None


@contextlib.contextmanager
def process_group(gpu: str, timeout_s: Optional[int] = None) -> Iterator[Optional[Group]]:
    """Join the ranks ``torchrun`` started (``nccl`` when this rank's ``gpu`` is a CUDA id, else ``gloo``), yield the
    group and leave it at the end, also on an error. A collective that waits longer than ``timeout_s`` seconds
    (the ``ddp_timeout`` key, default :data:`DEFAULT_TIMEOUT_S`) fails instead of hanging. Yields None, and does
    nothing, in a single process."""
    global _GROUP
    if not launched():
        yield None
        return
    cuda = gpu != "-1"
    device = torch.device("cuda", int(gpu)) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    name = "nccl" if cuda else "gloo"
    dist.init_process_group(name, timeout=timedelta(seconds=timeout_s or DEFAULT_TIMEOUT_S))
    _GROUP = Group(dist.get_rank(), dist.get_world_size(), name, device)
    try:
        yield _GROUP
    finally:
        for wrapped in list(_WRAPPED):
            wrapped.release()
        _GROUP = None
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- logs and files
@contextlib.contextmanager
def main_logs_only() -> Iterator[None]:
    """Around the building of CRSLab's ``Config``, which sets up the log handlers: on a rank other than 0 its own
    log lines are dropped (rank 0 writes the log file) and afterwards only warnings and errors reach stderr, and
    every tqdm bar of the process is off. Does nothing on rank 0 and in a single process."""
    if is_main():
        yield
        return
    logger.disable("crslab")
    try:
        yield
    finally:
        logger.enable("crslab")
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
        # what TQDM_DISABLE=1 does when it is set before tqdm is imported
        tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)


def barrier() -> None:
    """Wait until every rank gets here."""
    if active():
        dist.barrier()


def main_writes(write: Callable[[], T]) -> Optional[T]:
    """``write()`` on rank 0 only (a checkpoint, a saved system), then every rank waits until it is done, so a
    file is complete before any rank reads it; in a single process simply ``write()``."""
    result = write() if is_main() else None
    barrier()
    return result


# ---------------------------------------------------------------------------------------------- batches
def shard_batches(batches: Sequence[Sequence[int]], rank: int, world_size: int) -> List[List[int]]:
    """Rank ``rank``'s part of every batch of sample indices: ``batch[rank::world_size]``.

    A batch with fewer samples than ranks would leave a rank without any: it is merged into the batch before it
    (the one after, when it comes first). Only a pass with fewer samples than ranks cannot be shared.
    """
    merged: List[List[int]] = []
    for batch in batches:
        if len(batch) < world_size and merged:
            merged[-1] = merged[-1] + list(batch)
        else:
            merged.append(list(batch))
    if len(merged) > 1 and len(merged[0]) < world_size:
        first = merged.pop(0)
        merged[0] = first + merged[0]
    if merged and len(merged[0]) < world_size:
        raise ConfigError(f"a pass over {len(merged[0])} samples cannot be shared by {world_size} processes; run "
                          f"fewer processes or use more data (scale, the *_max_batches caps)")
    return [batch[rank::world_size] for batch in merged]


def shard(batches: Sequence[Sequence[int]]) -> List[List[int]]:
    """This rank's part of every batch (:func:`shard_batches`); the batches as they are in a single process."""
    return shard_batches(batches, rank(), world_size()) if active() else [list(batch) for batch in batches]


def align_random_state() -> None:
    """Continue from rank 0's state of the seeded ``random`` module, which draws the batch plans: a draw made on
    one rank only (``pretrain_entity_dropout`` draws per sample of the rank's share) must not make the next plan
    differ between ranks, or samples would be seen twice or never."""
    if active():
        state = [random.getstate()]
        dist.broadcast_object_list(state, src=0)
        random.setstate(state[0])


# ---------------------------------------------------------------------------------------------- exchanges
def _on_group_device(tensor: Tensor) -> Tensor:
    # nccl exchanges CUDA tensors only, gloo CPU ones; bool is sent as uint8
    tensor = tensor.to(_GROUP.device)
    return tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor


def sum_over_ranks(value: Tensor) -> Tensor:
    """The sum of ``value`` over the ranks (a copy of ``value`` in a single process), on ``value``'s device."""
    if not active():
        return value.clone()
    total = _on_group_device(value.detach()).clone()
    dist.all_reduce(total)
    return total.to(value.device, value.dtype)


def max_over_ranks(value: int) -> int:
    """The largest ``value`` of any rank."""
    if not active():
        return value
    largest = torch.tensor(value, device=_GROUP.device)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return int(largest)


def mean_over_ranks(total: Tensor, count: Tensor) -> Tensor:
    """The mean of a loss summed to ``total`` (scalar) over ``count`` units (samples, or non-pad target tokens).

    In a single process ``total / max(count, 1)``. Under DDP ``N * total / max(sum of every rank's count, 1)``:
    this rank's part of the global batch's mean, times the N ranks, so that DDP's average of the gradients is the
    gradient of the global mean and the mean of the ranks' values is its value (see the module docstring).
    """
    if not active():
        return total / count.clamp(min=1)
    return total * world_size() / sum_over_ranks(count.to(total.dtype)).clamp(min=1)


class _OwnRows(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by the number of ranks. Every rank computes the same
    loss from the gathered rows, but only the owner of a row back-propagates through it: N times its gradient,
    which DDP's average over the N ranks brings back to one."""

    @staticmethod
    def forward(ctx: Any, rows: Tensor) -> Tensor:
        return rows.view_as(rows)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad * world_size()


def _every_rank(tensor: Tensor, fill: int) -> List[Tensor]:
    """``tensor`` of every rank, in rank order, its trailing dimensions padded with ``fill`` to the largest any rank
    has (rows kept as they are). Other ranks' tensors are constants; this rank's own keeps its autograd graph."""
    shapes = [torch.zeros(tensor.dim(), dtype=torch.long, device=_GROUP.device) for _ in range(world_size())]
    dist.all_gather(shapes, torch.tensor(tensor.shape, dtype=torch.long, device=_GROUP.device))
    sizes = torch.stack(shapes).tolist()
    largest = [max(size[dim] for size in sizes) for dim in range(tensor.dim())]
    padded = tensor.detach().new_full(largest, fill)
    padded[tuple(slice(0, size) for size in tensor.shape)] = tensor.detach()
    sent = _on_group_device(padded)
    received = [torch.empty_like(sent) for _ in range(world_size())]
    dist.all_gather(received, sent)
    parts = [part.to(tensor.device, tensor.dtype)[:size[0]] for part, size in zip(received, sizes)]
    if tensor.requires_grad:
        if list(tensor.shape[1:]) != largest[1:]:
            raise ValueError(f"rows with a gradient must have one shape on every rank, got {sizes}")
        parts[rank()] = _OwnRows.apply(tensor)
    return parts


def gather_rows(rows: Tensor) -> Tensor:
    """The rows ``(n_r, ...)`` of every rank's share of a batch, put back in the global batch's order
    ``(sum of n_r, ...)`` (rank r holds rows r, r + N, ... of it; :func:`shard_batches`). ``rows`` itself in a
    single process. Differentiable: see :class:`_OwnRows`."""
    if not active():
        return rows
    parts = _every_rank(rows, 0)
    longest = max(part.shape[0] for part in parts)
    padded = [torch.cat([part, part.new_zeros((longest - part.shape[0],) + part.shape[1:])]) for part in parts]
    # row j of rank r is row j * N + r of the batch; the padding rows land at the end, past the real ones
    return torch.stack(padded, dim=1).flatten(0, 1)[:sum(part.shape[0] for part in parts)]


def gather_cat(units: Tensor, fill: int = 0) -> Tensor:
    """Every rank's ``units`` ``(n_r, ...)`` one after the other, in rank order ``(sum of n_r, ...)``, trailing
    dimensions padded with ``fill`` to the largest (e.g. token rows of different lengths). ``units`` itself in a
    single process. Differentiable: see :class:`_OwnRows`."""
    if not active():
        return units
    return torch.cat(_every_rank(units, fill))


def all_objects(obj: T) -> List[T]:
    """``obj`` (picklable) of every rank, in rank order; ``[obj]`` in a single process."""
    if not active():
        return [obj]
    objects: List[Any] = [None] * world_size()
    dist.all_gather_object(objects, obj)
    return objects


# ---------------------------------------------------------------------------------------------- the model
class DistributedModel(DistributedDataParallel):
    """``DistributedDataParallel`` that passes for the model it wraps: attributes it lacks (``freeze``,
    ``recommend``, ``config``...) are the model's, and its ``state_dict`` is the one the run would save without
    DDP (no ``module.`` prefix added), so checkpoints are those of a single process. Only calls through
    ``forward`` exchange gradients; the systems make their training steps that way."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)

    def release(self) -> None:
        """Drop DDP's gradient exchange (its reducer, and the logger that holds it) while the process group still
        exists: freed after the group is gone, it blocked the process at times (1 exit in 5 in a test loop). The
        wrapper still passes for the model, for everything but training."""
        for name in ("logger", "reducer"):
            self.__dict__.pop(name, None)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["saved_as"].state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["saved_as"].load_state_dict(*args, **kwargs)


def bare(model: Optional[nn.Module]) -> Optional[nn.Module]:
    """The model inside CRSLab's ``DataParallel`` or a DDP wrapper (:func:`wrap`); any other model as it is."""
    return model.module if isinstance(model, (nn.DataParallel, DistributedDataParallel)) else model


def wrap(model: nn.Module) -> DistributedModel:
    """``model`` wrapped for this rank's process group, its parameters broadcast from rank 0; a model wrapped
    before (the previous stage, which trained another set of parameters) is unwrapped first. CRSLab's
    ``DataParallel`` around a GPU model is looked through, but kept for the state dict, as a single GPU run saves
    it. Unused parameters are allowed (the stages train subsets); buffers are synchronised when wrapped, not at
    every forward (every rank computes the same ones: the BatchNorm statistics come from the gathered rows)."""
    saved_as = model
    if isinstance(model, DistributedModel):
        model.release()
        saved_as = model.__dict__["saved_as"]
    inner = saved_as.module if isinstance(saved_as, nn.DataParallel) else saved_as
    device_ids = [_GROUP.device.index] if _GROUP.device.type == "cuda" else None
    wrapped = DistributedModel(inner, device_ids=device_ids, find_unused_parameters=True,
                               forward_sync_buffers=False)
    wrapped.__dict__["saved_as"] = saved_as  # not a submodule: its parameters are the wrapped module's
    _WRAPPED.add(wrapped)  # released when the group ends (DistributedModel.release)
    return wrapped
