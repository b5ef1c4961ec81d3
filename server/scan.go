package server

import (
	"container/list"
	"math/rand/v2"
	"sync"
)

// SCAN cursors. go-redis and most clients parse a SCAN cursor as an
// unsigned 64-bit number, so the cursor cannot carry the next key itself
// (keys are up to 64 KiB of any bytes). Instead the server keeps a table
// from a random cursor number to the key the next call resumes at: a call
// with that cursor seeks to the key and walks on in key order. Every key
// that exists for the whole scan is returned exactly once, whatever is
// written between calls; keys added or removed meanwhile may or may not
// appear, as in Redis. "0" starts a scan and is returned when it ends.
//
// The table is bounded (cursorMaxEntries, cursorMaxBytes) and evicts the
// least recently used cursor first; a forgotten or unknown cursor gets
// "ERR invalid cursor". A call that resumes cursor X and returns Y moves X
// to the eviction end rather than deleting it: a client may still retry
// the call (until X is evicted), but X goes before any live cursor of
// another scan, so the live cursors are about one per scan in progress
// and one client's long scan cannot evict another's.
const (
	cursorMaxEntries = 4096
	cursorMaxBytes   = 16 << 20
)

type cursorTable struct {
	mu    sync.Mutex
	keys  map[uint64]*list.Element // of *cursorEntry
	lru   list.List                // front: most recently used
	bytes int
}

type cursorEntry struct {
	id  uint64
	key []byte
}

func (t *cursorTable) init() { t.keys = make(map[uint64]*list.Element) }

// advance records that a call resumed cursor prev (0: a new scan) and
// returns the cursor for next, the key the following call resumes at; a
// nil next (the scan ended) stores nothing and returns 0. prev moves to
// the eviction end.
func (t *cursorTable) advance(prev uint64, next []byte) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.keys[prev]; ok {
		t.lru.MoveToBack(el)
	}
	if next == nil {
		return 0
	}
	var id uint64
	for id == 0 || t.keys[id] != nil {
		id = rand.Uint64() >> 1 // keep it positive for clients that parse int64
	}
	for t.lru.Len() > 0 && (t.lru.Len() >= cursorMaxEntries || t.bytes+len(next) > cursorMaxBytes) {
		old := t.lru.Remove(t.lru.Back()).(*cursorEntry)
		t.bytes -= len(old.key)
		delete(t.keys, old.id)
	}
	t.keys[id] = t.lru.PushFront(&cursorEntry{id: id, key: next})
	t.bytes += len(next)
	return id
}

// get returns the key cursor id resumes at, and marks it used.
func (t *cursorTable) get(id uint64) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.keys[id]
	if !ok {
		return nil, false
	}
	t.lru.MoveToFront(el)
	return el.Value.(*cursorEntry).key, true
}

// globMatch reports whether s matches the Redis glob pattern p, byte by
// byte as Redis's stringmatchlen does: '*' any run, '?' one byte,
// "[abc]", "[^a-z]" classes, '\' escapes the next byte. It backtracks only
// to the last '*', which is enough because every other token matches one
// byte, so it runs in O(len(p)*len(s)) and cannot be made to explode.
func globMatch(p, s []byte) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				starP, starS = pi, si
				continue
			case '?':
				pi++
				si++
				continue
			case '[':
				if n, ok := matchClass(p[pi:], s[si]); n > 0 && ok {
					pi += n
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi += 2
						si++
						continue
					}
				} else if s[si] == '\\' {
					pi++
					si++
					continue
				}
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches b against the class at the start of p ("[...]") and
// returns the class's length in p. An unterminated class runs to the end
// of the pattern, as in Redis.
func matchClass(p []byte, b byte) (int, bool) {
	i := 1
	not := false
	if i < len(p) && p[i] == '^' {
		not = true
		i++
	}
	match := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			if p[i] == b {
				match = true
			}
		case i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= b && b <= hi {
				match = true
			}
			i += 2
		default:
			if p[i] == b {
				match = true
			}
		}
		i++
	}
	if i < len(p) {
		i++ // the ']'
	}
	return i, match != not
}
