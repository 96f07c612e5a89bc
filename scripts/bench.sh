#!/usr/bin/env bash
# bench.sh: every figure of BENCHMARKS.md in one run. Installs the lab (cached), builds tfsh,
# runs each benchmark, leaves machine-readable results in a results directory, then rewrites
# the marked regions of BENCHMARKS.md (<!-- bench:NAME --> … <!-- /bench:NAME -->) from them
# with go run ./internal/bench/render. The Markdown tables each step prints go to the terminal
# and to RESULTS/log.txt.
#
#   scripts/bench.sh                 the full run (make bench): about 22 minutes on 2 CPUs
#   scripts/bench.sh --quick         small counts, a few minutes: checks the machinery; renders
#                                    into BENCHMARKS.md too, with a header that says so
#   scripts/bench.sh --results DIR   results here (default .artifacts/bench/DATE-TIME; the last
#                                    run's is .artifacts/bench/latest)
#   scripts/bench.sh --no-render     measure only; render later with
#                                    go run ./internal/bench/render -results DIR
#   scripts/bench.sh --only a,b      only these steps (names below); the others read "not measured"
#
# Steps: overhead (plan, paired with plain terraform, at 0/300/1000/3000 resources, with tfsh's
# own CPU time), refused
# (policy loading at start), policy (Go benchmarks), append (audit append, commit, and commits
# from 1/2/4/8 processes), verify, queries (sessions and explain on 100k and 1M events, in
# process and end to end), rss (tfsh's memory while 1/10/100 MB of output stream through it),
# detect (per backend, and by 1/2/4/8 concurrent sessions), prompt (and by audit log size),
# complete (1k/10k/100k addresses), handoff (and by 1/2/4 waiters queued), team (pull of 10,000
# and 100,000 events from the shared table and what
# shipping adds to a command, against dynalite), watch (tfsh watch's requests per state).
# The generated log of a million events is made once (two to four minutes) and cached under
# $TFSH_CACHE/bench.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
quick=0
render=1
only=
results=
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1; shift ;;
  --no-render) render=0; shift ;;
  --results) results=${2:?--results takes a directory}; shift 2 ;;
  --only) only=${2:?--only takes a list of steps}; shift 2 ;;
  -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

if [ -z "$results" ]; then
  results=.artifacts/bench/$(date -u +%Y%m%d-%H%M%S)
fi
mkdir -p "$results"
results=$(cd "$results" && pwd)
ln -sfn "$results" .artifacts/bench/latest 2>/dev/null || true
log=$results/log.txt

eval "$(scripts/setup-lab.sh --only terraform,tofu,dynalite --print-env)"
tf=$TFSH_TEST_TERRAFORM
tofu=$TFSH_TEST_TOFU
go build -o bin/tfsh ./cmd/tfsh

if [ "$quick" = 1 ]; then
  resources="0:5 300:5 1000:3" policyN=5 count=1 benchtime=0.3s auditN=3 rssSizes=1,100 rssRounds=1
  detectN=5 promptN=3 handoffN=2 waitersN=1 events="100000 1000000" procs="1 2" watchN=2 shipN=50x
  sessionsN=2 sessions=1,8
else
  resources="0:30 300:30 1000:30 3000:15" policyN=40 count=3 benchtime=2s auditN=20 rssSizes=1,10,100
  rssRounds=5 detectN=50 promptN=20 handoffN=20 waitersN=5 events="100000 1000000" procs="1 2 4 8" watchN=5 shipN=300x
  sessionsN=15 sessions=1,2,4,8
fi
mode=full
[ "$quick" = 1 ] && mode=quick
go run ./internal/bench/render -probe -results "$results" -terraform "$tf" -tofu "$tofu" \
  -command "scripts/bench.sh$([ "$quick" = 1 ] && echo ' --quick')" $([ "$quick" = 1 ] && echo -quick)
echo "bench: $mode run, results in $results" | tee "$log"

