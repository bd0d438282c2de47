# The service image. Build: docker build -t chatrooms .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/chatrooms /usr/local/bin/chatrooms
COPY deploy/entrypoint.sh /usr/local/bin/entrypoint.sh
USER 65534:65534
ENV CHATROOMS_BIND_ADDR=0.0.0.0:8080 CHATROOMS_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["serve"]
