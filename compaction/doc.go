// Package compaction decides what an LSM tree compacts next. It holds pure
// functions over table metadata: no I/O, no locks, so every decision can be
// tested in a table test and explained on paper. The lsm package runs the
// compactions it picks.
//
// # Leveled compaction
//
// Tables live in levels L0 … L6. L0 holds whole memtable flushes, which may
// overlap each other; every deeper level is one sorted run of
// non-overlapping tables. Each level has a target size, growing by
// LevelMultiplier (10) per level from BaseLevelBytes at L1:
//
//	L0  ▮▮▮▮            trigger: L0CompactionTrigger files (score = files / trigger)
//	L1  ▮▮▮▮▮           target   32 MiB  (score = bytes / target)
//	L2  ▮▮▮▮▮▮▮▮▮▮▮     target  320 MiB
//	L3  ...             target  3.2 GiB
//
// Each level gets a score; the level with the highest score of at least 1
// is compacted into the next. From L0, every L0 table overlapping the
// chosen ones joins (they may overlap each other); from Ln, one table is
// chosen, round-robin through the key space (a compact pointer per level,
// as in LevelDB). The tables of the next level that overlap the inputs'
// key range join too. When nothing in the next level overlaps, and the
// move would not create a table overlapping too much of the level after
// that, the table is moved down without rewriting it (a trivial move).
//
// # Size-tiered compaction
//
// The second policy, for experiments, keeps every table in L0 as a sorted
// run and merges runs of similar size (the scheme of Cassandra's STCS and
// RocksDB's universal compaction, in its simplest form): fewer rewrites per
// byte (lower write amplification) for more runs to read (higher read and
// space amplification). See Tiered.
package compaction
