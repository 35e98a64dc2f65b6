# The service image: `pbt-service serve` (and `pbt-service migrate`) with PostgreSQL support.
#   docker build -t pbt-service:0.1.0 .
# Stage 1 builds wheels for the project and every dependency; stage 2 installs only those wheels
# into a clean image of the same Python, so no compiler, build cache or source tree ships.
# The worker image is worker.Dockerfile (the client alone). Deployment guide: docs/deploy.md.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pbt_service ./pbt_service
COPY worker_client ./worker_client
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[server]'

FROM python:3.11.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 pbt \
 && useradd --system --uid 10001 --gid pbt --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pbt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'pbt-service[server]' \
 && rm -rf /wheels
# gRPC (and its health service, which orchestrators probe), then Prometheus metrics.
EXPOSE 50051 9464
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
CMD ["pbt-service", "serve", "--host", "0.0.0.0", "--port", "50051"]
