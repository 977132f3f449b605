#!/usr/bin/env bash
# Installs the Debian packages the test suites use. Under CI=true a package that cannot be installed fails
# the run instead of letting a test skip.
set -euo pipefail
need=()
command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
# notebooks: Debian's Jupyter Notebook 6 and the Python kernel (services/notebooks tests run real servers).
{ [ -x /usr/bin/jupyter ] && python3 -c 'import ipykernel' >/dev/null 2>&1; } || need+=(jupyter-notebook python3-ipykernel)
# dashboard: Debian's chromium, driven over the DevTools protocol by chromedp (cli/internal/command browser test).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	elif [ "${CI:-}" = true ]; then
		echo "test-deps: missing ${need[*]} and not root" >&2; exit 1
	else
		echo "test-deps: missing ${need[*]} (install them to run every test)" >&2
	fi
fi
# serving: protoc (make proto) and Python gRPC with grpc_tools, for the gRPC interop test of services/serving.
if ! { command -v protoc >/dev/null 2>&1 && /usr/bin/python3 -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1; }; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler python3-grpcio python3-grpc-tools python3-protobuf >/dev/null
	elif [ "${CI:-}" = true ]; then
		echo "test-deps: missing protobuf-compiler python3-grpcio python3-grpc-tools and not root" >&2; exit 1
	else
		echo "test-deps: missing protobuf-compiler python3-grpcio python3-grpc-tools (install them to run every test)" >&2
	fi
fi
