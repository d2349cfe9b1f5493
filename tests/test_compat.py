"""Every compat patch: the patched behaviour, and (in one subprocess) that stock CRSLab 0.1.2 is broken there."""
import importlib
import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import crslab_c2crs
from crslab_c2crs import compat
from crslab_c2crs.errors import MissingDataError
from crslab_c2crs.paths import PATH_NAMES


def test_apply_is_idempotent_and_covers_every_patch():
    assert compat.apply() == list(compat.PATCHES)
    assert compat.apply() == list(compat.PATCHES)


def test_adamw_is_torch_adamw():
    assert importlib.import_module("crslab.system.base").optim_class["AdamW"] is torch.optim.AdamW


def test_position_codes_do_not_raise_and_are_sinusoids():
    transformer = importlib.import_module("crslab.model.utils.modules.transformer")
    encoder = transformer.TransformerEncoder(
        n_heads=2, n_layers=1, embedding_size=8, ffn_size=8, vocabulary_size=10,
        embedding=torch.nn.Embedding(10, 8), n_positions=5, learn_positional_embeddings=False)
    codes = encoder.position_embeddings.weight
    assert not codes.requires_grad
    assert torch.allclose(codes[3, 0], torch.sin(torch.tensor(3.0)))
    assert torch.allclose(codes[3, 1], torch.cos(torch.tensor(3.0)))
    assert importlib.import_module("crslab.model.crs.kgsf.modules").create_position_codes is \
        compat.create_position_codes


def test_reduce_lr_on_plateau_builds_and_steps():
    scheduler_module = importlib.import_module("crslab.system.utils.lr_scheduler")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = scheduler_module.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    scheduler.valid_step(1.0)
    scheduler.valid_step(2.0)
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_metrics_accept_numpy_scalars():
    from crslab.evaluator.metrics.base import AverageMetric

    assert AverageMetric(np.float32(0.5)).value() == 0.5
    with pytest.raises(TypeError, match="must be a number"):
        AverageMetric("0.5")


def test_interactive_tokenizer_needs_no_nltk_data():
    base = importlib.import_module("crslab.system.base").BaseSystem
    assert base.nltk_tokenize(None, "I loved @1234 . Have you seen it?") == \
        ["I", "loved", "@1234", ".", "Have", "you", "seen", "it", "?"]


def test_backward_does_not_scale_gradients_by_the_loss():
    base = importlib.import_module("crslab.system.base").BaseSystem
    weight = torch.nn.Parameter(torch.tensor(2.0))
    system = types.SimpleNamespace(update_freq=1, _number_grad_accum=0, _zero_grad=lambda: None,
                                   _update_params=lambda: None)
    base.backward(system, 3.0 * weight)
    assert weight.grad.item() == pytest.approx(3.0)


def test_kbrd_user_embedding_is_not_zero():
    kbrd = importlib.import_module("crslab.model.crs.kbrd.kbrd").KBRDModel
    attention = importlib.import_module("crslab.model.utils.modules.attention").SelfAttentionBatch(4, 4)
    model = types.SimpleNamespace(user_emb_dim=4, device="cpu", kg_attn=attention)
    kg_embedding = torch.randn(5, 4)
    users = kbrd.encode_user(model, [[1, 2], []], kg_embedding)
    assert users.shape == (2, 4)
    assert users[0].abs().sum() > 0
    assert torch.equal(users[1], torch.zeros(4))


def test_missing_dataset_fails_fast_and_deletes_nothing(tmp_path):
    download = importlib.import_module("crslab.download")
    stale = tmp_path / "dataset" / "redial" / "nltk"
    stale.mkdir(parents=True)
    (stale / ".built").write_text("2020-01-01\n0.1\n")
    (stale / "user_file.txt").write_text("keep me")
    with pytest.raises(MissingDataError, match="built with another version") as err:
        download.build(str(stale), None, version="0.31")
    assert "python -m crslab_c2crs.data build redial" in str(err.value)
    assert f"--data-root {tmp_path}" in str(err.value)
    assert (stale / "user_file.txt").read_text() == "keep me"
    with pytest.raises(MissingDataError, match="missing or not built"):
        download.build(str(tmp_path / "dataset" / "other"), None, version="1")


def test_conv_evaluator_builds_offline_with_word_level_distinct():
    evaluator_module = importlib.import_module("crslab.evaluator")
    evaluator = evaluator_module.get_evaluator("conv", "ReDial")
    evaluator.gen_evaluate("a b a", ["a b"])
    evaluator.gen_evaluate("a c", ["a c"])
    report = evaluator.report()
    # word unigrams {a, b, c}: 3 distinct / 2 sentences (CRSLab) and 3 distinct / 5 total (paper)
    assert report["dist@1"] == pytest.approx(1.5)
    assert report["dist_ratio@1"] == pytest.approx(0.6)
    assert report["dist_ratio@2"] == pytest.approx(3 / 3)
    assert "greedy" not in report


