package vfs

import (
	"errors"
	"testing"
)

func TestOSLockConflictsWithinOneProcess(t *testing.T) {
	name := Default.PathJoin(t.TempDir(), "LOCK")
	l, err := Default.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := Default.Lock(name); !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock %d while held = %v; want ErrLocked", i+2, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Default.Lock(name)
	if err != nil {
		t.Fatalf("Lock after release = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
