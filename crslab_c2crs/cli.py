"""``run_crslab.py``: CRSLab's own runner with a data root, a seed, config overrides and clear errors.

The flags are CRSLab's (``-c -g -sd -rd -ss -rs -d -i -tb``) plus ``--data-root``, ``--seed``, ``--set``,
``--stage``, ``--results`` and ``--dump-predictions``. The run itself is ``crslab.quick_start.run_crslab``
unchanged; the system it builds is kept so the test metrics can be summarised and saved at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

SUMMARY_METRICS = (("Recall@1", "hit@1"), ("Recall@10", "hit@10"), ("Recall@50", "hit@50"),
                   ("MRR@10", "mrr@10"), ("NDCG@10", "ndcg@10"), ("BLEU-1", "bleu@1"), ("BLEU-2", "bleu@2"),
                   ("Dist-2 (CRSLab)", "dist@2"), ("Dist-3 (CRSLab)", "dist@3"), ("Dist-4 (CRSLab)", "dist@4"),
                   ("Dist-2 (paper)", "dist_ratio@2"), ("Dist-3 (paper)", "dist_ratio@3"),
                   ("Dist-4 (paper)", "dist_ratio@4"), ("Targets in context", "target_in_context"),
                   ("New-item Recall@1", "new_hit@1"), ("New-item Recall@10", "new_hit@10"),
                   ("New-item Recall@50", "new_hit@50"), ("Coverage@10", "coverage@10"),
                   ("Popularity@10", "popularity@10"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_crslab.py", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, help="YAML config, e.g. config/c2crs/redial.yaml")
    parser.add_argument("-g", "--gpu", default=None,
                        help="GPU id(s) like '0' or '0,1'; '-1' for CPU (default: 0 if CUDA exists, else -1)")
    parser.add_argument("-sd", "--save_data", action="store_true", help="save processed dataset")
    parser.add_argument("-rd", "--restore_data", action="store_true", help="restore processed dataset")
    parser.add_argument("-ss", "--save_system", action="store_true", help="save trained system")
    parser.add_argument("-rs", "--restore_system", action="store_true", help="restore trained system")
    parser.add_argument("-d", "--debug", action="store_true", help="train on valid data, debug logging")
    parser.add_argument("-i", "--interact", action="store_true", help="chat with the system")
    parser.add_argument("-tb", "--tensorboard", action="store_true", help="log to tensorboard")
    parser.add_argument("--data-root", default=None,
                        help="data root holding dataset/, model/ and save/ (default: $CRSLAB_DATA_ROOT or ./data)")
    parser.add_argument("--seed", type=int, default=None, help="seed for random, numpy and torch (default: 42)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set rec.epoch=2 (repeatable)")
    parser.add_argument("--stage", default=None,
                        help="C2-CRS only: first stage to run (coarse, fine, rec, conv); earlier stages are "
                             "restored from their checkpoints. test: restore the conv checkpoint and only test it")
    parser.add_argument("--results", default=None, help="write the final metrics as JSON to this file")
    parser.add_argument("--dump-predictions", default=None, metavar="FILE",
                        help="write the test set's per-turn predictions as JSON lines to this file")
    parser.add_argument("--allocator", default="system", metavar="{system,tcmalloc,jemalloc}",
                        help="C allocator (Linux): tcmalloc or jemalloc, from the system's packages, preloaded by "
                             "starting again; tcmalloc trains C2-CRS in far less memory (docs/benchmark.md#memory)")
    return parser


def resolve_gpu(value: Optional[str]) -> str:
    """CRSLab's ``-g`` value, defaulting to the CPU when no CUDA device exists."""
    import torch

    from crslab_c2crs.errors import ConfigError

    if value is None:
        return "0" if torch.cuda.is_available() else "-1"
    ids = [part.strip() for part in value.split(",")]
    if not all(re.fullmatch(r"-?[0-9]+", part) for part in ids):
        raise ConfigError(f"-g {value}: expected GPU ids like 0 or 0,1, or -1 for the CPU")
    if ids != ["-1"] and not torch.cuda.is_available():
        raise ConfigError(f"-g {value}: no CUDA device is available; use -g -1 for the CPU")
    return ",".join(ids)


