"""Run configuration: one YAML file, then ``--set key=value`` overrides from the command line (RecBole order).

CRSLab silently ignores keys it does not know, so a typo (``rec.epochs``) trains with a default. Here every key
is checked against the keys the chosen model reads; models declare theirs with :func:`register_config_keys`.

CRSLab also reads values only when it needs them, so ``rec.batch_size: -4`` or an optimizer named ``Adamz``
failed hours into a run, after the pre-training stages. :func:`check_config` checks every value of the resolved
configuration (types, ranges, optimizer and scheduler names and arguments, the model's own options) in one pass,
before any data is loaded; :func:`load_config` runs it last.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

import yaml

from crslab_c2crs.data.layout import REDIAL_DATASETS
from crslab_c2crs.data.targets import check_rec_targets
from crslab_c2crs.errors import ConfigError

COMMON_KEYS: Set[str] = {
    "dataset", "tokenize", "model", "rec_model", "conv_model", "policy_model", "evaluator", "embedding",
    "context_truncate", "response_truncate", "entity_truncate", "word_truncate", "scale", "model_file",
    "checkpoint_dir", "log_name", "seed", "fast_rgcn", "num_threads", "interact_topk", "length_bucketing",
    "shuffle_train", "bucket_pool_batches", "rec_exclude_context", "rec_targets", "movie_slots", "eval_movie_slots",
    "ddp_timeout",
}
STAGE_KEYS: Set[str] = {
    "epoch", "batch_size", "optimizer", "lr_scheduler", "early_stop", "impatience", "stop_mode",
    "gradient_clip", "update_freq", "max_batches", "valid_max_batches", "test_max_batches",
}
_MODEL_KEYS: Dict[str, Set[str]] = {}
_MODEL_STAGES: Dict[str, Set[str]] = {}
_MODEL_STAGE_KEYS: Dict[str, Set[str]] = {}


def register_config_keys(model: str, keys: Iterable[str], stages: Iterable[str],
                         stage_keys: Iterable[str] = ()) -> None:
    """Declare the top-level ``keys``, the per-stage sections (``stages``) and any keys of those sections
    beyond CRSLab's :data:`STAGE_KEYS` (``stage_keys``) that ``model`` reads."""
    _MODEL_KEYS.setdefault(model, set()).update(keys)
    _MODEL_STAGES.setdefault(model, set()).update(stages)
    _MODEL_STAGE_KEYS.setdefault(model, set(STAGE_KEYS)).update(stage_keys)


_TRANSFORMER_KEYS = ("token_emb_dim", "kg_emb_dim", "n_heads", "n_layers", "ffn_size", "dropout",
                     "attention_dropout", "relu_dropout", "learn_positional_embeddings", "embeddings_scale",
                     "reduction", "n_positions", "num_bases", "user_proj_dim", "longest_label")
register_config_keys("KGSF", _TRANSFORMER_KEYS, ("pretrain", "rec", "conv"))
register_config_keys("KBRD", _TRANSFORMER_KEYS, ("rec", "conv"))


def model_name_of(opt: Mapping[str, Any]) -> str:
    """CRSLab's model name: ``model``, or the rec/conv/policy model names joined by ``_``."""
    if opt.get("model"):
        return opt["model"]
    return "_".join(opt[k] for k in ("rec_model", "conv_model", "policy_model") if opt.get(k))


