#!/usr/bin/env bash
# Runs Sluice's benchmarks and writes docs/benchmarks.md. Each figure is reported next to a raw baseline
# measured in the same run (bare Temporal activity chain, raw nats.go publish, raw minio-go, in-process
# inference), on this machine, with the load average at the time.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=-buildvcs=false SLUICE_DEVSTACK_LOG=off
# BENCH_ONLY=REGEX runs only the benchmarks whose title matches (and the serving second-process rows only if
# "Serving" matches), writing to BENCH_OUT (default docs/benchmarks.md) without its page header.
out=${BENCH_OUT:-docs/benchmarks.md}
only=${BENCH_ONLY:-}
raw=$(mktemp)
# The metadata benchmarks run on PostgreSQL too: a throwaway cluster started the way the tests start theirs
# (scripts/pg-test.sh), but durable (SLUICE_PG_DURABLE=1: fsync, synchronous_commit and full_page_writes on, as in
# production), in its own directory and port, started before the first metadata benchmark and stopped at exit.
pg_env=(SLUICE_PG_DIR="${SLUICE_BENCH_PG_DIR:-/tmp/sluice-pg-bench}" SLUICE_PG_PORT="${SLUICE_BENCH_PG_PORT:-5434}" SLUICE_PG_DURABLE=1)
pg_started=""
start_pg() {
	[ -z "$pg_started" ] || return 0
	eval "$(env "${pg_env[@]}" bash scripts/pg-test.sh start)"
	pg_started=1
}
trap 'rm -f "$raw"; [ -z "$pg_started" ] || env "${pg_env[@]}" bash scripts/pg-test.sh stop >/dev/null 2>&1' EXIT

