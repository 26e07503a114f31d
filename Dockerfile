# The image the container action runs (action.yml: image: docker://ghcr.io/…:v<version>).
# One static binary on an empty base, plus CA certificates.
#
#   docker build -t parallel-orchestrator .
#   docker run --rm -i -e INPUT_MODE=plan parallel-orchestrator < examples/fullstack.json
#
# The build stage runs on the target platform (under QEMU for linux/arm64 in release.yml), so
# the compiler and the C compiler `ring` needs are both native: no cross toolchain.

# ---- build -------------------------------------------------------------------------------------
# Alpine's Rust builds for *-unknown-linux-musl natively, and Rust links musl targets statically
# (crt-static) by default. 1.86 is the oldest Rust the locked dependencies accept (a build
# dependency of octocrab needs it); any newer stable works.
FROM rust:1.93-alpine AS build

# musl-dev: libc headers and start files for the C parts of `ring` (TLS) and for linking.
RUN apk add --no-cache musl-dev ca-certificates

WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin parallel-orchestrator \
 && cp target/release/parallel-orchestrator /parallel-orchestrator

# ---- runtime -----------------------------------------------------------------------------------
FROM scratch

LABEL org.opencontainers.image.source="https://github.com/parallel-orchestrator/parallel-orchestrator" \
      org.opencontainers.image.description="parallel-orchestrator: fan one piece of work out across up to 100 GitHub Actions jobs" \
      org.opencontainers.image.licenses="MIT"

# The GitHub client (octocrab → hyper-rustls) verifies TLS with the system's roots
# (rustls-native-certs reads SSL_CERT_FILE); the LLM client (reqwest, rustls-tls) carries its own
# webpki roots. One bundle at the usual path, named by SSL_CERT_FILE, serves both.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

COPY --from=build /parallel-orchestrator /usr/local/bin/parallel-orchestrator

# Smoke test at build time: the image must start on its own (no shell, no loader, no libc).
RUN ["/usr/local/bin/parallel-orchestrator", "--version"]

# No USER and no WORKDIR: GitHub runs container actions as the image's default user (root, which
# can write $GITHUB_OUTPUT under /github/file_commands) in /github/workspace.
# No CMD: the action passes no arguments, so the mode comes from INPUT_MODE.
ENTRYPOINT ["/usr/local/bin/parallel-orchestrator"]