def parse_override(text: str) -> tuple[List[str], Any]:
    """Split ``--set`` text ``a.b=value`` into the key path and the YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set rec.epoch=2")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({err})") from err
    if isinstance(value, str):
        # YAML 1.1 reads '5e-4' (no dot) as a string; a learning rate written so must still be a number.
        try:
            value = float(value)
        except ValueError:
            pass
    return path, value


def validate(opt: Mapping[str, Any], source: str) -> None:
    """Raise :class:`ConfigError` naming ``source`` and the key if ``opt`` has a key its model does not read."""
    for required in ("dataset", "tokenize"):
        if required not in opt:
            raise ConfigError(f"{source}: missing required key {required!r}")
    from crslab_c2crs.registry import crslab_table

    if opt["dataset"] not in crslab_table("dataset"):
        raise ConfigError(f"{source}: dataset {opt['dataset']!r} is not registered; known datasets: "
                          f"{sorted(crslab_table('dataset'))}")
    model = model_name_of(opt)
    if model not in _MODEL_KEYS:
        raise ConfigError(f"{source}: model {model!r} has no declared config keys; known models: "
                          f"{sorted(_MODEL_KEYS)}")
    known = COMMON_KEYS | _MODEL_KEYS[model]
    stages = _MODEL_STAGES[model]
    for key, value in opt.items():
        if key in stages:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: section {key!r} must be a mapping, got {value!r}")
            for sub in value:
                if sub not in _MODEL_STAGE_KEYS[model]:
                    raise ConfigError(f"{source}: unknown key {key}.{sub!r} for model {model}; known keys of "
                                      f"{key}: {sorted(_MODEL_STAGE_KEYS[model])}")
        elif key not in known:
            raise ConfigError(f"{source}: unknown key {key!r} for model {model}; known keys: "
                              f"{sorted(known | stages)}")


def load_config(path: str | Path, overrides: Optional[Iterable[str]] = None, stage: Optional[str] = None,
                seed: Optional[int] = None) -> Dict[str, Any]:
    """Read the YAML at ``path``, apply ``key.sub=value`` overrides in order, then the ``--stage`` and ``--seed``
    flags (``stage``, ``seed``), check every value (:func:`check_config`) and return the dict."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a YAML file with -c/--config, e.g. "
                          f"config/c2crs/redial.yaml")
    if path.exists() and not path.is_file():
        raise ConfigError(f"config file {path} is not a regular file (a device, pipe or socket); pass a YAML file "
                          f"with -c/--config")
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist (pass an existing YAML with -c/--config)")
    try:
        opt = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read ({err.strerror}); pass a readable YAML with "
                          f"-c/--config") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
                          f"save the file as UTF-8") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(opt, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    validate(opt, str(path))
    opt = copy.deepcopy(opt)
    overridden: Dict[str, Any] = {}
    for text in overrides or ():
        key_path, value = parse_override(text)
        target = opt
        for part in key_path[:-1]:
            if not isinstance(target.get(part), dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section of {path}")
            target = target[part]
        target[key_path[-1]] = value
        overridden[".".join(key_path)] = value
        validate(opt, f"--set {text!r}")
    _apply_flag(opt, "--stage", "start_stage", stage, overridden)
    _apply_flag(opt, "--seed", "seed", seed, overridden)
    check_config(opt, str(path))
    return opt


def _apply_flag(opt: Dict[str, Any], flag: str, key: str, value: Any, overridden: Mapping[str, Any]) -> None:
    """Set ``key`` from a command-line ``flag``; a ``--set`` of the same key with another value is a conflict."""
    if value is None:
        return
    model = model_name_of(opt)
    if key not in COMMON_KEYS | _MODEL_KEYS[model]:
        starts = sorted(name for name, keys in _MODEL_KEYS.items() if key in keys)
        raise ConfigError(f"{flag} {value}: model {model} has no {key!r} setting (it runs all its stages in one "
                          f"go); {flag} works with {', '.join(starts)}")
    if key in overridden and overridden[key] != value:
        raise ConfigError(f"{flag} {value} and --set {key}={overridden[key]} disagree; give only one of them")
    opt[key] = value


# ---------------------------------------------------------------------------------------------- value checks
# Integer settings -> smallest allowed value; null keeps CRSLab's default (no truncation, no cap).
INT_KEYS: Dict[str, int] = {
    "context_truncate": 1, "response_truncate": 3, "entity_truncate": 1, "word_truncate": 1, "num_threads": 1,
    "interact_topk": 1, "bucket_pool_batches": 1, "review_entity_limit": 1, "nb_review": 1, "info_truncate": 1,
    "ddp_timeout": 1,
}
# Float settings -> [low, high) they must lie in (KGSF's and KBRD's Transformer; C2-CRS checks its own fields).
FLOAT_RANGES: Dict[str, Tuple[float, float]] = {
    "dropout": (0.0, 1.0), "attention_dropout": (0.0, 1.0), "relu_dropout": (0.0, 1.0),
}
BOOL_KEYS: Set[str] = {"fast_rgcn", "length_bucketing", "shuffle_train", "rec_exclude_context", "pretrain_cache",
                       "movie_slots", "eval_movie_slots"}
# The same for the keys of a stage section; a new integer stage key needs only a line here.
STAGE_INT_KEYS: Dict[str, int] = {
    "epoch": 0, "batch_size": 1, "impatience": 1, "update_freq": 1, "max_batches": 1, "valid_max_batches": 1,
    "test_max_batches": 1,
}
STAGE_BOOL_KEYS: Set[str] = {"early_stop", "decode_valid"}
REQUIRED_STAGE_KEYS = ("epoch", "batch_size", "optimizer")
STOP_MODES = ("max", "min")
_SEED_RANGE = (0, 2 ** 32 - 1)  # numpy's
NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)
MAX_THREADS_PER_CORE = 4
_MODEL_CHECKS: Dict[str, List[Callable[[Mapping[str, Any], str], None]]] = {}


def register_config_check(model: str, check: Callable[[Mapping[str, Any], str], None]) -> None:
    """Add ``check(opt, source)`` to :func:`check_config` for ``model``: it raises :class:`ConfigError` for a bad
    value of a key only that model reads."""
    _MODEL_CHECKS.setdefault(model, []).append(check)


def bad_value(key: str, value: Any, expected: str, source: str) -> ConfigError:
    """The error for a ``value`` of ``key`` (read from ``source``) that is not ``expected``."""
    return ConfigError(f"{key}: {value!r} is not {expected}; correct it in {source} or with --set {key}=VALUE")


def _check_int(key: str, value: Any, minimum: int, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_value(key, value, f"an integer >= {minimum}", source)


def _check_bool(key: str, value: Any, source: str) -> None:
    if not isinstance(value, bool):
        raise bad_value(key, value, "true or false", source)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _looks_numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def choice_error(key: str, value: Any, choices: Iterable[str], what: str, source: str) -> ConfigError:
    """The error for a ``value`` of ``key`` that is not one of ``choices`` (named ``what``), with a "did you mean"."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{key}: unknown {what} {value!r}; {hint}choose one of {', '.join(choices)} "
                       f"(in {source} or with --set {key}=NAME)")


def _optimizer_classes() -> Dict[str, type]:
    """CRSLab's optimizer table (torch.optim and the AdamW/Adafactor it adds), real optimizers only."""
    import torch

    from crslab.system.base import optim_class

    return {name: cls for name, cls in optim_class.items()
            if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer}


def _scheduler_classes() -> Dict[str, type]:
    """CRSLab's scheduler table, without its abstract base classes."""
    import inspect

    from crslab.system.base import lr_scheduler_class

    return {name: cls for name, cls in lr_scheduler_class.items()
            if isinstance(cls, type) and not inspect.isabstract(cls) and name not in ("ABC", "LRScheduler")}


def _named(key: str, spec: Any, classes: Mapping[str, type], what: str, example: str,
           source: str) -> Tuple[type, Dict[str, Any]]:
    """The class named by ``spec`` (``{name: ..., **kwargs}``) among ``classes``, and its keyword arguments."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"{key}: {spec!r} is not a mapping with a name, e.g. {example}; correct it in {source}")
    if spec["name"] not in classes:
        raise choice_error(f"{key}.name", spec["name"], classes, what, source)
    return classes[spec["name"]], {k: v for k, v in spec.items() if k != "name"}


def _try_build(key: str, name: str, kwargs: Mapping[str, Any], build: Callable[[], Any], source: str) -> Any:
    """``build()``; the argument errors torch raises become one line naming ``key``."""
    try:
        return build()
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {name} does not accept {dict(kwargs)} ({err}); correct it in {source}") from None


def _check_optimizer(stage: str, spec: Any, source: str) -> Any:
    """Check ``<stage>.optimizer`` by building it over one dummy parameter; returns the optimizer."""
    import torch

    key = f"{stage}.optimizer"
    cls, kwargs = _named(key, spec, _optimizer_classes(), "optimizer", "{name: Adam, lr: 0.001}", source)
    if "lr" in kwargs and not (_is_number(kwargs["lr"]) and kwargs["lr"] > 0):
        hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if _looks_numeric(kwargs["lr"]) else ""
        raise bad_value(f"{key}.lr", kwargs["lr"], f"a number > 0{hint}", source)
    return _try_build(key, spec["name"], kwargs, lambda: cls([torch.nn.Parameter(torch.zeros(1))], **kwargs),
                      source)


def _check_scheduler(stage: str, spec: Any, optimizer: Any, source: str) -> None:
    """Check ``<stage>.lr_scheduler`` by building it on the dummy optimizer of the stage."""
    key = f"{stage}.lr_scheduler"
    cls, kwargs = _named(key, spec, _scheduler_classes(), "scheduler", "{name: ReduceLROnPlateau, patience: 3}",
                         source)

    def build_and_step() -> None:
        scheduler = cls(optimizer, **kwargs)
        # torch checks few arguments when building a scheduler (patience='x' passes): take one step of each kind
        scheduler.train_step()
        scheduler.valid_step(1.0)

    _try_build(key, spec["name"], kwargs, build_and_step, source)


def _check_finite(value: Any, key: str, source: str) -> None:
    """Every float in ``value`` (a setting, or a section walked recursively) is finite: YAML's ``.nan`` and ``.inf``
    and ``--set x=nan`` are floats that no range check catches (every comparison with NaN is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_value(key, value, "a finite number", source)
    if isinstance(value, Mapping):
        for sub, item in value.items():
            _check_finite(item, f"{key}.{sub}", source)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_finite(item, key, source)


def _check_stage(stage: str, section: Any, source: str) -> None:
    if section is None:
        raise ConfigError(f"section {stage!r} is missing from {source}: add it with "
                          f"{', '.join(REQUIRED_STAGE_KEYS)}")
    for key in REQUIRED_STAGE_KEYS:
        if key not in section:
            raise ConfigError(f"{stage}.{key} is missing from {source}: every stage section needs "
                              f"{', '.join(REQUIRED_STAGE_KEYS)}")
    for key, value in section.items():
        name = f"{stage}.{key}"
        if key in STAGE_INT_KEYS and (value is not None or key in REQUIRED_STAGE_KEYS):
            _check_int(name, value, STAGE_INT_KEYS[key], source)
        elif key in STAGE_BOOL_KEYS:
            _check_bool(name, value, source)
    if "stop_mode" in section and section["stop_mode"] not in STOP_MODES:
        raise choice_error(f"{stage}.stop_mode", section["stop_mode"], STOP_MODES, "stop mode", source)
    if section.get("early_stop") and "stop_mode" not in section:
        raise ConfigError(f"{stage}.early_stop is true but {stage}.stop_mode is missing: add stop_mode: max or "
                          f"min in {source}")
    if "gradient_clip" in section and not _is_number(section["gradient_clip"]):
        raise bad_value(f"{stage}.gradient_clip", section["gradient_clip"], "a number (<= 0: no clipping)", source)
    optimizer = _check_optimizer(stage, section["optimizer"], source)
    if section.get("lr_scheduler") is not None:
        _check_scheduler(stage, section["lr_scheduler"], optimizer, source)


def check_config(opt: Mapping[str, Any], source: str) -> None:
    """Check every value of the resolved configuration ``opt`` (read from ``source``) in one pass.

    Integers, booleans and ranges of the common keys and of every stage section, the optimizer and scheduler of
    every stage (built once over a dummy parameter), and the checks the model registered with
    :func:`register_config_check`. Nothing is loaded or written.

    Raises:
        ConfigError: the first bad value, naming the key and how to correct it.
    """
    model = model_name_of(opt)
    for key, value in opt.items():
        _check_finite(value, key, source)
    for key, (low, high) in FLOAT_RANGES.items():
        if key in opt and not (_is_number(opt[key]) and low <= opt[key] < high):
            raise bad_value(key, opt[key], f"a number in [{low:g}, {high:g})", source)
    for key, minimum in INT_KEYS.items():
        if opt.get(key) is not None:
            _check_int(key, opt[key], minimum, source)
    for key in BOOL_KEYS:
        if key in opt:
            _check_bool(key, opt[key], source)
    if "seed" in opt and (isinstance(opt["seed"], bool) or not isinstance(opt["seed"], int)
                          or not _SEED_RANGE[0] <= opt["seed"] <= _SEED_RANGE[1]):
        raise bad_value("seed", opt["seed"], f"an integer from {_SEED_RANGE[0]} to {_SEED_RANGE[1]}", source)
    if "scale" in opt and not (_is_number(opt["scale"]) and 0 < opt["scale"] <= 1):
        raise bad_value("scale", opt["scale"], "a fraction of the data in (0, 1]", source)
    for key in ("checkpoint_dir", "model_file", "log_name"):
        value = opt.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip() or Path(value).is_absolute()
                                  or ".." in Path(value).parts):
            raise bad_value(key, value, "a relative name inside the save/log folder (no '..')", source)
        # the file system refuses a longer name only at the first save, after hours of training
        if value is not None and any(len(part.encode("utf-8")) > NAME_MAX for part in Path(value).parts):
            raise bad_value(key, value, f"made of folder and file names of at most {NAME_MAX} bytes each", source)
    threads = opt.get("num_threads")
    if isinstance(threads, int) and threads > MAX_THREADS_PER_CORE * (os.cpu_count() or 1):
        raise bad_value("num_threads", threads, f"at most {MAX_THREADS_PER_CORE} per core of this machine's "
                        f"{os.cpu_count()} (more only slows torch down, and exhausts memory long before 100000)",
                        source)
    check_rec_targets(opt, source)
    if opt.get("eval_movie_slots") and opt.get("dataset") not in REDIAL_DATASETS:
        raise ConfigError(f"eval_movie_slots: the test pass fills movie slots from ReDial's movies; dataset "
                          f"{opt.get('dataset')!r} has none (correct it in {source})")
    for stage in sorted(_MODEL_STAGES[model]):
        _check_stage(stage, opt.get(stage), source)
    for check in _MODEL_CHECKS.get(model, ()):
        check(opt, source)
