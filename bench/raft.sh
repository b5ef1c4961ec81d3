#!/usr/bin/env bash
# bench/raft.sh: redis-benchmark against a 3-node kvs cluster on loopback
# (kvs cluster up), writes and reads through raft on the leader, beside one
# kvs serve process on the same engine with --sync group (concurrent
# writes share fsyncs, as raft's one batch per round does) and --sync
# always (one fsync per write): what replication costs. `make bench-raft` runs it from the repository root.
#
# Load: redis-benchmark -t set,get -c 64 -d 100 -r 200000, REQUESTS
# requests per test, -P 1 (one request in flight per client). Every raft
# write is fsynced (the raft log) on a majority before it is acknowledged;
# reads are linearizable (ReadIndex: a heartbeat round per batch of reads).
#
# Environment: REQUESTS (default 200000), CLIENTS (64), ENGINES ("lsm bitcask").
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-64}
ENGINES=${ENGINES:-"lsm bitcask"}

for tool in redis-benchmark redis-cli; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench/raft.sh: $tool not found: apt-get install redis-tools" >&2
		exit 1
	fi
done

work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/kvs" ./cmd/kvs

out="$work/results.csv"
: >"$out"
# bench NAME PORT: both tests against the RESP server on PORT.
bench() {
	echo "$1: redis-benchmark ..." >&2
	redis-benchmark -p "$2" -t set,get -n "$REQUESTS" -c "$CLIENTS" -d 100 -r 200000 --csv |
		awk -v t="$1" -F, 'NR > 1 { gsub(/"/, ""); print t "," $1 "," $2 "," $5 "," $7 }' >>"$out"
}

for engine in $ENGINES; do
	# The replicated store: find the leader's port in kvs cluster status.
	"$work/kvs" cluster up --nodes 3 --engine "$engine" --dir "$work/cluster-$engine" \
		--port-base 0 --raft-port-base 0 --log-level warn >"$work/up.log" 2>&1 &
	pid=$!
	leader=""
	for _ in $(seq 200); do
		if [ -f "$work/cluster-$engine/cluster.json" ]; then
			leader=$("$work/kvs" cluster status --dir "$work/cluster-$engine" --json 2>/dev/null |
				awk '/"addr"/ { gsub(/[",]/, "", $2); addr = $2 } /"raft_state": "leader"/ { print addr; exit }')
			if [ -n "$leader" ]; then break; fi
		fi
		sleep 0.1
	done
	if [ -z "$leader" ]; then
		echo "bench/raft.sh: no leader in 20 s; kvs cluster up said:" >&2
		cat "$work/up.log" >&2
		exit 1
	fi
	bench "raft-3-$engine" "${leader##*:}"
	kill -TERM "$pid"
	wait "$pid"
	pid=""

	# One process, same engine, every write fsynced, no replication.
	for mode in group always; do
		port=16480
		"$work/kvs" serve --engine "$engine" --dir "$work/single-$engine-$mode" --sync $mode \
			--addr 127.0.0.1:$port --log-level warn >"$work/serve.log" 2>&1 &
		pid=$!
		for _ in $(seq 200); do
			[ "$(redis-cli -p $port ping 2>/dev/null)" = "PONG" ] && break
			sleep 0.1
		done
		bench "single-$engine-$mode" $port
		kill -TERM "$pid"
		wait "$pid"
		pid=""
	done
done

echo
echo "redis-benchmark -t set,get -n $REQUESTS -c $CLIENTS -d 100 -r 200000 -P 1 on $(nproc) CPUs"
echo
awk -F, '
	BEGIN { printf "%-24s %10s %10s %10s %10s %10s %10s\n", "target", "SET/s", "p50 ms", "p99 ms", "GET/s", "p50 ms", "p99 ms" }
	{ key = $1; if (!(key in seen)) { seen[key] = 1; order[n++] = key }
	  rps[key, $2] = $3; p50[key, $2] = $4; p99[key, $2] = $5 }
	END { for (i = 0; i < n; i++) { t = order[i]
		printf "%-24s %10.0f %10s %10s %10.0f %10s %10s\n", t, rps[t, "SET"], p50[t, "SET"], p99[t, "SET"], rps[t, "GET"], p50[t, "GET"], p99[t, "GET"] } }' "$out"
