"""The seam between adapters and the Recorder is typed: a misspelled key fails mypy strict."""

from __future__ import annotations

from pathlib import Path

from mypy import api

from ragtrail.capture import LLMUpdate
from ragtrail.schemas import RunKind
from ragtrail.testing import capture_records


def _mypy(tmp_path: Path, code: str) -> tuple[str, int]:
    source = tmp_path / "adapter.py"
    source.write_text(code)
    out, err, status = api.run(["--strict", "--follow-imports=silent",
                                "--cache-dir", str(tmp_path / ".mypy"), str(source)])
    return out + err, status


def test_a_misspelled_or_mistyped_key_is_a_type_error(tmp_path: Path) -> None:
    good, status = _mypy(tmp_path, "from ragtrail.capture import LLMUpdate\n"
                                   "u = LLMUpdate(provider='openai', token_usage={'input_tokens': 1})\n")
    assert status == 0, good
    bad, status = _mypy(tmp_path, "from ragtrail.capture import LLMUpdate\n"
                                  "u = LLMUpdate(token_usgae={'input_tokens': 1})\n"
                                  "v: LLMUpdate = {'provider': 3}\n")
    assert status == 1
    assert '"token_usgae"' in bad and '"provider"' in bad


def test_the_recorder_merges_updates() -> None:
    with capture_records() as captured:
        recorder = captured.recorder
        recorder.start_run("llm-1", kind=RunKind.LLM, name="model")
        recorder.update_llm("llm-1", LLMUpdate(provider="openai", provider_model="gpt-4o",
                                               token_usage={"input_tokens": 3}))
        recorder.update_llm("llm-1", LLMUpdate(token_usage={"output_tokens": 2}))
        recorder.end_run("llm-1")
    (llm,) = captured.llm_calls()
    assert (llm.provider, llm.provider_model) == ("openai", "gpt-4o")
    assert llm.token_usage is not None
    assert (llm.token_usage.input_tokens, llm.token_usage.output_tokens) == (3, 2)
