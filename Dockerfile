# burst: the controller with its embedded host (`burst serve`).
#   docker build -t burst .
#   docker run -p 8080:8080 -v burst-data:/var/lib/burst -e BURST_TOKENS=me:SECRET burst
# (it refuses to listen on 0.0.0.0 without tenant tokens: anyone who reached
# it could run code; `burst serve --insecure-open` overrides that, loudly)
# The same image runs a host daemon:
#   docker run -e BURST_CLUSTER_TOKEN=... burst host --controller http://controller:8080 --slots 256

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p burst-controller --bin burst

FROM debian:bookworm-slim
RUN useradd --system --create-home --home-dir /var/lib/burst --uid 10001 burst
COPY --from=build /src/target/release/burst /usr/local/bin/burst
USER burst
WORKDIR /var/lib/burst
ENV BURST_LISTEN=0.0.0.0:8080 \
    BURST_DATA_DIR=/var/lib/burst/data \
    BURST_CACHE_DIR=/var/lib/burst/cache
EXPOSE 8080
VOLUME ["/var/lib/burst"]
ENTRYPOINT ["burst"]
CMD ["serve"]
