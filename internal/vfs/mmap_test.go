package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestMmapAndCatchFault maps a file, reads it through the map, cuts the
// file short under the map and checks that reading past the cut is an
// error from CatchFault, not a dead process; a panic that is not a fault
// still goes through.
func TestMmapAndCatchFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Default.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Mmap(f, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer Munmap(m)
	var got byte
	if err := CatchFault(func() { got = m[40000] }); err != nil || got != data[40000] {
		t.Fatalf("read through the map: %d, %v", got, err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	if err := CatchFault(func() { got = m[40000] }); err == nil {
		t.Fatal("a read past the cut was not reported")
	}
	defer func() {
		if r := recover(); r == nil || r.(error).Error() != "not a fault" {
			t.Fatalf("recovered %v, want the panic that is not a fault", r)
		}
	}()
	_ = CatchFault(func() { panic(errors.New("not a fault")) })
}

// TestMmapRefusesMemFS: a MemFS file has no descriptor to map.
func TestMmapRefusesMemFS(t *testing.T) {
	fs := NewMem()
	f, err := fs.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Mmap(f, 10); !errors.Is(err, ErrNoMmap) {
		t.Fatalf("Mmap of a MemFS file: %v, want ErrNoMmap", err)
	}
}
