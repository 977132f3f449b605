# PostgreSQL from Debian's package on a Debian base made here (deploy/images/debian-base.sh:
# debootstrap + docker import) — the local stand-in for postgres:16. It honours the official image's
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and PGDATA and ships pg_isready for health checks.
ARG BASE=sluice-local/debian:bookworm
FROM ${BASE}
COPY deploy/images/postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
RUN mkdir -p "$PGDATA" /var/run/postgresql && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
	&& chmod 0755 /usr/local/bin/docker-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
