"""`stackkit chat` through a pseudo-terminal (pexpect): a streamed answer, /model, Ctrl-C mid-answer (the
chat goes on), /save then /load, multi-line input and Ctrl-D to leave."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

CONFIG = """
providers:
  inference:
    - {{provider_id: fake, provider_type: inline::fake, config: {{chunk_delay_s: 0.05}}}}
registered_resources:
  models:
    - {{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}
    - {{model_id: other, provider_id: fake, provider_model_id: fake-other}}
storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
"""


def test_terminal_chat(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(CONFIG.format(root=tmp_path)))
    child = pexpect.spawn(sys.executable, ["-m", "stackkit.cli.main", "chat", "--config", str(config)],
                          env={"NO_COLOR": "1", "TERM": "dumb", "STACKKIT_HOME": str(tmp_path),
                               "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
                          encoding="utf-8", timeout=30, dimensions=(40, 200))
    try:
        child.expect("chatting with echo")
        child.expect("you> ")
        child.sendline("hello there friend")
        child.expect("hello there friend")
        child.expect("you> ")
        child.sendline("/model")
        child.expect(r"\* echo")
        child.expect("  other")
        child.sendline("/model other")
        child.expect("model: other")
        child.sendline("one two \\")  # a trailing backslash continues the message
        child.expect(r"\.\.\. ")
        child.sendline("three")
        child.expect("one two three")  # (the echo model answers word by word)
        child.expect("you> ")
        long = " ".join(f"word{i}" for i in range(80))  # 80 words at 0.05 s each: 4 s of streaming
        child.sendline(long)
        child.expect_exact(long + "\r\n")  # the terminal's echo of what was typed
        child.expect("word5 ")  # the answer has started
        child.sendintr()  # Ctrl-C mid-answer
        child.expect(r"\[stopped\]")
        child.expect("you> ")
        child.sendline("still here")
        child.expect("still here")
        child.expect("you> ")
        saved = tmp_path / "chat.json"
        child.sendline(f"/save {saved}")
        child.expect("saved 8 messages")
        child.sendline("/reset")
        child.expect("conversation cleared")
        child.sendline(f"/load {saved}")
        child.expect(r"loaded 8 messages \(model other\)")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    data = json.loads(saved.read_text())
    cut = data["messages"][5]["content"]  # the answer Ctrl-C stopped: kept, and short of the whole
    assert cut.startswith("word0 word1") and "word79" not in cut
    assert data["model"] == "other" and data["messages"][-1]["content"] == "still here"
    assert data["messages"][2]["content"] == "one two \nthree"
