# The worker image: the client only (`pip install .`, no server extra: no SQLAlchemy, no psycopg2),
# plus the toy example of examples/toy (NumPy only) and its study config, so that it runs a study
# as is. For your own training code, start FROM this image and COPY your package in.
#   docker build -f worker.Dockerfile -t pbt-worker:0.1.0 .
# Deployment guide: docs/deploy.md.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pbt_service ./pbt_service
COPY worker_client ./worker_client
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PBT_WORKDIR=/runs
RUN groupadd --system --gid 10001 pbt \
 && useradd --system --uid 10001 --gid pbt --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pbt \
 && mkdir /runs && chown 10001:10001 /runs
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels pbt-service \
 && rm -rf /wheels
# `--trainer-module examples.toy.problem:train` imports from the working directory.
WORKDIR /app
COPY examples/__init__.py ./examples/__init__.py
COPY examples/toy ./examples/toy
COPY deploy/toy-study.json ./toy-study.json
# Model directories, checkpoints and worker identities: share it between workers (a volume).
VOLUME /runs
USER 10001:10001
CMD ["pbt-worker", "--study", "toy", "--create-study", "toy-study.json", \
     "--trainer-module", "examples.toy.problem:train", "--evaluator-module", "examples.toy.problem:evaluate"]
