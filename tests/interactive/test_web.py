"""The web chat: KBRD and C2-CRS trained on tiny data, restored as ``-rs -i`` restores them and served side by side;
its HTTP answers, its bad-input handling, its command line, and a scripted conversation in a real headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium; skipped where they are missing)."""
from pathlib import Path

import pytest

from bench import web_screenshot
from bench.browser import MISSING, chromium_missing, headless_chromium, open_page, send, served
from crslab_c2crs.interactive import web
from tests.tiny_runs import saved_chats

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("KGSF", "KBRD", "C2CRS")
TOPK = 10
INJECTION = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def name(model: str) -> str:
    return f"{model} (web_{model})"


@pytest.fixture(scope="module")
def chats(tiny_root, tmp_path_factory):
    chats = saved_chats(MODELS, tiny_root, tmp_path_factory.mktemp("web"), "web", TOPK)
    return {name(model): chat for model, chat in chats.items()}


@pytest.fixture(scope="module")
def app(chats):
    return web.create_app(chats)


@pytest.fixture
def client(app):
    client = app.test_client()
    client.post("/reset")
    return client


def turn(client, text):
    response = client.post("/turn", json={"text": text})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {entry["model"]: entry for entry in response.get_json()["turns"]}


@pytest.mark.slow
def test_every_model_answers_each_turn(client):
    names = [name(model) for model in MODELS]
    assert client.get("/models").get_json()["models"] == names
    turns = turn(client, "hi , I like the shinning ( 1991 ) and Forrest Gump")
    assert list(turns) == names
    for entry in turns.values():
        assert entry["linked"] == ["The Shining (1991)", "Forrest Gump (1993)"]
        assert entry["reply"] and len(entry["recommended"]) == TOPK and entry["latency_ms"] > 0
        assert "The Shining (1991)" not in entry["recommended"]
    assert "<html" in client.get("/").get_data(as_text=True)


@pytest.mark.slow
def test_bad_input_gets_an_answer_or_one_clear_error(client, app):
    for entry in turn(client, "").values():
        assert entry["notes"] == ["Say something about movies you like."] and not entry["reply"]
    for entry in turn(client, "funny " * 20000).values():  # 120 KB
        assert "only its last" in entry["notes"][0]
    for entry in turn(client, INJECTION).values():
        assert entry["reply"]  # the message is data; the page shows it as text (the browser test)
    stray = client.post("/turn", data=b'{"text": "caf\xe9 , I like Forrest Gump"}', content_type="application/json")
    assert stray.status_code == 200
    assert all(entry["linked"] == ["Forrest Gump (1993)"] for entry in stray.get_json()["turns"])
    for body in (b"hello", b'{"message": "hi"}', b'{"text": 3}'):
        answer = client.post("/turn", data=body, content_type="application/json")
        assert answer.status_code == 400 and "JSON like" in answer.get_json()["error"]
    assert client.post("/turn", data=b"x" * (web.MAX_BODY_BYTES + 1)).status_code == 413


@pytest.mark.slow
def test_reset_starts_a_new_conversation(client, app):
    turn(client, "I like Forrest Gump")
    assert client.post("/reset").get_json() == {"reset": True}
    first = turn(client, "hello")
    assert all(entry["linked"] == [] for entry in first.values())


SCRIPT = ["hi , I like the shinning ( 1991 ) and Forrest Gump", "have you seen @100007 ?", "I liked Forrest Gump",
          "any funny movie with Tom Hanks ?", "what about The Shining ?", "something scary please", "and Big ?",
          "I want a scary movie", "tell me more", "I already saw that", "something newer ?", "ok , what else ?",
          "I liked Tiny Picture 7", "any comedy ?", "a movie for kids ?", "thanks , one more ?", "something sad",
          "I loved Forrest Gump ( 1993 )", "anything like The Shining ?", "great , thanks", "bye"]


@pytest.mark.slow
def test_in_a_long_conversation_replies_never_offer_what_was_said_and_name_only_the_top_10(client):
    """The issue's target, for every model: over 21 turns no reply offers a movie the user named (nor one said
    before), and every movie a reply names is in that turn's top 10."""
    said = {name(model): set() for model in MODELS}
    named = 0
    for message in SCRIPT:
        for column, entry in turn(client, message).items():
            said[column].update(entry["linked"])
            assert not set(entry["reply_movies"]) & said[column], (message, column, entry)
            assert set(entry["reply_movies"]) <= set(entry["recommended"]), (message, column, entry)
            said[column].update(entry["reply_movies"])
            named += len(entry["reply_movies"])
    assert named > 0  # the tiny decoders do name movies, so the check has something to check


def test_the_command_line_is_checked_before_anything_loads(tmp_path, capsys):
    config = str(ROOT / "config/kbrd/redial.yaml")
    for argv, message in ((["--model", str(tmp_path / "none.yaml")], "no such config file"),
                          (["--model", config, "checkpoint_dir"], "overrides are KEY=VALUE"),
                          (["--model", config, "--model", config], "two models with one name"),
                          (["--model", config, "--topk", "0"], "--topk 0")):
        with pytest.raises(SystemExit) as exit_info:
            web.parse_args(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_model_never_saved_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = web.main(["--data-root", str(tmp_path), "--model", str(ROOT / "config/kbrd/redial.yaml"),
                     "checkpoint_dir=never_saved"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("web chat: error: -rs: no saved system at")


@pytest.mark.slow
@pytest.mark.skipif(chromium_missing() is not None, reason=MISSING)
def test_a_scripted_conversation_in_a_real_browser(app):
    from selenium.webdriver.common.by import By

    with served(app) as url, headless_chromium() as driver:
        open_page(driver, url, len(MODELS))
        script = ["I like the shinning ( 1991 ) and Forrest Gump", INJECTION, "any funny movie ?"]
        for count, message in enumerate(script, start=1):
            send(driver, message, count)
        for column in driver.find_elements(By.CSS_SELECTOR, ".column"):
            turns = column.find_elements(By.CSS_SELECTOR, ".turn")
            assert "Linked: The Shining (1991), Forrest Gump (1993)" in turns[0].text
            assert all(t.find_element(By.CSS_SELECTOR, ".reply").text for t in turns)
            assert all(len(t.find_elements(By.CSS_SELECTOR, ".recommended li")) == TOPK for t in turns)
            assert turns[1].find_element(By.CSS_SELECTOR, ".user").text == "You: " + INJECTION
        # the injected markup was shown, never run
        assert driver.execute_script("return window.pwned") is None
        assert not driver.find_elements(By.CSS_SELECTOR, ".column img, .column script")


def test_the_page_writes_text_only():
    """Every string from a user or a model reaches the page through textContent, never as markup."""
    page = web.PAGE.read_text(encoding="utf-8")
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


@pytest.mark.slow
@pytest.mark.skipif(chromium_missing() is not None, reason=MISSING)
def test_the_screenshot_holds_the_whole_conversation(chats, tmp_path):
    from PIL import Image

    talk = ["I like Forrest Gump", "any comedy ?", "and Big ?", "thanks , one more ?"]
    lines = web_screenshot.first_talk(talk + ["[RESET]", "hi"], turns=5)
    assert lines == talk
    for chat in chats.values():
        chat.session.reset()
    out = tmp_path / "img" / "shot.png"
    web_screenshot.screenshot(chats, lines, out)
    with Image.open(out) as image:  # the whole page: four turns of three models are taller than the 900-pixel window
        assert image.format == "PNG" and image.width == web_screenshot.WIDTH and image.height > 900
