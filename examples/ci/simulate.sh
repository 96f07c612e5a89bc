#!/usr/bin/env bash
# simulate.sh: three CI jobs deploy one terraform state at the same time, through tfsh, against
# the loopback lab (S3 + DynamoDB on 127.0.0.1). Offline; nothing outside a temporary dir is
# touched (its own audit log and lab dir, never yours).
#
#   1. tfsh lab up: S3 and DynamoDB, bucket and lock table ready, backend settings written.
#   2. Three GitHub-Actions-like jobs start together, each in its own checkout: init, plan,
#      apply. Each apply holds the state lock HOLD_SECONDS (a sleep provisioner). The jobs
#      serialise on the lock and none fails: tfsh adds -lock-timeout=5m, where terraform's
#      default 0s would fail the two that come second and third at once.
#   3. plan -lock=false is allowed (a read: it writes no state); apply -lock=false is refused
#      (exit 3) with the rule and the reason.
#   4. tfsh explain: who held the lock, who waited, for how long.
#   5. tfsh lab down, always (also on failure or Ctrl-C).
#
# Usage: examples/ci/simulate.sh
#
#   TFSH            tfsh binary (default: go build of this checkout into the temporary dir)
#   TFSH_TERRAFORM  terraform or tofu (default: terraform, else tofu, on PATH). terraform 1.5
#                   needs DynamoDB (Node.js >= 20 and dynalite: scripts/setup-lab.sh --only
#                   dynalite); OpenTofu and terraform >= 1.10 fall back to the S3 lockfile.
#   HOLD_SECONDS    how long each apply holds the lock (default 4)
#   SIMULATE_DIR    work there and keep it (checkouts, job logs, audit.db, lab dir) instead of
#                   a temporary dir removed at the end
#
# Exit 0 when everything went as described, 1 otherwise.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
HOLD_SECONDS=${HOLD_SECONDS:-4}
JOBS=3

section() { printf '\n=== %s\n\n' "$*"; }
say() { printf '%s\n' "$*"; }
die() { printf 'simulate: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# ---- a private place for everything ---------------------------------------------------------
if [ -n "${SIMULATE_DIR:-}" ]; then
	mkdir -p "$SIMULATE_DIR"
	work=$(cd "$SIMULATE_DIR" && pwd)
	keep=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/tfsh-simulate.XXXXXX")
	keep=0
fi
lab_up=0
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	local rc=$?
	# Jobs still running (Ctrl-C, a failure): stop them before the lab goes.
	local pids
	pids=$(jobs -pr)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086 # one PID a word
		kill $pids 2>/dev/null || true
		wait 2>/dev/null || true
	fi
	if [ "$lab_up" = 1 ]; then
		section "tfsh lab down"
		"$TFSH" lab down || rc=1
	fi
	if [ "$keep" = 0 ]; then
		rm -rf "$work"
	else
		say "Everything is kept in $work (job logs in $work/logs, audit log $work/audit.db)."
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# tfsh's audit log, the lab's dir and tfsh's history go here, not to the user's.
export TFSH_AUDIT_DB=$work/audit.db
export TFSH_LAB_DIR=$work/lab
export XDG_STATE_HOME=$work/state
mkdir -p "$work/logs" "$work/results"

# The simulation's own CI: drop the real one's variables (and settings that would change what
# terraform runs), so that only the jobs below are CI jobs.
for v in $(compgen -e); do
	case $v in
	CI | GITHUB_* | GITLAB_CI | BUILDKITE | CIRCLECI | JENKINS_URL | TF_CLI_ARGS* | TF_LOG* | TF_WORKSPACE | TF_DATA_DIR) unset "$v" ;;
	esac
done
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then
	unset TF_CLI_CONFIG_FILE # terraform would warn about it on every command
fi
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

