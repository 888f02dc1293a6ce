# The weir binary in a small image (README "Running on several machines").
#   docker build -t weir .
#   docker run --rm -v "$PWD/data:/data" weir run /data/job.toml --output /data/out/
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin weir

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/weir --create-home weir
COPY --from=build /src/target/release/weir /usr/local/bin/weir
USER weir
WORKDIR /var/lib/weir
# SIGTERM (what Kubernetes sends) makes a checkpointed run take a savepoint and stop
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["--help"]
