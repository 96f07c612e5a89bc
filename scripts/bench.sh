#!/usr/bin/env bash
# bench.sh: build tfsh and measure it against plain terraform 1.5.7 on examples/lab (see
# BENCHMARKS.md). Prints the Markdown table; extra arguments go to internal/bench.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
eval "$(scripts/setup-lab.sh --only terraform --print-env)"
go build -o bin/tfsh ./cmd/tfsh
go run ./internal/bench -tfsh bin/tfsh -terraform "$TFSH_TEST_TERRAFORM" "$@"
