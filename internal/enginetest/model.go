package enginetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
)

// state is the contents of an engine, or of the model of one: key → value.
type state map[string]string

func (s state) clone() state { return maps.Clone(s) }

func (s state) apply(w write) {
	for _, o := range w.ops {
		if o.del {
			delete(s, o.key)
		} else {
			s[o.key] = o.value
		}
	}
}

func (s state) sortedKeys() []string {
	return slices.Sorted(maps.Keys(s))
}

// op is one entry of a write: a put or a delete.
type op struct {
	del        bool
	key, value string
}

// write is one call that changes an engine: a Put, a Delete or a batch
// Write. Its ops apply in order, all or none.
type write struct {
	id   int // position in the test's sequence of writes, for messages
	ops  []op
	sync bool
	// acked is false for a write whose call failed or was cut by a crash:
	// it may or may not have applied.
	acked bool
}

func (w write) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "write#%d", w.id)
	if w.sync {
		b.WriteString("(sync)")
	}
	if !w.acked {
		b.WriteString("(unacknowledged)")
	}
	b.WriteString(" [")
	for i, o := range w.ops {
		if i > 0 {
			b.WriteString(", ")
		}
		if o.del {
			fmt.Fprintf(&b, "del %s", fmtKey(o.key))
		} else {
			fmt.Fprintf(&b, "put %s=%s", fmtKey(o.key), fmtVal(o.value))
		}
	}
	b.WriteString("]")
	return b.String()
}

// batch returns w as a kvs.Batch.
func (w write) batch() *kvs.Batch {
	b := new(kvs.Batch)
	for _, o := range w.ops {
		if o.del {
			b.Delete([]byte(o.key))
		} else {
			b.Put([]byte(o.key), []byte(o.value))
		}
	}
	return b
}

// history tracks what a crash may leave of an engine's contents. The
// contract (package kvs, "Durability") is prefix-shaped: after a crash the
// engine holds the effect of some prefix of the writes issued, and the
// prefix includes every write acknowledged with Sync. A write that failed
// or was interrupted may or may not be part of it.
//
// history keeps base, the contents every acceptable outcome starts from,
// and log, the writes since. Once a synced write is acknowledged with no
// uncertain write before it, the log folds into base.
type history struct {
	base state
	log  []write
	// minCut is the shortest prefix of log an outcome may keep: it ends
	// just after the last write acknowledged with Sync.
	minCut int
	// live is the contents the engine shows while it runs: base plus every
	// acknowledged write. Meaningless once a write is unacknowledged.
	live state
	// uncertain counts unacknowledged writes in log.
	uncertain int
	// liveExact is false while live may be wrong: after an unacknowledged
	// write, until matchLive learns what the engine shows.
	liveExact bool
	nextID    int
}

func newHistory(base state) *history {
	if base == nil {
		base = state{}
	}
	return &history{base: base.clone(), live: base.clone(), liveExact: true}
}

// add records a write, acknowledged or not, and returns it with its id.
func (h *history) add(w write) write {
	w.id = h.nextID
	h.nextID++
	h.log = append(h.log, w)
	if w.acked {
		h.live.apply(w)
	} else {
		h.uncertain++
		h.liveExact = false
	}
	if w.acked && w.sync {
		if h.uncertain == 0 {
			h.base = h.live.clone()
			h.log = h.log[:0]
			h.minCut = 0
		} else {
			h.minCut = len(h.log)
		}
	}
	return w
}

// durable resets the history to s: contents known to be on disk, such as
// what a recovery found or what a clean Close left.
func (h *history) durable(s state) {
	h.base = s.clone()
	h.live = s.clone()
	h.log = h.log[:0]
	h.minCut = 0
	h.uncertain = 0
	h.liveExact = true
}

// maxUncertain bounds the outcomes match enumerates (2^n subsets).
const maxUncertain = 12

// match reports whether got is an outcome the contract allows: base plus a
// prefix of log at least minCut long, with each unacknowledged write in it
// either applied or not. It returns a description of the outcome matched.
func (h *history) match(got state) (string, bool) {
	return h.matchCuts(got, h.minCut)
}

// matchLive reports whether got is what the running engine may show: base
// plus every write, each unacknowledged one applied or not. On a match it
// makes got the live contents.
func (h *history) matchLive(got state) bool {
	if _, ok := h.matchCuts(got, len(h.log)); !ok {
		return false
	}
	h.live = got.clone()
	h.liveExact = true
	return true
}

