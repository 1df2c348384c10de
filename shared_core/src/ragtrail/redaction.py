"""Redaction at the edge: built-in PII/secret rules, user rules, and keyed user hashes.

Applied by the Recorder to every string before anything is stored or queued.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Union

from ._log import RateLimitedLog, get_logger, report_to_stderr
from .errors import ConfigError, DefaultUserHashKeyWarning

__all__ = [
    "BUILTIN_RULES",
    "RedactionConfig",
    "Redactor",
    "Rule",
    "is_secret_key",
    "user_hash_key_kind",
]

_log = RateLimitedLog(get_logger("redaction"))

#: A user rule: a regex (replaced by ``[REDACTED]``), a (regex, replacement) pair, or a
#: callable taking and returning the text.
Rule = Union[str, "re.Pattern[str]", tuple[str, str], Callable[[str], str]]


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


#: name -> (pattern, replacement). Order matters: keys before generic tokens.
BUILTIN_RULES: dict[str, tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = {
    # A whole PEM block (to the end of the text when cut before its END line).
    "private_key": (
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?"
                   r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)", re.DOTALL),
        "[PRIVATE_KEY]",
    ),
    "anthropic_key": (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"), "[API_KEY]"),
    "openai_key": (re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"), "[API_KEY]"),
    "bearer_token": (
        re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
        lambda m: f"{m.group(1)} [TOKEN]",
    ),
    "email": (re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"), "[EMAIL]"),
    # Credentials with a documented, distinctive shape: nothing else looks like them.
    "aws_access_key": (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[AWS_KEY]"),
    "github_token": (
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"), "[TOKEN]"
    ),
    "google_api_key": (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"), "[API_KEY]"),
    "stripe_key": (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), "[API_KEY]"),
    "slack_token": (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), "[TOKEN]"),
    "huggingface_token": (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "[TOKEN]"),
    "jwt": (
        re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}"),
        "[JWT]",
    ),
    # Neither rule matches inside a word or a hyphen-joined token (a UUID,
    # "req-8225-4250-9576-x"): its digit groups can look like a phone or card number.
    "card_number": (re.compile(r"(?<!\w)(?<!\w-)(?:\d[ \-]?){12,18}\d(?!\w|-\w)"), _card),
    "phone": (
        re.compile(
            r"(?<![\w+])(?<!\w-)(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{2,4}[\s.\-])"
            r"\d{3,4}[\s.\-]?\d{3,4}(?!\w|-\w)"
        ),
        "[PHONE]",
    ),
}

_DIGIT = re.compile(r"\d")
_BEARER = re.compile(r"(?i)bearer")
#: Matches wherever any built-in rule could: text without a match (most questions,
#: documents and names) costs one scan instead of one per rule.
_TOKEN_TRIGGER = r"AKIA|ASIA|gh[pousr]_|github_pat_|AIza|_live_|_test_|xox|hf_|eyJ|PRIVATE KEY"
_ANY_TRIGGER = re.compile(rf"sk-|@|(?i:bearer)|\d|{_TOKEN_TRIGGER}")
_TOKENS = re.compile(_TOKEN_TRIGGER)

#: Credential shapes with distinctive prefixes: one search for all their prefixes
#: decides whether any of them runs (they run first, in BUILTIN_RULES order).
_TOKEN_RULES = frozenset({"private_key", "aws_access_key", "github_token", "google_api_key",
                          "stripe_key", "slack_token", "huggingface_token", "jwt"})

#: name -> a cheap test that is true whenever the rule's pattern can match, so the
#: patterns themselves only run where they may change the text.
_MAY_MATCH: dict[str, Callable[[str], bool]] = {
    "anthropic_key": lambda text: "sk-ant-" in text,
    "openai_key": lambda text: "sk-" in text,
    "bearer_token": lambda text: _BEARER.search(text) is not None,
    "email": lambda text: "@" in text,
    "card_number": lambda text: _DIGIT.search(text) is not None,
    "phone": lambda text: _DIGIT.search(text) is not None,
}

_SECRET_KEY = re.compile(
    r"(?i)(api[_-]?key|secret|password|passwd|authorization|access[_-]?token|"
    r"refresh[_-]?token|auth[_-]?token|private[_-]?key|credentials?)$"
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for mapping keys whose values are secrets (``openai_api_key``, ``password``...).

    Their values are never stored, whatever the redaction settings.
    """
    return bool(_SECRET_KEY.search(key))


@dataclass(frozen=True)
class RedactionConfig:
    """What to redact. Built-in rules are all on by default.

    ``user_hash_secret`` keys the HMAC of user ids; set it (or the environment variable
    ``RAGTRAIL_USER_HASH_SECRET``) so hashes cannot be reversed by guessing ids.
    """

    builtin_rules: frozenset[str] = frozenset(BUILTIN_RULES)
    rules: Sequence[Rule] = ()
    user_hash_secret: str | bytes | None = None
    enabled: bool = True
    _compiled: tuple[Callable[[str], str], ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.builtin_rules) - set(BUILTIN_RULES)
        if unknown:
            raise ConfigError(
                f"unknown redaction rule(s) {sorted(unknown)}; known: {sorted(BUILTIN_RULES)}"
            )
        object.__setattr__(self, "_compiled", tuple(_compile(r) for r in self.rules))


