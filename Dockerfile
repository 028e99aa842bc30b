# sipform's controller as a container image: built from source in a Rust image, run from a
# distroless one (glibc and nothing else: no shell, no package manager, ~25 MB with sipform),
# as a non-root user. No secret is baked in: the server URL, the API key, the database URL and
# the webhook token come from the environment at run time (deploy/docker-compose.yml).
#
#   docker build -t sipform --build-arg SIPFORM_BUILD_COMMIT="$(git rev-parse --short HEAD)" .
#
# The project (sipform.yaml, tools/, templates/) is mounted at /srv/sipform; the health check
# is `sipform probe`, a GET of the controller's /healthz (the runtime image has no curl).

FROM rust:1.89-slim-bookworm AS build
WORKDIR /src
# `.git` is not sent (.dockerignore): `sipform --version` names the commit given here.
ARG SIPFORM_BUILD_COMMIT=unknown
ENV SIPFORM_BUILD_COMMIT=${SIPFORM_BUILD_COMMIT}
COPY . .
RUN cargo build --release --locked --bin sipform \
    && cp target/release/sipform /usr/local/bin/sipform

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/sipform /usr/local/bin/sipform
WORKDIR /srv/sipform
# distroless's `nonroot` user, by number so that the host resolves it too.
USER 65532:65532
# The controller's listener (webhook, /healthz, /readyz, /metrics): on every interface inside
# the container, so the platform's service can call the webhook and Prometheus can scrape.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/sipform", "probe", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["/usr/local/bin/sipform"]
CMD ["controller", "-v", "--listen", "0.0.0.0:9464"]
