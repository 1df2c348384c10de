"""ragtrail benchmarks: ``python -m benchmarks`` (or ``make bench``). See BENCHMARKS.md.

Not part of the library and not part of ``make test`` (``tests/e2e/test_benchmarks_smoke.py``
runs each benchmark at a tiny size so none of them can rot).
"""