# ---- tfsh and terraform ------------------------------------------------------------------------
section "tfsh and terraform"
if [ -z "${TFSH:-}" ]; then
	command -v go >/dev/null 2>&1 || die "set TFSH to a tfsh binary, or put go on PATH to build one"
	say "building tfsh from $repo ..."
	(cd "$repo" && go build -o "$work/bin/tfsh" ./cmd/tfsh)
	TFSH=$work/bin/tfsh
fi
[ -x "$TFSH" ] || die "TFSH=$TFSH is not an executable"
TF=${TFSH_TERRAFORM:-}
if [ -z "$TF" ]; then
	TF=$(command -v terraform || command -v tofu || true)
	[ -n "$TF" ] || die "no terraform or tofu on PATH: set TFSH_TERRAFORM"
fi
export TFSH_TERRAFORM=$TF
tf_version=$("$TF" version | sed -n 1p) # sed reads it all: head could make terraform die of SIGPIPE (pipefail)
say "tfsh       $TFSH ($("$TFSH" version))"
say "terraform  $TF ($tf_version)"

# ---- the lab -----------------------------------------------------------------------------------
section "tfsh lab up: S3 and DynamoDB on loopback"
lab_up=1
"$TFSH" lab up >"$work/logs/lab-up.txt" || { cat "$work/logs/lab-up.txt"; die "tfsh lab up failed"; }
sed -n '1,/^  log /p' "$work/logs/lab-up.txt"
# shellcheck source=/dev/null # written by tfsh lab up
. "$TFSH_LAB_DIR/env.sh"

# Which backend settings this binary reads (tfsh lab up wrote one file per kind).
case $tf_version in
"Terraform v1."[0-5].*) backend=terraform-1.5 ;;
*) backend=s3-dynamodb ;;
esac
if [ ! -e "$TFSH_LAB_DIR/$backend.tfbackend" ]; then
	case $tf_version in
	"Terraform v1."[0-9].*) die "$tf_version locks S3 state only with DynamoDB, which the lab could not start (see above)" ;;
	*) backend=s3-lockfile ;;
	esac
fi

# The repository every job checks out: the lab workload with an empty backend "s3" {} block,
# and the lab's settings as backend.hcl.
checkout=$work/checkout
mkdir -p "$checkout"
cp "$here/../lab/s3-dynamodb/"{main.tf,variables.tf,outputs.tf,backend.tf} "$checkout/"
cp "$TFSH_LAB_DIR/$backend.tfbackend" "$checkout/backend.hcl"
say
say "Each job's checkout has backend.hcl = $TFSH_LAB_DIR/$backend.tfbackend:"
grep -v '^#' "$checkout/backend.hcl" | sed 's/^/    /'

# ---- three jobs at once ------------------------------------------------------------------------
# One job as a CI runner runs it: its own workspace, the CI's environment, then the steps of
# examples/ci/github-actions.yml. A failing step ends the job, as in CI.
#
# Why the deploy step is `apply -auto-approve` with the plan's variables and not `apply tfplan`:
# a saved plan records the state it was made from, and terraform refuses to apply it once
# another job has changed the state ("Saved plan is stale"). That refusal is terraform
# protecting you, and a pipeline avoids it by serialising whole runs (plan and apply) with a
# `concurrency:` group (github-actions.yml). These three jobs are deliberately NOT serialised
# by the CI, to show the state lock doing it: each job's plan is what a reviewer reads, and its
# apply plans again under the lock, against the state the previous job left, and applies that.
actors=(alice bob carol)

# Each job runs on a runner of its own, as in CI. What matters here is the host name: a lock
# record names its holder as user@host, and tfsh tells its own terraform's lock from another
# job's by that name, the operation and the time. Three jobs of one user on one host taking
# the same operation's lock at the same moment cannot be told apart (docs/locks.md), which no
# real CI does, so each job gets its own host name (runner-N) through a user and UTS namespace
# where Linux allows that without privileges. Elsewhere the jobs still serialise and succeed,
# but tfsh explain may attribute a lock to the wrong one of them.
own_hosts=0
if command -v unshare >/dev/null 2>&1 && command -v hostname >/dev/null 2>&1 &&
	unshare --user --map-root-user --uts sh -c 'hostname runner-0' >/dev/null 2>&1; then
	own_hosts=1