def check_run(args: argparse.Namespace, opt: Dict[str, Any]) -> None:
    """Check the flags against each other and every place the run will write or read a saved system, before any
    data is loaded: a run must not fail after hours of training because it cannot save."""
    from crslab_c2crs import distributed
    from crslab_c2crs.config import model_name_of
    from crslab_c2crs.data.layout import REDIAL_DATASETS
    from crslab_c2crs.errors import ConfigError, MissingDataError
    from crslab_c2crs.paths import check_output_file, check_writable_dir, checkpoint_dir, saved_system_file
    from crslab_c2crs.registry import crslab_table

    if args.interact and distributed.launched():
        raise ConfigError("-i under torchrun: a chat is one process; run it with python run_crslab.py -rs -i")
    if args.interact and args.save_system:
        raise ConfigError("-i and -ss do not combine: -i only chats, nothing is trained or saved; train with -ss "
                          "first, then chat with -rs -i")
    if args.interact and not args.restore_system:
        raise ConfigError("-i needs -rs: without it the chat would use an untrained model with random weights; "
                          "train with -ss first, then chat with -rs -i")
    if args.restore_system and not saved_system_file(opt).is_file():
        model = model_name_of(opt)
        others = sorted(path.parent.name for path in checkpoint_dir(opt).parent.glob(f"*/{model}.pth"))
        choose = f"; saved {model} systems: checkpoint_dir {', '.join(others)} (--set checkpoint_dir=NAME)" \
            if others else ""
        raise MissingDataError(f"-rs: no saved system at {saved_system_file(opt)}; train and save one first with "
                               f"-ss (same config, checkpoint_dir and --data-root){choose}")
    check_writable_dir(Path("log"), "log folder", "run from a folder where ./log can be written")
    if opt.get("embedding") and opt["dataset"] in REDIAL_DATASETS:
        import crslab.config
        from crslab_c2crs.data.builder.word2vec import check_word_vectors
        from crslab_c2crs.data.layout import redial_dir

        check_word_vectors(redial_dir(Path(crslab.config.DATASET_PATH).parent, opt["tokenize"]), opt["embedding"])
    if args.results:
        check_output_file(Path(args.results), "--results")
    if args.dump_predictions:
        from crslab_c2crs.predictions import check_supported

        if args.interact:
            raise ConfigError("-i and --dump-predictions do not combine: a chat evaluates no test set")
        check_output_file(Path(args.dump_predictions), "--dump-predictions")
        check_supported(opt)
    if args.interact:
        return
    fix = "make it writable, or choose another --data-root or checkpoint_dir"
    if hasattr(crslab_table("system").get(model_name_of(opt)), "save_stage"):
        check_writable_dir(checkpoint_dir(opt), "checkpoint_dir (stage checkpoints)", fix)
    if args.save_system:
        check_writable_dir(saved_system_file(opt).parent, "-ss (saved system)", fix)


def log_beside_the_chat(log_name: str, debug: bool) -> None:
    """In a chat stdout is the conversation: CRSLab's log lines go to its log file and to stderr instead."""
    from loguru import logger

    level = "DEBUG" if debug else "INFO"
    logger.remove()
    logger.add(os.path.join("log", f"{log_name}.log"), level=level)
    logger.add(sys.stderr, level=level)


def summarise(history: List[Dict[str, Any]]) -> Dict[str, float]:
    """The last test report of each metric family, as {metric name: value}."""
    final: Dict[str, float] = {}
    for entry in history:
        if entry["mode"] == "test":
            final.update(entry["metrics"])
    return final


def print_summary(metrics: Dict[str, float], split: str = "test") -> None:
    """Print the final ``metrics`` of the test passes, which scored ``split`` (``eval_split``)."""
    rows = [(label, metrics[key]) for label, key in SUMMARY_METRICS if key in metrics]
    if not rows:
        return
    width = max(len(label) for label, _ in rows)
    print("\nTest metrics" if split == "test" else f"\nTest metrics on the {split} split (eval_split)")
    for label, value in rows:
        print(f"  {label:<{width}}  {value:.4f}")