def _compile(rule: Rule) -> Callable[[str], str]:
    if callable(rule) and not isinstance(rule, re.Pattern):
        return rule
    try:
        if isinstance(rule, tuple):
            pattern, replacement = re.compile(rule[0]), rule[1]
        else:
            pattern, replacement = re.compile(rule), "[REDACTED]"
    except (re.error, TypeError, IndexError) as exc:
        raise ConfigError(f"invalid redaction rule {rule!r}: {exc}") from None
    return lambda text: pattern.sub(replacement, text)


_DEFAULT_SECRET = b"ragtrail-default-user-hash-key"
_SECRET_ENV = "RAGTRAIL_USER_HASH_SECRET"
_DEFAULT_KEY_MESSAGE = (
    "user ids are hashed with ragtrail's public default key, so anyone can recompute the "
    "hash of a guessed id: set RAGTRAIL_USER_HASH_SECRET or "
    "RedactionConfig(user_hash_secret=...)")
_default_key_warned = threading.Lock()  # taken once: the first hash with the default key


def user_hash_key_kind(config: RedactionConfig | None = None) -> str:
    """``"configured"`` when user ids are hashed with a key of the user's (``config``'s
    ``user_hash_secret``, else ``$RAGTRAIL_USER_HASH_SECRET``), ``"default"`` with
    ragtrail's public one. Never the key itself."""
    secret = (config.user_hash_secret if config is not None else None) or os.environ.get(
        _SECRET_ENV)
    return "configured" if secret else "default"


def _warn_default_key() -> None:
    """Once per process: a :class:`DefaultUserHashKeyWarning`. Where warnings are errors
    (``-W error``) it becomes one line on stderr instead: capture never raises, and the
    user hash is stored all the same."""
    if not _default_key_warned.acquire(blocking=False):
        return
    try:
        warnings.warn(_DEFAULT_KEY_MESSAGE, DefaultUserHashKeyWarning, stacklevel=3)
    except Exception:  # the warning was made an error
        report_to_stderr(get_logger("redaction"), logging.WARNING, _DEFAULT_KEY_MESSAGE)
#: Redaction results kept for reuse: at most this many texts of at most this length
#: (a few MB at worst).
_CACHE_ENTRIES = 1024
_CACHE_TEXT_CHARS = 4096


class Redactor:
    """Applies a :class:`RedactionConfig` to text and hashes user ids."""

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config or RedactionConfig()
        chosen = [name for name in BUILTIN_RULES if name in self.config.builtin_rules]
        self._token_rules = [BUILTIN_RULES[name] for name in chosen if name in _TOKEN_RULES]
        self._builtins = [(*BUILTIN_RULES[name], _MAY_MATCH[name])
                          for name in chosen if name not in _TOKEN_RULES]
        secret = self.config.user_hash_secret or os.environ.get(_SECRET_ENV)
        if isinstance(secret, str):
            secret = secret.encode()
        self._secret = secret or _DEFAULT_SECRET
        #: ``"configured"`` or ``"default"`` (see :func:`user_hash_key_kind`).
        self.user_hash_key = user_hash_key_kind(self.config)
        self._cache: dict[str, tuple[str, bool]] = {}

    @property
    def pure(self) -> bool:
        """True when redacting the same text always gives the same result (no user rules,
        which may be any callable)."""
        return not self.config._compiled

    def redact(self, text: str) -> tuple[str, bool]:
        """Return the redacted text and whether anything changed. Never raises."""
        if not self.config.enabled or not text:
            return text, False
        # The same texts come back again and again (a document is in the retriever's
        # output, the reranker's input and output, the prompt...): remember recent
        # results. Only without user rules, which need not be pure functions.
        cacheable = self.pure and len(text) <= _CACHE_TEXT_CHARS
        if cacheable:
            known = self._cache.get(text)
            if known is not None:
                return known
        result = self._redact(text)
        if cacheable:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()  # crude but bounded; a miss only costs the rules again
            self._cache[text] = result
        return result

    def _redact(self, text: str) -> tuple[str, bool]:
        out = text
        triggered = _ANY_TRIGGER.search(text) is not None
        builtins = self._builtins if triggered else ()
        if triggered and self._token_rules and _TOKENS.search(out) is not None:
            for pattern, replacement in self._token_rules:
                out = pattern.sub(replacement, out)
        for pattern, replacement, may_match in builtins:
            if may_match(out):
                out = pattern.sub(replacement, out)
        for rule in self.config._compiled:
            try:
                out = rule(out)
            except Exception as exc:
                _log.warning("rule", "redaction rule failed: %s: %s", type(exc).__name__, exc)
        return out, out != text

    def hash_user(self, user_id: object) -> str:
        """Keyed hash (HMAC-SHA256, hex) of a user id: stable, not reversible without the key.

        With the default key, the first call in the process issues a
        :class:`~ragtrail.errors.DefaultUserHashKeyWarning`.
        """
        if self._secret is _DEFAULT_SECRET:
            _warn_default_key()
        return hmac.new(self._secret, str(user_id).encode(), hashlib.sha256).hexdigest()

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        """Redact several strings."""
        return [self.redact(t)[0] for t in texts]
