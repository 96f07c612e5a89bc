#!/usr/bin/env bash
# run.sh: build tfsh, make sure a terraform-compatible binary exists, and start tfsh on the
# bundled example (examples/lab: local backend, no providers, works offline).
#
#   scripts/run.sh [tfsh flags...]      e.g. scripts/run.sh -c 'plan'
#
# The binary is $TFSH_TERRAFORM if set, else terraform or tofu on PATH, else OpenTofu 1.10.10
# built through the Go module proxy into tfsh's cache (a few minutes, once).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${TFSH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfsh}

say() { printf 'run: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { say "go not found on PATH: install Go 1.26"; exit 1; }

say "building tfsh"
(cd "$repo" && go build -o bin/tfsh ./cmd/tfsh)

if [ -z "${TFSH_TERRAFORM:-}" ] && ! command -v terraform >/dev/null 2>&1 && ! command -v tofu >/dev/null 2>&1; then
	say "neither terraform nor tofu is on PATH: building OpenTofu into $cache"
	"$repo/scripts/setup-lab.sh" --only tofu
	export TFSH_TERRAFORM=$cache/bin/tofu-1.10.10
fi

# A TF_CLI_CONFIG_FILE that names a missing file makes terraform print a warning before every
# command; it configures nothing, so drop it for the example.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then
	unset TF_CLI_CONFIG_FILE
fi
export CHECKPOINT_DISABLE=${CHECKPOINT_DISABLE:-1}

cd "$repo/examples/lab"
if [ $# -eq 0 ] && [ -t 0 ]; then
	cat >&2 <<'TXT'
run: starting tfsh in examples/lab. Try:
       init
       plan
       apply -auto-approve                      (tfsh adds -lock-timeout=5m)
       apply -lock=false -auto-approve          (refused: exit 3)
       state rm <Tab>                           (Tab completes; Ctrl-C drops the line)
       locks                                    (the lock, read where it lives)
       policy explain apply -lock=false         (which rule decides, and why the others do not)
       exit                                     then: bin/tfsh audit show last
TXT
fi
exec "$repo/bin/tfsh" "$@"
