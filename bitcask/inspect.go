package bitcask

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
)

// This file holds the exported inspection API that `kvs inspect` and tests
// use to look at a bitcask directory without opening an engine on it.

// FileKind says what a name in a bitcask directory is.
type FileKind int

// The kinds of files a bitcask directory holds.
const (
	FileUnknown FileKind = iota // not a name bitcask writes
	FileSegment                 // NNNNNN.data, a data file
	FileHint                    // NNNNNN.hint, the hint file of the segment with the same id
	FileLock                    // LOCK
	FileEngine                  // ENGINE
	// FileMergeOutput is NNNNNN.data.merging or NNNNNN.hint.merging: a
	// segment or hint a merge is writing, renamed to its final name when
	// the merge commits. Open deletes those of a merge that never did.
	FileMergeOutput
)

// String returns the kind's lower-case name, such as "segment".
func (k FileKind) String() string {
	switch k {
	case FileSegment:
		return "segment"
	case FileHint:
		return "hint"
	case FileLock:
		return "lock"
	case FileEngine:
		return "engine"
	case FileMergeOutput:
		return "merge output"
	}
	return "unknown"
}

const (
	lockFile      = "LOCK"
	mergeDir      = "merge"
	doneFile      = "DONE"
	doneTmpFile   = doneFile + ".tmp"
	segmentSuffix = ".data"
	hintSuffix    = ".hint"
	mergingSuffix = ".merging"
)

// ParseFileName returns the kind of the file called name (a base name, not
// a path) and, for a segment or hint file, its file id: "000007.data"
// gives 7 and FileSegment, "000009.hint.merging" gives 9 and
// FileMergeOutput. Only the names bitcask writes are recognised: at least
// six decimal digits, zero-padded to six, so "7.data" and "0000007.data"
// are FileUnknown.
func ParseFileName(name string) (id uint64, kind FileKind) {
	switch name {
	case lockFile:
		return 0, FileLock
	case kvs.EngineFile:
		return 0, FileEngine
	}
	if base, ok := strings.CutSuffix(name, mergingSuffix); ok {
		if id, kind := ParseFileName(base); kind == FileSegment || kind == FileHint {
			return id, FileMergeOutput
		}
		return 0, FileUnknown
	}
	var digits string
	switch {
	case strings.HasSuffix(name, segmentSuffix):
		digits, kind = strings.TrimSuffix(name, segmentSuffix), FileSegment
	case strings.HasSuffix(name, hintSuffix):
		digits, kind = strings.TrimSuffix(name, hintSuffix), FileHint
	default:
		return 0, FileUnknown
	}
	if len(digits) < 6 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, FileUnknown
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || fmt.Sprintf("%06d", id) != digits {
		return 0, FileUnknown
	}
	return id, kind
}

// segmentName and hintName return the base names of file id's segment and
// hint file.
func segmentName(id uint64) string { return fmt.Sprintf("%06d%s", id, segmentSuffix) }
func hintName(id uint64) string    { return fmt.Sprintf("%06d%s", id, hintSuffix) }

// RecordInfo describes one record of a segment, as ScanSegment reports it.
type RecordInfo struct {
	Offset         int64  // where the record starts in the file
	Size           int64  // the record's whole length, header included
	Seq            uint64 // its sequence number
	Tombstone      bool   // a delete rather than a put
	BatchContinues bool   // more records of the same batch follow
	Key            []byte // the key; the callback may keep it
	ValueLen       int    // the value's length (0 for a tombstone)
	CRC            uint32 // the checksum stored in the record
	ChecksumOK     bool   // whether the record's bytes match CRC
}

