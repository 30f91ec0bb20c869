"""The demo page (app.py) in a real browser: the app runs in its own process on loopback with small models that
know their answers (tests/demo_models.py), and Debian's headless Chromium, driven by Playwright (pointed at
/usr/bin/chromium: nothing downloads a browser), types into each tab and reads what the page shows. Each test saves a
screenshot under its tmp_path. Skipped, with the reason, where gradio, playwright or chromium is missing; `.ci/run`
installs all three."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHARLM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _no_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="gradio is not installed (pip install -e '.[demo]')")

# the tabs in the page's order (generation, NER, segmentation, sentiment, translation): elem_id prefixes
GEN, NER, CWS, SENT, MT, FIX = "generation-0", "ner-1", "segmentation-2", "sentiment-3", "translation-4", "correction-5"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.demo_models import make_demo_models

    return make_demo_models(tmp_path_factory.mktemp("demo_models"))


@pytest.fixture(scope="module")
def app_url(models, tmp_path_factory):
    """app.py in its own process on 127.0.0.1, with the five models and one folder that does not exist."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app_log") / "app.log"
    specs = [a for name in ("generation", "ner", "segmentation", "sentiment", "translation", "correction") for a in ("--model", models[name])]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), *specs, "--model", "/no/such/model",
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"app.py did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if _no_browser():
        pytest.skip(_no_browser())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, accept_downloads=True, viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, app_url, tmp_path):
    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(app_url, wait_until="domcontentloaded")
    page.wait_for_selector("#load-problems")
    yield page
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    page.close()


def _open(page, tab: str) -> None:
    page.get_by_role("tab", name=tab, exact=True).click()


def _run(page, key: str, text: str) -> None:
    page.locator(f"#{key}-input textarea").fill(text)
    page.locator(f"#{key}-run").click()


def _wait_text(page, selector: str, predicate, timeout: float = 30) -> str:
    """The inner text of `selector` once `predicate` accepts it (the page updates after the request returns)."""
    deadline = time.monotonic() + timeout
    while True:
        text = page.locator(selector).inner_text()
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} shows {text!r}")
        time.sleep(0.2)


def test_tabs_from_configs_and_failed_model_named(page, tmp_path):
    tabs = page.get_by_role("tab")
    assert [tabs.nth(i).inner_text() for i in range(tabs.count())] == [
        "Generation", "NER", "Word segmentation", "Sentiment", "Translation", "Correction"]
    assert "Could not load /no/such/model: no such folder" in page.locator("#load-problems").inner_text()
    page.screenshot(path=str(tmp_path / "tabs.png"))


def test_ner_highlights_entities_at_their_spans(page, tmp_path):
    _open(page, "NER")
    _run(page, NER, "张三去上海。")
    highlighted = page.locator(f"#{NER}-output .token.highlighted")
    highlighted.first.wait_for()
    shown = [(highlighted.nth(i).locator(".text").inner_text(), highlighted.nth(i).locator(".label").inner_text())
             for i in range(highlighted.count())]
    assert shown == [("张三", "PER"), ("上海", "LOC")]
    # the unhighlighted text is still there, in order
    assert page.locator(f"#{NER}-output .textfield").inner_text().replace("\n", "").replace(" ", "").startswith("张三PER去上海LOC")
    page.screenshot(path=str(tmp_path / "ner.png"))


def test_segmentation_separates_words(page, tmp_path):
    _open(page, "Word segmentation")
    _run(page, CWS, "我们在北京工作。")
    box = page.locator(f"#{CWS}-output textarea")
    page.wait_for_function(f"document.querySelector('#{CWS}-output textarea').value.length > 0")
    assert box.input_value() == "我们 / 在 / 北京 / 工作 / 。"
    page.screenshot(path=str(tmp_path / "segmentation.png"))


def test_sentiment_shows_label_scores(page, tmp_path):
    _open(page, "Sentiment")
    _run(page, SENT, "这本书很差。")
    text = _wait_text(page, f"#{SENT}-output", lambda t: "%" in t)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[1] == "negative"  # the top label, then each label with its score
    assert lines[2:] == ["negative", "100%", "positive", "0%"]
    page.screenshot(path=str(tmp_path / "sentiment.png"))


def test_generation_greedy_continuation(page, tmp_path):
    _open(page, "Generation")
    for name, value in (("temperature", "0"), ("max_new_tokens", "10")):
        field = page.locator(f"#{GEN}-{name} input[type=number]")
        field.fill(value)
        field.press("Enter")
    _run(page, GEN, "北京")
    _wait_text(page, f"#{GEN}-message", lambda t: t.startswith("Done"))
    assert page.locator(f"#{GEN}-output textarea").input_value() == "北京欢迎你。北京欢迎你。"
    assert page.locator(f"#{GEN}-message").inner_text() == "Done: 10 new characters."
    page.screenshot(path=str(tmp_path / "generation.png"))


