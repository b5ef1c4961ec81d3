package lsm

import (
	"fmt"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// TestReadModes fills an engine on the operating system's file system
// with small memtables and tables, so that flushes and compactions make
// many tables, and checks every key after writing, after a full Compact
// and after a reopen, in both read modes: with "mmap" every table is read
// through a memory map, with "pread" none is.
func TestReadModes(t *testing.T) {
	for _, mode := range []string{kvs.ReadModeMmap, kvs.ReadModePread} {
		t.Run("mode="+mode, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *DB {
				db, err := OpenWith(dir, &kvs.Options{FS: vfs.Default, Logger: kvs.DiscardLogger(), ReadMode: mode}, smallOptions())
				if err != nil {
					t.Fatal(err)
				}
				return db
			}
			db := open()
			m := model{}
			for i := range 4000 {
				k, v := fmt.Sprintf("key%05d", i%1500), fmt.Sprintf("value-%d", i)
				if err := db.Put([]byte(k), []byte(v), kvs.NoSync); err != nil {
					t.Fatal(err)
				}
				m[k] = v
			}
			check := func(step string) {
				t.Helper()
				checkModel(t, db, m)
				rs, _, err := db.loadReadState()
				if err != nil {
					t.Fatal(err)
				}
				defer rs.unref()
				n := 0
				for _, tables := range rs.levels {
					for _, tb := range tables {
						n++
						if tb.r.Mapped() != (mode == kvs.ReadModeMmap) {
							t.Errorf("%s: table %d mapped = %v in mode %s", step, tb.meta.FileNum, tb.r.Mapped(), mode)
						}
					}
				}
				if n == 0 {
					t.Fatalf("%s: no tables", step)
				}
			}
			check("after writes")
			if err := db.Compact(); err != nil {
				t.Fatal(err)
			}
			check("after compact")
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = open()
			defer db.Close()
			check("after reopen")
		})
	}
}
