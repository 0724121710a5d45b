"""A FastAPI application with routes of its own mounts a stackkit server built from a run.yaml; the host
app's lifespan starts and stops the stack; the openai SDK talks to it under the mount path."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import openai
import uvicorn
import yaml
from fastapi import FastAPI

from stackkit import StackApp
from tests.chroma_server import free_port
from tests.conftest import fake_stack_config


def test_fastapi_app_mounts_stackkit(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(fake_stack_config(tmp_path).model_dump(mode="json", exclude_defaults=True)))
    stack = StackApp(str(config))
    app = FastAPI(lifespan=stack.lifespan)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/ai", stack)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the FastAPI app did not start"
            time.sleep(0.02)
        assert stack.stack is not None  # the host's lifespan built the stack
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/hello").json() == {"hello": "world"}
        with openai.OpenAI(base_url=f"{base}/ai/v1", api_key="none", max_retries=0) as sdk:
            out = sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "mounted fine"}])
            assert out.choices[0].message.content == "mounted fine"
            assert "echo" in [m.id for m in sdk.models.list()]
            with sdk.chat.completions.stream(model="echo", messages=[{"role": "user", "content": "a b c"}]) as streamed:
                assert streamed.get_final_completion().choices[0].message.content == "a b c"
        assert httpx.get(f"{base}/ai/v1/nope").status_code == 404
        page = httpx.get(f"{base}/ai/playground", follow_redirects=True)  # the playground, under the mount too
        assert page.status_code == 200 and str(page.url) == f"{base}/ai/playground/" and "app.js" in page.text
        assert httpx.get(f"{base}/ai/playground/app.js").status_code == 200
    finally:
        server.should_exit = True
        thread.join(15)
    assert stack.stack is None  # and its shutdown stopped it


async def test_a_stack_app_without_lifespan_says_how_to_start_it(tmp_path: Path) -> None:
    stack = StackApp(fake_stack_config(tmp_path))
    transport = httpx.ASGITransport(app=stack)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        r = await client.get("/v1/models")
    assert r.status_code == 503 and "FastAPI(lifespan=stack.lifespan)" in r.json()["error"]["message"]
