# kvs: make run (a quick engine comparison) and make test (the test suite)
# are the two commands a fresh clone needs. bench/ and docs/ are folders:
# every target is .PHONY so make never mistakes them for up-to-date files.
.PHONY: build run test test-fast test-long race bench bench-quick bench-peers bench-server bench-raft test-peers lint fmt fuzz clean proto

GO ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

build:
	$(GO) build ./...
	$(GO) build -o bin/kvs ./cmd/kvs

# The short engine comparison that prints a table (well under a minute):
# bitcask vs lsm on fillrandom, readrandom and scan over 50000 keys. Add
# --out DIR for the JSON, CSV, charts and report.md.
run:
	$(GO) run ./cmd/kvs bench --engines bitcask,lsm --keys 50000

# The whole test suite, under the race detector: unit, conformance (200+
# crash rounds per engine variant), real-process kill tests, fuzz seed
# corpora, the CLI end to end. test-fast skips -race; test-long runs the
# long versions (1000 crash rounds, 4000 fault points, 12 kill rounds).
# test-peers checks the bench/peers adapters (a module of its own): every
# workload on pebble, goleveldb, badger, bbolt and rosedb, answers checked.
test: test-peers
	$(GO) vet ./...
	$(GO) test -race -short -timeout 10m ./...

test-peers:
	cd bench/peers && $(GO) vet ./... && $(GO) test -short -timeout 10m ./...

test-fast:
	$(GO) test -short -timeout 10m ./...

test-long:
	$(GO) test -timeout 30m ./...

race:
	$(GO) test -race -short -timeout 15m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 10 -timeout 60m ./... | tee bench.txt

# kvs bitcask, bitcask/btree and lsm against pebble, goleveldb, badger, bbolt
# and rosedb (the separate bench/peers module) on fillrandom, readrandom,
# scan and YCSB-A: a million keys of 16 B, values of 100 B. About 20 minutes
# on a 2-core machine. Prints kvs bench's table of the run, writes its
# report (JSON, CSV, charts, report.md) into peers-report/, keeps the raw
# benchmark lines in peers.txt, then benchstat's table per workload.
PEERS_FLAGS ?= -peers.keys=1000000
bench-peers:
	cd bench/peers && $(GO) test -run '^$$' -bench Peers -benchtime 1000000x -timeout 180m -peers.out ../../peers-report $(PEERS_FLAGS) | tee ../../peers.txt
	cd bench/peers && $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da -table /workload -col /db ../../peers.txt

# redis-benchmark (-t set,get, -P 1 and -P 16, 50 clients, 100 B values over
# 200k random keys) against kvs serve on bitcask and lsm (no sync) and
# against redis-server (no persistence, then appendonly everysec), in one
# run, printing one table. Needs redis-tools and redis-server; a few
# minutes. REQUESTS=100000 for a quick look, SYNC="none group" adds kvs
# with group commit.
bench-server:
	bash bench/server.sh

# redis-benchmark (SET and GET, 64 clients, 100 B values) against a 3-node
# kvs cluster on loopback (raft, every write fsynced on a majority) and
# against one kvs serve with --sync group and always: what replication
# costs. Needs redis-tools; a few minutes.
bench-raft:
	bash bench/raft.sh

# One iteration of every benchmark: checks they run, not how fast.
bench-quick:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 10m ./...

lint:
	test -z "$$(gofmt -l .)" || (gofmt -l . && false)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -s -w .

# Run each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzScanSegment$$' -fuzztime $(FUZZTIME) ./bitcask
	$(GO) test -run '^$$' -fuzz '^FuzzScanHint$$' -fuzztime $(FUZZTIME) ./bitcask
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) ./bitcask
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeDone$$' -fuzztime $(FUZZTIME) ./bitcask
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./wal
	$(GO) test -run '^$$' -fuzz '^FuzzBlock$$' -fuzztime $(FUZZTIME) ./sstable
	$(GO) test -run '^$$' -fuzz '^FuzzOpenAndIterate$$' -fuzztime $(FUZZTIME) ./sstable
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeVersionEdit$$' -fuzztime $(FUZZTIME) ./lsm
	$(GO) test -run '^$$' -fuzz '^FuzzReadManifest$$' -fuzztime $(FUZZTIME) ./lsm
	$(GO) test -run '^$$' -fuzz '^FuzzCommands$$' -fuzztime $(FUZZTIME) ./server

# Regenerate raftkv/raftkvpb's Go code from raftkv.proto. Needs protoc:
# apt-get install protobuf-compiler (the committed code was made with
# libprotoc 3.21.12). The two plugins are installed at pinned versions into
# bin/. CI does not run this: the generated code is committed, and
# raftkvpb's tests check it is current whenever protoc is installed.
PROTOC_GEN_GO_VERSION = v1.36.12
PROTOC_GEN_GO_GRPC_VERSION = v1.6.2
proto:
	@command -v protoc >/dev/null || (echo "protoc not found: apt-get install protobuf-compiler" && false)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	protoc -I . -I "$$($(GO) list -m -f '{{.Dir}}' go.etcd.io/raft/v3)/raftpb" \
		--plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grpc=bin/protoc-gen-go-grpc \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		raftkv/raftkvpb/raftkv.proto

clean:
	rm -rf bin bench.txt peers.txt peers-report bench-server.csv