def test_translation(page, tmp_path):
    _open(page, "Translation")
    _run(page, MT, "谢谢")
    page.wait_for_function(f"document.querySelector('#{MT}-output textarea').value.length > 0")
    assert page.locator(f"#{MT}-output textarea").input_value() == "thanks"
    page.screenshot(path=str(tmp_path / "translation.png"))


def test_correction_shows_the_edit_and_the_corrected_text(page, tmp_path):
    _open(page, "Correction")
    _run(page, FIX, "我在北京工做。")
    page.wait_for_function(f"document.querySelector('#{FIX}-corrected textarea').value.length > 0")
    assert page.locator(f"#{FIX}-corrected textarea").input_value() == "我在北京工作。"
    highlighted = page.locator(f"#{FIX}-output .token.highlighted")
    highlighted.first.wait_for()
    assert [(highlighted.nth(i).locator(".text").inner_text(), highlighted.nth(i).locator(".label").inner_text())
            for i in range(highlighted.count())] == [("做", "做→作")]
    page.screenshot(path=str(tmp_path / "correction.png"))


def test_empty_and_too_long_inputs_are_messages(page, tmp_path):
    _open(page, "NER")
    _run(page, NER, "   ")
    assert _wait_text(page, f"#{NER}-message", lambda t: t.startswith("⚠️")) == "⚠️ The input is empty: type some text first."
    _run(page, NER, "北京" * 50)
    message = _wait_text(page, f"#{NER}-message", lambda t: "tokens" in t)
    assert message == "⚠️ The input is 101 tokens long; ner reads at most 64 tokens. Shorten it."
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "too_long.png"))


def test_batch_file_gives_a_download(page, tmp_path):
    upload = tmp_path / "inputs.txt"
    upload.write_text("我在北京工作。\n\n张三去上海。\n", encoding="utf-8")
    _open(page, "NER")
    page.locator(f"#{NER}-batch").get_by_text("Batch: a text file").first.click()
    page.locator(f"#{NER}-file input[type=file]").set_input_files(str(upload))
    page.locator(f"#{NER}-file .file-preview").wait_for()  # uploaded
    page.locator(f"#{NER}-run-file").click()
    link = page.locator(f"#{NER}-result a")
    link.first.wait_for()
    assert _wait_text(page, f"#{NER}-file-message", lambda t: "done" in t) == "2 lines done: download inputs.ner.jsonl."
    with page.expect_download() as download:
        link.first.click()
    rows = [json.loads(line) for line in Path(download.value.path()).read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["input"], [(e["word"], e["entity"], e["start"], e["end"]) for e in r["entities"]])
            for r in rows] == [(1, "我在北京工作。", [("北京", "LOC", 2, 4)]),
                               (3, "张三去上海。", [("张三", "PER", 0, 2), ("上海", "LOC", 3, 5)])]
    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)


# ------------------------------------------------------------------------------------- the app's functions, no browser
def test_stream_generation_yields_growing_text(models):
    import app

    (model,) = app.load_model(models["generation"])
    steps = list(app.stream_generation(model, "北京", 0, 0, 10))
    texts = [text for text, _ in steps]
    assert len(steps) >= 4 and texts[0] == "北京" and texts[-1] == "北京欢迎你。北京欢迎你。"
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))  # each step adds to the last
    assert steps[-1][1] == "Done: 10 new characters."
    # the same text as the pipeline gives in one go
    kwargs = app.generation_kwargs(model, "北京", 0, 0, 10)
    assert model.pipe("北京", **kwargs)[0]["generated_text"] == texts[-1]