fi
runner() { # runner N cmd...: run cmd as on the CI runner runner-N
	local n=$1
	shift
	if [ "$own_hosts" = 1 ]; then
		# shellcheck disable=SC2016 # expanded by that sh
		unshare --user --map-root-user --uts sh -c 'hostname "$0" && exec "$@"' "runner-$n" "$@"
	else
		"$@"
	fi
}
step() { # step N NAME cmd...: one step on runner-N, timed; progress to the terminal (fd 3), output to the job's log
	local n=$1 name=$2 start end rc=0
	shift 2
	start=$(now)
	printf '  %s  deploy-%s  %-5s started\n' "$(date -u +%T)" "$n" "$name" >&3
	printf '\n$ %s\n' "$*"
	runner "$n" "$@" || rc=$?
	end=$(now)
	printf '  %s  deploy-%s  %-5s exit %s after %ss\n' "$(date -u +%T)" "$n" "$name" "$rc" "$(elapsed "$start" "$end")" >&3
	printf '%s %s %s %s\n' "$name" "$rc" "$start" "$end" >>"$work/results/job-$n"
	return "$rc"
}
job() { # job N: init, plan, apply, as CI job deploy-N by actors[N-1]
	local n=$1 dir=$work/job-$1
	cp -R "$checkout" "$dir"
	cd "$dir"
	export GITHUB_ACTIONS=true GITHUB_RUN_ID=$((4200 + n)) GITHUB_RUN_ATTEMPT=1 GITHUB_WORKFLOW=deploy \
		GITHUB_JOB=deploy-$n GITHUB_ACTOR=${actors[n - 1]} GITHUB_REPOSITORY=acme/infra \
		GITHUB_SERVER_URL=https://github.example GITHUB_SHA=0123456789abcdef0123456789abcdef01234567
	step "$n" init "$TFSH" run -- init -input=false -no-color -backend-config=backend.hcl || return
	step "$n" plan "$TFSH" run -- plan -input=false -no-color -out=tfplan \
		-var "run_id=deploy-$n" -var "hold_seconds=$HOLD_SECONDS" || return
	step "$n" apply "$TFSH" run -- apply -input=false -no-color -auto-approve \
		-var "run_id=deploy-$n" -var "hold_seconds=$HOLD_SECONDS" || return
}

section "three CI jobs, one state: init, plan, apply (each apply holds the lock ${HOLD_SECONDS}s; times in UTC)"
if [ "$own_hosts" = 1 ]; then
	say "Each job runs on a host of its own (runner-1, runner-2, runner-3: a user and UTS namespace)."
else
	say "Note: the jobs share this host and user (no unprivileged namespaces here): they serialise and"
	say "succeed all the same, but tfsh explain may attribute a lock to the wrong one of them."
fi
say
exec 3>&1
t0=$(now)
pids=()
for n in $(seq 1 "$JOBS"); do
	(job "$n") >"$work/logs/job-$n.log" 2>&1 &
	pids+=("$!")
done
rcs=()
for i in "${!pids[@]}"; do
	rc=0
	wait "${pids[i]}" || rc=$?
	rcs+=("$rc")
done
t1=$(now)
exec 3>&-

