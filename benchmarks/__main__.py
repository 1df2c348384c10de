"""``python -m benchmarks [--quick] [--only NAME ...] [--output FILE]``: see BENCHMARKS.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._common import Sizes, machine, pg_base_url, pg_server_version, say, versions

HERE = Path(__file__).resolve().parent
NAMES = ("overhead", "critical", "bytes", "offload", "ingest", "scale", "ui", "quality",
         "memory", "instructions", "startup", "export")
DEFAULT_OUTPUT = HERE / "results" / "latest.json"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (the smoke test): checks that everything runs")
    parser.add_argument("--only", action="append", choices=NAMES, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(NAMES)}"
                             " (instructions needs valgrind; skipped with its reason)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"results JSON (default {DEFAULT_OUTPUT.relative_to(HERE.parent)};"
                             " with --quick: not written unless given)")
    parser.add_argument("--pg-url", default=None,
                        help="PostgreSQL server (default $RAGTRAIL_BENCH_POSTGRES_URL, else "
                             "postgresql+psycopg://postgres@127.0.0.1:5432/test); 'none' skips")
    parser.add_argument("--no-competitors", action="store_true",
                        help="measure only none / no-op / ragtrail in the overhead benchmark")
    parser.add_argument("--frameworks", default="langchain,llamaindex",
                        help="frameworks of the overhead, critical, bytes and instructions "
                             "benchmarks, "
                             "comma-separated")
    parser.add_argument("--cache-dir", type=Path, default=HERE / ".cache",
                        help="where the queries-at-scale databases are kept between runs")
    for field in dataclasses.fields(Sizes):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=None,
                            help=f"size (default {field.default})")
    return parser.parse_args(argv)


def sizes_of(args: argparse.Namespace) -> Sizes:
    base = Sizes.quick() if args.quick else Sizes()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Sizes)
             if getattr(args, f.name) is not None}
    return dataclasses.replace(base, **given)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Third-party deprecation notices (some repeat on every call) would flood the output
    # and cost time inside the measured loops.
    warnings.simplefilter("ignore")
    sizes = sizes_of(args)
    pg_url = None if args.pg_url == "none" else (args.pg_url or pg_base_url())
    names = args.only or list(NAMES)
    results: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine(), "versions": versions(),
        "postgresql_server": pg_server_version(pg_url) if pg_url else None,
        "sizes": sizes.as_dict(), "benchmarks": {},
        # Other processes on the machine (load average over 1, 5, 15 min), start and end.
        "load_average": {"start": os.getloadavg()},
    }
    with tempfile.TemporaryDirectory(prefix="ragtrail-bench-") as tmp:
        for name in names:
            start = time.perf_counter()
            results["benchmarks"][name] = _run(name, sizes, Path(tmp), args, pg_url)
            results["benchmarks"][name]["elapsed_s"] = round(time.perf_counter() - start, 1)
    results["load_average"]["end"] = os.getloadavg()
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"results written to {output}")
    return results


def _run(name: str, sizes: Sizes, tmp: Path, args: argparse.Namespace,
         pg_url: str | None) -> dict[str, Any]:
    work = tmp / name
    work.mkdir()
    if name == "overhead":
        from . import _overhead

        return _overhead.run(sizes, work, pg_url=pg_url, competitors=not args.no_competitors,
                             frameworks=_frameworks(args))
    if name == "critical":
        from . import _critical

        return _critical.run(sizes.critical_invocations, sizes.critical_warmup, work,
                             frameworks=_frameworks(args))
    if name == "bytes":
        from . import _bytes

        return _bytes.run(sizes.bytes_invocations, sizes.bytes_warmup, work, pg_url=pg_url,
                          frameworks=_frameworks(args))
    if name == "offload":
        from . import _offload

        return _offload.run(sizes, work)
    if name == "ingest":
        from . import _ingest

        return _ingest.run(sizes, work, pg_url=pg_url)
    if name == "scale":
        from . import _scale

        return _scale.run(sizes, args.cache_dir, pg_url=pg_url)
    if name == "startup":
        from . import _startup

        return _startup.run(sizes, work)
    if name == "quality":
        from . import _quality

        return _quality.run(sizes, args.cache_dir)
    if name == "ui":
        from . import _ui

        return _ui.run(sizes, args.cache_dir)
    if name == "instructions":
        from . import _instructions

        return _instructions.run(sizes.instruction_invocations, work,
                                 frameworks=_frameworks(args))
    if name == "export":
        from . import _export

        return _export.run(sizes, work)
    from . import _memory

    return _memory.run(sizes, work)


def _frameworks(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(f.strip() for f in args.frameworks.split(",") if f.strip())


if __name__ == "__main__":
    main()
