"""Redaction at the edge: each built-in rule, user rules, keyed user hashes."""

from __future__ import annotations

import pytest

from ragtrail.errors import ConfigError
from ragtrail.redaction import BUILTIN_RULES, RedactionConfig, Redactor, is_secret_key


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        ("email", "write to jane.doe+x@example.co.uk today", "write to [EMAIL] today"),
        ("phone", "call +1 415-555-0132 now", "call [PHONE] now"),
        ("phone", "or (020) 7946 0958", "or [PHONE]"),
        ("card_number", "card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card_number", "card 5500-0000-0000-0004", "card [CARD]"),
        ("bearer_token", "Authorization: Bearer eyJhbGciOi.abc-def_123", "Authorization: Bearer [TOKEN]"),
        ("openai_key", "key=sk-proj-AbCdEfGhIjKlMnOpQrStUv123", "key=[API_KEY]"),
        ("openai_key", "sk-AbCdEfGhIjKlMnOpQrStUvWx", "[API_KEY]"),
        ("anthropic_key", "x sk-ant-api03-AbCdEfGhIjKlMnOpQrSt y", "x [API_KEY] y"),
        ("aws_access_key", "aws AKIAIOSFODNN7EXAMPLE here", "aws [AWS_KEY] here"),
        ("github_token", "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 x", "gh [TOKEN] x"),
        ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[TOKEN]"),
        ("google_api_key", "k=AIzaSyA-1234567890abcdefghijklmnopqrstu", "k=[API_KEY]"),
        ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[API_KEY]"),
        ("slack_token", "xoxb-123456789012-abcdefABCDEF", "[TOKEN]"),
        ("huggingface_token", "hf_abcdefghijklmnopqrstuvwxyzABCDEF", "[TOKEN]"),
        ("jwt", "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N x",
         "t [JWT] x"),
        ("private_key", "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow1\n-----END RSA PRIVATE KEY-----\nb",
         "a\n[PRIVATE_KEY]\nb"),
        ("private_key", "cut -----BEGIN PRIVATE KEY-----\nMIIEvQ", "cut [PRIVATE_KEY]"),
    ],
)
def test_each_builtin_rule(rule: str, text: str, expected: str) -> None:
    only = Redactor(RedactionConfig(builtin_rules=frozenset({rule})))
    assert only.redact(text) == (expected, True)
    assert Redactor().redact(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 12345 shipped on 2024-01-15 at 10:30",
        "pi is 3.14159265358979",
        "id 1234567890123 is not a card (fails Luhn)",
        "version 1.4.0 of sk-learn",
        "the hf_hub module, ghp_ prefixes, eyJ alone and a BEGIN PUBLIC KEY block",
        "ASIAN cuisine and AKIA without sixteen more capitals",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == (text, False)


def test_user_rules_regex_pair_and_callable() -> None:
    config = RedactionConfig(rules=[r"ACCT-\d+", (r"secret (\w+)", r"secret <\1?>"),
                                    lambda t: t.replace("Bob", "[NAME]")])
    out, changed = Redactor(config).redact("Bob has ACCT-991 and secret plan")
    assert changed and out == "[NAME] has [REDACTED] and secret <plan?>"


def test_failing_user_rule_costs_only_that_rule() -> None:
    def broken(_: str) -> str:
        raise RuntimeError("boom")

    out, _ = Redactor(RedactionConfig(rules=[broken])).redact("mail a@b.io")
    assert out == "mail [EMAIL]"


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown redaction rule"):
        RedactionConfig(builtin_rules=frozenset({"ssn"}))
    with pytest.raises(ConfigError, match="invalid redaction rule"):
        RedactionConfig(rules=["(unclosed"])


def test_user_hash_is_keyed_and_stable() -> None:
    a = Redactor(RedactionConfig(user_hash_secret="k1"))
    b = Redactor(RedactionConfig(user_hash_secret="k2"))
    assert a.hash_user("u-42") == a.hash_user("u-42")
    assert a.hash_user("u-42") != b.hash_user("u-42")
    assert "u-42" not in a.hash_user("u-42") and len(a.hash_user("u-42")) == 64


def test_disabled_redaction_keeps_text() -> None:
    assert Redactor(RedactionConfig(enabled=False)).redact("a@b.io") == ("a@b.io", False)


def test_secret_keys() -> None:
    for key in ("api_key", "openai_api_key", "Authorization", "password", "aws_secret",
                "anthropic_api_key", "access_token"):
        assert is_secret_key(key), key
    for key in ("temperature", "model_name", "tokens", "max_tokens", "question"):
        assert not is_secret_key(key), key
    assert set(BUILTIN_RULES) >= {"email", "phone", "card_number", "bearer_token",
                                  "openai_key", "anthropic_key"}


@pytest.mark.parametrize(
    "text",
    [
        "2abe56dc-8225-4250-9576-fe11da716f77",  # a run id once stored as "2abe56dc-[PHONE]-…"
        "12345678-1234-1234-1234-123456789012",  # all digits: the last two groups pass Luhn
        "req-8225-4250-9576-x",
    ],
)
def test_ids_joined_by_hyphens_are_left_alone(text: str) -> None:
    assert Redactor().redact(text) == (text, False)


def test_random_uuids_are_never_redacted() -> None:
    import uuid

    redactor = Redactor()
    for _ in range(20_000):
        text = f"run {uuid.uuid4()} done"
        assert redactor.redact(text) == (text, False), text
