#!/usr/bin/env bash
# Horizontal scale on the container deployment (issue 19 item 3): tests/integration's
# BenchmarkHorizontalScale starts the testcontainers stack (images from `make images`), then measures
# completed 10-step pipeline runs/s and TFJobs/min with one and with two replicas of the service, each
# replica under the same CPU quota (SLUICE_BENCH_REPLICA_CPUS, default 0.5). Appends a section to
# docs/benchmarks.md (or to $1). tests/integration is its own module outside go.work (GOWORK=off).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/benchmarks.md}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
title="Scale-out: pipelines and training replicas (containers)"
cmd="cd tests/integration && GOWORK=off TESTCONTAINERS_RYUK_DISABLED=true CI=true go test -run '^\$' -bench '^BenchmarkHorizontalScale\$' -benchtime 1x -timeout 60m ."
what="One and then two replicas of the pipelines service (each also a Temporal worker of its task queue and a member of the durable run-request consumer), then of the training service, on the container deployment of tests/integration (NATS, Temporal on PostgreSQL, S3, metadata on PostgreSQL, one container per service replica), in the same run. Pipelines: a burst of ${SLUICE_BENCH_SCALE_RUNS:-60} run-request events for a linear pipeline of 10 no-op steps (each a process in the replica), completed runs/s from the first publish to the last run.succeeded. Training: a burst of ${SLUICE_BENCH_SCALE_JOBS:-60} TFJob request events (one Worker running a short command, local runtime), completed jobs/min. ratio = 2 replicas / 1 replica (goal >= 1.6). Nodes are modelled by giving every replica container the same CPU quota, ${SLUICE_BENCH_REPLICA_CPUS:-0.5} CPU (docker --cpus), and the same default worker options in both phases; the infrastructure runs without quota on what is left of this machine's $(nproc) cores. Per phase (1r, 2r): replica-cores (all replicas), throttled-% (CFS periods in which a replica hit its quota), temporal-cores (Temporal + its PostgreSQL), other-cores (NATS, S3, metadata + PostgreSQL), host-cores (whole machine busy, other work included). See README, Scale-out."
echo "== $title (tests/integration)" >&2
if ! (cd tests/integration && GOWORK=off TESTCONTAINERS_RYUK_DISABLED=true CI=true go test -run '^$' -bench '^BenchmarkHorizontalScale$' -benchtime 1x -timeout 60m -count 1 -v .) >"$raw" 2>&1; then
	{ echo "## $title"; echo; echo "$what"; echo; echo "_Failed in this run:_"; echo '```'; grep -v '^\s*$' "$raw" | tail -8; echo '```'; echo; } >>"$out"
	exit 0
fi
{
echo "## $title"
echo
echo "$what"
echo
python3 scripts/benchtable.py "$raw" | tee /dev/stderr
echo
grep -E '^\s+scale_bench_test.go:[0-9]+: (pipelines|training), ' "$raw" | sed -E 's/^\s+scale_bench_test.go:[0-9]+: /- /' || true
echo
echo "Command: \`$cmd\`"
echo
} >>"$out"
