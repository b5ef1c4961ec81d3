package wal

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvs-lab/kvs/internal/vfs"
)

// BenchmarkWriteRecord measures the Writer's own cost per record without
// fsync: framing, checksums, locking. The file keeps no bytes, so the
// figure leaves out the write(2) a real file adds.
func BenchmarkWriteRecord(b *testing.B) {
	for _, size := range []int{100, 4096} {
		b.Run(fmt.Sprintf("record=%d", size), func(b *testing.B) {
			f := &bytesFile{discard: true}
			w := NewWriter(f, 1)
			rec := record(1, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := w.WriteRecord(rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(f.n)/float64(w.Stats().PayloadBytes), "disk-bytes/byte")
		})
	}
}

// BenchmarkGroupCommit runs 8 goroutines that each append a 100-byte
// record and wait until it is durable, on the operating system's file
// system, and reports how many fsyncs each record cost. commit=group
// shares fsyncs (SyncRecord); commit=alone, for comparison, has each
// goroutine run an fsync of its own after its append (SyncUnshared), one
// fsync per record.
func BenchmarkGroupCommit(b *testing.B) {
	const writers = 8
	for _, mode := range []string{"group", "alone"} {
		b.Run("commit="+mode, func(b *testing.B) {
			f, err := vfs.Default.Create(vfs.Default.PathJoin(b.TempDir(), "000001.log"))
			if err != nil {
				b.Fatal(err)
			}
			w := NewWriter(f, 1)
			defer w.Close()
			rec := record(1, 100)
			var next atomic.Int64
			commit := func() error {
				if mode == "group" {
					_, err := w.SyncRecord(rec)
					return err
				}
				end, err := w.WriteRecord(rec)
				if err != nil {
					return err
				}
				return w.SyncUnshared(end)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := 0; g < writers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := commit(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(w.Stats().Syncs)/float64(b.N), "syncs/op")
		})
	}
}

// BenchmarkRead measures reading records back, as recovery does.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{100, 4096} {
		b.Run(fmt.Sprintf("record=%d", size), func(b *testing.B) {
			var recs [][]byte
			for i := 0; i < (8<<20)/size; i++ {
				recs = append(recs, record(i, size))
			}
			data, _ := encodeLog(b, 1, recs)
			f := &bytesFile{data: data}
			r := NewReader(f, "bench.log", 1)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				_, err := r.Next()
				if err == io.EOF {
					r = NewReader(f, "bench.log", 1)
					_, err = r.Next()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