def test_relocate_points_every_loaded_crslab_module_at_the_data_root(tmp_path, monkeypatch):
    import crslab.config

    redial = importlib.import_module("crslab.data.dataset.redial.redial")
    for name, module in list(sys.modules.items()):
        if name == "crslab" or name.startswith("crslab."):
            for const in PATH_NAMES:
                if hasattr(module, const):
                    monkeypatch.setattr(module, const, getattr(module, const))
    monkeypatch.setenv("CRSLAB_DATA_ROOT", "unchanged")
    paths = compat.relocate(tmp_path)
    assert paths["DATASET_PATH"] == str(tmp_path / "dataset")
    assert redial.DATASET_PATH == crslab.config.DATASET_PATH == str(tmp_path / "dataset")
    assert crslab.config.SAVE_PATH == str(tmp_path / "save")


def test_baselines_build_the_basis_first_rgcn_only_when_asked():
    from torch_geometric.nn import RGCNConv

    from crslab_c2crs.model.rgcn import BasisFirstRGCNConv, PyGCompatibleBasisFirstRGCNConv

    kbrd = importlib.import_module("crslab.model.crs.kbrd.kbrd")
    kgsf = importlib.import_module("crslab.model.crs.kgsf.kgsf")
    try:
        for _ in range(2):
            compat.use_fast_rgcn_in_baselines(True)
            assert kbrd.RGCNConv is PyGCompatibleBasisFirstRGCNConv
            assert kgsf.RGCNConv is PyGCompatibleBasisFirstRGCNConv
        # Exactly how KGSF (positional num_bases) and KBRD build and call it.
        encoder = kgsf.RGCNConv(6, 4, 2, 2)
        assert isinstance(encoder, BasisFirstRGCNConv)
        assert encoder.num_bases == 2
        edge_index, edge_type = torch.randint(0, 6, (2, 12)), torch.randint(0, 2, (12,))
        assert encoder(None, edge_index, edge_type).shape == (6, 4)
        assert isinstance(kbrd.RGCNConv(6, 4, 2, num_bases=2), BasisFirstRGCNConv)
    finally:
        for _ in range(2):
            compat.use_fast_rgcn_in_baselines(False)
    assert kbrd.RGCNConv is RGCNConv
    assert kgsf.RGCNConv is RGCNConv


def test_a_single_process_keeps_the_model_crslab_built():
    """Without torchrun init_optim leaves the model as CRSLab built it; the DDP case: tests/test_distributed.py."""
    base = importlib.import_module("crslab.system.base").BaseSystem
    model = torch.nn.Linear(2, 2)
    system = types.SimpleNamespace(model=model)
    system.build_optimizer = lambda params: base.build_optimizer(system, params)
    system.build_lr_scheduler = lambda: None
    base.init_optim(system, {"optimizer": {"name": "SGD", "lr": 0.1}}, model.parameters())
    assert system.model is model and isinstance(system.optimizer, torch.optim.SGD)


def test_built_systems_are_kept_and_get_system_is_restored(monkeypatch):
    quick_start = importlib.import_module("crslab.quick_start.quick_start")

    def factory(**kwargs):  # stands in for CRSLab's get_system
        return types.SimpleNamespace(**kwargs)

    monkeypatch.setattr(quick_start, "get_system", factory)
    seen = []
    with compat.keep_built_systems(seen.append) as systems:
        built = quick_start.get_system(name="one")
    assert systems == seen == [built] and built.name == "one"
    assert quick_start.get_system is factory


def test_private_tmpdir_is_used_then_removed_and_tmpdir_restored(monkeypatch):
    import os
    import tempfile

    monkeypatch.setenv("TMPDIR", "/previous")
    with compat.private_tmpdir() as tmp:
        assert os.environ["TMPDIR"] == str(tmp) == tempfile.gettempdir()
        assert tmp.is_dir()
    assert not tmp.exists()
    assert os.environ["TMPDIR"] == "/previous"
    assert tempfile.tempdir is None


