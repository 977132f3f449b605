#!/bin/sh
# Initialises $PGDATA on first start (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB as the official
# postgres image reads them), then runs the server listening on every address.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
USER_NAME=${POSTGRES_USER:-postgres}
DB_NAME=${POSTGRES_DB:-$USER_NAME}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	auth=scram-sha-256
	[ -n "${POSTGRES_PASSWORD:-}" ] || auth=trust
	"$BIN/initdb" -D "$PGDATA" -U "$USER_NAME" --pwfile="$pwfile" -A "$auth" -E UTF8 >/dev/null
	rm -f "$pwfile"
	echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
	if [ "$DB_NAME" != postgres ]; then
		"$BIN/postgres" --single -D "$PGDATA" postgres <<SQL >/dev/null
CREATE DATABASE "$DB_NAME";
SQL
	fi
fi
if [ "${1:-postgres}" = postgres ]; then
	[ $# -gt 0 ] && shift
	exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
fi
exec "$@"