# module;package;bench regex;benchtime;title;what it measures
benches=(
"libs;./events/;^(BenchmarkPublishBurst|BenchmarkRawNATSAsyncPublish)$;5x;Event bus: burst of 10k events;CloudEvents (binary mode, Nats-Msg-Id = CE id) published with PublishAll vs raw nats.go jetstream async publish of the same JSON body, file-store stream. Goal: >= 50k events/s."
"libs;./artifacts/;^BenchmarkPutGet$;20x;Artifact store vs raw minio-go;Put/Get through libs/artifacts (sha256 while streaming) vs raw minio-go PutObject/GetObject on the embedded S3, 8 MiB and 4 KiB objects."
"libs;./devstack/;^BenchmarkStart$;3x;Dev stack start-up;Time from Start to every component answering (NATS, Temporal + UI, S3). Goal: < 5 s."
"services/pipelines;./internal/engine/;^BenchmarkLinear100$;3x;Pipelines: 100-step linear pipeline;Per-step time of a 100-step linear pipeline of no-op steps (each step a real process, events, S3 layout: ms/step) vs a bare Temporal workflow chaining 100 no-op activities (bare-ms/step), same dev-stack server with its single-node dynamic config (libs/devstack/dynamicconfig.go), same run. Goals: ratio <= 1.5, ms/step <= 10. Reading the ratio: a bare activity here is a no-op (about 4 ms of Temporal round trips on this server), while every Sluice step also starts a process, writes its result record to S3 and acknowledges a task event before the next step can start; 'a no-op step's own parts' below times each of those (runstep-ms is all of Sluice's own work per step, outside Temporal). When ms/step meets 10 ms but the ratio is above 1.5, that own work is the part that misses: it is larger than half a no-op activity, and it is the work a step exists to do (a process, a durable result, an event), not orchestration overhead."
"services/pipelines;./app/;^BenchmarkStepCost$;2x;Pipelines: where a step's time goes;A 50-step linear pipeline of no-op steps run by the service from a published event, split from its workflow history: in-step-ms/step is the step activity itself (work dir, process start and wait, log upload to S3 with digest, task events acknowledged), orchestration-ms/step the rest (Temporal round trips, workflow tasks; compare with the bare chain above), activities/step every activity scheduled per step."
"services/pipelines;./internal/engine/;^BenchmarkStepParts$;50x;Pipelines: a no-op step's own parts;The synchronous parts left on a no-op step's critical path, timed one after another on the dev stack: process start and wait (local runtime), the step result record (one small S3 PUT with digest), a task event published and acknowledged, and a whole RunStep called directly outside Temporal (runstep-ms: everything Sluice's step activity does; in-step-ms/step above adds Temporal's activity dispatch and completion)."
"services/pipelines;./app/;^BenchmarkEventToRunStarted$;200x;Pipelines: event to run started;Latency from publishing io.sluice.pipeline.run.requested.v1 to the run's workflow started (run.started stored), p50/p99. Goal: p50 <= 30 ms."
"services/pipelines;./app/;^BenchmarkRunRequestBurst$;1000x;Pipelines: burst of 1,000 run requests;1,000 io.sluice.pipeline.run.requested.v1 events published at once (tiny one-step pipeline): publish to run.started stored p50/p95/max and runs started per second, every request started exactly once (a lost or second start fails the benchmark); idle-p50-ms is the same service's latency for 20 requests one at a time just before the burst. consumers=8 and consumers=64 (the default number of concurrent run-request handlers), one after the other on the same dev stack, each waiting for its runs to finish (services/pipelines/README.md). Baseline in the same run, before each: bare-temporal/concurrency=N, the engine's own bound: 1,000 StartWorkflowExecution calls of a trivial workflow (one workflow task, no activity, plain start options) issued by N goroutines at once against the same dev server, with a worker of the service's options running them; its p50/p95/max-ms are burst start to start accepted (the Sluice figures' clock), call-p50/p95-ms one call to its start accepted. Goal: p95 <= 300 ms (>= 3,200 starts/s)."
"services/pipelines;./app/;^BenchmarkQuickstart$;20x;Pipelines: quickstart end to end;The quickstart pipeline (examples/pipelines/download_and_join.yaml: two parallel downloads over loopback HTTP, then a join; three processes, three artifacts) from publishing io.sluice.pipeline.run.requested.v1 to run.succeeded stored, cache off, p50/p99. Goal: p50 <= 150 ms."
"services/pipelines;./internal/engine/;^BenchmarkParallelFor1000$;2x;Pipelines: 1,000-way ParallelFor;Wall time of a ParallelFor over 1,000 no-op steps, and the largest workflow history involved. Goal: <= 10 s."
"services/pipelines;./internal/engine/;^BenchmarkParallelFor10000$;1x;Pipelines: 10,000-way ParallelFor;Wall time of a ParallelFor over 10,000 no-op steps (child workflows of 200 iterations, each run 50 to a RunSteps activity) beside the 1,000-way figure above, and the largest workflow history of the run: events, KiB, most activities and child workflows pending at once. Temporal's limits per workflow: continue-as-new suggested at 4,096 events / 4 MB, hard at 51,200 events / 50 MB, 2,000 pending activities or children."
"services/pipelines;./internal/engine/;^BenchmarkDAG2000$;1x;Pipelines: 2,000-task DAG;Wall time of a DAG that is not a loop, 20 layers of 100 no-op steps each depending on two steps of the layer before (a DAG scope of more than 500 tasks runs its ready steps 50 to a RunSteps activity), and its largest workflow history (events, KiB, most pending at once) against the same limits."
"services/metadata;./internal/metastore/;^BenchmarkLineage$;200x;Metadata: lineage queries;1-hop and 5-hop upstream lineage on generated graphs of 10k and 100k artifacts (~3 events each), one recursive SQL query per request. Goals: 5-hop p50 <= 10 ms, growth 10k->100k <= 1.5x."
"services/metadata;./internal/metastore/;^BenchmarkIngest$;3x;Metadata: batched ingest;Records/s written in batches."
"services/metadata;./internal/ingest/;^BenchmarkIngestEvents$;3x;Metadata: event ingest;Pipeline task events turned into executions, artifacts and lineage edges (one transaction per event, idempotent by CE source + id): by the handler directly and through JetStream."
"services/metadata;./internal/ingest/;^BenchmarkIngestBatch$;5000x;Metadata: batched event ingest;5,000 pipeline task events written in batches of up to 256 per transaction (set-based statements, exactly once by CloudEvent source + id in and across batches) on SQLite and on PostgreSQL (durable: fsync and synchronous_commit on), by HandleBatch directly, beside raw-insert on the same store (the same number of rows per event by bare multi-row INSERTs into a table with only a primary key: no lookups, upserts, properties or secondary indexes). Through JetStream: a burst of 1,000 runs' task events (5 steps each, published at once in chunks of 500) into PostgreSQL by the service's consumers, beside nats-raw (the same burst consumed by a handler that only acks); lag-p95-ms is event published to its lineage visible to another connection (nats-raw: to the handler). Goals: >= 2,000 events/s on PostgreSQL, lag p95 <= 1 s."
"services/serving;./internal/modelruntime/;^BenchmarkONNXPredict$;200x;Serving: in-process runtime;The MNIST MLP (784-128-10) called in process (gonnx), batch 1 and 32: the baseline for the REST figures."
"services/serving;./internal/dataplane/;^BenchmarkMNIST$;400x;Serving: REST and gRPC vs bare servers vs in-process;In one process over loopback, batch 1 and 32: the TF Serving REST path and gRPC Predict side by side, each beside a minimal well-written bare server around the same runtime call (rest-bare: dataplane.BareHandler — pooled buffers, the product's numeric scanner into a recycled tensor, strconv output, no routing/budget/auth; grpc-bare: dataplane.RegisterBareGRPC — float_val in/out, no checks, the product's codec (float tensors copied in one move, into recycled slices) and transport settings (fixed 1 MiB flow-control windows, 128 KiB socket buffers); rest runs behind the platform handler and guard as the binary serves it, grpc behind the same guard with the token in metadata), and the call in process (runtime). Clients, the same for product and bare: one keep-alive HTTP/1.1 connection whose write buffer holds a whole request (headers and body leave in one write); one gRPC connection with 128 KiB buffers, 1 MiB windows and the data plane's codec. The five paths are measured interleaved: every iteration sends one request down each, in a freshly shuffled order, so load changes reach them alike; iterations form rounds of 20, and each figure is the median over rounds of a path's per-round median latency (runtime-p50-us, rest-bare-p50-us, rest-p50-us, grpc-bare-p50-us, grpc-p50-us); grpc-added-us and rest-added-us are the median over rounds of (product median - runtime median), the latency the data plane adds to inference. Goals: grpc-added-us at batch 32 <= 300, rest-added-us at batch 32 <= 1000."
"services/training;./app/;^BenchmarkEventToAllReplicasRunning$;20x;Training: event to all replicas running;4-replica TFJob: published event to every replica running, p50/p99, local runtime (processes) beside Docker runtime (one container per replica on the job's network). Goal: p50 <= 500 ms (local)."
"services/training;./app/;^BenchmarkDeleteToReplicasStopped$;10x;Training: delete to replicas stopped;Running 4-replica TFJob (local runtime): delete signal to every replica process exited, p50/p99. Goal: p50 <= 1 s."
"services/notebooks;./app/;^BenchmarkSpawn$;5x;Notebooks: spawn to ready;Request to Jupyter answering /api/status, one notebook and 10 concurrent, p50/p99: cold (no warm pool, every spawn starts Python and imports Jupyter: the baseline) beside warm (SLUICE_NOTEBOOKS_WARM_POOL=10, full at each round's start: each spawn claims a process that imported Jupyter already). Goal: 10 concurrent p50 <= 2 s."
"services/dashboard;./app/;^BenchmarkRunPage1000Tasks$;50x;Dashboard: run page of a 1,000-task run;The run page (task table, loop iteration rows, the Graphviz graph coloured by task state) of a running 1,000-task run with nested DAGs, conditions, two ParallelFor loops and an exit handler, rendered by the dashboard over a loopback fake of the pipelines API: p95-ms per render (goal <= 100 ms), cpu-ms/op, first-render-ms (Graphviz laying the graph out; later renders reuse the layout cached per graph) beside the raw baseline api-ms/op (the two API calls and JSON decoding the page needs before rendering anything)."
"services/tuning;./app/;^BenchmarkExperimentOverhead$;1x;Tuning: trials per minute and controller overhead;A random-search Katib Experiment of 12 trials, 3 in parallel, each a one-Worker TFJob of a toy trainer (3 epochs of 150 ms) through the tuning and training services with production settings (1 s status poll), vs the same 12 programs with the same arguments run by hand as processes, 3 at a time: trials/min of both, and overhead-ms/trial = (experiment wall - by-hand wall) x 3 / 12, the orchestration time each trial slot spends beyond running its program."
)

