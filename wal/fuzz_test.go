package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/kvs-lab/kvs"
)

// FuzzReader feeds arbitrary bytes to a Reader. It must never panic; it
// must return exactly the records a strict, independent decoder
// (referenceDecode) finds before the first fragment that is not whole,
// checksummed and in order; and it must end with io.EOF (and a torn tail
// reaching the end of the file, if any) or a *kvs.CorruptionError naming
// the file and an offset inside it.
func FuzzReader(f *testing.F) {
	logs := [][][]byte{
		nil,
		{[]byte("kvs")},
		{[]byte("kvs"), {}},
		{record(0, 10), record(1, 0), record(2, 300)},
		{record(0, MaxFragmentPayload-HeaderSize), record(1, 5)},
		{record(0, MaxFragmentPayload-10), record(1, 7)},
		{record(0, BlockSize+100), record(1, 3)},
	}
	for _, recs := range logs {
		data, _ := encodeLog(f, testLogNum, recs)
		f.Add(data)
		if len(data) > 4 {
			f.Add(data[:len(data)-3])
			flipped := bytes.Clone(data)
			flipped[len(data)/2] ^= 0x20
			f.Add(flipped)
			f.Add(append(bytes.Clone(data), make([]byte, 20)...))
		}
	}
	f.Add(make([]byte, 100))
	f.Add(appendFragment(nil, typeMiddle, testLogNum, []byte("x")))
	f.Add(appendFragment(nil, typeFull, testLogNum+1, []byte("stale")))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := readBytes(data, testLogNum)
		want := referenceDecode(data, testLogNum)
		checkRecords(t, res.records, want)
		switch {
		case res.err == nil:
			if res.tornOK && (res.torn.Offset < 0 || res.torn.Offset+res.torn.Bytes != int64(len(data))) {
				t.Fatalf("torn tail %+v does not reach the end of a %d-byte file", res.torn, len(data))
			}
		default:
			var ce *kvs.CorruptionError
			if !errors.As(res.err, &ce) || ce.File != "test.log" || ce.Offset < 0 || ce.Offset >= int64(len(data)) {
				t.Fatalf("error %v is not a corruption inside test.log", res.err)
			}
			if res.tornOK {
				t.Fatalf("torn tail %+v reported with error %v", res.torn, res.err)
			}
		}
	})
}

// referenceDecode is a deliberately simple, independent decoder of the
// format in docs/formats/wal.md: it walks the fragments in order and
// returns the records completed before the first thing that is wrong.
func referenceDecode(data []byte, logNum uint32) [][]byte {
	var records [][]byte
	var cur []byte
	inRecord := false
	for pos := 0; pos < len(data); {
		left := BlockSize - pos%BlockSize
		if left < 11 {
			end := min(len(data), pos+left)
			if !bytes.Equal(data[pos:end], make([]byte, end-pos)) {
				break
			}
			pos = end
			continue
		}
		if len(data)-pos < 11 {
			break
		}
		sum := binary.LittleEndian.Uint32(data[pos:])
		n := int(binary.LittleEndian.Uint16(data[pos+4:]))
		typ := data[pos+6]
		num := binary.LittleEndian.Uint32(data[pos+7:])
		if n > left-11 || pos+11+n > len(data) || num != logNum ||
			crc32.Checksum(data[pos+4:pos+11+n], crc32.MakeTable(crc32.Castagnoli)) != sum {
			break
		}
		payload := data[pos+11 : pos+11+n]
		pos += 11 + n
		switch {
		case typ == 1 && !inRecord:
			records = append(records, bytes.Clone(payload))
		case typ == 2 && !inRecord:
			cur, inRecord = bytes.Clone(payload), true
		case typ == 3 && inRecord:
			cur = append(cur, payload...)
		case typ == 4 && inRecord:
			records = append(records, append(cur, payload...))
			cur, inRecord = nil, false
		default:
			return records
		}
	}
	return records
}
