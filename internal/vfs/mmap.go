package vfs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"syscall"
)

// ErrNoMmap is returned by Mmap for a file that cannot be memory-mapped:
// one that is not an operating-system file (a MemFS file, or one wrapped
// to inject faults) or a length the platform cannot map.
var ErrNoMmap = errors.New("vfs: file cannot be memory-mapped")

// Mmap maps the first length bytes of f read-only and shared, so that the
// mapping shows what is written to the file later through f (on Linux and
// the BSDs the page cache is one for both). length may run past the end
// of the file, for a file that will grow; reading a page of the mapping
// that lies wholly past the end raises SIGBUS, so callers read only bytes
// they know are in the file. Unmap the slice with Munmap once nothing
// reads it, before or after closing f.
func Mmap(f File, length int64) ([]byte, error) {
	of, ok := f.(*os.File)
	if !ok {
		return nil, ErrNoMmap
	}
	if length <= 0 || uint64(length) > math.MaxInt || (^uint(0)>>32) == 0 {
		// NB: a 32-bit address space cannot hold segment-sized maps.
		return nil, ErrNoMmap
	}
	b, err := syscall.Mmap(int(of.Fd()), 0, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("vfs: mmap %s (%d bytes): %w", of.Name(), length, err)
	}
	return b, nil
}

// Munmap removes a mapping made by Mmap.
func Munmap(b []byte) error {
	if b == nil {
		return nil
	}
	if err := syscall.Munmap(b); err != nil {
		return fmt.Errorf("vfs: munmap: %w", err)
	}
	return nil
}

// CatchFault runs read, which reads memory of a map made by Mmap, and
// returns an error instead of letting a fault kill the process: reading a
// page of a file that was cut short under the map, or that the disk failed
// to page in, raises SIGBUS. Only such faults are caught (their panic
// value has an Addr method, see debug.SetPanicOnFault); any other panic
// in read goes on, as it would without CatchFault.
func CatchFault(read func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = fmt.Errorf("a fault reading a memory map (was the file cut short, or did the disk fail?): %v", r)
		}
	}()
	read()
	return nil
}
