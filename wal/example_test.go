package wal_test

import (
	"fmt"
	"io"

	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/wal"
)

// Example writes a log, crashes the machine, and reads back what a
// synced write made durable.
func Example() {
	fs := vfs.NewMem()
	f, err := fs.Create("/000007.log")
	if err != nil {
		panic(err)
	}
	if err := vfs.SyncDir(fs, "/"); err != nil { // the file's name must survive too
		panic(err)
	}
	w := wal.NewWriter(f, 7)
	w.WriteRecord([]byte("first"))
	w.SyncRecord([]byte("second")) // durable, and so is everything before it
	w.WriteRecord([]byte("third")) // not durable: the crash below loses it

	crashed := fs.CrashClone()
	f, err = crashed.Open("/000007.log")
	if err != nil {
		panic(err)
	}
	r := wal.NewReader(f, "/000007.log", 7)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s\n", rec)
	}
	_, torn := r.TornTail()
	fmt.Println("torn tail:", torn)
	// Output:
	// first
	// second
	// torn tail: false
}
