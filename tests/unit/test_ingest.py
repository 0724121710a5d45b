"""Text extraction and chunking for ingestion."""

from __future__ import annotations

import pytest

from stackkit.providers.utils.ingest import FileError, chunk_text, chunking_settings, count_tokens, extract_text


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), built by hand with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_extracts_pdf_text() -> None:
    assert extract_text("report.pdf", minimal_pdf("Quarterly revenue grew nine percent")) == \
        "Quarterly revenue grew nine percent"


@pytest.mark.parametrize(("name", "content", "code"), [
    ("broken.pdf", b"%PDF-1.7 garbage", "invalid_file"),
    ("data.json", b"{not json", "invalid_file"),
    ("empty.txt", b"   \n  ", "invalid_file"),
    ("latin1.txt", "caf\xe9".encode("latin-1"), "unsupported_file"),
])
def test_bad_files_say_why(name: str, content: bytes, code: str) -> None:
    with pytest.raises(FileError) as err:
        extract_text(name, content)
    assert err.value.code == code


def test_html_json_markdown() -> None:
    assert extract_text("p.html", b"<p>One</p><script>x()</script><p>Two &amp; three</p>") == "One\nTwo & three"
    assert extract_text("d.json", b'{"a": {"b": [1, 2]}}') == "a.b[0]: 1\na.b[1]: 2"
    assert extract_text("n.md", b"# Title\n\n\n\n\nBody") == "# Title\n\nBody"


def test_chunks_overlap_and_keep_the_text() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    chunks = chunk_text(text, max_tokens=100, overlap=20)
    assert all(count_tokens(c) <= 100 for c in chunks)
    assert chunks[0].split()[-20:] == chunks[1].split()[:20]
    assert chunks[-1].endswith("w999") and chunks[0].startswith("w0")
    assert chunking_settings(None)[:2] == (800, 400)
    with pytest.raises(ValueError, match="at most half"):
        chunking_settings({"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}})
