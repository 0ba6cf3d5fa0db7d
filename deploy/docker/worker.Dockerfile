# kiln-worker with Debian's Chromium (social cards). Build from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t kiln-worker .
FROM rust:1.95.0-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake nasm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kiln-worker \
 && install -D target/release/kiln-worker -t /out

FROM debian:12.12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates chromium fonts-noto-color-emoji tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home kiln
COPY --from=build /out/ /usr/local/bin/
COPY templates /srv/kiln/templates
WORKDIR /srv/kiln
USER kiln
ENV KILN_WORKER_LISTEN=0.0.0.0:9091 KILN_TEMPLATES_DIR=/srv/kiln/templates KILN_CHROMIUM=/usr/bin/chromium \
    KILN_LOG_FORMAT=json KILN_ENV_FILE=
EXPOSE 9091
# tini reaps anything Chromium leaves behind if the worker itself is killed.
HEALTHCHECK --interval=5s --timeout=5s CMD ["/usr/local/bin/kiln-worker", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/kiln-worker"]
