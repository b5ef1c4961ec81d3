package memtable_test

import (
	"errors"
	"fmt"

	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/memtable"
)

func Example() {
	m := memtable.New(1 << 20)
	for _, e := range []struct {
		key   string
		seq   uint64
		kind  base.Kind
		value string
	}{
		{"apple", 1, base.KindSet, "red"},
		{"banana", 2, base.KindSet, "yellow"},
		{"apple", 3, base.KindSet, "green"},
		{"banana", 4, base.KindDelete, ""},
	} {
		err := m.Add(base.MakeInternalKey([]byte(e.key), e.seq, e.kind), []byte(e.value))
		if errors.Is(err, memtable.ErrArenaFull) {
			return // an engine would rotate to a new memtable here
		}
	}

	// Get reads as of a snapshot: seq 2 does not see seq 3 and 4.
	v, kind, found := m.Get([]byte("apple"), 2)
	fmt.Println("apple@2:", string(v), kind, found)
	_, kind, found = m.Get([]byte("banana"), 4)
	fmt.Println("banana@4:", kind, found)

	// An iterator shows every version, newest first within a user key.
	it := m.NewIter(nil, nil)
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Printf("%s %q\n", it.Key(), it.Value())
	}
	fmt.Println(m.Len(), "entries, close error:", it.Close())
	// Output:
	// apple@2: red SET true
	// banana@4: DEL true
	// "apple"#3,SET "green"
	// "apple"#1,SET "red"
	// "banana"#4,DEL ""
	// "banana"#2,SET "yellow"
	// 4 entries, close error: <nil>
}