def default_log_name(opt: Dict[str, Any]) -> str:
    """CRSLab's log file name when the config sets none: dataset, model and the time."""
    from crslab_c2crs.config import model_name_of

    return f"{opt['dataset']}_{model_name_of(opt)}_{time.strftime('%Y-%m-%d-%H-%M-%S')}"


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run one CRSLab job from parsed ``args``; return the system's evaluator history and summary. Under
    ``torchrun`` the process is one rank of the job (:mod:`crslab_c2crs.distributed`): every rank returns the same
    history, rank 0 alone logs and writes."""
    import torch
    from loguru import logger

    from crslab_c2crs import allocator, compat, distributed
    from crslab_c2crs.atomic import clear_stale_temporaries
    from crslab_c2crs.config import load_config
    from crslab_c2crs.paths import checkpoint_dir, resolve_data_root
    from crslab_c2crs.reproducibility import seed_everything

    data_root = resolve_data_root(args.data_root)
    compat.relocate(data_root)
    opt = load_config(args.config, args.overrides, stage=args.stage, seed=args.seed)
    seed = opt.setdefault("seed", 42)
    gpu = resolve_gpu(distributed.rank_gpu(args.gpu, torch.cuda.is_available()))
    check_run(args, opt)
    if args.interact:
        # a known log file name, so the chat can keep logging to it (see log_beside_the_chat)
        opt.setdefault("log_name", default_log_name(opt))
    with distributed.process_group(gpu, opt.get("ddp_timeout")):
        if distributed.active():
            # every rank names rank 0's log file (the name has the time in it), so no rank starts another
            opt.setdefault("log_name", distributed.all_objects(default_log_name(opt))[0])
        if distributed.is_main():
            for path in clear_stale_temporaries(checkpoint_dir(opt)):
                logger.warning(f"[Removed {path}, left by a run killed while it saved]")
        seed_everything(seed, opt.get("num_threads"))
        compat.use_fast_rgcn_in_baselines(bool(opt.get("fast_rgcn", False)))

        import crslab.quick_start.quick_start as quick_start
        from crslab.config import Config
        from crslab_c2crs.evaluator import attach as attach_evaluator

        def attach(system: Any) -> None:
            attach_evaluator(system, record_test=bool(args.dump_predictions))

        with compat.keep_built_systems(attach) as systems, compat.private_tmpdir() as tmp:
            config_file = tmp / "config.yaml"
            config_file.write_text(yaml.safe_dump(opt), encoding="utf-8")
            # CRSLab's Config checks for ./log, then creates it: ranks started together race there (one failed
            # with FileExistsError), so the folder exists before any of them builds its Config
            Path("log").mkdir(exist_ok=True)
            # CRSLab logs its whole config to stdout while building Config: keep a chat's stdout for the chat
            with contextlib.redirect_stdout(sys.stderr) if args.interact else contextlib.nullcontext(), \
                    distributed.main_logs_only():
                config = Config(str(config_file), gpu, args.debug)
            if args.interact:
                log_beside_the_chat(opt["log_name"], args.debug)
            started = time.time()
            # -sd: rank 0 saves the processed data, the others only build it
            quick_start.run_crslab(config, args.save_data and distributed.is_main(), args.restore_data,
                                   args.save_system, args.restore_system, args.interact, args.debug,
                                   args.tensorboard)
        history = systems[0].evaluator.history if systems and hasattr(systems[0], "evaluator") else []
        result = {"config": opt, "data_root": str(data_root), "seed": seed, "wall_seconds": time.time() - started,
                  "world_size": distributed.world_size(), "backend": distributed.backend(),
                  "allocator": allocator.in_use(), "history": history,
                  "test": summarise(history)}
        if args.dump_predictions:
            lines = distributed.main_writes(lambda: dump_predictions(systems[0], args.dump_predictions))
            result["predictions"] = {"file": str(args.dump_predictions), "lines": lines}
    return result


def dump_predictions(system: Any, path: str) -> int:
    """Write ``--dump-predictions`` of ``system`` to ``path``; returns the number of lines."""
    from crslab_c2crs.predictions import write_predictions

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_predictions(system, path)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from crslab_c2crs import allocator, atomic, distributed
    from crslab_c2crs.errors import USER_ERRORS

    try:
        allocator.preload(args.allocator, argv)
        result = run(args)
    except USER_ERRORS as err:
        print(f"run_crslab.py: error: {distributed.rank_label()}{err}", file=sys.stderr)
        return 2
    except Exception as err:
        if not distributed.launched():
            raise
        # torchrun stops every rank when one exits: the failing rank's traceback and one line naming it; a rank
        # that only lost contact with it says so in one line, without a traceback
        consequence = distributed.peer_failure(err)
        if consequence is None:
            traceback.print_exc()
        reason = consequence or f"failed: {type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        print(f"run_crslab.py: error: {distributed.rank_label()}{reason}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # what the failed collectives left (DDP's pending all-reduce) can block in its destructor for good once
        # the error is dropped: leave at once, torchrun reports the exit status
        os._exit(1)
    if distributed.launched_rank() != 0:
        return 0  # rank 0 prints and writes the results
    if not args.interact:
        print_summary(result["test"], result["config"].get("eval_split") or "test")
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(args.results, result, indent=2, default=str)
    return 0
