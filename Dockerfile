# syntax=docker/dockerfile:1
# agent-sre: the per-node reliability daemon for AI agents (and `agent-sre operator`).
#   docker build -t agent-sre .
#   docker run --read-only -v agent-sre-state:/var/lib/agent-sre -p 4317:4317 -p 8790:8790 agent-sre
# Runs as UID 10001 with a read-only root file system; state lives under /var/lib/agent-sre.
ARG PYTHON_VERSION=3.12

# --- build: the wheel, from the source tree -----------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
# A C compiler for the native span pass (built into the wheel; the runtime stage needs none).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY daemon ./daemon
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: the wheel installed into a venv in a slim Python --------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="agent-sre" \
      org.opencontainers.image.description="Per-node reliability daemon for AI agents: OTLP in, SLOs, cost guards, LLM proxy, OTLP out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/agent-sre/agent-sre" \
      org.opencontainers.image.documentation="https://github.com/agent-sre/agent-sre/blob/main/docs/kubernetes.md"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/agent-sre/bin:$PATH \
    AGENT_SRE_CONFIG=/etc/agent-sre/agent-sre.yaml \
    AGENT_SRE_STATE_DIR=/var/lib/agent-sre

COPY --from=build /wheels /wheels
# Byte code is compiled at install time, so a read-only root file system costs nothing.
RUN python -m venv /opt/agent-sre \
    && /opt/agent-sre/bin/pip install --no-cache-dir --compile --find-links /wheels "agent-sre[operator]" \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 agent-sre \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/agent-sre \
       --no-create-home --shell /usr/sbin/nologin agent-sre \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/agent-sre

COPY deployments/container/agent-sre.yaml /etc/agent-sre/agent-sre.yaml

USER 10001:10001
WORKDIR /var/lib/agent-sre
VOLUME ["/var/lib/agent-sre"]
# OTLP gRPC, OTLP/HTTP, LLM/tool proxy, metrics + /healthz + /readyz, admin API (loopback)
EXPOSE 4317 4318 8790 9464 8791

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["agent-sre"]
CMD ["run"]
