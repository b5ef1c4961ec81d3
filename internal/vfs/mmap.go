package vfs

import (
	"errors"
	"fmt"
	"math"
	"os"
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
