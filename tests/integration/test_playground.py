"""The browser playground, driven in Debian's Chromium (Playwright) against a live `stackkit run` (uvicorn) on
the fake provider, with a real MCP server, FAISS stores and the pii shield: chat streams and renders (stop,
retry, edit), compare streams two models and stores a vote, a PDF is uploaded, searched and cited, an agent
calls an MCP tool (and asks before one), conversations reopen, shields flag in place, untrusted text stays
inert, the page works behind API keys without keeping the key, and no console errors. Each view is saved as
a screenshot under .artifacts/playground/."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackkit.core.config import parse_config
from stackkit.playground import CSP
from stackkit.testing.live_server import LiveServer
from tests.mcp_server import McpServer
from tests.unit.test_ingest import minimal_pdf

playwright_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(os.environ.get("STACKKIT_ARTIFACTS", Path(__file__).parents[2] / ".artifacts")) / "playground"
KEY = "sk-playground-test-key-4711"
XSS = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> [click me](javascript:window.__xss=3) '
       '<a href="javascript:window.__xss=4">a</a> <svg onload="window.__xss=5"></svg>')

MARKDOWN = ("## Plan\n\nSome **bold** and `code` and a [link](https://example.com/docs).\n\n- first\n- second\n\n"
            "```python\nprint('<b>not bold</b>')\n```")
CONFIG = """
version: 2
distro_name: playground-test
providers:
  inference:
    - provider_id: fake
      provider_type: inline::fake
      config:
        chunk_delay_s: 0.01
        stream_chunk_chars: 3  # pieces that cut words and Markdown marks, as a real tokenizer's do
        replies: [{{when: "markdown please", reply: "{markdown}"}}]
  safety:
    - {{provider_id: pii, provider_type: inline::pii}}
  vector_io:
    - provider_id: faiss
      provider_type: inline::faiss
      config: {{storage_dir: "{root}/faiss", embedding_model: embedder}}
  files:
    - {{provider_id: disk, provider_type: inline::localfs, config: {{storage_dir: "{root}/files"}}}}
storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
registered_resources:
  models:
    - {{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}
    - {{model_id: other, provider_id: fake, provider_model_id: fake-other}}
    - {{model_id: embedder, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}
  shields:
    - {{shield_id: pii-block, provider_id: pii, params: {{action: block}}}}
    - {{shield_id: pii-redact, provider_id: pii, params: {{action: redact}}}}
{server}
"""


def _chromium() -> str:
    found = os.environ.get("STACKKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("STACKKIT_SKIP_BROWSER") == "1":
            pytest.skip("STACKKIT_SKIP_BROWSER=1")
        pytest.fail("The playground tests need Chromium: `apt-get install chromium` (./scripts/test does it as "
                    "root), or set STACKKIT_CHROMIUM to a Chromium binary; STACKKIT_SKIP_BROWSER=1 skips them.")
    return found


def _server(tmp: Path, server: str = "") -> LiveServer:
    text = CONFIG.format(root=tmp, server=server, markdown=MARKDOWN.replace("\n", "\\n"))
    return LiveServer(parse_config(textwrap.dedent(text), source=str(tmp / "run.yaml"), env={})).start()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = _server(tmp_path_factory.mktemp("playground"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with McpServer() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = _chromium()
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class Page:
    """A fresh browser context on the playground; console errors and page errors are collected and, at
    the end of the test, must be none (beyond the ones a test says it expects)."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.expected: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.base = base

    def open(self) -> Any:
        self.page.goto(self.base + "/playground")
        self.page.wait_for_selector("body[data-ready=yes]")
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


@pytest.fixture
def ui(browser: Any, live: LiveServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = Page(browser, live.base_url.removesuffix("/v1"))
    yield page
    page.shot(f"end-of-{request.node.name}")  # what the page showed last (the artifact to read on a failure)
    page.context.close()
    assert page.unexpected_errors() == []


def _xss_fired(page: Any) -> Any:
    return page.evaluate("window.__xss")


def test_chat_streams_renders_stops_retries_and_edits(ui: Page) -> None:
    page = ui.open()
    assert page.input_value("[aria-label=model]") == "echo"
    page.fill("[aria-label=message]", "markdown please")
    page.press("[aria-label=message]", "Enter")
    answer = page.locator(".msg.assistant").last
    answer.locator(".meta", has_text="total").wait_for()
    assert answer.locator("h4").inner_text() == "Plan"
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("p code").inner_text() == "code"
    assert answer.locator("a").get_attribute("href") == "https://example.com/docs"
    assert answer.locator("li").all_inner_texts() == ["first", "second"]
    assert answer.locator("pre code").inner_text() == "print('<b>not bold</b>')"
    assert answer.locator("b").count() == 0
    meta = answer.locator(".meta").inner_text()
    assert "out tokens" in meta and "first token" in meta

    # streaming: the answer is on screen in parts before it is whole; Stop keeps what came
    words = " ".join(f"w{i}" for i in range(120))
    page.fill("[aria-label=message]", words)
    page.press("[aria-label=message]", "Enter")
    streaming = page.locator(".msg.assistant").last
    page.wait_for_function("() => { const t = [...document.querySelectorAll('#view-chat .msg.assistant .md')].pop()"
                           ".textContent; return t.includes('w5') && !t.includes('w119'); }")
    page.click("#view-chat button:has-text('Stop')")
    streaming.locator(".meta", has_text="stopped").wait_for()
    cut = streaming.locator(".md").inner_text()
    assert cut.startswith("w0 w1") and "w119" not in cut

    # retry answers again; edit rewrites a message and drops what followed it
    streaming.locator("button:has-text('retry')").click()
    page.locator(".msg.assistant .meta:has-text('total')").nth(1).wait_for(timeout=15_000)
    assert "w119" in page.locator(".msg.assistant").last.inner_text()
    page.locator(".msg.user").first.locator("button:has-text('edit')").click()
    page.fill("[aria-label='edit message']", "edited question")
    page.click("button:has-text('Save and resend')")
    page.locator(".msg.assistant .meta:has-text('total')").first.wait_for()
    assert page.locator(".msg.user").count() == 1 and page.locator(".msg.assistant").count() == 1
    assert "edited question" in page.locator(".msg.assistant").inner_text()
    ui.shot("chat")


def test_system_prompt_and_sampling_reach_the_model(ui: Page, live: LiveServer) -> None:
    page = ui.open()
    page.fill("[aria-label='system prompt']", "be brief")
    page.fill("[aria-label='max tokens']", "3")
    page.fill("[aria-label=message]", "one two three four five six")
    page.press("[aria-label=message]", "Enter")
    answer = page.locator(".msg.assistant").last
    answer.locator(".meta", has_text="total").wait_for()
    assert answer.locator(".meta").inner_text().startswith("8 in · 3 out tokens")  # 2 system + 6 user words; max 3 out


def test_untrusted_text_stays_inert(ui: Page, live: LiveServer, mcp_url: str) -> None:
    page = ui.open()
    page.fill("[aria-label=message]", XSS)
    page.press("[aria-label=message]", "Enter")
    answer = page.locator(".msg.assistant").last
    answer.locator(".meta", has_text="total").wait_for()
    assert "<img src=x" in answer.inner_text() and "<script>" in answer.inner_text()
    log = page.locator("#view-chat .log")
    assert log.locator("img, script, svg, iframe").count() == 0
    hrefs = log.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert all(h.startswith(("http:", "https:")) for h in hrefs)
    page.locator(".unsafe-link").first.click()
    # a tool result (the MCP server shouts it back) and a file name carrying the same strings
    page.click("[data-view=agents]")
    page.fill("[aria-label='MCP server label']", "demo")
    page.fill("[aria-label='MCP server URL']", mcp_url)
    page.fill("[aria-label='agent message']", "shout " + XSS)
    page.press("[aria-label='agent message']", "Enter")
    page.locator("#view-agents .step.mcp_call .result").wait_for()
    assert "<IMG SRC=X" in page.locator("#view-agents .step.mcp_call .result").inner_text()
    page.click("[data-view=documents]")
    page.fill("[aria-label='store name']", '<img src=x onerror="window.__xss=6">')
    page.click("#view-documents button:has-text('Create')")
    page.wait_for_selector("[aria-label='upload files']:enabled")  # the new store is selected
    page.set_input_files("[aria-label='upload files']", files=[{
        "name": '<img src=x onerror="window.__xss=7">.txt', "mimeType": "text/plain", "buffer": b"harmless"}])
    row = page.locator("#view-documents .files li").first
    row.locator(".state.completed, .state.failed").wait_for()
    assert row.locator(".state").inner_text() == "completed", row.inner_text()
    assert page.locator("#view-documents img, #view-agents img").count() == 0
    assert _xss_fired(page) is None
    ui.shot("xss-inert")


def test_page_is_served_with_a_strict_content_security_policy(live: LiveServer) -> None:
    root = live.base_url.removesuffix("/v1")
    page = httpx.get(root + "/playground/")
    assert page.headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert "<script>" not in page.text and " on" not in page.text.replace("\n", " ").split("<body")[1].split(">")[0]
    assert httpx.get(root + "/playground", follow_redirects=False).headers["location"] == "playground/"
    assert httpx.get(root + "/playground/app.js").headers["content-type"].startswith("text/javascript")
    etag = httpx.get(root + "/playground/app.js").headers["etag"]
    assert httpx.get(root + "/playground/app.js", headers={"if-none-match": etag}).status_code == 304
    assert httpx.get(root + "/playground/missing.js").status_code == 404


def test_the_playground_can_be_turned_off(tmp_path: Path) -> None:
    server = _server(tmp_path, "server: {playground: false}")
    try:
        root = server.base_url.removesuffix("/v1")
        assert httpx.get(root + "/playground/").status_code == 404
        assert httpx.get(root + "/playground/app.js").status_code == 404
    finally:
        server.stop()


def test_compare_streams_two_models_and_stores_the_vote(ui: Page, live: LiveServer) -> None:
    page = ui.open()
    page.click("[data-view=compare]")
    page.fill("[aria-label=prompt]", "name *three* colours please")
    page.click("#view-compare button:has-text('Compare')")
    columns = page.locator("#view-compare .grid .msg.assistant")
    page.wait_for_selector("#view-compare .vote button")
    assert columns.count() == 2
    assert [columns.nth(i).locator(".who").inner_text() for i in range(2)] == ["echo", "other"]
    for i in range(2):
        assert columns.nth(i).locator("em").inner_text() == "three"
        assert "total" in columns.nth(i).locator(".meta").inner_text()
    page.click("#view-compare .vote button:has-text('other')")
    page.wait_for_selector("text=Vote stored: other.")
    page.wait_for_selector("#view-compare .leaderboard td:has-text('other')")
    ui.shot("compare")
    board = httpx.get(live.base_url + "/arena/leaderboard").json()["data"]
    assert board[0]["model"] == "other" and board[0]["wins"] >= 1 and board[0]["rating"] > 1000
    votes = httpx.get(live.base_url + "/arena/votes").json()["data"]
    assert any(v["prompt"] == "name *three* colours please" and v["winner"] == "other" for v in votes)


def test_documents_upload_a_pdf_search_it_and_cite_it(ui: Page, tmp_path: Path) -> None:
    pdf = tmp_path / "launch-plan.pdf"
    pdf.write_bytes(minimal_pdf("The launch codename is BLUEBIRD and it flies in May."))
    page = ui.open()
    page.click("[data-view=documents]")
    page.fill("[aria-label='store name']", "handbook")
    page.click("#view-documents button:has-text('Create')")
    page.wait_for_selector("#view-documents h2:has-text('handbook')")
    page.wait_for_selector("[aria-label='upload files']:enabled")
    page.set_input_files("[aria-label='upload files']", str(pdf))
    row = page.locator("#view-documents .files li", has_text="launch-plan.pdf")
    row.locator(".state.completed, .state.failed").wait_for()
    assert row.locator(".state").inner_text() == "completed", row.inner_text()
    for mode in ("vector", "keyword", "hybrid"):
        page.fill("[aria-label='search query']", "launch codename")
        page.select_option("[aria-label='search mode']", mode)
        page.click("#view-documents button:has-text('Search')")
        hit = page.locator("#view-documents .results li").first
        hit.filter(has_text="BLUEBIRD").wait_for()
        assert "launch-plan.pdf" in hit.inner_text()
        page.evaluate("document.querySelector('#view-documents .results').replaceChildren()")
    page.fill("[aria-label=question]", "What is the launch codename?")
    page.click("#view-documents button:has-text('Ask')")
    page.locator("#view-documents .sources .cite").wait_for()
    assert page.locator("#view-documents .sources .cite").inner_text() == "launch-plan.pdf"
    assert "searched the documents" in page.locator("#view-documents .step.file_search_call").inner_text()
    assert "BLUEBIRD" in page.locator("#view-documents .msg.assistant").inner_text()
    ui.shot("documents")


def test_agent_calls_an_mcp_tool_asks_first_when_told_and_reopens_conversations(ui: Page, mcp_url: str) -> None:
    page = ui.open()
    page.click("[data-view=agents]")
    page.fill("[aria-label=instructions]", "Use the tools.")
    page.fill("[aria-label='MCP server label']", "demo")
    page.fill("[aria-label='MCP server URL']", mcp_url)
    page.fill("[aria-label='agent message']", "please shout hello")
    page.press("[aria-label='agent message']", "Enter")
    step = page.locator("#view-agents .step.mcp_call")
    step.locator(".result", has_text="PLEASE SHOUT HELLO").wait_for()
    assert "called demo.shout" in step.locator("summary").inner_text()
    assert '"text": "please shout hello"' in step.locator(".args").inner_text()
    page.locator("#view-agents .msg.assistant .meta", has_text="total").wait_for()
    assert "shout" in page.locator("#view-agents .step.mcp_list_tools").inner_text()
    ui.shot("agents")

    # approval: the tool runs only after Approve is clicked
    page.select_option("[aria-label=approval]", "always")
    page.fill("[aria-label='agent message']", "now shout goodbye")
    page.press("[aria-label='agent message']", "Enter")
    ask = page.locator("#view-agents .step.mcp_approval_request")
    ask.locator("button:has-text('Approve')").click()
    page.locator("#view-agents .step.mcp_call .result", has_text="NOW SHOUT GOODBYE").wait_for()
    page.locator("#view-agents .msg.assistant .meta", has_text="total").nth(1).wait_for()

    # a second conversation, then the first reopened from the list, its steps shown again
    page.click("button:has-text('New conversation')")
    page.fill("[aria-label='agent message']", "just talk")
    page.select_option("[aria-label=approval]", "never")
    page.press("[aria-label='agent message']", "Enter")
    page.locator("#view-agents .msg.assistant .meta", has_text="total").wait_for()
    listed = page.locator("#view-agents .conversations button")
    assert listed.count() == 2
    page.locator("#view-agents .conversations button", has_text="please shout hello").click()
    page.locator("#view-agents .step.mcp_call .result", has_text="NOW SHOUT GOODBYE").wait_for()
    assert page.locator("#view-agents .msg.user").first.inner_text() == "please shout hello"
    ui.shot("agents-reopened")


def test_shields_flag_what_they_caught_in_place(ui: Page) -> None:
    page = ui.open()
    page.check("#view-chat .shields input[value=pii-redact]")
    page.fill("[aria-label=message]", "write to bob@example.com today")
    page.press("[aria-label=message]", "Enter")
    page.locator("#view-chat .msg.assistant mark.flag").wait_for()
    assert page.locator("#view-chat .msg.assistant mark.flag").inner_text() == "[EMAIL]"
    assert "bob@example.com" not in page.locator("#view-chat .msg.assistant").inner_text()
    page.uncheck("#view-chat .shields input[value=pii-redact]")
    page.check("#view-chat .shields input[value=pii-block]")
    ui.expected.append("status of 400")  # the blocked request, as the browser logs it
    page.fill("[aria-label=message]", "my card is 4111 1111 1111 1111")
    page.press("[aria-label=message]", "Enter")
    page.locator("#view-chat .flagged").wait_for()
    assert "Blocked by a shield" in page.locator("#view-chat .flagged").inner_text()
    assert page.locator("#view-chat .msg.user.blocked").count() == 1
    page.uncheck("#view-chat .shields input[value=pii-block]")
    page.fill("[aria-label=message]", "and now a plain question")
    page.press("[aria-label=message]", "Enter")  # the blocked message is not sent again
    page.locator(".msg.assistant .meta:has-text('total')").nth(1).wait_for()
    assert "4111" not in page.locator("#view-chat .msg.assistant").last.inner_text()
    ui.shot("safety")


def test_behind_api_keys_the_key_is_used_and_never_kept(browser: Any, tmp_path: Path) -> None:
    server = _server(tmp_path, f"server: {{auth: {{api_keys: [{{key_sha256: '{_sha(KEY)}', principal: ada}}]}}}}")
    try:
        ui = Page(browser, server.base_url.removesuffix("/v1"))
        ui.expected.append("status of 401")
        page = ui.open()  # the page itself is public
        page.wait_for_selector("#status:has-text('needs an API key')")
        page.fill("#api-key", KEY)
        page.press("#api-key", "Enter")
        page.wait_for_selector("#status:has-text('2 chat models')")
        page.fill("[aria-label=message]", "hello with a key")
        page.press("[aria-label=message]", "Enter")
        page.locator(".msg.assistant .meta", has_text="total").wait_for()
        assert "hello with a key" in page.locator(".msg.assistant").inner_text()
        kept = page.evaluate("() => [document.documentElement.outerHTML, JSON.stringify(localStorage), "
                             "JSON.stringify(sessionStorage), document.cookie, location.href].join('\\n')")
        assert KEY not in kept
        assert httpx.get(server.base_url + "/models").status_code == 401
        assert ui.unexpected_errors() == []
        ui.context.close()
    finally:
        server.stop()


def test_chat_on_the_starters_real_local_model(browser: Any) -> None:
    """The starter's offline default model (SmolLM2-135M-Instruct through inline::transformers), its answer
    streamed in a real tokenizer's pieces and rendered."""
    config = parse_config(textwrap.dedent("""
        providers:
          inference: [{provider_id: local, provider_type: inline::transformers, config: {model: smollm2-135m-instruct}}]
        registered_resources: {models: [{model_id: smollm2-135m-instruct, provider_id: local}]}
        storage: {backends: {m: {type: memory}}, stores: {registry: m}}
        """), env={})
    with LiveServer(config, start_timeout_s=120) as server:
        ui = Page(browser, server.base_url.removesuffix("/v1"))
        page = ui.open()
        page.fill("[aria-label=temperature]", "0")
        page.fill("[aria-label=message]", "What is the capital of France?")
        page.press("[aria-label=message]", "Enter")
        answer = page.locator(".msg.assistant").last
        answer.locator(".meta", has_text="total").wait_for(timeout=120_000)
        assert "Paris" in answer.locator(".md").inner_text()
        assert "out tokens" in answer.locator(".meta").inner_text()
        ui.shot("chat-smollm2")
        page.click("[data-view=documents]")  # this stack has no vector stores: the view says so, calls nothing
        assert "serves no vector_io or files API" in page.locator("#view-documents h2").inner_text()
        assert ui.unexpected_errors() == []
        ui.context.close()


def test_first_load_is_small(ui: Page) -> None:
    sizes: dict[str, int] = {}
    ui.page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())) if r.request.method == "GET" else None)
    ui.open()
    assets = {u: n for u, n in sizes.items() if "/playground" in u}
    assert len(assets) >= 10 and sum(sizes.values()) < 300_000, sizes
    # reported, not asserted (timing budgets are for bench/bench_playground.py, which repeats it 20 times)
    interactive_ms = ui.page.evaluate("performance.now()")
    print(f"first load: {len(sizes)} responses, {sum(sizes.values())} bytes, interactive by {interactive_ms:.0f} ms")


def _sha(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()
