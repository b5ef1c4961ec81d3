// Package memtable holds the LSM tree's in-memory table: a sorted set of
// internal keys (user key, sequence number, kind) with their values, kept
// in a concurrent skiplist whose nodes live in one fixed-size arena. The
// engine adds every write to the mutable memtable, reads it before the
// sstables, and flushes it to an sstable once its arena is full.
//
//	m := memtable.New(64 << 20)
//	err := m.Add(base.MakeInternalKey([]byte("k"), 7, base.KindSet), []byte("v"))
//	if errors.Is(err, memtable.ErrArenaFull) {
//		// rotate: make m immutable, flush it, add to a new memtable
//	}
//	v, kind, found := m.Get([]byte("k"), 7) // "v", KindSet, true
//	it := m.NewIter(nil, nil)
//	for ok := it.First(); ok; ok = it.Next() {
//		fmt.Println(it.Key(), it.Value())
//	}
//
// # The skiplist
//
// A skiplist (Pugh, "Skip Lists: A Probabilistic Alternative to Balanced
// Trees", CACM 33(6), 1990) is a sorted linked list (level 0) with sparser
// express lists above it. Each node gets a random height: it is on level i
// with probability p^i, here p = 1/2 (LevelDB uses 1/4; node.go says why
// not), so level i holds about n/2^i nodes. A search starts at the top
// level of the head node, runs right while the next node sorts before the
// target, and drops a level when it would overshoot; it visits O(log n)
// nodes on average:
//
//	level 3  head ─────────────────────────────────────► c#4 ─────────────────────► nil
//	level 2  head ──────────────────► b#9 ─────────────► c#4 ─────────────────────► nil
//	level 1  head ─────► a#3 ───────► b#9 ─────────────► c#4 ────────► d#2 ───────► nil
//	level 0  head ─► a#7 ─► a#3 ─► b#9 ─► b#8(DEL) ─► b#1 ─► c#4 ─► c#2 ─► d#2 ─► e#5 ─► nil
//
// Entries sort by user key ascending, then by trailer (seq << 8 | kind)
// descending, so the versions of one user key sit together, newest first
// (base.InternalCompare). A reader at snapshot s seeks to (key, s, KindMax)
// and takes the first entry: the newest version with seq <= s.
//
// # Node layout in the arena
//
// The arena is one []byte; nodes, keys and values are carved from it by
// bumping an offset, and links are uint32 offsets into it (0 is nil). A
// node is named by the offset nd of its header; its tower of h links lies
// just below, so the links every search reads share a cache line with the
// key, and the node needs no height field:
//
//	arena: | head node | node | node | ...     free     |
//	       0                              Size()    Capacity()
//
//	one node, h = 3 (allocation of 4h + 16 + len(key) + len(value) bytes, rounded up to 4):
//	+---------+---------+---------+-------------+---------+-----------+----------+-------+-----+
//	| next[2] | next[1] | next[0] | trailer     | keyLen  | valueLen  | user key | value | pad |
//	| u32     | u32     | u32     | u64 LE      | u32 LE  | u32 LE    | keyLen B | valLen| 0-3 |
//	+---------+---------+---------+-------------+---------+-----------+----------+-------+-----+
//	nd-12     nd-8      nd-4      nd            nd+8      nd+12       nd+16
//
// The head node is a node of the maximum height (16) with an empty key; a
// new memtable's Size is its 80 bytes (EmptySize). Every node is a multiple
// of 4 bytes and the arena starts 8-byte aligned, so every link is aligned
// for atomic access, and offset 0, which lies inside the head's tower, is
// never a node.
//
// # Size accounting
//
// Size is exact: the arena bytes handed out. Each successful Add adds its
// node's size, align4(4h + 16 + len(user key) + len(value)) with h its
// random height (2 on average), so an entry costs 16 + 8 bytes on top
// of its key and value, plus at most 3 bytes of padding: 140.0 bytes on
// average for a 16-byte key and a 100-byte value (BenchmarkAdd). Size never
// exceeds Capacity. Add returns ErrArenaFull, adding nothing, when the node
// does not fit: the engine then rotates. An entry that might not fit even
// an empty memtable of this capacity (its node at the maximum height would
// not) gets ErrEntryTooLarge instead, so rotating never loops.
//
// # Concurrency
//
// Readers (Get, iterators) take no lock and never block or wait: they read
// links with atomic loads. Add is safe for concurrent use too; adders
// coordinate only through compare-and-swap:
//
//  1. Search for the splice: at each level, the last node before the new
//     key and the first after it. An equal internal key already there is
//     rejected with ErrKeyExists.
//  2. Allocate the node (the arena offset moves by CAS) and write its
//     header, key and value. No reader can reach it yet.
//  3. Raise the list height (CAS) if the node is taller than the list.
//  4. Link it bottom-up. At level i, store the node's own next[i], then CAS
//     prev.next[i] from the old successor to the node. The atomic store that
//     publishes a link orders every earlier write (key, value, lower links)
//     before any reader's atomic load that finds the node, so readers see
//     nodes whole. If the CAS fails, another adder linked a node there:
//     search level i again from prev (nodes are never removed, so prev
//     still sorts before the key) and retry.
//
// Once linked at level 0 an entry is in the list for good; the higher links
// only speed up searches, and a search that misses a link that is not there
// yet just walks further on a lower level. Nothing is ever unlinked or
// overwritten, so there is no ABA problem and no memory to reclaim while
// readers run: the arena is dropped whole, by the garbage collector, when
// no memtable, iterator or returned slice refers to it.
//
// # The filter
//
// Beside the arena, each memtable keeps a blocked bloom filter of the
// user keys added (filter.go), sized at 10 bits per 64 arena bytes. Add
// sets a key's bits before it links the node; Get checks them first and
// answers "not found" without a search when the filter rules the key out.
// An LSM Get asks every memtable before any table, so in a read-mostly
// store this saves most memtable searches. MayContain exposes the check
// for engines that count it; FilterBytes its memory.
//
// # Costs
//
// For n entries: Add, Get, SeekGE, SeekLT, First and Last are O(log n)
// expected; Next is O(1); Prev is O(log n) expected, because nodes have no
// back links and Prev searches for the predecessor from the head. Size,
// Len and Empty are O(1); a Get of a key the filter rules out is O(1)
// too. The memory is the arena and the filter, both fixed at New.
package memtable
