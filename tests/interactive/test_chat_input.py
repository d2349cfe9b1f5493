"""What a chat reads and prints: raw bytes decoded with replacement, commands in any case, stdout holding only
the conversation, each linked title once, a note for unknown movie ids."""
import io
import re
from pathlib import Path

import pytest

from crslab_c2crs.cli import main
from tests.tiny_runs import SHORT

ROOT = Path(__file__).resolve().parents[2]
CHAT_LINE = re.compile(r"^(Chatting with |You: |System: |Recommended: |Linked: |Entities: |\(.*\)$)")


@pytest.fixture(scope="module")
def kbrd_chat(tiny_root, tmp_path_factory):
    """``chat(stdin bytes) -> (exit code, stdout)`` with a KBRD system trained and saved once."""
    workdir = tmp_path_factory.mktemp("chat_input")
    base = ["-c", str(ROOT / "config/kbrd/redial.yaml"), "-g", "-1", "--data-root", str(tiny_root),
            "--set", "num_threads=1", "--set", "checkpoint_dir=chat_input"]
    for override in SHORT["KBRD"]:
        base += ["--set", override]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        assert main(base + ["-ss"]) == 0

    def chat(data: bytes, *extra: str):
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(workdir)
            # a strict UTF-8 text stream, as Python gives a pipe under a UTF-8 locale
            patch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict"))
            out = io.StringIO()
            patch.setattr("sys.stdout", out)
            code = main(base + ["-rs", "-i", *extra])
        return code, out.getvalue()

    return chat


def test_a_non_utf8_byte_costs_one_character_not_the_chat(kbrd_chat):
    code, out = kbrd_chat(b"I like Forrest Gump\nwhat about caf\xe9 movies ?\nand Space Cowboys\n")
    assert code == 0
    assert "You: what about caf\ufffd movies ?" in out
    assert len(re.findall(r"^System: ", out, flags=re.M)) == 3


def test_commands_are_case_insensitive(kbrd_chat):
    code, out = kbrd_chat(b"I like Forrest Gump\n[reset]\nhi\n [Exit] \nthis line is never read\n")
    assert code == 0
    assert "(New conversation.)" in out
    assert "never read" not in out and "[reset]" not in out
    assert len(re.findall(r"^System: ", out, flags=re.M)) == 2


def test_stdout_holds_only_the_conversation(kbrd_chat, capsys):
    code, out = kbrd_chat(b"I like Forrest Gump\n")
    assert code == 0
    assert "[Config]" not in out and "INFO" not in out and '"model_name"' not in out
    assert all(CHAT_LINE.match(line) for line in out.splitlines()), out
    assert "[Restored the system from" in capsys.readouterr().err  # the logs went to stderr


def test_a_title_named_many_times_is_linked_once(kbrd_chat):
    code, out = kbrd_chat((" ".join(["Forrest Gump"] * 40) + " and The Shining\n").encode())
    assert code == 0
    assert "Linked: Forrest Gump (1993), The Shining (1991)" in out.splitlines()


def test_an_unknown_movie_id_gets_a_note(kbrd_chat):
    code, out = kbrd_chat(b"have you seen @999999999 or @100003 ?\n")
    assert code == 0
    assert "(No movie has this id, read as an unknown word: @999999999.)" in out
    assert "Linked: Forrest Gump (1993)" in out


def test_control_characters_are_echoed_as_escapes(kbrd_chat):
    code, out = kbrd_chat(b"I like \x1b[31mForrest Gump\x1b[0m\x07 and \xe2\x80\xae this\n")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "You: I like \\x1b[31mForrest Gump\\x1b[0m\\x07 and \\u202e this" in out


def test_a_lone_at_sign_with_a_non_ascii_digit_keeps_the_chat(kbrd_chat):
    code, out = kbrd_chat("I liked @\u00b2\nand Forrest Gump\n".encode())
    assert code == 0
    assert len(re.findall(r"^System: ", out, flags=re.M)) == 2


def test_a_movie_listed_under_two_ids_is_not_recommended_back():
    from crslab_c2crs.data.movies import Movie
    from crslab_c2crs.interactive.chat import Chat

    with_year, without = Movie(1, 10, "Scary Movie", 2000), Movie(2, 20, "Scary Movie", None)
    remake, other = Movie(3, 30, "It", 1990), Movie(4, 40, "It", 2017)
    chat = Chat.__new__(Chat)  # only the movie tables and the session's context are needed
    chat.by_entity = {m.entity_id: m for m in (with_year, without, remake, other)}
    chat.by_title = {"scary movie": [with_year, without], "it": [remake, other]}
    chat.session = type("Session", (), {"context_items": lambda self: [10, 30]})()
    assert chat.said_movies() == {10, 20, 30}  # not the other "It": both years are known and differ
    assert with_year.same_movie(without) and not remake.same_movie(other)


def test_movie_slots_take_the_recommenders_movies_in_order():
    from crslab_c2crs.data.movies import Movie
    from crslab_c2crs.interactive.chat import fill_movie_slots

    ranked = [Movie(7, 70, "Seven", 1995), Movie(8, 80, "Eight", 2000)]
    tokens = ["have", "you", "seen", "@111", "or", "@111", "or", "@222", "?"]
    assert fill_movie_slots(tokens, ranked) == ["have", "you", "seen", "@7", "or", "@8", "or", "?"]
    assert fill_movie_slots(["no", "movie"], ranked) == ["no", "movie"]


def test_with_movie_slots_every_movie_a_reply_names_is_recommended_and_not_said(kbrd_chat, monkeypatch):
    from crslab_c2crs.interactive.adapters import KBRDAdapter

    # a decoder that offers back the movie the user named (Forrest Gump, @100003), twice
    reply = ["you", "seen", "@100003", "or", "@100003", "?"]
    monkeypatch.setattr(KBRDAdapter, "respond",
                        lambda self, session: [self.system.vocab["tok2ind"][token] for token in reply])
    code, out = kbrd_chat(b"I like Forrest Gump\n")
    assert code == 0
    system = re.search(r"^System: (.*)$", out, flags=re.M).group(1)
    recommended = re.search(r"^Recommended: 1\. (.*?); 2\. (.*?);", out, flags=re.M).groups()
    assert system == f"you seen {recommended[0]} or {recommended[1]}?" and "Forrest Gump" not in system
    code, out = kbrd_chat(b"I like Forrest Gump\n", "--set", "movie_slots=false")  # the raw decoder output
    assert "System: you seen Forrest Gump (1993) or Forrest Gump (1993)?" in out
