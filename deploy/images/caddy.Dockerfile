# Caddy (github.com/caddyserver/caddy/v2, static) with deploy/caddy/Caddyfile: the single entry
# point of the compose deployment. `make images-compose` builds the binary into bin/static first.
FROM scratch
COPY bin/static/caddy /caddy
COPY deploy/etc/passwd /etc/passwd
COPY deploy/caddy/Caddyfile /etc/caddy/Caddyfile
COPY --chown=65532:65532 deploy/etc/data/ /data/
USER 65532
ENV XDG_DATA_HOME=/data XDG_CONFIG_HOME=/data
EXPOSE 8080
ENTRYPOINT ["/caddy"]
CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
