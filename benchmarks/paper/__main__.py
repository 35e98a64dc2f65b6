"""`python -m benchmarks.paper`: see `benchmarks/paper/suite.py`."""

from benchmarks.paper.suite import main

if __name__ == "__main__":
    raise SystemExit(main())
