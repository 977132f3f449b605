#!/usr/bin/env bash
# Prints the Secrets the manifests reference, as YAML for `kubectl apply -f -`, creating their values once
# (kept, mode 0600, next to the compose deployment's in ${SLUICE_DATA_DIR:-.sluice}/auth, so the admin
# token is the one the `sluice` CLI reads from .sluice/auth/admin-token):
#   namespace sluice        sluice-auth       auth-key (SLUICE_AUTH_KEY), auth-tokens (SLUICE_AUTH_TOKENS,
#                                             "<admin token>=system:admin")
#                           sluice-nats       one NATS password per service and the event gateway
#                           sluice-s3         rootUser, rootPassword (S3_ACCESS_KEY, S3_SECRET_KEY)
#                           sluice-pipelines  objects-key (SLUICE_PIPELINES_OBJECTS_KEY, base64 of 32 bytes)
#   namespace sluice-infra  sluice-nats, sluice-s3 (the same values: NATS's users, MinIO's root user)
#                           sluice-postgres   password (Temporal's PostgreSQL)
# Optional ones it does not make: sluice-auth notebooks-tokens (SLUICE_NOTEBOOKS_TOKENS) and
# sluice-metadata database-url (METADATA_DATABASE_URL; SQLite on the metadata volume without it).
#
#   bash deploy/kubernetes/secrets.sh | kubectl apply -f -
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eval "$(bash "$here/../compose/auth-env.sh")"   # SLUICE_AUTH_KEY, SLUICE_AUTH_TOKENS, NATS_<USER>_PASSWORD
dir=${SLUICE_DATA_DIR:-.sluice}/auth
new() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43; }
keep() { # keep NAME GENERATOR: the value of $dir/NAME, made once
	[ -s "$dir/$1" ] || (umask 077 && $2 > "$dir/$1")
	tr -d '[:space:]' < "$dir/$1"
}
objects_key() { head -c 32 /dev/urandom | base64; }
s3_secret=$(keep kube-s3-secret-key new)
pg_password=$(keep kube-postgres-password new)
objects=$(keep kube-pipelines-objects-key objects_key)

secret() { # secret NAMESPACE NAME KEY=VALUE...
	printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n    app.kubernetes.io/part-of: sluice\ntype: Opaque\nstringData:\n' "$2" "$1"
	local kv
	for kv in "${@:3}"; do printf '  %s: "%s"\n' "${kv%%=*}" "${kv#*=}"; done
}
nats=()
for user in pipelines training serving notebooks metadata tuning dashboard gateway; do
	var="NATS_$(echo "$user" | tr '[:lower:]' '[:upper:]')_PASSWORD"
	nats+=("$user=${!var}")
done
secret sluice sluice-auth "auth-key=$SLUICE_AUTH_KEY" "auth-tokens=$SLUICE_AUTH_TOKENS"
for ns in sluice sluice-infra; do
	secret "$ns" sluice-nats "${nats[@]}"
	secret "$ns" sluice-s3 "rootUser=sluice" "rootPassword=$s3_secret"
done
secret sluice sluice-pipelines "objects-key=$objects"
secret sluice-infra sluice-postgres "password=$pg_password"