section "the jobs"
failed=0
printf '  %-9s %-6s %-6s %-14s %-14s %s\n' JOB ACTOR EXIT PLAN APPLY "WHAT TFSH SAID"
for n in $(seq 1 "$JOBS"); do
	rc=${rcs[n - 1]}
	[ "$rc" = 0 ] || failed=$((failed + 1))
	plan=- apply=-
	while read -r name src start end; do
		case $name in
		plan) plan="exit $src $(elapsed "$start" "$end")s" ;;
		apply) apply="exit $src $(elapsed "$start" "$end")s" ;;
		esac
	done <"$work/results/job-$n"
	added=$(grep -m 1 '^tfsh: added -lock-timeout' "$work/logs/job-$n.log" | sed 's/^tfsh: //' || true)
	printf '  %-9s %-6s %-6s %-14s %-14s %s\n' "deploy-$n" "${actors[n - 1]}" "$rc" "$plan" "$apply" "$added"
done
waited=$(grep -l 'Acquiring state lock. This may take a few moments' "$work"/logs/job-*.log | wc -l | tr -d ' ')
say
say "  ${JOBS} jobs, ${failed} failed, in $(elapsed "$t0" "$t1")s: their applies hold the lock ${HOLD_SECONDS}s each and ran one"
say "  at a time. terraform printed \"Acquiring state lock. This may take a few moments...\" (it waited"
say "  for the lock) in ${waited} of the jobs: without tfsh's -lock-timeout=5m (terraform's default is 0s)"
say "  those would have failed at once with \"Error acquiring the state lock\"."
cd "$work/job-1"
last=$("$TFSH" run -- output -no-color -raw run_id 2>/dev/null || true)
say "  The state's run_id is now \"$last\": the job whose apply got the lock last."

# ---- -lock=false -------------------------------------------------------------------------------
section "plan -lock=false: a read, allowed"
say "\$ tfsh run -- plan -lock=false ..."
plan_rc=0
"$TFSH" run -- plan -lock=false -input=false -no-color -var "run_id=$last" -var "hold_seconds=$HOLD_SECONDS" \
	>"$work/logs/plan-lock-false.log" 2>&1 || plan_rc=$?
grep -E '^tfsh:|^(No changes|Plan:)' "$work/logs/plan-lock-false.log" | sed 's/^/  /' || true
say "  exit $plan_rc"

section "apply -lock=false: a write, refused"
say "\$ tfsh run -- apply -lock=false -auto-approve ..."
apply_rc=0
"$TFSH" run -- apply -lock=false -auto-approve -input=false -no-color -var "run_id=unlocked" \
	>"$work/logs/apply-lock-false.log" 2>&1 || apply_rc=$?
sed 's/^/  /' "$work/logs/apply-lock-false.log"
say "  exit $apply_rc (3: refused by policy; terraform never started)"

# ---- what happened -----------------------------------------------------------------------------
section "tfsh explain --since 10m: who held the lock, who waited"
"$TFSH" explain --since 10m --color never

# ---- verdict -----------------------------------------------------------------------------------
section "verdict"
ok=1
if [ "$failed" != 0 ]; then
	say "  FAIL: $failed of $JOBS jobs failed (logs: $work/logs; run with SIMULATE_DIR=... to keep them)"
	for n in $(seq 1 "$JOBS"); do
		[ "${rcs[n - 1]}" = 0 ] && continue
		say "  --- the end of deploy-$n's log:"
		tail -n 30 "$work/logs/job-$n.log" | sed 's/^/  | /'
	done
	ok=0
fi
[ "$waited" -ge 1 ] || { say "  FAIL: no job waited for the lock: the jobs did not contend (raise HOLD_SECONDS)"; ok=0; }
[ "$plan_rc" = 0 ] || { say "  FAIL: plan -lock=false exited $plan_rc, want 0"; ok=0; }
[ "$apply_rc" = 3 ] || { say "  FAIL: apply -lock=false exited $apply_rc, want 3 (refused)"; ok=0; }
if [ "$ok" = 1 ]; then
	say "  OK: $JOBS jobs, 0 failed, $waited waited for the lock; plan -lock=false exit 0; apply -lock=false exit 3 (refused)"
	exit 0
fi
exit 1
