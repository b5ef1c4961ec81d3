// Package redisint reads and adds integers the way Redis does for INCR,
// INCRBY and friends, so that every kvs backend (the local engine's RESP
// server and the raft state machine) accepts and refuses the same values.
package redisint

// Parse reads b as Redis reads an integer argument or stored value
// (string2ll): an optional '-', then decimal digits, with no '+', no
// spaces, no leading zeros (except "0" itself, and never "-0"), within
// int64. ok is false for anything else.
func Parse(b []byte) (n int64, ok bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || (d[0] == '0' && len(d) > 1) || (neg && d[0] == '0') {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		// NB: check u*10+digit <= 1<<63 before computing it: a bound on
		// u alone lets 20-digit values up to 2^64+3 wrap around.
		digit := uint64(c - '0')
		if u > (1<<63-digit)/10 {
			return 0, false
		}
		u = u*10 + digit
	}
	if neg {
		return int64(-u), true // u <= 1<<63, so -u is at least MinInt64
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// AddOverflows reports whether n + delta falls outside int64, the case
// Redis answers with "increment or decrement would overflow".
func AddOverflows(n, delta int64) bool {
	return (delta > 0 && n > 1<<63-1-delta) || (delta < 0 && n < -1<<63-delta)
}
