package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/bitcask"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/spf13/cobra"
)

// fileSummary is what inspect says about one file.
type fileSummary struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Bytes       int64  `json:"bytes"`
	Records     int64  `json:"records"`
	Puts        int64  `json:"puts,omitempty"`
	Tombstones  int64  `json:"tombstones,omitempty"`
	BadChecksum int64  `json:"bad_checksums"`
	MinSeq      uint64 `json:"min_seq,omitempty"`
	MaxSeq      uint64 `json:"max_seq,omitempty"`
	Error       string `json:"error,omitempty"`
}

type recordJSON struct {
	Offset   int64  `json:"offset"`
	Size     int64  `json:"size"`
	Seq      uint64 `json:"seq"`
	Type     string `json:"type"`
	Batch    bool   `json:"batch_continues,omitempty"`
	Checksum string `json:"checksum"`
	Key      string `json:"key"`
	ValueLen int    `json:"value_len"`
	Target   int64  `json:"record_offset,omitempty"`
}

func newInspectCmd(g *globals) *cobra.Command {
	var limit int
	var summary, keys bool
	cmd := &cobra.Command{
		Use:   "inspect [PATH]",
		Short: "Dump an engine file (segment, hint, table, WAL, MANIFEST) or summarise a directory",
		Long: `inspect reads the files an engine wrote, without opening the engine (it
takes no lock, so it works beside a running engine and on a damaged directory).

A segment (NNNNNN.data) or hint file (NNNNNN.hint) is listed record by record:
offset, size, sequence number, type, checksum status, key and value size.

LSM files are recognised by name: a table (NNNNNN.sst) prints its properties
and block table, and its entries with --keys or --limit; a write-ahead log
(NNNNNN.log) prints one line per batch with its entries; a MANIFEST-NNNNNN
(or CURRENT, which names one) prints each version edit and the version they
add up to. A torn log tail is a note, not an error.

A directory (PATH, or --dir) is summarised a file at a time. A damaged file
makes the command exit 1 after printing everything it could read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.dir
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return usagef("inspect needs a PATH or --dir")
			}
			st, err := os.Stat(path)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("kvs: %s does not exist", path)
				}
				return fmt.Errorf("kvs: %w", err)
			}
			if st.IsDir() {
				if isLSMDir(path) {
					return inspectLSMDir(cmd.OutOrStdout(), path, g.json)
				}
				return inspectDir(cmd.OutOrStdout(), path, g.json)
			}
			if _, kind := parseLSMName(filepath.Base(path)); kind.inspectable() {
				return inspectLSMFile(cmd.OutOrStdout(), path, lsmInspectOptions{json: g.json, limit: limit, keys: keys, summary: summary})
			}
			return inspectFile(cmd.OutOrStdout(), path, g.json, limit, summary)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many records, or table entries (0: all)")
	cmd.Flags().BoolVar(&summary, "summary", false, "print only the file's summary line")
	cmd.Flags().BoolVar(&keys, "keys", false, "list a table's entries (a table lists them by default only with --limit)")
	return cmd
}

func summarise(path string) (fileSummary, error) {
	name := filepath.Base(path)
	_, kind := bitcask.ParseFileName(name)
	s := fileSummary{Name: name, Kind: kind.String()}
	if st, err := os.Stat(path); err == nil {
		s.Bytes = st.Size()
	}
	seq := func(q uint64) {
		if s.MinSeq == 0 || q < s.MinSeq {
			s.MinSeq = q
		}
		if q > s.MaxSeq {
			s.MaxSeq = q
		}
	}
	var err error
	switch kind {
	case bitcask.FileSegment:
		err = bitcask.ScanSegment(vfs.Default, path, func(r bitcask.RecordInfo) error {
			s.Records++
			if !r.ChecksumOK {
				s.BadChecksum++
				return nil
			}
			if r.Tombstone {
				s.Tombstones++
			} else {
				s.Puts++
			}
			seq(r.Seq)
			return nil
		})
	case bitcask.FileHint:
		err = bitcask.ScanHint(vfs.Default, path, func(h bitcask.HintInfo) error {
			s.Records++
			if !h.ChecksumOK {
				s.BadChecksum++
				return nil
			}
			s.Puts++
			seq(h.Seq)
			return nil
		})
	}
	if err != nil {
		s.Error = err.Error()
	} else if s.BadChecksum > 0 {
		err = fmt.Errorf("kvs: %s: %d record(s) fail their checksum", path, s.BadChecksum)
	}
	return s, err
}

func inspectDir(w io.Writer, dir string, asJSON bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("kvs: %w", err)
	}
	engine, engineErr := kvs.DetectEngine(vfs.Default, dir)
	var files []fileSummary
	var damaged []error
	for _, ent := range entries {
		path := filepath.Join(dir, ent.Name())
		if ent.IsDir() {
			files = append(files, fileSummary{Name: ent.Name() + "/", Kind: "directory"})
			if ent.Name() == "merge" {
				files[len(files)-1].Kind = "merge commit record"
			}
			continue
		}
		s, err := summarise(path)
		if err != nil {
			damaged = append(damaged, err)
		}
		files = append(files, s)
	}
	if asJSON {
		if err := printJSON(w, map[string]any{"dir": dir, "engine": engine, "files": files}); err != nil {
			return err
		}
		return errors.Join(damaged...)
	}
	if engineErr != nil {
		engine = "unknown (no readable ENGINE file)"
	}
	fmt.Fprintf(w, "directory %s: engine %s, %d entries\n\n", dir, engine, len(files))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tKIND\tBYTES\tRECORDS\tPUTS\tTOMBSTONES\tBAD CRC\tSEQ RANGE\tNOTE")
	var total int64
	for _, f := range files {
		total += f.Bytes
		seqs := "-"
		if f.MaxSeq > 0 {
			seqs = fmt.Sprintf("%d-%d", f.MinSeq, f.MaxSeq)
		}
		note := f.Error
		switch f.Kind {
		case bitcask.FileUnknown.String():
			note = "not a kvs file: Open will refuse this directory"
		case bitcask.FileMergeOutput.String():
			note = "written by a merge that has not committed; Open deletes it unless merge/DONE exists"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", f.Name, f.Kind, humanBytes(f.Bytes), f.Records, f.Puts, f.Tombstones, f.BadChecksum, seqs, note)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntotal %s\n", humanBytes(total))
	return errors.Join(damaged...)
}

func inspectFile(w io.Writer, path string, asJSON bool, limit int, summaryOnly bool) error {
	_, kind := bitcask.ParseFileName(filepath.Base(path))
	if kind != bitcask.FileSegment && kind != bitcask.FileHint {
		return fmt.Errorf("kvs: %s is not a segment (NNNNNN.data) or hint (NNNNNN.hint) file", path)
	}
	var recs []recordJSON
	var tw *tabwriter.Writer
	if !asJSON && !summaryOnly {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if kind == bitcask.FileSegment {
			fmt.Fprintln(tw, "OFFSET\tSIZE\tSEQ\tTYPE\tCRC\tKEY\tVALUE BYTES")
		} else {
			fmt.Fprintln(tw, "OFFSET\tSEQ\tCRC\tKEY\tRECORD OFFSET\tRECORD SIZE")
		}
	}
	n := 0
	emit := func(r recordJSON) {
		n++
		if summaryOnly || (limit > 0 && n > limit) {
			return
		}
		if asJSON {
			recs = append(recs, r)
			return
		}
		if kind == bitcask.FileSegment {
			typ := r.Type
			if r.Batch {
				typ += "+batch"
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%d\n", r.Offset, r.Size, r.Seq, typ, r.Checksum, r.Key, r.ValueLen)
		} else {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\n", r.Offset, r.Seq, r.Checksum, r.Key, r.Target, r.Size)
		}
	}
	crc := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "BAD"
	}
	var scanErr error
	if kind == bitcask.FileSegment {
		scanErr = bitcask.ScanSegment(vfs.Default, path, func(r bitcask.RecordInfo) error {
			typ := "put"
			if r.Tombstone {
				typ = "del"
			}
			emit(recordJSON{Offset: r.Offset, Size: r.Size, Seq: r.Seq, Type: typ, Batch: r.BatchContinues,
				Checksum: crc(r.ChecksumOK), Key: printable(r.Key, 48), ValueLen: r.ValueLen})
			return nil
		})
	} else {
		scanErr = bitcask.ScanHint(vfs.Default, path, func(h bitcask.HintInfo) error {
			emit(recordJSON{Offset: h.EntryOffset, Seq: h.Seq, Type: "hint", Checksum: crc(h.ChecksumOK),
				Key: printable(h.Key, 48), Target: h.Offset, Size: h.Size})
			return nil
		})
	}
	if tw != nil {
		tw.Flush()
		if limit > 0 && n > limit {
			fmt.Fprintf(w, "... %d more (raise --limit)\n", n-limit)
		}
	}
	s, sumErr := summarise(path)
	if asJSON {
		if recs == nil {
			recs = []recordJSON{}
		}
		if err := printJSON(w, map[string]any{"file": s, "records": recs}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%s: %s, %s, %d records (%d puts, %d tombstones), %d bad checksums\n",
			s.Name, s.Kind, humanBytes(s.Bytes), s.Records, s.Puts, s.Tombstones, s.BadChecksum)
	}
	if scanErr != nil {
		return scanErr
	}
	return sumErr
}
