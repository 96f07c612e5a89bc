#!/usr/bin/env bash
# bench.sh: build tfsh and measure it against plain terraform 1.5.7 on examples/lab (see
# BENCHMARKS.md). Prints the Markdown tables; extra arguments go to every internal/bench run.
#   scripts/bench.sh                 wrapper overhead and the policy (evaluation, loading at start)
#                                    (and, with --detect N, lock detection too)
#   scripts/bench.sh --detect 50     also lock detection over 50 plans per backend, and the
#                                    go-prompt shell (start to prompt, completion)
#   scripts/bench.sh --handoff 20    also lock handoff: 20 handoffs per backend for plain
#                                    terraform -lock-timeout and for tfsh, interleaved, and what
#                                    the pre-check read adds on a free lock (about 10 minutes)
#   scripts/bench.sh --watch 5       also tfsh watch's cost: requests per poll and per second for
#                                    1, 10 and 100 states, 5 polls at 1s per row (about 2 minutes)
#   scripts/bench.sh --team          also the shared audit log against dynalite: pull of 100,000
#                                    events, and what background shipping adds to a command
# Every form also measures tfsh audit sessions, explain and report on a generated log of a million
# events (generated once, two to four minutes, and cached under $TFSH_CACHE/bench).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
detect=0
handoff=0
watch=0
team=0
while [ $# -gt 0 ]; do
  case "$1" in
  --detect) detect=${2:?--detect takes a number of plans}; shift 2 ;;
  --handoff) handoff=${2:?--handoff takes a number of handoffs}; shift 2 ;;
  --watch) watch=${2:?--watch takes a number of polls}; shift 2 ;;
  --team) team=1; shift ;;
  *) break ;;
  esac
done
if [ "$detect" -gt 0 ] || [ "$handoff" -gt 0 ] || [ "$watch" -gt 0 ] || [ "$team" -gt 0 ]; then
  eval "$(scripts/setup-lab.sh --print-env)"
else
  eval "$(scripts/setup-lab.sh --only terraform --print-env)"
fi
go build -o bin/tfsh ./cmd/tfsh
go run ./internal/bench -tfsh bin/tfsh -terraform "$TFSH_TEST_TERRAFORM" "$@"
echo
go run ./internal/bench -tfsh bin/tfsh -terraform "$TFSH_TEST_TERRAFORM" -policy 40
echo
go test ./policy -run XXX -bench 'Decide|Load' -benchmem -count 3 | grep Benchmark
echo
go test ./audit -run XXX -bench 'Sessions1M|Explain1M' -count 3 -timeout 30m | grep Benchmark
echo
go run ./internal/bench -tfsh bin/tfsh -audit 20
if [ "$detect" -gt 0 ]; then
  echo
  go run ./internal/bench -tfsh bin/tfsh -terraform "$TFSH_TEST_TERRAFORM" -tofu "$TFSH_TEST_TOFU" -detect "$detect"
  echo
  go run ./internal/bench -tfsh bin/tfsh -terraform "$TFSH_TEST_TERRAFORM" -prompt 20
  echo
  go test ./shell -run XXX -bench CompleteAddresses10k -benchtime 2s | grep Benchmark
fi
if [ "$handoff" -gt 0 ]; then
  echo
  go run ./internal/bench -tfsh bin/tfsh -terraform "$TFSH_TEST_TERRAFORM" -tofu "$TFSH_TEST_TOFU" -handoff "$handoff"
fi
if [ "$watch" -gt 0 ]; then
  echo
  go run ./internal/bench -watch "$watch"
fi
if [ "$team" -gt 0 ]; then
  echo
  go test ./internal/teamlog -run '^$' -bench Pull100k -benchtime 1x -count 3 -timeout 30m | grep Benchmark
  go test ./internal/teamlog -run '^$' -bench ShipCost -benchtime 300x -count 3 | grep Benchmark
fi
