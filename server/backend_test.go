package server

import (
	"errors"
	"testing"
)

func TestParseInt64LikeRedis(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"-42", -42, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false},
		// Past 2^64 by 0..3: they used to wrap around to 0..3.
		{"18446744073709551616", 0, false},
		{"18446744073709551617", 0, false},
		{"18446744073709551619", 0, false},
		{"-18446744073709551617", 0, false},
		{"18446744073709551615", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"+1", 0, false},
		{"01", 0, false},
		{"-0", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1.5", 0, false},
	} {
		got, err := parseInt64([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseInt64(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestUpdateApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		u       Update
		old     string
		existed bool
		val     string
		applied bool
		err     error
	}{
		{"set", Update{Op: OpSet, Value: []byte("v")}, "", false, "v", true, nil},
		{"set nx absent", Update{Op: OpSet, Value: []byte("v"), Cond: CondNX}, "", false, "v", true, nil},
		{"set nx present", Update{Op: OpSet, Value: []byte("v"), Cond: CondNX}, "o", true, "", false, nil},
		{"set xx absent", Update{Op: OpSet, Value: []byte("v"), Cond: CondXX}, "", false, "", false, nil},
		{"set xx present", Update{Op: OpSet, Value: []byte("v"), Cond: CondXX}, "o", true, "v", true, nil},
		{"incr absent", Update{Op: OpIncr, Delta: 5}, "", false, "5", true, nil},
		{"incr", Update{Op: OpIncr, Delta: -7}, "5", true, "-2", true, nil},
		{"incr not integer", Update{Op: OpIncr, Delta: 1}, "x", true, "", false, ErrNotInteger},
		{"incr overflow", Update{Op: OpIncr, Delta: 1}, "9223372036854775807", true, "", false, ErrOverflow},
		{"decr overflow", Update{Op: OpIncr, Delta: -2}, "-9223372036854775807", true, "", false, ErrOverflow},
		{"append absent", Update{Op: OpAppend, Value: []byte("ab"), MaxValue: 10}, "", false, "ab", true, nil},
		{"append", Update{Op: OpAppend, Value: []byte("cd"), MaxValue: 10}, "ab", true, "abcd", true, nil},
		{"append too large", Update{Op: OpAppend, Value: []byte("cd"), MaxValue: 3}, "ab", true, "", false, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := []byte(tc.old)
			val, res, err := tc.u.Apply(old, tc.existed)
			if !errors.Is(err, tc.err) || res.Applied != tc.applied || (tc.applied && string(val) != tc.val) {
				t.Fatalf("Apply = %q, %+v, %v; want %q, applied=%v, %v", val, res, err, tc.val, tc.applied, tc.err)
			}
			if string(old) != tc.old {
				t.Fatalf("Apply modified old: %q", old)
			}
		})
	}
}
