// Package enginetest is the conformance suite every kvs engine passes: it
// checks an engine, opened by its registered name, against the contract of
// package kvs (the Engine, Iterator and Snapshot documentation and the
// "Durability" section of the package doc). It is used the way
// testing/fstest is: the engine's own test calls it.
//
//	package bitcask_test
//
//	import (
//		"testing"
//
//		"github.com/kvs-lab/kvs"
//		_ "github.com/kvs-lab/kvs/bitcask"
//		"github.com/kvs-lab/kvs/internal/enginetest"
//	)
//
//	func TestEngineConformance(t *testing.T) {
//		enginetest.Run(t, enginetest.Config{
//			Engine:       "bitcask",
//			Options:      func() *kvs.Options { return &kvs.Options{} },
//			CrashOptions: func() *kvs.Options { return &kvs.Options{Bitcask: kvs.BitcaskOptions{MaxSegmentBytes: 4 << 10}} },
//		})
//	}
//
//	func TestSyncedWritesSurviveSIGKILL(t *testing.T) {
//		enginetest.RunKillTest(t, enginetest.Config{Engine: "bitcask"})
//	}
//
// # What the suite proves
//
// Run's subtests, each independent and parallel:
//
//   - PointOps: Get of an absent key is kvs.ErrNotFound; put, overwrite,
//     delete (also of an absent key); empty and 1 MiB values; binary keys;
//     returned slices belong to the caller and the caller may reuse its
//     own after a call returns.
//   - Limits: empty key, key of MaxKeySize (accepted) and MaxKeySize+1,
//     value over MaxValueSize, each with its error; a batch with one bad
//     entry is rejected whole.
//   - Batches: entries apply in order (the last for a key wins); readers
//     on iterators and snapshots never see part of a batch (transfers
//     between accounts keep a fixed sum).
//   - Iterators: order, bounds [lower, upper), SeekGE and SeekLT inside,
//     before, after and at the bounds, direction changes, empty ranges,
//     the point-in-time view, Close twice; and random moves compared
//     against a sorted model while random writes go on.
//   - Snapshots: isolation from later overwrites and deletes, also while
//     a writer runs concurrently; a snapshot held across Compact; Close.
//   - Reopen: contents survive Close and Open (on the in-memory and the
//     real file system), after Compact, over many cycles; Close makes
//     everything durable.
//   - CrashRecovery: the randomized model-based crash test. Seeded runs of
//     random puts, deletes and batches (synced or not), checked reads,
//     iterators, held snapshots, Compacts and reopens, each round ending in
//     a simulated power loss: a vfs.MemFS crash image taken between calls,
//     or in the middle of one (a write, Compact, Close or Open) by an
//     injector that clones the file system at a random operation, with or
//     without a torn page cache (CrashCloneRandom); sometimes recovery
//     itself is crashed. The recovered contents must equal the model after
//     some prefix of the writes that keeps every write acknowledged with
//     Sync; an interrupted write may be in or out, as a whole.
//   - IOErrors: a fixed workload is run once to count its file system
//     operations, then, for each operation (or a seeded sample, see
//     Config.FaultPoints), with ENOSPC (half-written) or EIO injected at
//     that operation, once or from then on. The call that meets the error
//     must return an error wrapping it (or kvs.ErrFailed), never panic or
//     hang; nothing it reports must be wrong. One more synced write
//     follows; if the engine takes it, it claims to have got over the
//     error and must run the rest of the workload correctly. Then, with
//     injection off, crash images taken at the failure, after the extra
//     write and after the rest of the workload, and the directory after
//     Close, must each open (an Open that failed on an injected error
//     must not stop the next one), hold an outcome the prefix rule
//     allows, and accept a synced write that survives another crash.
//   - Concurrency: goroutines owning disjoint key ranges mix every call
//     while Compact and full scans run; each reads its own writes
//     exactly, and the end state is the union of their models. Meant to
//     run under -race.
//   - GroupCommit: many goroutines writing with Sync (with and without
//     DisableGroupCommit) are all acknowledged and survive a crash image.
//   - OpenClose: a second Open of a directory in use fails with
//     kvs.ErrLocked; every call on a closed engine returns kvs.ErrClosed;
//     ErrorIfNotExist; a directory holding foreign files or another
//     engine's is refused with kvs.ErrNotKVSDir.
//
// RunKillTest adds the real thing: a child process writing with Sync on
// the operating system's file system is killed with SIGKILL (sometimes in
// the middle of a Compact), and every write it acknowledged must be there
// after reopening, with nothing else but the one write in flight.
//
// Tests never assert speed. The whole suite takes seconds with -short on
// an engine kept on vfs.MemFS.
//
// # Failures and seeds
//
// Every randomized test logs its seed and, when it fails, the command that
// replays it:
//
//	go test ./bitcask -run 'TestEngineConformance/index=hash/CrashRecovery' -enginetest.seed=1234567
//
// With -enginetest.seed (or the environment variable KVS_ENGINETEST_SEED,
// handy with go test ./...) every randomized test runs that one seed only;
// the crash test runs one seeded run of ten rounds. Crash test runs are
// subtests named seed=N. Replays are exact for what runs on one goroutine;
// the concurrent tests and the kill test also depend on scheduling.
//
// # Adding an engine
//
// Register the engine with kvs.Register, then call Run (and RunKillTest)
// from its package's tests with Config.Engine set to its name. Give
// Config.CrashOptions options that make the engine change its files often
// (small segments, small memtables) so that crashes land in rotations,
// flushes and compactions. An engine that fails must be fixed, not the
// suite: each check follows from a sentence of the kvs documentation.
package enginetest
