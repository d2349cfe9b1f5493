"""``block_stutter`` in KGSF's and KBRD's chat: CRSLab's greedy loops, patched in crslab_c2crs.compat, decode
exactly as CRSLab's own without the mask, and with it never say a word twice in a row unless it may repeat."""
import importlib.util
from pathlib import Path

import pytest
import torch

from crslab_c2crs.interactive.adapters import _to_device
from tests.tiny_runs import saved_chats

ROOT = Path(__file__).resolve().parents[2]
LOOPS = {"KBRD": ("crslab.model.crs.kbrd.kbrd", "KBRDModel", "decode_greedy"),
         "KGSF": ("crslab.model.crs.kgsf.kgsf", "KGSFModel", "_decode_greedy_with_kg")}


def stock_loop(model_name: str):
    """CRSLab's own decoding loop, from a fresh copy of its module (the imported one is patched)."""
    module_name, class_name, function = LOOPS[model_name]
    spec = importlib.util.find_spec(module_name)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return getattr(getattr(fresh, class_name), function)


@pytest.fixture(scope="module")
def chats(tiny_root, tmp_path_factory):
    return saved_chats(LOOPS, tiny_root, tmp_path_factory.mktemp("stutter"), "stutter")


@pytest.mark.slow
@pytest.mark.parametrize("model_name", sorted(LOOPS))
def test_the_patched_loop_is_crslabs_without_the_mask_and_stops_stutter_with_it(chats, model_name, monkeypatch):
    chat = chats[model_name]
    model = chat.adapter.model
    assert model.may_repeat.dtype == torch.bool  # set by the chat (block_stutter: chat)
    chat.session.reset()
    chat.session.add_user_turn("hi , I like the shinning ( 1991 ) and Forrest Gump , any funny movie ?")
    batch = _to_device(chat.adapter._conv_batch(chat.adapter._sample(chat.session)), chat.adapter.device)
    name = LOOPS[model_name][2]
    stock, patched, may_repeat = stock_loop(model_name), getattr(type(model), name), model.may_repeat

    def decode(function, mask):
        """The ids ``converse`` generates with ``function`` as the loop and ``mask`` as ``may_repeat``."""
        generated = []

        def loop(self, *args):
            generated.append(function(self, *args))
            return generated[-1]

        monkeypatch.setattr(type(model), name, loop)
        model.may_repeat = mask
        with torch.no_grad():
            model.converse(batch, "test")
        return generated[0][1][0, 1:].tolist()

    model.eval()
    assert decode(patched, None) == decode(stock, None)
    # a word that dominates every step: CRSLab's loop says it again and again, the rule never twice in a row
    bias = model.user_proj_2.bias if model_name == "KBRD" else model.copy_output.bias
    copyable = getattr(model, "copy_mask", torch.ones_like(may_repeat)).bool().cpu()
    word = next(t for t in range(4, len(may_repeat)) if copyable[t] and not may_repeat[t] and t != chat.end)
    saved = bias.detach().clone()
    with torch.no_grad():
        bias[word] += 1e4
    try:
        plain, blocked = decode(patched, None), decode(patched, may_repeat)
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert plain[:3] == [word] * 3
    # a restored KBRD decodes whole replies (config longest_label; CRSLab would stop after one token)
    assert blocked[0] == word and len(blocked) > 3
    assert not [a for a, b in zip(blocked, blocked[1:]) if a == b and not may_repeat[a]]

def test_an_unknown_block_stutter_rule_is_one_error_line(tmp_path, capsys, monkeypatch):
    from crslab_c2crs.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["-c", str(ROOT / "config/kbrd/redial.yaml"), "--data-root", str(tmp_path), "--set",
                 "block_stutter=always"])
    assert code == 2 and "block_stutter: unknown rule 'always'" in capsys.readouterr().err
