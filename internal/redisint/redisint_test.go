package redisint

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestParseMatchesRedisSyntax checks Parse against strconv.ParseInt plus
// Redis's extra rules (no '+', no leading zeros, no "-0"), on hand-picked
// edge cases and random strings of digits and a few other bytes.
func TestParseMatchesRedisSyntax(t *testing.T) {
	oracle := func(s string) (int64, bool) {
		if s == "" || s[0] == '+' || s == "-0" || len(s) > 1 && s[0] == '0' || len(s) > 2 && s[:2] == "-0" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	inputs := []string{"0", "-0", "1", "-1", "+1", "01", "-01", " 1", "1 ", "", "-",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"18446744073709551616", "18446744073709551619", "99999999999999999999", "123456789012345678901"}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789-+ x"
	for range 20000 {
		b := make([]byte, 1+rng.IntN(21))
		for i := range b {
			if rng.IntN(20) == 0 {
				b[i] = alphabet[10+rng.IntN(len(alphabet)-10)]
			} else {
				b[i] = alphabet[rng.IntN(10)]
			}
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		n, ok := Parse([]byte(s))
		wn, wok := oracle(s)
		if ok != wok || n != wn {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", s, n, ok, wn, wok)
		}
	}
}

func TestAddOverflows(t *testing.T) {
	for _, tc := range []struct {
		n, d int64
		want bool
	}{
		{0, 1, false}, {math.MaxInt64 - 1, 1, false}, {math.MaxInt64, 1, true},
		{math.MinInt64 + 1, -1, false}, {math.MinInt64, -1, true},
		{math.MaxInt64, math.MinInt64, false}, {-1, math.MinInt64, true}, {0, math.MinInt64, false},
	} {
		if got := AddOverflows(tc.n, tc.d); got != tc.want {
			t.Errorf("AddOverflows(%d, %d) = %v, want %v", tc.n, tc.d, got, tc.want)
		}
	}
}
