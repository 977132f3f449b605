#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the metadata service's tests and benchmarks.
#
#   eval "$(scripts/pg-test.sh start)"   # installs Debian's postgresql if missing, starts a private
#                                        # cluster and prints: export METADATA_TEST_DATABASE_URL=...
#   scripts/pg-test.sh stop              # stops it and removes its data directory
#
# Env: SLUICE_PG_DIR (default /tmp/sluice-pg-test), SLUICE_PG_PORT (default 5433),
# SLUICE_PG_DURABLE=1 (benchmarks: keep PostgreSQL's durability defaults, fsync, synchronous_commit
# and full_page_writes on, so a commit is on disk when it returns, as in production).
# The cluster runs as the "postgres" OS user (initdb refuses root), trusts local connections,
# and, unless SLUICE_PG_DURABLE=1, runs with fsync off: it is for tests only.
set -euo pipefail

DIR=${SLUICE_PG_DIR:-/tmp/sluice-pg-test}
PORT=${SLUICE_PG_PORT:-5433}
DB=metadata_test
DURABILITY="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[[ "${SLUICE_PG_DURABLE:-}" == 1 ]] && DURABILITY="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"

pgbin() {
	local bin
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
	if [[ -z "$bin" ]]; then
		echo "pg-test: installing postgresql with apt-get" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
		bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
	fi
	echo "$bin"
}

as_postgres() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

case "${1:-}" in
start)
	BIN=$(pgbin)
	if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
		rm -rf "$DIR"
		mkdir -p "$DIR"
		[[ $(id -u) -eq 0 ]] && chown postgres:postgres "$DIR"
		as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 >"$DIR/initdb.log" 2>&1 || {
			cat "$DIR/initdb.log" >&2
			exit 1
		}
	fi
	if ! as_postgres "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
		as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
			-o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 $DURABILITY -c max_connections=200" \
			start >&2 || {
			cat "$DIR/server.log" >&2
			exit 1
		}
	fi
	if ! as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
		as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
	fi
	echo "export METADATA_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
	;;
stop)
	BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
	if [[ -n "$BIN" && -f "$DIR/data/PG_VERSION" ]]; then
		as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
	fi
	rm -rf "$DIR"
	;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
