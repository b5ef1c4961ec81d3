package wal

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// formatDoc is the format's documentation, whose worked example this test
// keeps honest.
const formatDoc = "../docs/formats/wal.md"

// exampleLog is the log of docs/formats/wal.md's worked example: log 7
// holding the records "hello" and "" (empty).
func exampleLog(t testing.TB) []byte {
	data, _ := encodeLog(t, 7, [][]byte{[]byte("hello"), {}})
	return data
}

// hexDump formats b as `hexdump -C` does, without the final offset line.
func hexDump(b []byte) string {
	var s strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&s, "%08x ", off)
		for i := 0; i < 16; i++ {
			if i == 8 {
				s.WriteByte(' ')
			}
			if i < len(line) {
				fmt.Fprintf(&s, " %02x", line[i])
			} else {
				s.WriteString("   ")
			}
		}
		s.WriteString("  |")
		for _, c := range line {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			s.WriteByte(c)
		}
		s.WriteString("|\n")
	}
	return s.String()
}

// TestFormatDocExampleIsWhatTheWriterWrites checks the hex dump in
// docs/formats/wal.md (between the golden markers) against the bytes the
// Writer produces for the example, and that the Reader reads them back.
func TestFormatDocExampleIsWhatTheWriterWrites(t *testing.T) {
	doc, err := os.ReadFile(formatDoc)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- golden:begin -->\n```\n", "```\n<!-- golden:end -->"
	_, rest, ok1 := strings.Cut(string(doc), begin)
	got, _, ok2 := strings.Cut(rest, end)
	data := exampleLog(t)
	want := hexDump(data)
	if !ok1 || !ok2 || got != want {
		t.Fatalf("%s: the dump between the golden markers is\n%s\nthe Writer writes\n%s", formatDoc, got, want)
	}
	res := readBytes(data, 7)
	if res.err != nil || len(res.records) != 2 || string(res.records[0]) != "hello" || len(res.records[1]) != 0 {
		t.Fatalf("read %q, %v", res.records, res.err)
	}
}
