# syntax=docker/dockerfile:1
# notify-gateway: docker build -t notify-gateway .
# The builder generates the stubs from protos/ (setup.py runs scripts/generate.py) and builds the
# wheel and its dependencies' wheels; the runtime installs only those wheels, offline (a BuildKit
# bind mount of the builder's /wheels, so no wheel stays in a layer), as a user without privileges.
# One image for both roles: `serve` (the API) and `worker` (queued delivery).

FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE CHANGELOG.md ./
COPY scripts/generate.py scripts/
COPY protos/ protos/
COPY gateway/ gateway/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="notify-gateway" \
      org.opencontainers.image.description="A gRPC notification gateway for WeCom and DingTalk" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NOTIFY_HEALTH_ADDRESS=127.0.0.1:50051
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/notify_gateway-*.whl \
    && groupadd --system --gid 10001 notify \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin notify
USER 10001:10001
# 50051: the gRPC API (server.listen); 9464: Prometheus /metrics (telemetry.prometheus_listen).
EXPOSE 50051 9464
# Liveness through standard gRPC health checking with the grpcio-health-checking the gateway already
# depends on (no grpc_health_probe binary): the server name "" stays SERVING while the process is
# up, whatever Redis does (README, "The config file"). The worker role serves no gRPC: its compose
# service turns this check off.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel(os.environ['NOTIFY_HEALTH_ADDRESS'])).Check(h.HealthCheckRequest(service=''), timeout=4); raise SystemExit(s.status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["notify-gateway"]
CMD ["serve", "--config", "/etc/notify-gateway/gateway.yaml"]