STOCK_CHECKS = r"""
import importlib, json, types, os, tempfile, numpy as np, torch
out = {}
def check(name, fn):
    try:
        out[name] = bool(fn())
    except Exception as err:
        out[name] = type(err).__name__
base = importlib.import_module("crslab.system.base")
check("transformers_adamw", lambda: base.optim_class["AdamW"] is torch.optim.AdamW)
tr = importlib.import_module("crslab.model.utils.modules.transformer")
check("position_codes", lambda: tr.TransformerEncoder(2, 1, 8, 8, 10, torch.nn.Embedding(10, 8), n_positions=5))
sched = importlib.import_module("crslab.system.utils.lr_scheduler")
check("reduce_lr_on_plateau", lambda: sched.ReduceLROnPlateau(
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), patience=0))
from crslab.evaluator.metrics.base import AverageMetric
check("metric_numbers", lambda: AverageMetric(np.float32(0.5)).value() == 0.5)
import nltk
nltk.download = lambda *a, **k: False
check("interactive_tokenizer",
      lambda: base.BaseSystem.nltk_tokenize(None, "I loved @1234 .") == ["I", "loved", "@1234", "."])
w = torch.nn.Parameter(torch.tensor(2.0))
ns = types.SimpleNamespace(update_freq=1, _number_grad_accum=0, _zero_grad=lambda: None, _update_params=lambda: None)
check("plain_backward", lambda: (base.BaseSystem.backward(ns, 3.0 * w), abs(w.grad.item() - 3.0) < 1e-6)[1])
kbrd = importlib.import_module("crslab.model.crs.kbrd.kbrd").KBRDModel
att = importlib.import_module("crslab.model.utils.modules.attention").SelfAttentionBatch(4, 4)
user = types.SimpleNamespace(user_emb_dim=4, device="cpu", kg_attn=att)
check("kbrd_user_embedding", lambda: kbrd.encode_user(user, [[1, 2]], torch.randn(5, 4)).abs().sum().item() > 0)
# a KBRD whose user projection makes word 5 win every step, with a chat's may_repeat that forbids "5 5"
proj = torch.nn.Linear(4, 8)
torch.nn.init.zeros_(proj.weight); torch.nn.init.zeros_(proj.bias); proj.bias.data[5] = 10.0
greedy = types.SimpleNamespace(_starts=lambda n: torch.ones(n, 1, dtype=torch.long), longest_label=3, end_token_idx=2,
                               decoder=lambda xs, enc, inc: (torch.zeros(xs.shape[0], xs.shape[1], 4), None),
                               token_embedding=torch.nn.Embedding(8, 4), user_proj_1=torch.nn.Identity(),
                               user_proj_2=proj, may_repeat=torch.zeros(8, dtype=torch.bool))
check("baseline_stutter",
      lambda: kbrd.decode_greedy(greedy, (torch.zeros(1, 1, 4), None), torch.zeros(1, 4))[1][0, 1:].tolist() != [5] * 3)
download = importlib.import_module("crslab.download")
d = tempfile.mkdtemp()
open(os.path.join(d, ".built"), "w").write("x\n0.1\n")
download.DownloadableFile.download_file = lambda self, dpath: (_ for _ in ()).throw(RuntimeError("download"))
check("offline_build",
      lambda: (download.build(d, download.DownloadableFile("u", "f", "h"), "0.31"), os.path.isdir(d))[1])
ev = importlib.import_module("crslab.evaluator")
check("evaluators", lambda: ev.get_evaluator("conv", "ReDial"))
open(os.path.join(d, "half.pth"), "wb").write(b"PK\x03\x04")
check("saved_systems", lambda: base.BaseSystem.restore_model(types.SimpleNamespace(
    model_file=os.path.join(d, "half.pth"), device="cpu", model=torch.nn.Linear(1, 1))) is None)
# a loader asked for at most 2 batches of its rec stage (the patch reads this plan; stock CRSLab ignores it)
loaders = importlib.import_module("crslab.data.dataloader.base")
loader = loaders.BaseDataLoader({"scale": 1}, [{"context_seq": [0] * n} for n in range(20)])
loader.batch_plan = types.SimpleNamespace(caps={"rec": 2}, split="train", stage=None)
check("batching", lambda: len(list(loader.get_data(lambda b: b, 1, False))) == 2)
# under a process group (one rank here), does init_optim give the model DDP's gradient exchange?
import torch.distributed as dist
dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
ns = types.SimpleNamespace(model=torch.nn.Linear(2, 2), evaluator=None)
ns.build_optimizer = lambda params: base.BaseSystem.build_optimizer(ns, params)
ns.build_lr_scheduler = lambda: None
base.BaseSystem.init_optim(ns, {"optimizer": {"name": "SGD", "lr": 0.1}}, ns.model.parameters())
check("distributed_training", lambda: isinstance(ns.model, torch.nn.parallel.DistributedDataParallel))
dist.destroy_process_group()
print(json.dumps(out))
"""


def test_stock_crslab_is_broken_where_we_patch(tmp_path):
    """Run the same checks on unpatched CRSLab (a fresh interpreter that never imports crslab_c2crs)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CRSLAB_DATA_ROOT": str(tmp_path), "USE_TF": "0"}
    proc = subprocess.run([sys.executable, "-c", STOCK_CHECKS], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == set(compat.PATCHES)
    working = [name for name, ok in results.items() if ok is True]
    assert working == [], f"stock CRSLab already works for {working}: the patch is not needed"


def test_plugin_version():
    assert crslab_c2crs.__version__
