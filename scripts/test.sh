#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run call it. Idempotent: installs only what is
# missing, and prints the names of skipped tests with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--mod=mod}

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
if ((${#need_apt[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

echo "== go vet"
go vet ./...
echo "== go test"
# gotestsum prints a summary that lists every skipped test with its reason.
go tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg \
  -- -count=1 -timeout 15m ./... "$@"
