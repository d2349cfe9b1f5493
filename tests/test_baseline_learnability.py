"""Learnability of CRSLab's KGSF and KBRD decoders, the baselines C2-CRS is compared with: on 8 responses of the
tiny ReDial build (the real data builder, CRSLab's ReDial dataset and each model's own dataloader), a tiny model
trained through the forward call CRSLab's system makes memorises them, as the C2-CRS decoder does in
``tests/model/test_c2crs_learnability.py``."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch
import torch.nn.functional as F

from crslab_c2crs.paths import crslab_paths

N_RESPONSES = 8
STEPS = 200
LR = 3e-3
TINY = {"dataset": "ReDial", "gpu": [-1], "token_emb_dim": 16, "kg_emb_dim": 16, "user_proj_dim": 16,
        "num_bases": 2, "n_heads": 2, "n_layers": 2, "ffn_size": 16, "dropout": 0.0, "attention_dropout": 0.0,
        "relu_dropout": 0.0, "learn_positional_embeddings": False, "embeddings_scale": True, "reduction": False,
        "n_positions": 64, "context_truncate": 64, "response_truncate": 30}
# model -> (model module, dataloader module, the call of the model's forward that CRSLab's system makes)
MODELS = {
    "KGSF": ("crslab.model.crs.kgsf.kgsf", "crslab.data.dataloader.kgsf",
             lambda model, batch, mode: model.forward(batch, "conv", mode)),
    "KBRD": ("crslab.model.crs.kbrd.kbrd", "crslab.data.dataloader.kbrd",
             lambda model, batch, mode: model.forward(batch, mode, "conv")),
}


@pytest.fixture(scope="module")
def redial(tiny_root):
    """CRSLab's ReDial dataset of the tiny build, with CRSLab's paths (dataset and KGSF's copy mask) pointed at
    it for the module's tests."""
    for model_module, loader_module, _ in MODELS.values():
        importlib.import_module(model_module)
        importlib.import_module(loader_module)
    dataset_module = importlib.import_module("crslab.data.dataset.redial.redial")
    with pytest.MonkeyPatch.context() as patch:
        for name, module in list(sys.modules.items()):
            if name == "crslab" or name.startswith("crslab."):
                for const, value in crslab_paths(tiny_root).items():
                    if hasattr(module, const):
                        patch.setattr(module, const, value)
        yield dataset_module.ReDialDataset({}, "nltk")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_decoder_memorises_responses(name, redial):
    """Teacher-forced on 8 Recommender responses, the decoder's loss falls below 2% of its initial value and
    greedy decoding reproduces >= 90% of their words and END and emits END in every row.

    CRSLab's dataloaders give ``[START] words [END]`` and both models decode from one more START, so their target
    sequence starts with START and greedy output (after the START it was given) is compared with it position by
    position; the START target itself is not counted.
    """
    model_module, loader_module, forward = MODELS[name]
    loader_class = getattr(importlib.import_module(loader_module), f"{name}DataLoader")
    loader = loader_class(TINY, redial.train_data, redial.vocab)
    batch = loader.conv_batchify(loader.conv_process_fn()[:N_RESPONSES])
    response = batch[-1] if isinstance(batch, tuple) else batch["response"]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = getattr(importlib.import_module(model_module), f"{name}Model")(
        TINY, torch.device("cpu"), redial.vocab, redial.side_data)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def loss(mode):
        model.train(mode == "train")
        return forward(model, batch, mode)[0]

    with torch.no_grad():
        initial = float(loss("valid"))
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss("train").backward()
        optimizer.step()
    with torch.no_grad():
        final = float(loss("valid"))
        generated = forward(model, batch, "test")[:, 1:]
    width = max(generated.shape[1], response.shape[1])
    generated = F.pad(generated, (0, width - generated.shape[1]), value=redial.vocab["pad"])
    target = F.pad(response, (0, width - response.shape[1]), value=redial.vocab["pad"])
    counted = target.ne(redial.vocab["pad"]) & target.ne(redial.vocab["start"])
    accuracy = (generated.eq(target) & counted).sum().item() / counted.sum().item()
    ended = generated.eq(redial.vocab["end"]).any(dim=1).double().mean().item()
    assert final < 0.02 * initial, (initial, final)
    assert accuracy >= 0.9 and ended == 1.0, (accuracy, ended)
