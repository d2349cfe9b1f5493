"""Run configuration: one YAML file, then ``--set key=value`` overrides from the command line (RecBole order).

CRSLab silently ignores keys it does not know, so a typo (``rec.epochs``) trains with a default. Here every key
is checked against the keys the chosen model reads; models declare theirs with :func:`register_config_keys`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

import yaml

from crslab_c2crs.errors import ConfigError


COMMON_KEYS: Set[str] = {
    "dataset", "tokenize", "model", "rec_model", "conv_model", "policy_model", "evaluator", "embedding",
    "context_truncate", "response_truncate", "entity_truncate", "word_truncate", "scale", "model_file",
    "log_name", "seed", "fast_rgcn", "num_threads", "interact_topk",
}
STAGE_KEYS: Set[str] = {
    "epoch", "batch_size", "optimizer", "lr_scheduler", "early_stop", "impatience", "stop_mode",
    "gradient_clip", "update_freq",
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


def load_config(path: str | Path, overrides: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """Read the YAML at ``path``, apply ``key.sub=value`` overrides in order, validate and return the dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (pass an existing YAML with -c/--config)")
    try:
        opt = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(opt, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    validate(opt, str(path))
    opt = copy.deepcopy(opt)
    for text in overrides or ():
        key_path, value = parse_override(text)
        target = opt
        for part in key_path[:-1]:
            if not isinstance(target.get(part), dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section of {path}")
            target = target[part]
        target[key_path[-1]] = value
        validate(opt, f"--set {text!r}")
    return opt
