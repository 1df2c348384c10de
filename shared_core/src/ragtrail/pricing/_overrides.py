"""User price overrides: per-model prices per million tokens, from a mapping or a file.

Overrides price self-hosted, fine-tuned or negotiated models and take precedence over
the genai-prices data. A mistake here is the user's, so it raises
:class:`~ragtrail.errors.ConfigError` when the :class:`~ragtrail.pricing.Pricer` is
built, naming the file (or "price overrides" for a mapping) and the problem.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Union

from ragtrail.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["ModelPrice", "OverrideSource", "load_price_overrides", "override_key"]

_MAPPING_SOURCE = "price overrides"
_TOKEN_PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h",
                     "reasoning")
_REQUIRED_KEYS = ("input", "output")


@dataclass(frozen=True)
class ModelPrice:
    """Prices of one model, in ``currency`` **per million tokens**.

    ``input`` and ``output`` are required (write ``0`` for a free local model: its cost
    is then exactly zero, never unknown). ``cache_read`` and ``cache_write`` default to
    the input price, as the provider bills cached tokens at the full rate when it has no
    cache price; ``cache_write_1h`` (cache writes kept for one hour) defaults to the
    cache-write price. ``reasoning`` is set only where reasoning tokens are billed apart
    from output; otherwise they are priced as the output tokens they are part of.

    Values may be given as ``Decimal``, ``int``, ``str`` or ``float`` (converted through
    its shortest repr, so ``0.1`` stays ``Decimal("0.1")``).
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    currency: str = "USD"
    cache_write_1h: Decimal | None = None

    def __post_init__(self) -> None:
        for name in _TOKEN_PRICE_KEYS:
            value = getattr(self, name)
            if value is None and name in _REQUIRED_KEYS:
                raise ConfigError(f"missing {name} (per million tokens; write 0 for a free model)")
            if value is not None:
                object.__setattr__(self, name, _price(name, value))
        if not isinstance(self.currency, str) or not self.currency.strip():
            raise ConfigError(f"currency must be a non-empty string, got {self.currency!r}")
        object.__setattr__(self, "currency", self.currency.strip().upper())


#: What :func:`load_price_overrides` accepts: a mapping of model key to prices, or a path.
OverrideSource = Union[Mapping[str, "ModelPrice | Mapping[str, Any]"], str, "os.PathLike[str]"]


def override_key(name: str) -> str:
    """The form override keys and looked-up names are compared in (case-insensitive)."""
    return name.strip().lower()


def load_price_overrides(source: OverrideSource) -> dict[str, ModelPrice]:
    """Read user prices from a mapping, or a ``.toml`` / ``.json`` file.

    Keys are a model name (``"my-llama"``) or ``"provider/model"``
    (``"openai/ft:gpt-4o-mini:acme"``); values are a :class:`ModelPrice` or a table with
    the keys ``input``, ``output`` (required), ``cache_read``, ``cache_write``,
    ``cache_write_1h``, ``reasoning`` (per million tokens) and ``currency`` (default
    ``USD``). Example TOML::

        ["my-local-llama"]
        input = 0
        output = 0

        ["openai/gpt-4o"]
        input = "2.0"
        output = "8.0"
        cache_read = "1.0"

    Returns:
        The prices keyed by lower-cased name.

    Raises:
        ConfigError: the file cannot be read or parsed, or an entry is malformed.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _parse_entries(_read_file(path), origin=str(path))
    if isinstance(source, Mapping):
        return _parse_entries(source, origin=_MAPPING_SOURCE)
    raise ConfigError(
        f"price overrides must be a mapping or a path to a TOML/JSON file, "
        f"got {type(source).__name__}"
    )


def _read_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"price override file {path}: expected a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"price override file {path} cannot be read: {exc}") from exc
    try:
        if suffix == ".toml":
            return tomllib.loads(text, parse_float=Decimal)
        return json.loads(text, parse_float=Decimal)
    except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"price override file {path} is not valid {suffix[1:]}: {exc}") from exc


def _parse_entries(raw: Any, *, origin: str) -> dict[str, ModelPrice]:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{origin}: expected a table of model name -> prices, got {type(raw).__name__}"
        )
    prices: dict[str, ModelPrice] = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{origin}: model key {name!r} must be a non-empty string")
        key = override_key(name)
        if key in prices:
            raise ConfigError(f"{origin}: model {name!r} is given twice (keys ignore case)")
        try:
            prices[key] = _model_price(entry)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: model {name!r}: {exc}") from None
    return prices


_FIELDS = tuple(f.name for f in fields(ModelPrice))


def _model_price(entry: Any) -> ModelPrice:
    if isinstance(entry, ModelPrice):
        return entry
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"expected a table of prices per million tokens, got {type(entry).__name__}"
        )
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)} "
            "(prices are per million tokens)"
        )
    missing = [k for k in _REQUIRED_KEYS if entry.get(k) is None]
    if missing:
        raise ConfigError(
            f"missing {', '.join(missing)} (per million tokens; write 0 for a free model)"
        )
    return ModelPrice(**entry)


def _price(name: str, value: object) -> Decimal:
    """A finite, non-negative Decimal from a user value, or ConfigError."""
    if isinstance(value, bool):
        raise ConfigError(f"'{name}' must be a number, got {value!r}")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ConfigError(f"'{name}' must be finite, got {value!r}")
            price = Decimal(repr(value))
        elif isinstance(value, (Decimal, int, str)):
            price = Decimal(value.strip() if isinstance(value, str) else value)
        else:
            raise ConfigError(f"'{name}' must be a number, got {type(value).__name__}")
    except InvalidOperation:
        raise ConfigError(f"'{name}' is not a number: {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ConfigError(f"'{name}' must be a finite price >= 0, got {value!r}")
    return price
