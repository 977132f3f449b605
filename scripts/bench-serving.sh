#!/usr/bin/env bash
# Serving benchmark with load from a second process: the MNIST MLP (784-128-10) through the full REST data
# plane (platform handler + guard, as the serving binary) vs the fair bare handler (dataplane.BareHandler)
# wrapping the same runtime call, plus the runtime called in process. Both servers see the same client:
# serving-loadgen writes each request in one write on a keep-alive connection.
# Appends a section to docs/benchmarks.md (or to $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/benchmarks.md}
bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
(cd services/serving && go build -o "$bin/" ./cmd/serving-benchserver ./cmd/serving-loadgen)
rows=$(mktemp)
for b in 1 32; do "$bin/serving-benchserver" -mode runtime -batch $b -n 2000 >>"$rows"; done
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
restport=$(freeport) bareport=$(freeport)
export SLUICE_TOKEN=bench-token-0123456789abcdef
"$bin/serving-benchserver" -mode rest -addr 127.0.0.1:$restport >/dev/null 2>&1 &
"$bin/serving-benchserver" -mode bare -addr 127.0.0.1:$bareport >/dev/null 2>&1 &
for i in $(seq 50); do curl -sf -o /dev/null -H "Authorization: Bearer $SLUICE_TOKEN" 127.0.0.1:$restport/v1/models/mnist && curl -s -o /dev/null 127.0.0.1:$bareport/ && break; sleep 0.2; done
sleep 1
for b in 1 32; do for c in 1 4; do
	"$bin/serving-loadgen" -label rest -url http://127.0.0.1:$restport/v1/models/mnist:predict -batch $b -c $c -d 5s >>"$rows"
	"$bin/serving-loadgen" -label bare -url http://127.0.0.1:$bareport/v1/models/mnist:predict -batch $b -c $c -d 5s >>"$rows"
done; done
{
echo "## Serving: REST data plane vs bare handler vs in-process (load from a second process)"
echo
echo "MNIST MLP (784-128-10, ONNX via gonnx). \`rest\` is the real data plane (TF Serving :predict) behind the"
echo "platform handler and guard (bearer token), \`bare\` the fair baseline dataplane.BareHandler (pooled buffers,"
echo "the product's numeric scanner into a recycled tensor, strconv output, no routing/budget/auth) wrapping the same Predict call,"
echo "\`runtime\` the call in process; load from \`serving-loadgen\` in another process over loopback keep-alive"
echo "connections (each request, headers and body, leaves in one write), 5 s per row. Goals: REST batch-32 adds"
echo "<= 1 ms p50 over in-process; REST throughput >= 90% of bare."
echo
echo "| path | batch | clients | requests | p50 ms | p99 ms | req/s |"
echo "|---|---|---|---|---|---|---|"
python3 -c '
import json,sys
for line in open(sys.argv[1]):
    line=line.strip()
    if not line.startswith("{"): continue
    r=json.loads(line)
    print("| %s | %s | %s | %s | %.3f | %.3f | %.0f |" % (r.get("label",r.get("mode","")), r.get("batch"), r.get("concurrency",1), r.get("requests",r.get("n","")), r.get("p50_ms",0), r.get("p99_ms",0), r.get("rps",0)))
' "$rows"
echo
echo "Command: \`bash scripts/bench-serving.sh\`"
echo
} >>"$out"
rm -f "$rows"
