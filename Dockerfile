# syntax=docker/dockerfile:1
# stayflow's image: `docker build -t stayflow .`; `compose.yaml` runs it with PostgreSQL.

# 1. Build the wheel (the build tools stay in this stage).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stayflow ./stayflow
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/stayflow-*.whl

# 2. The runtime: the wheel and its dependencies, a non-root user, nothing else.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 stayflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/stayflow --create-home stayflow
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels stayflow \
 && rm -rf /wheels
ENV PYTHONUNBUFFERED=1 \
    STAYFLOW_ENV=production \
    STAYFLOW_LOG_JSON=true
WORKDIR /var/lib/stayflow
USER 10001:10001
EXPOSE 8000
# /healthz answers while the process is up; orchestrators use /readyz for traffic.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# Inside a container the port is published by the runtime, so it listens on all of the
# container's interfaces; compose.yaml publishes it on the host's 127.0.0.1 only.
CMD ["stayflow", "serve", "--host", "0.0.0.0", "--port", "8000"]