# A step that fails (a lab server that crashed, a benchmark that failed) is named at the end and
# makes the run exit 1, but the other steps still run and the tables are still rendered: what
# failed reads "not measured".
failed=()
current=
# step NAME: a heading in the log.
step() {
  current=$1
  printf '\n## %s (load average %s)\n\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
}
# bench ARGS: internal/bench with its records going to the results.
bench() {
  go run ./internal/bench -results "$results" "$@" 2>&1 | tee -a "$log" || failed+=("$current")
}
# gobench NAME ARGS: a go test -bench run, its output kept as NAME.gobench.
gobench() {
  local name=$1
  shift
  local shown='' a
  for a in "$@"; do # quoted where a shell needs it, so that the command can be pasted
    if [[ $a =~ [^A-Za-z0-9_./=,:-] ]]; then shown+=" '$a'"; else shown+=" $a"; fi
  done
  {
    echo "# command:$shown"
    echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$@" 2>&1 || true # a failure shows as FAIL in the output, checked below
  } >"$results/$name.gobench"
  grep -E '^(Benchmark|--- FAIL|FAIL|panic)' "$results/$name.gobench" | tee -a "$log" || true
  if grep -qE '^(--- FAIL|FAIL|panic)' "$results/$name.gobench"; then
    echo "bench: $name failed; see $results/$name.gobench" | tee -a "$log" >&2
    failed+=("$current")
  fi
}

if want overhead; then
  for rr in $resources; do # resources:rounds (a 3000-resource plan takes seconds)
    step "wrapper overhead, ${rr%%:*} resources"
    bench -tfsh bin/tfsh -terraform "$tf" -rounds "${rr##*:}" -resources "${rr%%:*}"
  done
fi
if want refused; then
  step "policy loading at start"
  bench -tfsh bin/tfsh -terraform "$tf" -policy "$policyN"
fi
if want policy; then
  step "policy evaluation"
  gobench policy go test ./policy -run '^$' -bench 'Decide|Load' -benchmem -benchtime "$benchtime" -count "$count"
fi
if want append; then
  step "audit append and commit"
  gobench append go test ./audit -run '^$' -bench 'AppendBatch|CommandCommit' -benchtime "$benchtime" -count "$count"
  step "audit commits from concurrent processes"
  bench -procs "$(echo $procs | tr ' ' ,)" -rounds "$count"
fi
if want verify; then
  step "verify a million events"
  gobench verify go test ./audit -run '^$' -bench 'Verify1M' -benchtime 1x -count "$count" -timeout 60m
fi
if want queries; then
  step "sessions and explain, in process"
  gobench queries go test ./audit -run '^$' -bench 'Sessions1M|Explain1M' -count "$count" -timeout 60m \
    -audit-bench-events "$(echo $events | tr ' ' ,)"
  step "tfsh audit sessions, explain, report, end to end"
  bench -tfsh bin/tfsh -terraform "$tf" -audit "$auditN" -audit-events "$(echo $events | tr ' ' ,)"
fi
if want rss; then
  step "tfsh's memory while output streams through it"
  bench -tfsh bin/tfsh -rss "$rssSizes" -rounds "$rssRounds"
fi
if want detect; then
  step "lock detection"
  bench -tfsh bin/tfsh -terraform "$tf" -tofu "$tofu" -detect "$detectN"
  step "lock detection, by concurrent sessions"
  bench -tfsh bin/tfsh -terraform "$tf" -detect "$sessionsN" -detect-sessions "$sessions"
fi
if want prompt; then
  step "start to prompt"
  bench -tfsh bin/tfsh -terraform "$tf" -prompt "$promptN" -prompt-events "$(echo $events | tr ' ' ,)"
fi
if want complete; then
  step "completion"
  gobench complete go test ./shell -run '^$' -bench CompleteAddresses -benchtime "$benchtime" -count "$count"
fi
if want handoff; then
  step "lock handoff"
  bench -tfsh bin/tfsh -terraform "$tf" -tofu "$tofu" -handoff "$handoffN"
  step "lock handoff, by waiters"
  bench -tfsh bin/tfsh -terraform "$tf" -handoff "$waitersN" -handoff-waiters 1,2,4
fi
if want team; then
  step "the shared audit log: pull, and what shipping adds"
  gobench team go test ./internal/teamlog -run '^$' -bench '^BenchmarkPull$' -benchtime 1x -count "$count" -timeout 30m
  gobench ship go test ./internal/teamlog -run '^$' -bench 'ShipCost' -benchtime "$shipN" -count "$count"
fi
if want watch; then
  step "tfsh watch: requests per state"
  bench -watch "$watchN"
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf '%s\n' "${failed[@]}" >"$results/failed.txt"
fi
if [ "$render" = 1 ]; then
  go run ./internal/bench/render -results "$results"
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf 'bench: failed steps: %s; results in %s\n' "$(IFS=';'; echo "${failed[*]}")" "$results" | tee -a "$log" >&2
  exit 1
fi
echo "bench: done, results in $results" | tee -a "$log"
