package sstable

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/tiny.golden from the writer's output")

// tinyTable is the table docs/formats/sstable.md dissects.
func tinyTable(tb testing.TB) []byte {
	es := []entry{
		{base.MakeInternalKey([]byte("apple"), 3, base.KindSet), []byte("red")},
		{base.MakeInternalKey([]byte("apple"), 2, base.KindDelete), nil},
		{base.MakeInternalKey([]byte("apricot"), 4, base.KindSet), []byte("orange")},
		{base.MakeInternalKey([]byte("cherry"), 1, base.KindSet), []byte("black")},
	}
	return tableBytes(tb, es, WriterOptions{BlockSize: 40, Compression: NoCompression, FilterBitsPerKey: 10})
}

// hexDump formats b sixteen bytes a line: offset, bytes, printable ASCII.
func hexDump(b []byte) string {
	var sb strings.Builder
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		fmt.Fprintf(&sb, "%04x ", off)
		for i := 0; i < 16; i++ {
			if i == 8 {
				sb.WriteByte(' ')
			}
			if i < len(line) {
				fmt.Fprintf(&sb, " %02x", line[i])
			} else {
				sb.WriteString("   ")
			}
		}
		sb.WriteString("  |")
		for _, c := range line {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			sb.WriteByte(c)
		}
		sb.WriteString("|\n")
	}
	return sb.String()
}

// TestTinyTableGolden pins the format: the writer's bytes for a tiny table
// must equal testdata/tiny.golden, and docs/formats/sstable.md must show
// the same dump. Regenerate with go test ./sstable -run Golden -rewrite
// and update the document.
func TestTinyTableGolden(t *testing.T) {
	got := hexDump(tinyTable(t))
	if *rewrite {
		if err := os.WriteFile("testdata/tiny.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/tiny.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("the writer's output changed (a format change needs a new version):\n%s\nwant:\n%s", got, want)
	}
	doc, err := os.ReadFile("../docs/formats/sstable.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, want) {
		t.Fatal("docs/formats/sstable.md does not contain testdata/tiny.golden verbatim")
	}
}

func TestLayoutOfTinyTable(t *testing.T) {
	b := tinyTable(t)
	fs := vfs.NewMem()
	f, _ := fs.Create("tiny.sst")
	f.Write(b)
	r, err := Open(f, "tiny.sst", int64(len(b)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := r.Layout()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range l.Blocks {
		got = append(got, fmt.Sprintf("%s@%#x+%d/%s/%d/%d/%s", b.Kind, b.Offset, b.Length, b.Compression, b.DecodedLength, b.Entries, b.Separator))
	}
	want := []string{
		`data@0x0+60/none/60/3/"b"#72057594037927935,SET`,
		`data@0x41+30/none/30/1/"cherry"#1,SET`,
		`filter@0x64+9/none/9/0/""#0,DEL`,
		`index@0x72+45/none/45/2/""#0,DEL`,
		`properties@0xa4+294/none/294/11/""#0,DEL`,
		`footer@0x1cf+64//0/0/""#0,DEL`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if l.FilterProbes != 7 || l.FilterBits != 64 {
		t.Fatalf("filter k=%d bits=%d, want 7 and 64", l.FilterProbes, l.FilterBits)
	}
}
