"""bench.chat_script: the slips it counts (on a scripted stand-in), and a real pass over tiny saved models."""
import json
from types import SimpleNamespace

import pytest

from bench import chat_script
from crslab_c2crs.interactive.chat import Turn
from tests.tiny_runs import saved_chats


class ScriptedChat:
    """A chat whose replies are given: (linked movies, reply movies, recommended) per user line."""

    def __init__(self, turns):
        self.turns, self.resets = list(turns), 0
        self.session = SimpleNamespace(reset=self._reset)

    def _reset(self):
        self.resets += 1

    def respond(self, text):
        linked, reply_movies, recommended = self.turns.pop(0)
        return Turn(notes=[], linked=linked, entities=[], reply=text, reply_movies=reply_movies,
                    recommended=recommended, latency_ms=5.0)


def test_a_reoffered_movie_and_one_outside_the_top_are_counted_per_conversation():
    chat = ScriptedChat([(["Big (1988)"], [], ["Up (2009)"]),
                         ([], ["Big (1988)", "Up (2009)"], ["Up (2009)"]),   # re-offers Big, outside the top
                         ([], ["Big (1988)"], ["Big (1988)"])])              # a new conversation: not re-offered
    turns = chat_script.converse(chat, ["I liked Big", "more?", chat_script.RESET, "hi"], movie_slots=True)
    assert chat.movie_slots and chat.topk == chat_script.TOP
    assert [turn["reoffered"] for turn in turns] == [[], ["Big (1988)"], []]
    assert [turn["outside_top"] for turn in turns] == [[], ["Big (1988)"], []]
    counts = chat_script.summary(turns)
    assert counts == {"turns": 3, "reply_movies": 3, "replies_reoffering": 1, "replies_outside_top": 1,
                      "median_ms": 5.0, "max_ms": 5.0}


@pytest.mark.slow
def test_a_scripted_conversation_with_saved_models(tiny_root, tmp_path):
    chats = saved_chats(["C2CRS", "KBRD"], tiny_root, tmp_path, "script")
    lines = ["I loved Inception and The Matrix", "anything else?", chat_script.RESET, "a comedy please"]
    report = {"git_commit": "abc", "script": "lines", "turns": 3, "models": chat_script.run_script(chats, lines)}
    for model in report["models"].values():
        assert set(model["passes"]) == {"movie_slots", "raw"}
        slots = model["summary"]["movie_slots"]
        assert slots["turns"] == 3 and slots["median_ms"] > 0
        # the movie slots are filled from the turn's own ranking, without the movies said
        assert slots["replies_reoffering"] == slots["replies_outside_top"] == 0
        assert all(len(turn["recommended"]) == chat_script.TOP for turn in model["passes"]["raw"])
    text = chat_script.markdown(report)
    assert "| C2CRS | movie_slots | 3 |" in text and "You: anything else?" in text
    json.dumps(report)


def test_a_bad_script_is_one_line(tmp_path, capsys):
    bad = tmp_path / "script.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit):
        chat_script.main(["--model", "config/c2crs/redial.yaml", "--script", str(bad)])
    assert "--script" in capsys.readouterr().err
