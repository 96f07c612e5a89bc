#!/usr/bin/env bash
# setup-lab.sh: install the real parts the tfsh lab runs against (see DESIGN.md, "Lab").
#
#   terraform 1.5.7      $TFSH_CACHE/bin/terraform-1.5.7   (go install)
#   OpenTofu 1.10.10     $TFSH_CACHE/bin/tofu-1.10.10      (built from a throwaway module)
#   dynalite             $TFSH_CACHE/dynalite-<lock hash>/ (npm ci from internal/lab/dynalite)
#   staticcheck          $TFSH_CACHE/bin/staticcheck       (go install)
#   chromium             /usr/bin/chromium                 (Debian's package, apt-get; for the
#                                                           test that loads tfsh report's HTML)
#
# TFSH_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/tfsh. Idempotent: what is cached is
# reused, and every build goes to a temporary place first and is moved in only when it is
# complete and works. Chromium is the one system package: kept if /usr/bin/chromium exists,
# else installed with apt-get (through sudo when not root; apt-get update first if the package
# lists do not know it). Status lines go to stderr, one per part; build logs go to
# $TFSH_CACHE/logs/ and are shown only when a step fails.
#
#   scripts/setup-lab.sh               install what is missing
#   scripts/setup-lab.sh --print-env   ... then print export lines for the tests, e.g.
#                                      eval "$(scripts/setup-lab.sh --print-env)"
#   scripts/setup-lab.sh --only tofu   only the named parts (comma-separated: terraform,tofu,
#                                      dynalite,staticcheck,chromium)
set -euo pipefail

TERRAFORM_VERSION=1.5.7
TOFU_VERSION=1.10.10
STATICCHECK_VERSION=v0.8.2

usage() {
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
}

print_env=0
only=
while [ $# -gt 0 ]; do
	arg=$1
	shift
	case "$arg" in
	--print-env) print_env=1 ;;
	--only) only=${1:?--only needs a list of parts}; shift ;;
	--only=*) only=${arg#--only=} ;;
	-h | --help) usage; exit 0 ;;
	*) echo "setup-lab: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
	esac
done
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${TFSH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfsh}
bin=$cache/bin
logs=$cache/logs

