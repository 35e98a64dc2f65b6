"""The digits MLP of `examples/digits` in Python mode: its trainer and evaluator wrapped in a
`worker_client.Job`, which gives them `pbt-worker`'s options and behaviour (persistent worker
identity, retries while the service restarts, SIGTERM handling, progress lines, limits).

    pbt-service serve --database-url sqlite:///runs/digits/pbt.db --port 50063 &
    python -m examples.digits_python_mode --service localhost:50063 --study digits --workers 2 \\
        --workdir runs/digits
    pbt-results --service localhost:50063 best digits

The study (population 8, 6 generations of 100 steps) is created when it does not exist.
"""

from __future__ import annotations

import sys

from examples import digits
from worker_client import Job

job = Job(digits.train, digits.evaluate, study_config=digits.study_config(population_size=8, max_generations=6))

if __name__ == "__main__":
    sys.exit(job.main())
