# syntax=docker/dockerfile:1
#
# The mediastore server image: built in a Rust image, run from a small
# distroless one (glibc and libgcc only; no shell, no package manager) as
# a non-root user. The Helm chart (helm/mediastore) names this image.
#
#   docker build -t ghcr.io/mediastore/mediastore:0.1.0 .
#
# Build-time needs: nasm (libjpeg-turbo's SIMD code); no protoc (build.rs
# compiles the protos in Rust). HEIC/AVIF renditions (the `heif` feature)
# need libheif at run time too and are left out of this image.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nasm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY migrations migrations
COPY proto proto
COPY src src
# The registry and target caches persist between builds on one builder;
# the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mediastore \
 && install -D target/release/mediastore /out/mediastore \
 && install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/mediastore /usr/local/bin/mediastore
# The data directory: the SQLite file and blobs of a single server, or the
# spool of a replica on PostgreSQL and S3. Mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV MEDIASTORE_DATA_DIR=/data \
    MEDIASTORE_LISTEN=0.0.0.0:50051 \
    MEDIASTORE_LOG_FORMAT=json
VOLUME ["/data"]
# gRPC, HTTP delivery (--http-listen), metrics (--metrics-listen).
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/mediastore"]
CMD ["serve"]