say() { printf 'setup-lab: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH"
if want dynalite; then
	for tool in node npm; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH (needed for dynalite)"
	done
	node_major=$(node -p 'process.versions.node.split(".")[0]')
	[ "$node_major" -ge 20 ] || die "node >= 20 needed for dynalite 4, found $(node --version)"
fi

mkdir -p "$bin" "$logs"
cache=$(cd "$cache" && pwd)
bin=$cache/bin
logs=$cache/logs

# One setup at a time per cache (two CI jobs or terminals may start it together).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache/.setup.lock"
	flock 9
	# Holding the lock, any temporary dir left in the cache is from a setup that was killed.
	find "$cache" -maxdepth 1 -name '.tmp.*' -exec chmod -R u+w {} + -exec rm -rf {} + 2>/dev/null || true
fi

tmpdirs=()
cleanup() {
	local d
	for d in "${tmpdirs[@]+"${tmpdirs[@]}"}"; do
		[ -n "$d" ] && chmod -R u+w "$d" 2>/dev/null || true
		rm -rf "$d"
	done
}
trap cleanup EXIT

newtmp() { # newtmp VAR: a fresh temporary dir inside the cache (same file system: mv is atomic)
	local d
	d=$(mktemp -d "$cache/.tmp.XXXXXXXX")
	tmpdirs+=("$d")
	printf -v "$1" '%s' "$d"
}

run_logged() { # run_logged NAME cmd...: run with output to $logs/NAME.log, show its tail on failure
	local name=$1 log
	shift
	log=$logs/$name.log
	if ! "$@" >>"$log" 2>&1; then
		say "$name failed: $*; last lines of $log:"
		tail -n 40 "$log" >&2
		exit 1
	fi
}

elapsed() { echo "$((SECONDS - $1))s"; }

# Builds use the local toolchain only and need no C compiler (release builds are cgo-free too).
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"

# ---- terraform ----------------------------------------------------------------------------
terraform_bin=$bin/terraform-$TERRAFORM_VERSION
if ! want terraform; then
	:
elif [ -x "$terraform_bin" ]; then
	[ "$print_env" = 1 ] || say "terraform $TERRAFORM_VERSION: cached at $terraform_bin"
else
	say "terraform $TERRAFORM_VERSION: building (a few minutes on a cold Go cache; log $logs/terraform.log)"
	start=$SECONDS
	newtmp tmp
	: >"$logs/terraform.log"
	run_logged terraform env GOBIN="$tmp" go install -ldflags='-s -w' "github.com/hashicorp/terraform@v$TERRAFORM_VERSION"
	got=$("$tmp/terraform" version 2>/dev/null | head -n 1 || true)
	[ "$got" = "Terraform v$TERRAFORM_VERSION" ] || die "built terraform reports '$got', want 'Terraform v$TERRAFORM_VERSION'"
	mv -f "$tmp/terraform" "$terraform_bin"
	say "terraform $TERRAFORM_VERSION: installed $terraform_bin in $(elapsed "$start")"
fi

# ---- OpenTofu -----------------------------------------------------------------------------
# OpenTofu's go.mod replaces github.com/hashicorp/hcl/v2 with its own fork, so `go install
# pkg@version` refuses it. Build it from a throwaway module that requires opentofu and carries
# the same replace line, read from opentofu's own go.mod in the module cache.
tofu_bin=$bin/tofu-$TOFU_VERSION
if ! want tofu; then
	:
elif [ -x "$tofu_bin" ]; then
	[ "$print_env" = 1 ] || say "tofu $TOFU_VERSION: cached at $tofu_bin"
else
	say "tofu $TOFU_VERSION: building (a few minutes on a cold Go cache; log $logs/tofu.log)"
	start=$SECONDS
	newtmp tmp
	: >"$logs/tofu.log"
	mkdir "$tmp/mod"
	# `go mod download -json` prints {"Path": …, "GoMod": "<file in the module cache>", …}.
	modjson=$(cd "$tmp/mod" && go mod download -json "github.com/opentofu/opentofu@v$TOFU_VERSION" 2>>"$logs/tofu.log") ||
		die "go mod download github.com/opentofu/opentofu@v$TOFU_VERSION failed; see $logs/tofu.log"
	upstream_gomod=$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"GoMod":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
	[ -f "$upstream_gomod" ] || die "could not find opentofu's go.mod (go mod download -json said: $modjson)"
	replace=$(grep -E '^replace[[:space:]]+github\.com/hashicorp/hcl/v2[[:space:]]' "$upstream_gomod" || true)
	[ "$(printf '%s\n' "$replace" | grep -c .)" = 1 ] ||
		die "expected exactly one 'replace github.com/hashicorp/hcl/v2' line in $upstream_gomod, found: ${replace:-none}"
	cat >"$tmp/mod/go.mod" <<-EOF
		module tfsh.invalid/tofubuild

		go 1.24

		require github.com/opentofu/opentofu v$TOFU_VERSION

		$replace
	EOF
	(
		cd "$tmp/mod"
		run_logged tofu go get "github.com/opentofu/opentofu/cmd/tofu@v$TOFU_VERSION"
		# version.dev=no is what OpenTofu's release builds set: `tofu version` then says
		# v1.10.10, not v1.10.10-dev.
		run_logged tofu go build -ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no" \
			-o "$tmp/tofu" github.com/opentofu/opentofu/cmd/tofu
	)
	got=$("$tmp/tofu" version 2>/dev/null | head -n 1 || true)
	[ "$got" = "OpenTofu v$TOFU_VERSION" ] || die "built tofu reports '$got', want 'OpenTofu v$TOFU_VERSION'"
	mv -f "$tmp/tofu" "$tofu_bin"
	say "tofu $TOFU_VERSION: installed $tofu_bin in $(elapsed "$start")"
fi

# ---- dynalite -----------------------------------------------------------------------------
# Pinned with its lock file in internal/lab/dynalite; installed per lock hash, so a changed lock
# installs fresh beside the old one and internal/lab finds the matching one.
dyn_src=$repo/internal/lab/dynalite
[ -f "$dyn_src/package-lock.json" ] || die "missing $dyn_src/package-lock.json"
dyn_hash=$(sha256sum "$dyn_src/package-lock.json" | cut -c1-12)
dyn_dir=$cache/dynalite-$dyn_hash
dyn_cli=$dyn_dir/node_modules/dynalite/cli.js
if ! want dynalite; then
	:
elif grep -q '"resolved"' "$dyn_src/package-lock.json"; then
	die "$dyn_src/package-lock.json contains download URLs (\"resolved\"); regenerate it with --omit-lockfile-registry-resolved"
elif [ -f "$dyn_cli" ]; then
	[ "$print_env" = 1 ] || say "dynalite: cached at $dyn_dir"
else
	start=$SECONDS
	newtmp tmp
	chmod 755 "$tmp"
	cp "$dyn_src/package.json" "$dyn_src/package-lock.json" "$tmp/"
	[ -f "$repo/.npmrc" ] && cp "$repo/.npmrc" "$tmp/.npmrc"
	: >"$logs/dynalite.log"
	# --ignore-scripts: the only install script is classic-level's node-gyp-build, which would
	# compile LevelDB only if no prebuilt binary fits; the package ships prebuilds for linux
	# x64/arm64, and the lab runs dynalite in memory anyway. The require() below proves it loads.
	(cd "$tmp" && run_logged dynalite npm ci --ignore-scripts --omit=dev --no-audit --no-fund --loglevel=warn)
	(cd "$tmp" && run_logged dynalite node -e 'require("dynalite")')
	rm -f "$tmp/.npmrc"
	if ! mv -T "$tmp" "$dyn_dir" 2>/dev/null; then
		rm -rf "$dyn_dir" && mv -T "$tmp" "$dyn_dir"
	fi
	version=$(node -p "require('$dyn_dir/node_modules/dynalite/package.json').version")
	say "dynalite $version: installed $dyn_dir in $(elapsed "$start")"
fi

# ---- staticcheck --------------------------------------------------------------------------
staticcheck_bin=$bin/staticcheck
if ! want staticcheck; then
	:
elif [ -x "$staticcheck_bin" ] && "$staticcheck_bin" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
	[ "$print_env" = 1 ] || say "staticcheck $STATICCHECK_VERSION: cached at $staticcheck_bin"
else
	start=$SECONDS
	newtmp tmp
	: >"$logs/staticcheck.log"
	run_logged staticcheck env GOBIN="$tmp" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	"$tmp/staticcheck" -version >/dev/null 2>&1 || die "built staticcheck does not run; see $logs/staticcheck.log"
	mv -f "$tmp/staticcheck" "$staticcheck_bin"
	say "staticcheck $STATICCHECK_VERSION: installed $staticcheck_bin in $(elapsed "$start")"
fi

# ---- chromium -----------------------------------------------------------------------------
# Debian's chromium runs headless for the test of tfsh report's HTML (cmd/tfsh/report_test.go).
# A system package, not a cache entry: installed once with apt-get, never removed here.
chromium_bin=/usr/bin/chromium
if ! want chromium; then
	:
elif [ -x "$chromium_bin" ]; then
	[ "$print_env" = 1 ] || say "chromium: installed at $chromium_bin"
else
	command -v apt-get >/dev/null 2>&1 ||
		die "chromium: $chromium_bin missing and no apt-get to install it; install Chromium and set TFSH_TEST_CHROMIUM to it"
	as_root=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "chromium: installing it needs root, and sudo is not here"
		as_root=(sudo)
	fi
	apt=("${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get)
	say "chromium: installing Debian's package with apt-get (a minute or two; log $logs/chromium.log)"
	start=$SECONDS
	: >"$logs/chromium.log"
	# A fresh container has no package lists; stale lists name versions the mirror dropped.
	if ! apt-cache show chromium >/dev/null 2>&1; then
		run_logged chromium "${apt[@]}" update
	fi
	if ! "${apt[@]}" install -y --no-install-recommends chromium >>"$logs/chromium.log" 2>&1; then
		run_logged chromium "${apt[@]}" update
		run_logged chromium "${apt[@]}" install -y --no-install-recommends chromium
	fi
	[ -x "$chromium_bin" ] || die "chromium: apt-get installed chromium but there is no $chromium_bin; see $logs/chromium.log"
	version=$("$chromium_bin" --version 2>/dev/null | head -n 1 || true)
	say "chromium: installed ${version:-$chromium_bin} in $(elapsed "$start")"
fi

if [ "$print_env" = 1 ]; then
	printf 'export TFSH_CACHE=%q\n' "$cache"
	printf 'export TFSH_TEST_TERRAFORM=%q\n' "$terraform_bin"
	printf 'export TFSH_TEST_TOFU=%q\n' "$tofu_bin"
	printf 'export TFSH_DYNALITE=%q\n' "$dyn_cli"
	printf 'export TFSH_TEST_CHROMIUM=%q\n' "$chromium_bin"
	printf 'export PATH=%q:"$PATH"\n' "$bin"
fi
