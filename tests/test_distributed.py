"""Training on several processes (crslab_c2crs.distributed, docs/scale-out.md), on this CPU with gloo: the shards of
the batch plan, the gathers and the global-batch losses against one process's gradients, and torchrun runs of
C2-CRS (every stage), KGSF and KBRD at 2 ranks against one process at the same global batch size, the files rank 0
alone writes, and a failing or hanging rank that stops the job."""
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from crslab_c2crs import distributed
from crslab_c2crs.cli import main
from crslab_c2crs.data.batching import BatchPlan
from crslab_c2crs.errors import ConfigError
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "tests" / "ddp_entry.py"
RUN_TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this torch build has no torch.distributed with the gloo backend")

# Equal runs need equal computations: no dropout anywhere (masks are drawn per rank), and batch sizes whose last
# batches hold at least 2 samples in every split (a smaller one is merged into the batch before it under DDP only).
NO_DROPOUT = ["dropout=0", "relu_dropout=0", "attention_dropout=0"]
# C2-CRS's pre-training stages with SGD: with Adam their runs differ at 2 ranks as much as one process does at 2
# threads instead of 1 (docs/scale-out.md): Adam turns the rounding noise of gradients that are zero in exact
# arithmetic (directions the projection heads' BatchNorm removes, key-projection biases) into full-size steps.
C2CRS_EQUAL = SHORT["C2CRS"] + NO_DROPOUT + [f"{stage}.batch_size=13" for stage in ("coarse", "fine", "rec", "conv")] \
    + [f"{stage}.optimizer.{key}" for stage in ("coarse", "fine") for key in ("name=SGD", "lr=0.01")]
# uneven shards (15 -> 8 + 7), CRSLab's Adam
BASELINE_EQUAL = {
    "KGSF": SHORT["KGSF"] + NO_DROPOUT + ["pretrain.batch_size=15", "rec.batch_size=15", "conv.batch_size=13",
                                          "rec.epoch=2"],
    "KBRD": SHORT["KBRD"] + NO_DROPOUT + ["rec.batch_size=15", "conv.batch_size=13", "rec.epoch=2"],
}


def argv(model, root, name, overrides, *extra):
    args = ["-c", str(ROOT / f"config/{model.lower()}/redial.yaml"), "-g", "-1", "--data-root", str(root), "--seed",
            "1", "--results", f"{name}.json", "--set", "num_threads=1", "--set", f"checkpoint_dir={name}", *extra]
    for override in overrides:
        args += ["--set", override]
    return args


def one_process(model, root, workdir, name, overrides, *extra):
    """The run in this process (one rank); returns its --results."""
    assert main(argv(model, root, name, overrides, *extra)) == 0
    return json.loads((workdir / f"{name}.json").read_text())


