# letsbe-agent container image.
#
#   docker build -t letsbe-agent:dev .                                  # the agent (default target)
#   docker build --target dev-orchestrator -t letsbe-dev-orchestrator:dev .
#   docker build --build-arg VERSION=1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) -t letsbe-agent:1.2.3 .
#
# Stages:
#   build             golang image: a static, stripped binary of each command (CGO_ENABLED=0, -trimpath,
#                     -ldflags '-s -w' plus version and commit), cross-compiled for TARGETPLATFORM.
#   dev-orchestrator  the reference orchestrator for docker-compose (development only).
#   agent             the agent on Docker's official CLI image, which brings the docker CLI and the
#                     compose plugin (Alpine based). Last, so it is what a plain `docker build` makes.
#
# Base images are pinned to a release (never :latest). Bump them here, or per build with
# --build-arg GO_VERSION=... / DOCKER_VERSION=... / ALPINE_VERSION=...; GO_VERSION must match
# the go line of go.mod (a test checks it). For reproducible production builds, pin digests too
# (golang:1.26.8@sha256:...).
#
# PID 1 is tini: it forwards SIGTERM to the agent and reaps orphans (task processes run in
# their own process groups and the agent kills whole groups; whatever a killed group leaves
# behind is reparented to PID 1 and must be reaped there).
#
# User: the image runs as the unprivileged user letsbe (uid 10001). That is enough for ECHO and
# SHELL tasks, for docker tasks once the container may use the docker socket
# (--group-add "$(stat -c %g /var/run/docker.sock)"), and for file tasks in roots the user owns
# (the image's own /opt/letsbe, or a volume). Managing a host's root-owned files (a bind mount of
# /opt/letsbe whose files belong to root or to other services) needs `--user 0`: the k3s
# Deployment in config/k8s does that, with every capability dropped but the few file tasks need.
#
# Health: HEALTHCHECK asks /healthz on the agent's local HTTP listener (AGENT_HTTP_ADDR, default
# 127.0.0.1:9464; only its port is used, the check runs inside the container). An empty
# AGENT_HTTP_ADDR disables the listener and so turns the container unhealthy.

ARG GO_VERSION=1.26.8
ARG DOCKER_VERSION=29.1.3
ARG ALPINE_VERSION=3.23

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=0.0.0-dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/ ./cmd/letsbe-agent ./cmd/letsbe-dev-orchestrator

FROM alpine:${ALPINE_VERSION} AS dev-orchestrator
COPY --from=build /out/letsbe-dev-orchestrator /usr/local/bin/letsbe-dev-orchestrator
USER 65534:65534
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["wget", "-q", "-Y", "off", "-T", "2", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/letsbe-dev-orchestrator"]
CMD ["--listen", "0.0.0.0:8080", "--allow-remote"]

FROM docker:${DOCKER_VERSION}-cli AS agent
# WITH_CHROMIUM=true adds Alpine's Chromium (about 300 MB) for PLAYWRIGHT tasks; without it they
# fail with a message naming AGENT_CHROMIUM_PATH.
ARG WITH_CHROMIUM=false
RUN set -eux; \
    apk add --no-cache tini; \
    if [ "$WITH_CHROMIUM" = "true" ]; then apk add --no-cache chromium; fi; \
    addgroup -S -g 10001 letsbe; \
    adduser -S -D -u 10001 -G letsbe -h /home/letsbe letsbe; \
    install -d -o letsbe -g letsbe -m 0700 /var/lib/letsbe-agent; \
    install -d -o letsbe -g letsbe -m 0755 /opt/letsbe
COPY --from=build /out/letsbe-agent /usr/local/bin/letsbe-agent
ENV AGENT_STATE_DIR=/var/lib/letsbe-agent \
    AGENT_FILE_ROOTS=/opt/letsbe
USER 10001:10001
WORKDIR /home/letsbe
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD addr="${AGENT_HTTP_ADDR:-127.0.0.1:9464}"; wget -q -Y off -T 3 -O /dev/null "http://127.0.0.1:${addr##*:}/healthz" || exit 1
ENTRYPOINT ["/sbin/tini", "--", "/usr/local/bin/letsbe-agent"]
CMD ["run"]
