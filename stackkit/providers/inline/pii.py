"""inline::pii — offline detection of personal data and secrets in messages.

Detects e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IBANs (mod-97
checked) and API-key-like secrets. ``action: block`` reports an error-level violation;
``action: redact`` reports a warn-level violation whose metadata carries the messages with each
finding replaced by ``[TYPE]`` (guardrails send those on instead). Spans are in metadata.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import content_text
from stackkit.apis.safety import (
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    ViolationLevel,
)

Kind = Literal["email", "phone", "payment_card", "iban", "secret"]
ALL_KINDS: tuple[Kind, ...] = ("email", "phone", "payment_card", "iban", "secret")

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_PHONE = re.compile(r"(?<![\w+.,])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
                    r"\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w]|[.,]\d)")
# dates and amounts are not phone numbers
_NOT_PHONE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{4}|\d+[.,]\d{1,2}")
_SECRETS = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|"
    r"xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})\b"
    r"|(?i:(?:api[_-]?key|secret|token|password)\s*[:=]\s*['\"]?)([A-Za-z0-9_\-/+=]{16,})"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@dataclass(frozen=True)
class Finding:
    kind: Kind
    start: int
    end: int
    text: str


def find_pii(text: str, kinds: tuple[Kind, ...] = ALL_KINDS) -> list[Finding]:
    """Every finding in `text`, earliest first; overlapping lower-priority matches are dropped."""
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []

    def add(kind: Kind, start: int, end: int) -> None:
        if kind in kinds and not any(s < end and start < e for s, e in taken):
            found.append(Finding(kind, start, end, text[start:end]))
            taken.append((start, end))

    for m in _SECRETS.finditer(text):
        start, end = (m.start(1), m.end(1)) if m.group(1) else (m.start(), m.end())
        add("secret", start, end)
    for m in _EMAIL.finditer(text):
        add("email", m.start(), m.end())
    for m in _IBAN.finditer(text):
        if iban_valid(m.group()):
            add("iban", m.start(), m.end())
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            add("payment_card", m.start(), m.end())
    for m in _PHONE.finditer(text):
        if 7 <= len(re.sub(r"\D", "", m.group())) <= 15 and not _NOT_PHONE.fullmatch(m.group()):
            add("phone", m.start(), m.end())
    return sorted(found, key=lambda f: f.start)


def redact(text: str, findings: list[Finding]) -> str:
    for f in sorted(findings, key=lambda f: -f.start):
        text = text[: f.start] + f"[{f.kind.upper()}]" + text[f.end:]
    return text


class PIIConfig(ProviderConfigBase):
    action: Literal["block", "redact"] = "block"
    detect: list[Kind] = Field(default_factory=lambda: list(ALL_KINDS))

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"action": "${env.PII_ACTION:=block}"}


class PIISafety:
    def __init__(self, config: PIIConfig) -> None:
        self.config = config

    def _settings(self, params: dict[str, Any]) -> tuple[str, tuple[Kind, ...]]:
        action = params.get("action", self.config.action)
        kinds = tuple(params.get("detect", self.config.detect))
        return action, kinds

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        action, kinds = self._settings(request.params)
        spans: list[dict[str, Any]] = []
        redacted: list[str] = []
        for index, message in enumerate(request.messages):
            text = content_text(message.content)
            findings = find_pii(text, kinds)
            spans += [{"type": f.kind, "start": f.start, "end": f.end, "message_index": index} for f in findings]
            redacted.append(redact(text, findings))
        if not spans:
            return RunShieldResponse()
        categories = sorted({s["type"] for s in spans})
        metadata: dict[str, Any] = {"categories": categories, "spans": spans, "action": action}
        if action == "redact":
            metadata["redacted_messages"] = redacted
            return RunShieldResponse(violation=SafetyViolation(
                violation_level=ViolationLevel.warn, metadata=metadata,
                user_message=f"Personal data was redacted ({', '.join(categories)})."))
        return RunShieldResponse(violation=SafetyViolation(
            violation_level=ViolationLevel.error, metadata=metadata,
            user_message=f"The message contains personal data or secrets ({', '.join(categories)}); remove them "
                         "and try again."))

    async def moderation(self, request: ModerationRequest) -> ModerationResponse:
        _, kinds = self._settings({})
        inputs = [request.input] if isinstance(request.input, str) else request.input
        results = []
        for text in inputs:
            hit = {f.kind for f in find_pii(text, kinds)}
            results.append(ModerationResult(
                flagged=bool(hit), categories={k: k in hit for k in kinds},
                category_scores={k: float(k in hit) for k in kinds}))
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=request.model or "pii", results=results)


async def create(config: PIIConfig, deps: dict[Api, Any]) -> PIISafety:
    return PIISafety(config)
