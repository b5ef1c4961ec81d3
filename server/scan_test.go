package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestGlobMatchLikeRedis(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h*llo", "heeeello", true},
		{"h*llo", "hello!", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true},
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{`[\]]`, "]", true},
		{"user:*:name", "user:42:name", true},
		{"user:*:name", "user:42:age", false},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
		{"\xff*", "\xff\x00\r\n", true},
		{"?", "\xc3\xa9", false}, // bytes, not runes
		{"??", "\xc3\xa9", true},
		{"[", "[", false},
		{"a*", "b", false},
		{"", "", true},
		{"", "a", false},
	} {
		if got := globMatch([]byte(tc.pattern), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
	// A pathological pattern finishes quickly (no exponential backtracking).
	long := make([]byte, 4000)
	for i := range long {
		long[i] = 'a'
	}
	if globMatch([]byte("*a*a*a*a*a*a*a*a*a*a*b"), long) {
		t.Error("pathological pattern matched")
	}
}

// scanAll runs a full SCAN, calling between after each page.
func scanAll(t *testing.T, rdb *redis.Client, match string, count int64, between func(page int)) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	var cursor uint64
	for page := 0; ; page++ {
		ks, next, err := rdb.Scan(ctx, cursor, match, count).Result()
		if err != nil {
			t.Fatalf("SCAN %d: %v", cursor, err)
		}
		keys = append(keys, ks...)
		if next == 0 {
			return keys
		}
		if page > 10000 {
			t.Fatal("SCAN does not end")
		}
		cursor = next
		if between != nil {
			between(page)
		}
	}
}

func TestScanReturnsEveryKeyOnceInOrder(t *testing.T) {
	for _, eng := range engines {
		t.Run("engine="+eng, func(t *testing.T) {
			ts := startServer(t, eng, t.TempDir(), SyncNone, nil)
			rdb := newClient(t, ts.addr, nil)
			ctx := context.Background()
			// Keys of any bytes: NUL, CR LF, 0xff, a key that is a prefix
			// of another.
			want := []string{"\x00", "\x00\x00", "a", "a\r\nb", "ab", "b\xff", "\xff", "\xff\xff\xff"}
			for i := range 50 {
				want = append(want, "user:"+strconv.Itoa(i))
			}
			for _, k := range want {
				if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(want)
			// Writes between calls: keys added and deleted that are not
			// in want must not disturb the ones that are.
			got := scanAll(t, rdb, "", 3, func(page int) {
				rdb.Set(ctx, fmt.Sprintf("user:%d:tmp", page), "x", 0)
				rdb.Del(ctx, fmt.Sprintf("user:%d:tmp", page-1))
			})
			var kept []string
			for _, k := range got {
				if slices.Contains(want, k) {
					kept = append(kept, k)
				}
			}
			if !slices.Equal(kept, want) {
				t.Fatalf("SCAN returned\n%q\nwant\n%q", kept, want)
			}
			if !slices.IsSorted(got) {
				t.Fatalf("SCAN not in key order: %q", got)
			}
			matched := scanAll(t, rdb, "user:1?", 7, nil)
			wantMatched := []string{"user:10", "user:11", "user:12", "user:13", "user:14", "user:15", "user:16", "user:17", "user:18", "user:19"}
			if !slices.Equal(matched, wantMatched) {
				t.Fatalf("SCAN MATCH user:1? = %q", matched)
			}
			// COUNT bounds the keys examined: a page may be empty while the
			// cursor goes on.
			ks, next, err := rdb.Scan(ctx, 0, "nomatch*", 5).Result()
			if err != nil || len(ks) != 0 || next == 0 {
				t.Fatalf("SCAN 0 MATCH nomatch* COUNT 5 = %q, %d, %v", ks, next, err)
			}
			// A cursor may be repeated (a client retrying).
			ks2, next2, err := rdb.Scan(ctx, next, "", 2).Result()
			ks3, next3, err3 := rdb.Scan(ctx, next, "", 2).Result()
			if err != nil || err3 != nil || !slices.Equal(ks2, ks3) || len(ks2) != 2 || next2 == 0 || next3 == 0 {
				t.Fatalf("repeated cursor: %q %d %v / %q %d %v", ks2, next2, err, ks3, next3, err3)
			}
			for _, bad := range []string{"x", "-1", "12345"} {
				if err := rdb.Do(ctx, "SCAN", bad).Err(); err == nil || err.Error() != "ERR invalid cursor" {
					t.Errorf("SCAN %s: %v", bad, err)
				}
			}
			if err := rdb.Do(ctx, "SCAN", "0", "COUNT", "0").Err(); err == nil || err.Error() != "ERR syntax error" {
				t.Errorf("SCAN COUNT 0: %v", err)
			}
			if err := rdb.Do(ctx, "SCAN", "0", "MATCH").Err(); err == nil || err.Error() != "ERR syntax error" {
				t.Errorf("SCAN MATCH without pattern: %v", err)
			}
		})
	}
}

func TestCursorTableIsBounded(t *testing.T) {
	var tab cursorTable
	tab.init()
	first := tab.advance(0, []byte("first"))
	for i := range cursorMaxEntries {
		tab.advance(0, []byte(strconv.Itoa(i)))
	}
	if _, ok := tab.get(first); ok {
		t.Fatal("oldest cursor kept past cursorMaxEntries")
	}
	if len(tab.keys) != cursorMaxEntries || tab.lru.Len() != cursorMaxEntries {
		t.Fatalf("%d keys, %d in the lru list", len(tab.keys), tab.lru.Len())
	}
	big := make([]byte, cursorMaxBytes/2+1)
	tab.advance(0, big)
	id := tab.advance(0, big)
	if k, ok := tab.get(id); !ok || len(k) != len(big) || tab.bytes > cursorMaxBytes {
		t.Fatalf("bytes %d over the bound", tab.bytes)
	}
}
