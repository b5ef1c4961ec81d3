// Package vfs is the file system every kvs engine goes through. Going
// through an interface, rather than calling package os, lets tests run an
// engine on an in-memory file system that can simulate a machine crash
// (MemFS.CrashClone keeps only what was fsynced, directory entries
// included) and fail chosen operations with ENOSPC or EIO (Inject).
//
// Implementations:
//
//	vfs.Default        the operating system's file system
//	vfs.NewMem()       an in-memory file system with crash simulation
//	vfs.Inject(fs, i)  wraps any FS, failing the operations i picks
//
// Crash model. A file's contents survive a crash only up to its last
// File.Sync; a directory entry (a create, rename or remove) survives only
// once the directory itself is synced (SyncDir). This is what POSIX
// promises and what ext4 and xfs deliver, so an engine that is correct on
// MemFS is correct on a real disk.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// File is an open file. Read, Write and Seek share one offset; ReadAt
// does not touch it and may be called concurrently with Write.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Stat returns the file's size and mode.
	Stat() (os.FileInfo, error)
	// Sync makes the file's contents durable (fsync).
	Sync() error
	// Truncate changes the file's size. It does not move the offset.
	Truncate(size int64) error
	// Seek sets the offset for the next Read or Write.
	Seek(offset int64, whence int) (int64, error)
}

// FS is a file system. Paths are slash- or OS-separated as PathJoin builds
// them; every method is safe for concurrent use.
type FS interface {
	// Create creates name for writing (and reading), truncating it if it
	// exists.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing; the
	// offset starts at 0.
	OpenReadWrite(name string) (File, error)
	// OpenDir opens a directory so it can be synced.
	OpenDir(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes name and everything under it; a missing name is
	// not an error.
	RemoveAll(name string) error
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// Lock takes an exclusive lock on name, creating the file if needed.
	// It fails with an error wrapping ErrLocked when another holder (this
	// process or another) has it. Close releases it.
	Lock(name string) (io.Closer, error)
	// List returns the names (not paths) of dir's entries, sorted.
	List(dir string) ([]string, error)
	// Stat describes name.
	Stat(name string) (os.FileInfo, error)
	// PathJoin joins path elements.
	PathJoin(elem ...string) string
	// PathBase returns the last element of path.
	PathBase(path string) string
	// PathDir returns all but the last element of path.
	PathDir(path string) string
}

// ErrLocked is wrapped by FS.Lock when the lock is held elsewhere.
var ErrLocked = errors.New("vfs: lock held by another process")

// SyncDir fsyncs directory dir, making the creates, renames and removes in
// it durable.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("vfs: open dir %s for sync: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("vfs: sync dir %s: %w", dir, err)
	}
	return d.Close()
}
