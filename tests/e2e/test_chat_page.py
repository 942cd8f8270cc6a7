"""End-to-end test of the chat page that `sglc serve` answers at /: the real binary on the default
model, the page driven in headless Chromium (Debian's /usr/bin/chromium through Playwright). A
screenshot goes to $SGLC_ARTIFACTS, else to e2e-artifacts/ in the binary's build folder (both
git-ignored). Binary: $SGLC_BINARY (default build/sglc)."""
import json
import os

import pytest
import requests

from test_server import API_KEY, BINARY, assert_idle, server  # noqa: F401

CHROMIUM = os.environ.get("SGLC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.environ.get("SGLC_ARTIFACTS") or os.path.join(os.path.dirname(BINARY),
                                                              "e2e-artifacts")
TIMEOUT_MS = 120_000

if os.environ.get("CI") != "true":  # CI must run it; elsewhere the browser may be missing
    pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("no chromium at %s" % CHROMIUM, allow_module_level=True)
from playwright.sync_api import sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--disable-dev-shm-usage", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.problems = []  # console errors (a CSP violation shows here) and uncaught exceptions
    # (a refused request is logged as "Failed to load resource": the tests cause some on purpose)
    pg.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
          and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    yield pg
    ctx.close()


def test_page_is_served_without_key(server):
    for path in ("/", "/index.html"):
        r = requests.get(server.url + path, timeout=30)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "connect-src 'self'" in r.headers["Content-Security-Policy"]
        assert "<title>sglc chat</title>" in r.text
        # standalone: nothing is fetched from elsewhere
        assert "http://" not in r.text and "https://" not in r.text
    assert requests.post(server.url + "/", timeout=30).status_code == 405
    # the page is public, the API behind it is not
    assert requests.get(server.url + "/v1/models", timeout=30).status_code == 401


def idle_again(page):
    page.wait_for_function("() => !document.getElementById('send').disabled")


def send(page, text):
    page.fill("#prompt", text)
    page.click("#send")
    idle_again(page)


def test_chat_streams_an_answer(server, page):
    bodies = []
    page.on("request", lambda r: r.url.endswith("/v1/chat/completions") and
            bodies.append(json.loads(r.post_data)))
    page.goto(server.url + "/")
    assert page.title() == "sglc chat"

    # without the key the API refuses, the page says so and keeps the prompt for a retry
    send(page, "What is the capital of France?")
    assert "401" in page.text_content(".msg.error")
    assert page.input_value("#prompt") == "What is the capital of France?"
    page.click("#clear")

    page.fill("#apikey", API_KEY)
    page.dispatch_event("#apikey", "change")
    page.wait_for_function("() => document.getElementById('model').textContent === 'smollm2'")
    page.fill("#system", "You are a helpful assistant.")
    page.fill("#temperature", "0")
    page.fill("#max_tokens", "24")
    send(page, "What is the capital of France?")
    page.wait_for_selector("#tps")
    answer = page.text_content(".msg.assistant .text")
    assert answer
    assert int(page.get_attribute(".msg.assistant", "data-chunks")) > 1  # it came streamed
    tps = float(page.text_content("#tps"))
    ttft = float(page.text_content("#ttft").split()[0])
    assert tps > 0 and ttft > 0

    sent = bodies[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0 and sent["max_tokens"] == 24 and sent["model"] == "smollm2"
    assert sent["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"}]
    # what the page shows is what the API gives for the same request, not streamed
    ref = requests.post(server.url + "/v1/chat/completions", timeout=120,
                        headers={"Authorization": "Bearer " + API_KEY},
                        json={k: v for k, v in sent.items() if k not in ("stream",
                                                                         "stream_options")})
    assert ref.status_code == 200, ref.text
    assert answer == ref.json()["choices"][0]["message"]["content"]
    assert ("tokens %d" % ref.json()["usage"]["completion_tokens"]) in page.text_content("#stats")

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "chat_page.png")
    page.screenshot(path=shot, full_page=True)
    assert os.path.getsize(shot) > 1000

    # the conversation goes on: the second request carries the first turn
    send(page, "And of Italy?")
    assert bodies[-1]["messages"][1:] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And of Italy?"}]
    assert len(page.query_selector_all(".msg.assistant")) == 2
    assert page.text_content(".msg.assistant:nth-of-type(4) .text")
    page.screenshot(path=shot, full_page=True)
    assert not page.problems, page.problems


def test_stop_aborts_the_request(server, page):
    page.goto(server.url + "/")
    page.fill("#apikey", API_KEY)
    # a long answer whatever the model does: the page's requests ask to ignore EOS
    page.evaluate("""() => { const f = window.fetch; window.fetch = (url, o) => {
        if (o && o.body) { const b = JSON.parse(o.body); b.ignore_eos = true;
                           o = Object.assign({}, o, {body: JSON.stringify(b)}); }
        return f(url, o); }; }""")
    page.fill("#max_tokens", "4000")
    page.fill("#prompt", "Tell me a long story.")
    page.click("#send")
    page.wait_for_function(
        "() => document.querySelector('.msg.assistant .text').textContent.length > 0")
    page.click("#stop")
    idle_again(page)
    assert page.text_content(".msg.assistant .note") == "stopped"
    assert page.is_disabled("#stop")
    assert_idle(server)  # the server saw the client go and freed the request
    assert not page.problems, page.problems


def test_model_text_is_never_markup(server, page):
    """The answer is rendered as text: a model that writes HTML cannot add elements or run
    script. The stream is faked so the model need not cooperate."""
    evil = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script><b>bold</b>"
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"index": 0, "delta": {"content": evil[:20]}}]},
              {"choices": [{"index": 0, "delta": {"content": evil[20:]},
                            "finish_reason": "stop"}]},
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                        "total_tokens": 5}}]
    sse = "".join("data: %s\n\n" % json.dumps(c) for c in chunks) + "data: [DONE]\n\n"
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body=sse))
    page.goto(server.url + "/")
    send(page, "<i>user text</i> too")
    assert page.text_content(".msg.user .text") == "<i>user text</i> too"
    assert page.text_content(".msg.assistant .text") == evil
    assert page.query_selector("#log img, #log script, #log b, #log i") is None
    assert page.evaluate("() => window.pwned === undefined")
    assert "finish stop" in page.text_content("#stats")
