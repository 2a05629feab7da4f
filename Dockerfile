# syntax=docker/dockerfile:1
# consentd's image: `docker build -t consentd:0.1.0 .` (the chart's default
# image is consentd:<appVersion>). build.rs compiles the protos with protox,
# so no protoc is needed.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
# A workspace member: its manifest must be there, though it is not built.
COPY tools ./tools
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin consentd \
    && install -D -m 0755 target/release/consentd /out/consentd

# glibc and libgcc, no shell, no package manager; uid 65532 is its "nonroot".
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/consentd /usr/local/bin/consentd
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["consentd"]
CMD ["serve"]
