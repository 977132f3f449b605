# NATS server (github.com/nats-io/nats-server/v2, static) — local stand-in for the official nats image,
# same entry point and ports. `make images` builds the binary into bin/static first.
FROM scratch
COPY bin/static/nats-server /nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
CMD ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