func (h *history) matchCuts(got state, minCut int) (string, bool) {
	if h.uncertain > maxUncertain {
		panic(fmt.Sprintf("enginetest: %d unacknowledged writes in one history", h.uncertain))
	}
	var unsure []int // indexes of unacknowledged writes in log
	for i, w := range h.log {
		if !w.acked {
			unsure = append(unsure, i)
		}
	}
	for cut := len(h.log); cut >= minCut; cut-- {
		n := 0 // unacknowledged writes before cut
		for n < len(unsure) && unsure[n] < cut {
			n++
		}
		for mask := 0; mask < 1<<n; mask++ {
			s := h.base.clone()
			j := 0
			for i := 0; i < cut; i++ {
				w := h.log[i]
				if !w.acked {
					applied := mask&(1<<j) != 0
					j++
					if !applied {
						continue
					}
				}
				s.apply(w)
			}
			if maps.Equal(s, got) {
				return fmt.Sprintf("the first %d of %d writes since the last durable point (unacknowledged ones applied: mask %b)", cut, len(h.log), mask), true
			}
		}
	}
	return "", false
}

// explain describes why got matches no allowed outcome: what it holds that
// the fullest and the barest allowed outcomes do not.
func (h *history) explain(got state) string {
	var b strings.Builder
	full := h.base.clone()
	for _, w := range h.log {
		full.apply(w)
	}
	fmt.Fprintf(&b, "recovered %d keys; durable base has %d; %d writes since it (outcome must keep at least the first %d):\n",
		len(got), len(h.base), len(h.log), h.minCut)
	for _, w := range h.log {
		fmt.Fprintf(&b, "  %v\n", w)
	}
	b.WriteString("difference from the durable base plus every write:\n")
	b.WriteString(diffStates(full, got))
	return b.String()
}

// diffStates lists the keys where got differs from want.
func diffStates(want, got state) string {
	var b strings.Builder
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	n := 0
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		w, wok := want[k]
		g, gok := got[k]
		if wok == gok && w == g {
			continue
		}
		n++
		if n > 30 {
			b.WriteString("  ...\n")
			break
		}
		ws, gs := "absent", "absent"
		if wok {
			ws = fmtVal(w)
		}
		if gok {
			gs = fmtVal(g)
		}
		fmt.Fprintf(&b, "  %s: want %s, got %s\n", fmtKey(k), ws, gs)
	}
	if n == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}

// readAll returns r's whole contents, read with a forward scan. It checks
// that keys come in increasing order and that Get agrees with the scan for
// every key found and for every key of probe not found (nil probe: none).
func readAll(t testing.TB, r kvs.Reader, probe []string) state {
	t.Helper()
	s, err := scanAll(r)
	if err != nil {
		t.Fatalf("full scan: %v", err)
	}
	for k, v := range s {
		checkGet(t, r, k, v, true)
	}
	for _, k := range probe {
		if _, ok := s[k]; !ok {
			checkGet(t, r, k, "", false)
		}
	}
	return s
}

// scanAll reads r's whole contents with a forward scan, checking order.
func scanAll(r kvs.Reader) (state, error) {
	it, err := r.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("new iterator: %w", err)
	}
	s := state{}
	var prev []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			it.Close()
			return nil, fmt.Errorf("scan returned %s after %s: keys out of order", fmtKey(string(k)), fmtKey(string(prev)))
		}
		prev = append(prev[:0], k...)
		s[string(k)] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	return s, nil
}

// checkState fails t unless r holds exactly want.
func checkState(t testing.TB, r kvs.Reader, want state, probe []string) {
	t.Helper()
	got := readAll(t, r, probe)
	if !maps.Equal(got, want) {
		t.Fatalf("contents differ from the model:\n%s", diffStates(want, got))
	}
}

// checkRecovered fails t unless r's contents are an outcome h allows, and
// returns them.
func checkRecovered(t testing.TB, r kvs.Reader, h *history, probe []string, what string) state {
	t.Helper()
	got := readAll(t, r, probe)
	if _, ok := h.match(got); !ok {
		t.Fatalf("%s: recovered contents are not the durable base plus a prefix of the writes that keeps every synced one:\n%s", what, h.explain(got))
	}
	return got
}

// isNotFound reports whether err says the key is absent.
func isNotFound(err error) bool { return errors.Is(err, kvs.ErrNotFound) }

// runPattern turns a test name into a -run pattern matching just it.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