// ScanSegment reads the segment at path record by record and calls fn for
// each, including records whose checksum fails (ChecksumOK false). It
// returns a *kvs.CorruptionError naming the offset where the file can no
// longer be parsed (bad header, impossible length, truncated record), after
// reporting every record before it; an error from fn stops the scan and is
// returned as is. A torn tail, which Open would cut off, is reported as
// such a CorruptionError too: ScanSegment judges the file, not the
// directory.
func ScanSegment(fsys vfs.FS, path string, fn func(RecordInfo) error) error {
	f, err := fsys.Open(path)
	if err != nil {
		return fmt.Errorf("kvs/bitcask: scan %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("kvs/bitcask: scan %s: %w", path, err)
	}
	size := st.Size()
	hdr := make([]byte, fileHeaderLen)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("kvs/bitcask: scan %s: %w", path, err)
	}
	if reason := checkFileHeader(hdr[:n], segmentMagic, segmentVersion); reason != "" {
		return kvs.Corruptf(path, 0, "%s", reason)
	}
	r := newSegmentReader(f, size, false)
	for {
		rec, status, err := r.next()
		if err != nil {
			return fmt.Errorf("kvs/bitcask: scan %s at offset %d: %w", path, rec.offset, err)
		}
		switch status {
		case scanEOF:
			return nil
		case scanTruncated, scanInvalid:
			return kvs.Corruptf(path, rec.offset, "%s", r.reason)
		}
		info := RecordInfo{
			Offset:         rec.offset,
			Size:           rec.h.size(),
			Seq:            rec.h.seq,
			Tombstone:      rec.h.tombstone(),
			BatchContinues: rec.h.batchContinues(),
			Key:            bytes.Clone(rec.key),
			ValueLen:       rec.h.valueLen,
			CRC:            rec.h.crc,
			ChecksumOK:     rec.crcOK,
		}
		if err := fn(info); err != nil {
			return err
		}
	}
}

// HintInfo describes one entry of a hint file, as ScanHint reports it.
type HintInfo struct {
	EntryOffset int64  // where the entry starts in the hint file
	Seq         uint64 // the record's sequence number
	Key         []byte // the key; the callback may keep it
	Offset      int64  // where the record starts in the segment: 16 plus the sizes of the entries before
	Size        int64  // the record's whole length
	ChecksumOK  bool   // whether the file's checksum (in its trailer) matches; the same for every entry
}

// ScanHint reads the hint file at path and calls fn for each entry, in
// order. It checks the file's trailer first and reports the checksum's
// verdict in every entry's ChecksumOK. It returns nil only for a hint file
// Open would load (with a segment of the size its entries add up to);
// otherwise a *kvs.CorruptionError naming the offset of the flaw, after
// reporting every entry before it: an entry that cannot be parsed, or,
// after the last entry, a missing trailer, a count that disagrees with the
// entries or a checksum mismatch. An error from fn stops the scan and is
// returned as is.
func ScanHint(fsys vfs.FS, path string, fn func(HintInfo) error) error {
	b, err := readWhole(fsys, path)
	if err != nil {
		return fmt.Errorf("kvs/bitcask: scan %s: %w", path, err)
	}
	if reason := checkFileHeader(b, hintMagic, hintVersion); reason != "" {
		if checkFileHeader(b, hintMagic, 1) == "" {
			reason = "hint format version 1 is no longer read: Open ignores such a hint and scans its segment"
		}
		return kvs.Corruptf(path, 0, "%s", reason)
	}
	tr := readHintTrailer(b)
	d := newHintDecoder(b, tr.start)
	var count uint64
	for {
		at := d.off
		e, status, reason := d.next()
		if status == scanEOF {
			break
		}
		if status != scanOK {
			if !tr.found {
				reason += fmt.Sprintf(" (the file does not end with its %q trailer: cut short?)", hintEndMagic)
			}
			return kvs.Corruptf(path, int64(at), "%s", reason)
		}
		count++
		info := HintInfo{
			EntryOffset: int64(at),
			Seq:         e.seq,
			Key:         bytes.Clone(e.key),
			Offset:      e.offset,
			Size:        e.size,
			ChecksumOK:  tr.crcOK,
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	switch {
	case !tr.found:
		return kvs.Corruptf(path, int64(len(b)), "hint file does not end with its %q trailer: cut short", hintEndMagic)
	case count != tr.count:
		return kvs.Corruptf(path, int64(tr.start), "the trailer counts %d entries, the file holds %d", tr.count, count)
	case !tr.crcOK:
		return kvs.Corruptf(path, int64(tr.start+8), "hint file checksum mismatch")
	}
	return nil
}
