// Package kvs defines the contract every kvs storage engine meets: the Engine
// interface, Batch, Iterator, Snapshot, Options, Stats and the typed errors,
// plus a registry so engines are opened by name:
//
//	e, err := kvs.Open("bitcask", dir, nil)
//	if err != nil { ... }
//	defer e.Close()
//	err = e.Put([]byte("k"), []byte("v"), kvs.WriteOptions{Sync: true})
//
// Engines live in their own packages (bitcask, lsm) and register themselves in
// an init function, so a program links an engine by importing it for effect:
//
//	import _ "github.com/kvs-lab/kvs/bitcask"
//
// # Durability
//
// A write acknowledged with WriteOptions{Sync: true} survives a crash of the
// process or of the machine. Durability is prefix-shaped: after a crash the
// engine holds the effect of some prefix of the acknowledged writes, and that
// prefix contains every write acknowledged with Sync (and so everything
// acknowledged before it). A Batch is applied entirely or not at all, also
// across a crash. Concurrent synced writers share one fsync (group commit)
// unless Options.DisableGroupCommit is set.
//
// # Concurrency
//
// An Engine is safe for concurrent use by many goroutines. An Iterator or a
// Batch belongs to one goroutine at a time. A Snapshot is safe for concurrent
// reads.
package kvs
