"""Device placement checked without a GPU (issue #31): each model's training steps and decoding run on the tiny data
with every model forward under :class:`UnplacedOnMeta`: a tensor factory (``torch.zeros``, ``arange``, ``tensor``,
``sparse_coo_tensor``...) called in a forward without a device (nor an ``out=`` tensor) makes a meta tensor, so a
tensor that would land on the CPU beside CUDA inputs on a GPU run fails the step here, naming the line. The systems'
own steps run around the forwards as they are: CRSLab's batch padding and moves, our evaluator, and the backward
pass (the optimizer step is left out: Adam keeps its step counter on the CPU on purpose)."""
import contextlib

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from crslab_c2crs.evaluator import C2CRSEvaluator
from tests.tiny_runs import saved_chats

# the model methods each system calls from its step
FORWARDS = {"KGSF": ("forward",), "KBRD": ("forward",), "C2CRS": ("pretrain", "recommend", "converse")}
STAGES = {"KGSF": ("pretrain", "rec", "conv"), "KBRD": ("rec", "conv"), "C2CRS": ("coarse", "fine", "rec", "conv")}


class UnplacedOnMeta(TorchFunctionMode):
    """Tensor factories called without ``device`` or ``out`` create meta tensors (``torch.device("meta")`` as a
    context does this too, but also overrides an explicit ``out=``, as in CRSLab's ``arange(..., out=positions)``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _device_constructors() and kwargs.get("device") is None and "out" not in kwargs:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


@contextlib.contextmanager
def forwards_on_meta(model, names):
    """While open, ``model``'s methods ``names`` run under :class:`UnplacedOnMeta`."""
    def on_meta(method):
        def run(*args, **kwargs):
            with UnplacedOnMeta():
                return method(*args, **kwargs)
        return run

    for name in names:
        setattr(model, name, on_meta(getattr(model, name)))
    try:
        yield
    finally:
        for name in names:
            delattr(model, name)  # the class's method again


@pytest.fixture(scope="module")
def systems(tiny_root, tmp_path_factory):
    chats = saved_chats(STAGES, tiny_root, tmp_path_factory.mktemp("devices"), "devices")
    for chat in chats.values():
        chat.adapter.system.evaluator = C2CRSEvaluator("en")  # a restored (-rs -i) system has none
    return {model: chat.adapter.system for model, chat in chats.items()}


def first_batch(system, stage):
    loader = system.train_dataloader
    if hasattr(loader, "batch_plan"):
        loader.batch_plan.stage = stage
    kind = {"rec": "rec", "conv": "conv"}.get(stage, "pretrain")
    return next(iter(getattr(loader, f"get_{kind}_data")(4, shuffle=False)))


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(STAGES))
def test_every_forward_names_the_device_of_what_it_creates(systems, model, monkeypatch):
    system = systems[model]
    losses = []
    monkeypatch.setattr(system, "backward", losses.append)
    system.evaluator.reset_metrics()
    for stage in STAGES[model]:
        modes = ("train", "test") if stage in ("rec", "conv") else ("train",)
        for mode in modes:
            system.model.train(mode == "train")
            with forwards_on_meta(system.model, FORWARDS[model]), torch.set_grad_enabled(mode == "train"):
                system.step(first_batch(system, stage), stage, mode)
            if hasattr(system.model, "kg_cache_clear"):
                system.model.kg_cache_clear()
    assert losses and all(loss.device.type == "cpu" and torch.isfinite(loss).all() for loss in losses)
    losses[-1].sum().backward()  # the graph built under the meta default is a CPU graph
