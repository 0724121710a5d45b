"""`stackkit chat`: a terminal chat with a running server (`--base-url`) or a stack run in-process.

Answers stream as they are generated; Ctrl-C stops an answer (what was said so far is kept) and never
leaves the chat; Ctrl-D or /exit does. A line ending in a backslash continues on the next line.
Commands: /model [id] (show the models, or switch), /system [text], /reset, /save FILE, /load FILE, /help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from stackkit.errors import StackkitError

HELP = ("/model [id]  list the models, or switch to one\n/system [text]  show or set the system prompt\n"
        "/reset  forget the conversation\n/save FILE  write the conversation as JSON\n"
        "/load FILE  read one back\n/exit  leave (or Ctrl-D); Ctrl-C stops an answer")


class Chat:
    """One terminal conversation: its model, system prompt and messages, over an openai-shaped client."""

    def __init__(self, client: Any, console: Console, model: str | None = None, system: str | None = None) -> None:
        self.client = client
        self.console = console
        self.model = model or self._default_model()
        self.system = system
        self.messages: list[dict[str, str]] = []

    def _chat_models(self) -> list[str]:
        return [m.id for m in self.client.models.list() if getattr(m, "model_type", "llm") != "embedding"]

    def _default_model(self) -> str:
        models = self._chat_models()
        if not models:
            raise StackkitError("This stack serves no chat model; configure one (stackkit list-providers inference) "
                                "or pass --model.")
        return models[0]

    def ask(self, text: str) -> None:
        """Send `text`, stream the answer; Ctrl-C stops it and keeps what came so far."""
        self.messages.append({"role": "user", "content": text})
        system = [{"role": "system", "content": self.system}] if self.system else []
        answer: list[str] = []
        stream = None
        try:
            stream = self.client.chat.completions.create(model=self.model, messages=[*system, *self.messages],
                                                         stream=True)
            for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    answer.append(piece)
                    self.console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
                    self.console.file.flush()  # a terminal's stdout is line-buffered: show each piece now
            self.console.print()
        except KeyboardInterrupt:
            self.console.print(" [dim]\\[stopped][/]")
        finally:
            if stream is not None:
                stream.close()
        self.messages.append({"role": "assistant", "content": "".join(answer)})

    def command(self, line: str) -> bool:
        """Run a /command; False when the chat should end."""
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit"):
            return False
        if name == "reset":
            self.messages = []
            self.console.print("[dim]conversation cleared[/]")
        elif name == "model":
            self._switch(arg)
        elif name == "system":
            self.system = arg or self.system
            self.console.print(f"[dim]system prompt: {self.system or '(none)'}[/]", highlight=False)
        elif name == "save" and arg:
            Path(arg).write_text(json.dumps({"model": self.model, "system": self.system,
                                             "messages": self.messages}, indent=1))
            self.console.print(f"[dim]saved {len(self.messages)} messages to {arg}[/]", highlight=False)
        elif name == "load" and arg:
            self._load(Path(arg))
        else:
            self.console.print(HELP, markup=False)
        return True

    def _switch(self, model: str) -> None:
        models = self._chat_models()
        if not model:
            for m in models:
                self.console.print(("* " if m == self.model else "  ") + m, markup=False)
        elif model in models:
            self.model = model
            self.console.print(f"[dim]model: {model}[/]", highlight=False)
        else:
            self.console.print(f"[red]no chat model '{model}'[/]; /model lists them", highlight=False)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            self.model, self.system, self.messages = data["model"], data.get("system"), list(data["messages"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.console.print(f"[red]cannot load {path}[/]: {exc}", highlight=False)
            return
        self.console.print(f"[dim]loaded {len(self.messages)} messages (model {self.model})[/]", highlight=False)


def read_message(console: Console) -> str | None:
    """One message from the user (a trailing backslash continues it); None at end of input."""
    lines: list[str] = []
    while True:
        try:
            line = console.input("[bold cyan]you>[/] " if not lines else "[bold cyan]...[/] ")
        except EOFError:
            return None
        if line.endswith("\\"):
            lines.append(line[:-1])
            continue
        return "\n".join([*lines, line])


def run_chat(client: Any, console: Console, model: str | None, system: str | None) -> None:
    chat = Chat(client, console, model, system)
    console.print(f"[dim]chatting with {chat.model}; /help for commands, Ctrl-D to leave[/]", highlight=False)
    while True:
        try:
            text = read_message(console)
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops the line, not the chat
            console.print()
            continue
        if text is None:
            return
        if not text.strip():
            continue
        if text.startswith("/"):
            if not chat.command(text.strip()):
                return
            continue
        try:
            chat.ask(text)
        except StackkitError as exc:
            chat.messages.pop()
            console.print(f"[red]error:[/] {exc.message}", highlight=False)
