"""inline::pii detectors on a table of positive and negative cases."""

from __future__ import annotations

import pytest

from stackkit.providers.inline.pii import find_pii, iban_valid, luhn_valid, redact


@pytest.mark.parametrize(("text", "expected"), [
    ("write to jane.doe+news@example.co.uk today", [("email", "jane.doe+news@example.co.uk")]),
    ("card 4111 1111 1111 1111 on file", [("payment_card", "4111 1111 1111 1111")]),
    ("card 4111-1111-1111-1111", [("payment_card", "4111-1111-1111-1111")]),
    ("amex 378282246310005", [("payment_card", "378282246310005")]),
    ("IBAN DE89 3704 0044 0532 0130 00", [("iban", "DE89 3704 0044 0532 0130 00")]),
    ("iban GB82WEST12345698765432", [("iban", "GB82WEST12345698765432")]),
    ("call +1 415-555-2671 now", [("phone", "+1 415-555-2671")]),
    ("office (020) 7946 0958.", [("phone", "(020) 7946 0958")]),
    ("key sk-proj-abcdefghijklmnopqrstuvwx12", [("secret", "sk-proj-abcdefghijklmnopqrstuvwx12")]),
    ("aws AKIAIOSFODNN7EXAMPLE", [("secret", "AKIAIOSFODNN7EXAMPLE")]),
    ('config api_key="A1b2C3d4E5f6G7h8I9j0"', [("secret", "A1b2C3d4E5f6G7h8I9j0")]),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", [("secret", "ghp_abcdefghijklmnopqrstuvwxyz0123456789")]),
])
def test_detects(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(f.kind, f.text) for f in find_pii(text)] == expected


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 fails Luhn",
    "order 1234567812345678 fails Luhn too",
    "iban DE89 3704 0044 0532 0130 01 has a bad check",
    "version 1.2.3, on 2024-01-15 or 15/01/2024",
    "pi is 3.14159265 and the total is 1234567.89",
    "an @ sign alone, user@localhost is no public address",
    "the key is short: sk-abc",
    "order 12345",
])
def test_ignores(text: str) -> None:
    assert find_pii(text) == []


def test_checksums_and_redaction() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("FR1420041010050500013M02606") and not iban_valid("FR1420041010050500013M02607")
    text = "mail a@b.io or call +44 20 7946 0958"
    assert redact(text, find_pii(text)) == "mail [EMAIL] or call [PHONE]"