def test_capabilities_from_configs():
    import app
    from hf_charlm import CharLMConfig

    def config(arch, labels=None):
        extra = {"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}} if labels else {}
        return CharLMConfig(vocab_size=32, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                            architectures=[arch], **extra)

    assert app.capabilities_of(config("CharLMForCausalLM")) == ["generation"]
    assert app.capabilities_of(config("CharLMForTokenClassification", ["O", "B-LOC", "I-LOC"])) == ["ner"]
    assert app.capabilities_of(config("CharLMForTokenClassification", ["B", "M", "E", "S"])) == ["segmentation"]
    assert app.capabilities_of(config("CharLMForSequenceClassification", ["negative", "positive"])) == ["sentiment"]
    assert app.capabilities_of(config("CharLMForConditionalGeneration")) == ["translation"]
    assert app.capabilities_of(config("CharLMForMaskedLM")) == []
    correction = config("CharLMForMaskedLM")
    correction.custom_pipelines = {"text-correction": {"impl": "hf_charlm.pipelines"}}
    # a correction tab only where the text-correction pipeline exists
    assert app.capabilities_of(correction) == (["correction"] if app.correction_task_registered() else [])


def test_a_saved_noisy_channel_corrector_gets_the_correction_tab(tmp_path):
    """A folder of `LanguageModelCorrector.save_pretrained` (its model's config is a plain masked LM's) loads as a
    corrector: one correction tab whose pipeline answers what the corrector answers."""
    import app

    from .test_correction import _tuned_noisy_channel

    corrector, texts = _tuned_noisy_channel()
    corrector.save_pretrained(tmp_path / "corrector")
    (model,) = app.load_model(str(tmp_path / "corrector"))
    assert model.capability == "correction" and model.pipe.model.noisy_channel is not None
    assert model.pipe(texts[0]) == corrector(texts[0]) and model.pipe(texts[0])["corrected_text"] == "我们去学校上课。"
    assert not app.is_noisy_channel(str(tmp_path))


def test_correction_view_follows_the_pipeline_contract():
    import app

    result = {"corrected_text": "我在北京工作。",
              "edits": [{"start": 5, "end": 6, "original": "做", "replacement": "作", "score": 0.93}]}
    highlighted, corrected = app.correction_view("我在北京工做。", result)
    assert corrected == "我在北京工作。"
    assert highlighted == {"text": "我在北京工做。", "entities": [{"entity": "做→作", "start": 5, "end": 6}]}


def test_models_from_a_space_card_or_the_environment(tmp_path, monkeypatch):
    import app

    monkeypatch.delenv("CHARLM_DEMO_MODELS", raising=False)
    monkeypatch.setattr(app, "HERE", tmp_path)
    assert app.default_specs() == []  # no card: the offline models are built
    (tmp_path / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\nmodels:\n- me/charlm-ner\n- me/charlm-lm\n---\n# x\n")
    assert app.default_specs() == ["me/charlm-ner", "me/charlm-lm"]
    monkeypatch.setenv("CHARLM_DEMO_MODELS", "a/b, c/d")
    assert app.default_specs() == ["a/b", "c/d"]


def test_batch_file_problems_are_messages(models, tmp_path):
    import app

    (model,) = app.load_model(models["ner"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert app.run_file(model, str(empty)) == (None, "⚠️ empty.txt has no text: put one input per line.")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert app.run_file(model, str(latin)) == (None, "⚠️ latin.txt is not UTF-8 text.")
    assert app.run_file(model, None) == (None, "⚠️ Choose a text file first (one input per line).")
    long_line = tmp_path / "long.txt"
    long_line.write_text("北京" * 50 + "\n我在北京工作。\n", encoding="utf-8")
    path, message = app.run_file(model, str(long_line))
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert message == "2 lines done (1 could not be processed: see their `error`): download long.ner.jsonl."
    assert "reads at most 64 tokens" in rows[0]["error"] and rows[1]["entities"][0]["word"] == "北京"


def test_models_that_fail_to_load_are_named(models, tmp_path):
    import app

    (tmp_path / "not_a_model").mkdir()
    loaded, problems = app.load_models([models["sentiment"], str(tmp_path / "not_a_model"), "/no/such/dir"])
    assert [m.capability for m in loaded] == ["sentiment"]
    assert problems[0].startswith(f"Could not load `{tmp_path / 'not_a_model'}`: ")
    assert problems[1] == "Could not load `/no/such/dir`: no such folder"


@pytest.mark.slow
def test_offline_default_models_are_built_once(tmp_path):
    import app

    specs = app.build_offline_models(tmp_path / "offline", steps=3)
    assert specs == [str(tmp_path / "offline" / n) for n in ("generation", "ner", "segmentation", "sentiment")]
    assert not (tmp_path / "offline" / "tmp").exists()
    stamp = tmp_path / "offline" / "built-3-0.json"
    before = stamp.stat().st_mtime_ns
    assert app.build_offline_models(tmp_path / "offline", steps=3) == specs and stamp.stat().st_mtime_ns == before
    models, problems = app.load_models(specs)
    assert [m.capability for m in models] == ["generation", "ner", "segmentation", "sentiment"] and problems == []
    assert models[1].label_names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
