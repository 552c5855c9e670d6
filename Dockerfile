# Build: docker build -t vellum .
# Run:   docker run -p 4317:4317 -v vellum-data:/var/lib/vellum vellum
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin vellum

FROM debian:bookworm-slim
# CA roots: https exporters trust the system's roots unless tls.ca_file names others.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/vellum vellum \
    && mkdir -p /var/lib/vellum /etc/vellum && chown vellum /var/lib/vellum
COPY --from=build /src/target/release/vellum /usr/local/bin/vellum
COPY pipelines/container.yaml /etc/vellum/vellum.yaml
USER vellum
ENV VELLUM_DATA=/var/lib/vellum
VOLUME /var/lib/vellum
EXPOSE 4317 4318 5514 5514/udp 8088 8888 8090
ENTRYPOINT ["vellum"]
CMD ["run", "--config", "/etc/vellum/vellum.yaml"]
