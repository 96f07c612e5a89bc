# The two commands of the README's quick start, and a few more.
.PHONY: run test build bench

run:            ## build tfsh and start it on examples/lab
	@bash scripts/run.sh

test:           ## install the lab (cached) and pass every check and test
	@bash scripts/test.sh

build:
	go build -o bin/tfsh ./cmd/tfsh

bench:          ## every figure of BENCHMARKS.md in one run (about 22 min); rewrites its tables
	@bash scripts/bench.sh
