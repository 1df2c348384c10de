"""Redaction at the edge: each built-in rule, user rules, keyed user hashes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ragtrail import Trail
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


# --- the user-hash key: which kind is in use, and a warning for the public default ----------

_HASH_CHILD = """
import hashlib, hmac, json, sys, uuid
sys.path.insert(0, {tests!r})
from lc_support import build_rag_chain
from ragtrail import Trail
from ragtrail_langchain import RagtrailCallbackHandler

trail = Trail({url!r})
chain = build_rag_chain()
ids = [str(uuid.uuid4()) for _ in range(4)]
for rid in ids:
    print(chain.invoke("What does VACUUM do in SQLite?", config={{
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid,
        "metadata": {{"user_id": "u-7"}}}}))
stats = trail.stats()
trail.close()
print(json.dumps({{"ids": ids, "key": stats["user_hash_key"]}}))
"""


def _run_hash_child(tmp_path: Path, *flags: str, secret: str | None = None
                    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    url = f"sqlite:///{tmp_path / 'hash.db'}"
    env = {k: v for k, v in os.environ.items() if k != "RAGTRAIL_USER_HASH_SECRET"}
    if secret is not None:
        env["RAGTRAIL_USER_HASH_SECRET"] = secret
    code = _HASH_CHILD.format(tests=str(Path(__file__).resolve().parents[1]), url=url)
    done = subprocess.run([sys.executable, *flags, "-c", code], env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:4] == ["The context answers: What does VACUUM do in SQLite?"] * 4
    return done, json.loads(done.stdout.splitlines()[-1]), url


def _stored_user_hashes(url: str, ids: list[str]) -> set[str | None]:
    with Trail(url) as reader:
        return {run.user_hash for rid in ids for run in reader.lineage(rid).runs}


def test_the_default_key_is_warned_about_once_and_the_hash_is_stored(tmp_path: Path) -> None:
    done, out, url = _run_hash_child(tmp_path)
    lines = [line for line in done.stderr.splitlines() if "DefaultUserHashKeyWarning" in line]
    assert len(lines) == 1 and "RAGTRAIL_USER_HASH_SECRET" in lines[0]
    assert out["key"] == "default"
    expected = hmac.new(b"ragtrail-default-user-hash-key", b"u-7", hashlib.sha256).hexdigest()
    assert _stored_user_hashes(url, out["ids"]) == {expected}


def test_with_warnings_as_errors_the_default_key_warning_is_one_stderr_line(
        tmp_path: Path) -> None:
    # Under -W error the warning would be an exception: capture goes on, the user hash
    # is stored, and the warning becomes one line on stderr (logging not configured).
    done, out, url = _run_hash_child(tmp_path, "-W", "error")
    assert done.stderr.splitlines() == [
        "ragtrail: warning: user ids are hashed with ragtrail's public default key, so anyone "
        "can recompute the hash of a guessed id: set RAGTRAIL_USER_HASH_SECRET or "
        "RedactionConfig(user_hash_secret=...)"]
    assert len(_stored_user_hashes(url, out["ids"])) == 1


def test_a_configured_key_is_not_warned_about(tmp_path: Path) -> None:
    done, out, url = _run_hash_child(tmp_path, "-W", "error", secret="s3cret-key")
    assert done.stderr == "" and out["key"] == "configured"
    expected = hmac.new(b"s3cret-key", b"u-7", hashlib.sha256).hexdigest()
    assert _stored_user_hashes(url, out["ids"]) == {expected}


def test_stats_and_schema_say_which_key_kind_never_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGTRAIL_USER_HASH_SECRET", raising=False)
    url = f"sqlite:///{tmp_path / 'kind.db'}"
    with Trail(url) as trail:
        assert trail.stats()["user_hash_key"] == "default"
    with Trail(url, redaction=RedactionConfig(user_hash_secret="mine")) as trail:
        stats = trail.stats()
    assert stats["user_hash_key"] == "configured" and "mine" not in json.dumps(stats)
    for secret, kind in ((None, "default"), ("env-secret", "configured")):
        env = {k: v for k, v in os.environ.items() if k != "RAGTRAIL_USER_HASH_SECRET"}
        if secret:
            env["RAGTRAIL_USER_HASH_SECRET"] = secret
        out = subprocess.run([sys.executable, "-m", "ragtrail", "schema"], env=env,
                             capture_output=True, text=True, check=True, timeout=120).stdout
        assert json.loads(out)["user_hash_key"] == kind and "env-secret" not in out
