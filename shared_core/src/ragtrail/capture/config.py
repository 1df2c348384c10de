"""Capture settings: payload limits, what to hide, bounds on open runs."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["CaptureConfig"]


@dataclass(frozen=True)
class CaptureConfig:
    """How much the Recorder keeps, validated when built.

    Hidden inputs, outputs or document contents are replaced by a marker holding the
    content hash, so lineage and document joins still work.

    ``max_documents_per_stage`` bounds the documents one run links at one stage
    (retrieved, reranked, in prompt); the ones beyond it are not stored, the run is
    marked ``truncated`` and its metadata ``documents_cut`` counts them per stage.
    """

    max_string_chars: int = 20_000
    max_list_items: int = 500
    max_depth: int = 24
    max_payload_chars: int = 400_000
    max_documents_per_stage: int = 500
    hide_inputs: bool = False
    hide_outputs: bool = False
    hide_document_content: bool = False
    max_open_runs: int = 10_000
    max_run_age_s: float = 3_600.0
    capture_environment: bool = True

    def __post_init__(self) -> None:
        for name in ("max_string_chars", "max_list_items", "max_depth", "max_payload_chars",
                     "max_documents_per_stage", "max_open_runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"CaptureConfig.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.max_run_age_s, (int, float)) and self.max_run_age_s > 0):
            raise ConfigError(
                f"CaptureConfig.max_run_age_s must be a positive number, got {self.max_run_age_s!r}"
            )
