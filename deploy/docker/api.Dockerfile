# kiln-api (and the kiln CLI). Build from the repository root:
#   docker build -f deploy/docker/api.Dockerfile -t kiln-api .
FROM rust:1.95.0-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake nasm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kiln-api -p kiln-cli \
 && install -D target/release/kiln-api target/release/kiln -t /out

FROM debian:12.12-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 kiln
COPY --from=build /out/ /usr/local/bin/
COPY templates /srv/kiln/templates
WORKDIR /srv/kiln
USER kiln
ENV KILN_LISTEN=0.0.0.0:8080 KILN_TEMPLATES_DIR=/srv/kiln/templates KILN_LOG_FORMAT=json KILN_ENV_FILE=
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=5s CMD ["/usr/local/bin/kiln-api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kiln-api"]