def torchrun(args, workdir, nproc=2, **env):
    """``torchrun --nproc_per_node nproc tests/ddp_entry.py args`` from ``workdir``; the finished process."""
    environ = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               str(ENTRY), *args]
    return subprocess.run(command, cwd=workdir, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def two_ranks(model, root, workdir, name, overrides, *extra):
    """The run at 2 ranks; returns its --results and the files it wrote as (rank, path)."""
    writes = workdir / f"{name}.writes"
    proc = torchrun(argv(model, root, name, overrides, *extra), workdir, DDP_TEST_WRITES=str(writes))
    assert proc.returncode == 0, proc.stderr[-4000:]
    noted = [(rank, str((workdir / path).resolve())) for rank, path in
             (line.split(" ", 1) for line in writes.read_text().splitlines())]
    return json.loads((workdir / f"{name}.json").read_text()), noted


def assert_same_history(one, two, rel=1e-4, grad_rel=1e-2):
    """Every report of both runs, epoch by epoch, within float tolerance; ``grad norm`` (the mean of the norms
    before clipping, the figure that moves most with rounding) within ``grad_rel``."""
    assert [(entry["epoch"], entry["mode"]) for entry in one] == [(entry["epoch"], entry["mode"]) for entry in two]
    for a, b in zip(one, two):
        assert set(a["metrics"]) == set(b["metrics"]), (a["epoch"], a["mode"])
        for name, value in a["metrics"].items():
            tolerance = grad_rel if name == "grad norm" else rel
            assert b["metrics"][name] == pytest.approx(value, rel=tolerance, abs=1e-6), (a["epoch"], a["mode"], name)


def assert_written_once_by_rank_0(noted, *paths):
    written = [path for _, path in noted]
    assert {rank for rank, _ in noted} == {"0"}
    assert len(written) == len(set(written))
    assert {str(Path(path).resolve()) for path in paths} <= set(written)


# ---------------------------------------------------------------------------------------------- batches
def test_every_sample_is_in_one_shard_once_per_epoch_and_the_plan_follows_the_seed():
    lengths = [random.Random(index).randint(1, 40) for index in range(101)]
    dataset = [{"context_seq": [0] * length} for length in lengths]
    plan = BatchPlan("train", pool_batches=2)

    def rank_batches(rank, seed):
        random.seed(seed)  # every rank seeds alike and draws the same plan
        return distributed.shard_batches(plan.batches(dataset, 8, True, "rec"), rank, 3)

    epoch = [rank_batches(rank, 7) for rank in range(3)]
    assert sorted(index for shards in epoch for batch in shards for index in batch) == list(range(101))
    assert len({len(shards) for shards in epoch}) == 1  # every rank steps as often
    assert all(batch for shards in epoch for batch in shards)
    assert epoch == [rank_batches(rank, 7) for rank in range(3)]
    assert epoch != [rank_batches(rank, 8) for rank in range(3)]


def test_a_batch_smaller_than_the_ranks_joins_its_neighbour_and_a_tiny_pass_is_refused():
    assert distributed.shard_batches([[0, 1, 2], [3], [4, 5]], 0, 2) == [[0, 2], [4]]
    assert distributed.shard_batches([[0, 1, 2], [3], [4, 5]], 1, 2) == [[1, 3], [5]]
    assert distributed.shard_batches([[0], [1, 2, 3]], 1, 2) == [[1, 3]]
    with pytest.raises(ConfigError, match="1 samples cannot be shared by 2 processes"):
        distributed.shard_batches([[0]], 0, 2)
    assert distributed.shard([[0, 1], [2]]) == [[0, 1], [2]]  # one process: the batches as they are


def test_each_local_process_gets_its_own_gpu_id(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.rank_gpu(None, cuda=True) == "1"
    assert distributed.rank_gpu(None, cuda=False) == "-1"
    assert distributed.rank_gpu("-1", cuda=True) == "-1"
    assert distributed.rank_gpu("2,3", cuda=True) == "3"
    with pytest.raises(ConfigError, match="each needs its own GPU"):
        distributed.rank_gpu("0", cuda=True)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.rank_gpu("0", cuda=True) == "0"


def test_a_chat_under_torchrun_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code = main(["-c", str(ROOT / "config/kbrd/redial.yaml"), "-g", "-1", "--data-root", str(tmp_path), "-rs", "-i"])
    assert code == 2
    assert "run_crslab.py: error: rank 1 of 2: -i under torchrun" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- gathers and losses
class _Toy(torch.nn.Module):
    """Two view encoders, C2-CRS's coarse loss with its BatchNorm heads, and a per-sample mean term."""

    def __init__(self):
        from crslab_c2crs.model.c2crs.contrastive import ProjectionHead

        super().__init__()
        self.history, self.kg = torch.nn.Linear(4, 6), torch.nn.Linear(4, 6)
        self.heads = torch.nn.ModuleDict({"history": ProjectionHead(6, 5), "kg": ProjectionHead(6, 5)})

    def forward(self, a, b):
        from crslab_c2crs.model.c2crs.contrastive import coarse_loss

        e_c = self.history(a)
        loss, _ = coarse_loss(e_c, self.kg(b), None, self.heads, 0.5)
        per_sample = (e_c ** 2).sum()
        return loss + distributed.mean_over_ranks(per_sample, torch.tensor(a.shape[0]))


def _gather_worker(rank, port):
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.manual_seed(0)
    a, b = torch.randn(7, 4), torch.randn(7, 4)  # 7 rows: shards of 4 and 3
    model = _Toy()
    reference = _Toy()
    reference.load_state_dict(model.state_dict())
    expected = reference(a, b)  # one process on the whole batch
    expected.backward()
    with distributed.process_group("-1", timeout_s=60):
        rows = torch.arange(15.0).view(5, 3)
        assert torch.equal(distributed.gather_rows(rows[rank::2]), rows)
        ragged = torch.full((rank + 1, rank + 2), rank + 1)
        assert distributed.gather_cat(ragged, fill=-1).tolist() == [[1, 1, -1], [2, 2, 2], [2, 2, 2]]
        assert distributed.all_objects({"rank": rank}) == [{"rank": 0}, {"rank": 1}]
        wrapped = distributed.wrap(model)
        loss = wrapped(a[rank::2], b[rank::2])
        loss.backward()
        # every rank's loss value averages to the whole batch's; DDP's gradient is the one process's
        assert float(distributed.sum_over_ranks(loss.detach())) / 2 == pytest.approx(float(expected), rel=1e-5)
        for (name, mine), theirs in zip(model.named_parameters(), reference.parameters()):
            assert torch.allclose(mine.grad, theirs.grad, atol=1e-6, rtol=1e-5), name
        assert torch.allclose(model.heads.history.norm.running_mean, reference.heads.history.norm.running_mean,
                              atol=1e-6)
        assert wrapped.state_dict().keys() == reference.state_dict().keys()  # no "module." prefix


def test_gathered_losses_under_ddp_give_the_single_process_gradient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ranks = torch.multiprocessing.start_processes(_gather_worker, args=(port,), nprocs=2, join=False,
                                                  start_method="spawn")
    deadline = time.time() + RUN_TIMEOUT_S
    while not ranks.join(timeout=5):  # raises when a rank fails
        if time.time() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail(f"the 2 ranks did not finish within {RUN_TIMEOUT_S} s")


# ---------------------------------------------------------------------------------------------- torchrun runs
@pytest.mark.slow
def test_c2crs_at_two_ranks_equals_one_process_in_every_stage(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one = one_process("C2CRS", tiny_root, tmp_path, "c2_one", C2CRS_EQUAL, "--dump-predictions", "c2_one.jsonl")
    two, noted = two_ranks("C2CRS", tiny_root, tmp_path, "c2_two", C2CRS_EQUAL, "--dump-predictions", "c2_two.jsonl")
    assert (one["world_size"], one["backend"], two["world_size"], two["backend"]) == (1, None, 2, "gloo")
    trained = [(entry["mode"], next(iter(entry["metrics"]))) for entry in two["history"] if entry["mode"] == "train"]
    assert len(trained) == 1 + 1 + 2 + 1  # coarse, fine, rec (2 epochs), conv
    assert_same_history(one["history"], two["history"])
    dumped = [[json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
              for name in ("c2_one", "c2_two")]
    for line_one, line_two in zip(*dumped):
        scores = [[movie.pop("score") for movie in line["top10"] or ()] for line in (line_one, line_two)]
        assert line_one == line_two
        assert scores[1] == pytest.approx(scores[0], abs=1e-4)
    assert len(dumped[0]) == len(dumped[1]) > 0
    saved = tiny_root / "save" / "c2_two"
    assert_written_once_by_rank_0(noted, *(saved / f"{stage}.pth" for stage in ("coarse", "fine", "rec", "conv")),
                                  tmp_path / "c2_two.json", tmp_path / "c2_two.jsonl")
    # a 2-rank checkpoint is a single process's: same keys, and one process tests it as the 2 ranks did
    one_state, two_state = (torch.load(tiny_root / "save" / name / "conv.pth")["model_state_dict"]
                            for name in ("c2_one", "c2_two"))
    assert one_state.keys() == two_state.keys()
    retested = one_process("C2CRS", tiny_root, tmp_path, "c2_two", C2CRS_EQUAL + ["start_stage=test"])
    assert_same_history([entry for entry in two["history"] if entry["mode"] == "test"], retested["history"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["KGSF", "KBRD"])
def test_baselines_at_two_ranks_equal_one_process(model, tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = model.lower()
    one = one_process(model, tiny_root, tmp_path, f"{name}_one", BASELINE_EQUAL[model])
    two, noted = two_ranks(model, tiny_root, tmp_path, f"{name}_two", BASELINE_EQUAL[model], "-ss")
    assert two["world_size"] == 2 and two["backend"] == "gloo"
    assert {"rec_loss", "gen_loss"} <= {key for entry in two["history"] for key in entry["metrics"]}
    assert_same_history(one["history"], two["history"])
    assert_written_once_by_rank_0(noted, tiny_root / "save" / f"{name}_two" / f"{model}.pth",
                                  tmp_path / f"{name}_two.json")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["crash", "hang"])
def test_a_failing_rank_stops_the_job_with_one_line(how, tiny_root, tmp_path):
    started = time.time()
    proc = torchrun(argv("KBRD", tiny_root, f"fail_{how}", SHORT["KBRD"] + ["ddp_timeout=5"]), tmp_path,
                    DDP_TEST_FAIL=how)
    elapsed = time.time() - started
    assert proc.returncode != 0
    assert elapsed < 120  # the hanging rank is given up after ddp_timeout, not waited for
    lines = [line.strip() for line in proc.stderr.replace("\r", "\n").splitlines()
             if line.strip().startswith("run_crslab.py: error:")]
    if how == "crash":
        assert "run_crslab.py: error: rank 1 of 2: failed: RuntimeError: injected failure on rank 1" in lines
        assert sum("failed:" in line for line in lines) == 1
    else:
        assert any(line.startswith("run_crslab.py: error: rank 0 of 2: stopped: another rank did not answer within "
                                   "the process group's timeout (ddp_timeout)") for line in lines), proc.stderr[-3000:]
    assert not (tmp_path / f"fail_{how}.json").exists()
