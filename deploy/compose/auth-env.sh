#!/usr/bin/env bash
# Prints (as `export` lines for eval) the credentials of the compose deployment, creating them once:
#   SLUICE_AUTH_KEY     the key every service signs and verifies the X-Sluice-Identity header with;
#   SLUICE_AUTH_TOKENS  the admin token, "<token>=system:admin";
#   NATS_<USER>_PASSWORD the NATS password of each service and of the event gateway (deploy/nats/nats.conf).
# The admin token is the one `sluice dev` keeps in <data-dir>/auth/admin-token, so the CLI finds it for a
# server on this machine exactly as it does for `sluice dev`. Both files are mode 0600 under a 0700 dir.
set -euo pipefail
dir=${SLUICE_DATA_DIR:-.sluice}/auth
mkdir -p "$dir" && chmod 700 "$dir"
new() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43; }
[ -s "$dir/admin-token" ] || (umask 077 && new > "$dir/admin-token")
[ -s "$dir/compose-key" ] || (umask 077 && new > "$dir/compose-key")
echo "export SLUICE_AUTH_KEY=$(tr -d '[:space:]' < "$dir/compose-key")"
echo "export SLUICE_AUTH_TOKENS=$(tr -d '[:space:]' < "$dir/admin-token")=system:admin"
for user in pipelines training serving notebooks metadata tuning dashboard gateway; do
	f="$dir/nats-$user-password"
	[ -s "$f" ] || (umask 077 && new > "$f")
	echo "export NATS_$(echo "$user" | tr '[:lower:]' '[:upper:]')_PASSWORD=$(tr -d '[:space:]' < "$f")"
done
