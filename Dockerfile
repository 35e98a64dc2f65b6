FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pbt_service ./pbt_service
COPY worker_client ./worker_client
RUN pip install --no-cache-dir '.[server]'
EXPOSE 50051
ENTRYPOINT []
CMD ["pbt-service", "serve", "--host", "0.0.0.0", "--port", "50051"]
