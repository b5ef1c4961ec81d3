#!/usr/bin/env bash
# bench/server.sh: redis-benchmark against kvs serve (bitcask and lsm) and
# against redis-server, in one run, printing one table. `make bench-server`
# runs it from the repository root.
#
# Every target gets the same load: redis-benchmark -t set,get -c 50 -d 100
# -r 200000, once with -P 1 (one request in flight per client) and once
# with -P 16 (pipelines of 16), REQUESTS requests per test. Targets:
#
#   kvs-bitcask, kvs-lsm     kvs serve --sync none (no fsync; SYNC=group adds
#                            the group-commit runs too)
#   kvs-lsm-none-cache64     kvs serve --engine lsm --sync none --cache-size 64MiB:
#                            a block cache that holds the whole data set, as
#                            redis-server holds it in memory (the default 8 MiB
#                            cache holds about a third of it)
#   redis                    redis-server with no persistence (--save '' --appendonly no)
#   redis-aof                redis-server --appendonly yes --appendfsync everysec
#
# Each server starts in a fresh directory and is stopped after its runs.
# Environment: REQUESTS (default 1000000), CLIENTS (50), KEYSPACE (200000),
# SYNC ("none"; "none group" also runs kvs with group commit), OUT (a file
# for the raw CSV lines, default bench-server.csv).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-1000000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-200000}
SYNC=${SYNC:-none}
OUT=${OUT:-bench-server.csv}

for tool in redis-benchmark redis-cli redis-server; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench/server.sh: $tool not found: apt-get install redis-tools redis-server" >&2
		exit 1
	fi
done

work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/kvs" ./cmd/kvs

# free_port prints a loopback port nothing listens on.
free_port() {
	local p
	for p in $(seq 16380 16480); do
		if ! redis-cli -p "$p" ping >/dev/null 2>&1; then
			echo "$p"
			return
		fi
	done
	echo "bench/server.sh: no free port in 16380-16480" >&2
	exit 1
}

# wait_ready PORT: until the server answers PING (20 s at most).
wait_ready() {
	for _ in $(seq 200); do
		if [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ]; then return; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench/server.sh: the server exited before answering; its log:" >&2
			cat "$work/server.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "bench/server.sh: the server did not answer PING within 20 s" >&2
	exit 1
}

# stop_server: a graceful stop (SIGTERM), then wait.
stop_server() {
	kill -TERM "$pid"
	wait "$pid" || { echo "bench/server.sh: the server exited with an error; its log:" >&2; cat "$work/server.log" >&2; exit 1; }
	pid=""
}

: >"$OUT"
# run_target NAME COMMAND...: start the server (COMMAND gets the port as
# $PORT and a data directory as $DIR), run both pipelines, stop it.
run_target() {
	local name=$1
	shift
	local port dir
	port=$(free_port)
	dir="$work/$name"
	mkdir -p "$dir"
	PORT=$port DIR=$dir eval "$* >\"$work/server.log\" 2>&1 &"
	pid=$!
	wait_ready "$port"
	for p in 1 16; do
		echo "$name: redis-benchmark -P $p ..." >&2
		redis-benchmark -p "$port" -t set,get -n "$REQUESTS" -c "$CLIENTS" -P "$p" -d 100 -r "$KEYSPACE" --csv |
			awk -v t="$name" -v p="$p" -F, 'NR > 1 { gsub(/"/, ""); print t "," p "," $1 "," $2 "," $5 "," $7 }' >>"$OUT"
	done
	stop_server
}

for mode in $SYNC; do
	for engine in bitcask lsm; do
		run_target "kvs-$engine-$mode" "\"$work/kvs\" serve --engine $engine --dir \$DIR --sync $mode --addr 127.0.0.1:\$PORT --log-level warn"
	done
done
run_target kvs-lsm-none-cache64 "\"$work/kvs\" serve --engine lsm --dir \$DIR --sync none --cache-size 64MiB --addr 127.0.0.1:\$PORT --log-level warn"
run_target redis "redis-server --port \$PORT --dir \$DIR --save '' --appendonly no"
run_target redis-aof "redis-server --port \$PORT --dir \$DIR --save '' --appendonly yes --appendfsync everysec"

# The table: requests per second and p50/p99 latency (ms) per target and
# test, then each kvs target's throughput over redis-server's.
echo
echo "redis-benchmark -t set,get -n $REQUESTS -c $CLIENTS -d 100 -r $KEYSPACE on $(nproc) CPUs; requests/s (p50 / p99 ms)"
echo
awk -F, '
	{ key = $1 SUBSEP $2 SUBSEP $3; rps[key] = $4; lat[key] = sprintf("%s / %s", $5, $6)
	  if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
	END {
		printf "%-22s %24s %24s %24s %24s\n", "target", "SET -P 1", "GET -P 1", "SET -P 16", "GET -P 16"
		for (i = 0; i < n; i++) {
			t = order[i]; line = sprintf("%-22s", t)
			split("1 SET,1 GET,16 SET,16 GET", cols, ",")
			for (c = 1; c <= 4; c++) {
				split(cols[c], pt, " "); k = t SUBSEP pt[1] SUBSEP pt[2]
				line = line sprintf(" %24s", sprintf("%.0f (%s)", rps[k], lat[k]))
			}
			print line
		}
		print ""
		printf "%-22s %12s %12s %12s %12s   (throughput / redis-server without persistence)\n", "ratio", "SET -P 1", "GET -P 1", "SET -P 16", "GET -P 16"
		for (i = 0; i < n; i++) {
			t = order[i]; if (t == "redis") continue; line = sprintf("%-22s", t)
			for (c = 1; c <= 4; c++) {
				split(cols[c], pt, " "); k = t SUBSEP pt[1] SUBSEP pt[2]; r = "redis" SUBSEP pt[1] SUBSEP pt[2]
				line = line sprintf(" %12s", rps[r] > 0 ? sprintf("%.2fx", rps[k] / rps[r]) : "-")
			}
			print line
		}
	}' "$OUT"
echo
echo "raw results: $OUT (target,pipeline,test,rps,p50_ms,p99_ms)"
