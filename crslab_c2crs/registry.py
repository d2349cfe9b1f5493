"""Registration decorators that plug the plugin's classes into CRSLab's own registries.

CRSLab 0.1.2 keeps one plain module-level dict per kind of component and looks names up at call time,
so inserting entries when the plugin is imported is enough (ParlAI-style ``@register_*`` decorators)::

    @register_model("C2CRS")
    class C2CRSModel(BaseModel): ...

    @register_dataset("ReDialReview", language="en")
    class ReDialReviewDataset(ReDialDataset): ...
"""
from __future__ import annotations

import importlib
from typing import Callable, TypeVar

T = TypeVar("T")

# kind -> (CRSLab module, name of the dict in it)
_TABLES = {
    "model": ("crslab.model", "Model_register_table"),
    "dataset": ("crslab.data", "dataset_register_table"),
    "dataloader": ("crslab.data", "dataloader_register_table"),
    "system": ("crslab.system", "system_register_table"),
    "evaluator": ("crslab.evaluator", "Evaluator_register_table"),
}


def crslab_table(kind: str) -> dict:
    """Return CRSLab's registry dict for ``kind`` (one of model, dataset, dataloader, system, evaluator)."""
    if kind not in _TABLES:
        raise KeyError(f"unknown registry kind {kind!r}; expected one of {sorted(_TABLES)}")
    module, attr = _TABLES[kind]
    return getattr(importlib.import_module(module), attr)


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: insert the decorated class into CRSLab's ``kind`` registry under ``name``."""

    def decorator(cls: T) -> T:
        crslab_table(kind)[name] = cls
        return cls

    return decorator


def register_model(name: str) -> Callable[[T], T]:
    return register("model", name)


def register_dataloader(name: str) -> Callable[[T], T]:
    return register("dataloader", name)


def register_system(name: str) -> Callable[[T], T]:
    return register("system", name)


def register_evaluator(name: str) -> Callable[[T], T]:
    return register("evaluator", name)


def register_dataset(name: str, language: str) -> Callable[[T], T]:
    """Register a dataset class and its language (CRSLab's evaluators look the language up by dataset name)."""

    def decorator(cls: T) -> T:
        crslab_table("dataset")[name] = cls
        importlib.import_module("crslab.data").dataset_language_map[name] = language
        return cls

    return decorator
