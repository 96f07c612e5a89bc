#!/usr/bin/env bash
# test.sh: install everything the tests need (scripts/setup-lab.sh: terraform 1.5.7, OpenTofu
# 1.10.10, dynalite, staticcheck, chromium; cached after the first run), then check formatting, go vet,
# staticcheck, and run every test with the race detector against the real binaries and servers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

eval "$(scripts/setup-lab.sh --print-env)"
# The lab is installed: a test that cannot find a part must fail, not skip.
export TFSH_LAB_REQUIRED=1
export CHECKPOINT_DISABLE=1

step() { printf '\n== %s\n' "$*" >&2; }

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	printf 'gofmt would change:\n%s\n' "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
staticcheck ./...

step "go test -race"
go test -race -count=1 -timeout 20m ./...
