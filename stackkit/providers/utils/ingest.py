"""Ingestion: text out of files (text, Markdown, HTML, JSON, PDF), and token-based chunks with overlap.

Tokens are counted with a simple word/punctuation tokenizer (no vocabulary to download), which
tracks the sizes of subword tokenizers closely enough for chunking.
"""

from __future__ import annotations

import html
import io
import json
import re
from html.parser import HTMLParser
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class FileError(Exception):
    """A file that cannot be ingested; `code` is OpenAI's last_error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _HTMLText(HTMLParser):
    SKIP = frozenset({"script", "style", "head", "noscript"})
    BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError("unsupported_file", f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _pdf_text(content: bytes) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:
        raise FileError("unsupported_file", "PDF support needs pypdf: pip install 'stackkit[starter]'") from exc
    try:
        reader = PdfReader(io.BytesIO(content))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise FileError("invalid_file", f"the PDF could not be read: {exc}") from exc


def _json_text(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _json_text(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [line for i, v in enumerate(value) for line in _json_text(v, f"{path}[{i}]")]
    return [f"{path}: {value}" if path else str(value)]


def extract_text(filename: str, content: bytes) -> str:
    """The text of a file, by its name (and, for PDF, its magic bytes)."""
    name = filename.lower()
    if content.startswith(b"%PDF") or name.endswith(".pdf"):
        text = _pdf_text(content)
    elif name.endswith((".html", ".htm")):
        parser = _HTMLText()
        parser.feed(_decode(content))
        text = html.unescape("".join(parser.parts))
    elif name.endswith(".json"):
        try:
            text = "\n".join(_json_text(json.loads(_decode(content))))
        except json.JSONDecodeError as exc:
            raise FileError("invalid_file", f"the JSON could not be parsed: {exc}") from exc
    else:
        text = _decode(content)
    text = re.sub(r"[ \t]+\n", "\n", re.sub(r"\n{3,}", "\n\n", text)).strip()
    if not text:
        raise FileError("invalid_file", "the file contains no text")
    return text


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def chunk_text(text: str, max_tokens: int = 800, overlap: int = 400) -> list[str]:
    """Windows of `max_tokens` tokens, each starting `max_tokens - overlap` tokens after the last,
    cut at token boundaries of the original text (whitespace and punctuation preserved)."""
    if overlap >= max_tokens:
        raise ValueError("chunk_overlap_tokens must be smaller than max_chunk_size_tokens")
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if not spans:
        return []
    chunks, step = [], max_tokens - overlap
    for start in range(0, len(spans), step):
        window = spans[start:start + max_tokens]
        chunks.append(text[window[0][0]:window[-1][1]])
        if start + max_tokens >= len(spans):
            break
    return chunks


def chunking_settings(strategy: dict[str, Any] | None) -> tuple[int, int, dict[str, Any]]:
    """(max tokens, overlap, the strategy as stored) from OpenAI's chunking_strategy."""
    if not strategy or strategy.get("type") == "auto":
        return 800, 400, {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    if strategy.get("type") != "static" or not isinstance(strategy.get("static"), dict):
        raise ValueError("chunking_strategy must be {'type': 'auto'} or {'type': 'static', 'static': {...}}")
    size = int(strategy["static"].get("max_chunk_size_tokens", 800))
    overlap = int(strategy["static"].get("chunk_overlap_tokens", 400))
    if not 100 <= size <= 4096 or not 0 <= overlap <= size // 2:
        raise ValueError("max_chunk_size_tokens must be 100-4096 and chunk_overlap_tokens at most half of it")
    return size, overlap, {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}