[ -n "$only" ] || {
echo "# Benchmarks"
echo
echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(go version | awk '{print $3}'),"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg). Machines are noisy 2-core boxes: compare a figure with the baseline"
echo "measured beside it in the same run, not across runs. Re-run with \`make bench\`."
echo
} > "$out"

for b in "${benches[@]}"; do
	IFS=';' read -r mod pkg re times title what <<<"$b"
	if [ -n "$only" ] && ! [[ "$title" =~ $only ]]; then continue; fi
	echo "== $title ($mod $pkg)" >&2
	if [ "$mod" = services/metadata ]; then start_pg; fi
	if ! (cd "$mod" && go test -run '^$' -bench "$re" -benchtime "$times" -timeout 30m -count 1 "$pkg") >"$raw" 2>&1; then
		{ echo "## $title"; echo; echo "$what"; echo; echo "_Failed in this run:_"; echo '```'; tail -5 "$raw"; echo '```'; echo; } >> "$out"
		continue
	fi
	{
	echo "## $title"
	echo
	echo "$what"
	echo
	python3 scripts/benchtable.py "$raw" | tee /dev/stderr
	echo
	echo "Command: \`cd $mod && go test -run '^\$' -bench '$re' -benchtime $times $pkg\`"
	echo
	} >> "$out"
done
if [ -z "$only" ] || [[ "Serving" =~ $only ]]; then bash scripts/bench-serving.sh "$out"; fi
# Horizontal scale on the container deployment (tests/integration, outside go.work; needs `make images`).
if [ -z "$only" ] || [[ "Scale-out: pipelines and training replicas (containers)" =~ $only ]]; then bash scripts/bench-scale.sh "$out"; fi
echo "wrote $out" >&2
