package kvs_test

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kvs-lab/kvs"

// allowedDeps is STYLE.md's import table: for each package (by path inside
// the module, longest prefix wins), the in-module packages it may import.
// Imports point down only: building blocks never import engines, engines
// never import raftkv, nothing imports cmd/kvs.
var allowedDeps = map[string][]string{
	"":           {"internal/vfs"},
	"internal":   {"internal/"},
	"wal":        {"", "internal/"},
	"memtable":   {"", "internal/"},
	"sstable":    {"", "internal/"},
	"compaction": {"", "internal/", "sstable"},
	"bitcask":    {"", "internal/"},
	"lsm":        {"", "internal/", "wal", "memtable", "sstable", "compaction"},
	"raftkv":     {"", "internal/", "raftkv/"},
	"server":     {"", "internal/"},
	"bench":      {"", "internal/", "bitcask", "lsm"},
	// The CLI wires engines and, for `kvs inspect`, reads the building
	// blocks' file formats directly (as pebble's tool does).
	"cmd/kvs":      {"", "internal/", "bitcask", "lsm", "bench", "server", "raftkv/", "sstable", "wal", "memtable", "compaction"},
	"internal/vfs": {},
	// The conformance suite tests the root contract, so it sits above it.
	"internal/enginetest": {"", "internal/"},
}

// peerEngines may only enter through the separate bench/peers module.
var peerEngines = []string{"github.com/cockroachdb/pebble", "github.com/syndtr/goleveldb", "github.com/dgraph-io/badger", "go.etcd.io/bbolt", "github.com/rosedblabs"}

func rulesFor(pkg string) (string, []string) {
	best := ""
	found := false
	for p := range allowedDeps {
		if (pkg == p || strings.HasPrefix(pkg, p+"/") || p == "") && len(p) >= len(best) {
			best, found = p, true
		}
	}
	if !found {
		return "", nil
	}
	return best, allowedDeps[best]
}

func allowed(imp string, rules []string) bool {
	for _, r := range rules {
		if r == imp || (strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r)) {
			return true
		}
	}
	return false
}

func TestImportsPointDown(t *testing.T) {
	// Each package gives two lines: its own imports, then its tests'
	// (prefixed "test:"). STYLE.md lets any _test.go file open the engines
	// it tests against, so tests may also import bitcask and lsm.
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}\ntest:{{.ImportPath}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		line, isTest := strings.CutPrefix(line, "test:")
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		rule, rules := rulesFor(pkg)
		if isTest {
			rules = append(rules[:len(rules):len(rules)], "bitcask", "lsm")
		}
		for _, imp := range fields[1:] {
			for _, peer := range peerEngines {
				if strings.HasPrefix(imp, peer) {
					t.Errorf("%s imports peer engine %s: peers live only in the bench/peers module", fields[0], imp)
				}
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			in := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if in == "cmd/kvs" {
				t.Errorf("%s imports cmd/kvs: nothing may", fields[0])
			}
			if in == pkg || strings.HasPrefix(in, "internal/enginetest") {
				continue // a package's own external tests; the conformance suite is for tests
			}
			if !allowed(in, rules) {
				t.Errorf("%s imports %s, which the %q rule in STYLE.md does not allow (allowed: %q)", fields[0], imp, rule, rules)
			}
		}
	}
}

// forbiddenOS are the calls that must go through internal/vfs so that
// tests can simulate crashes and inject errors.
var forbiddenOS = map[string]bool{"Create": true, "OpenFile": true, "Rename": true, "Remove": true, "RemoveAll": true, "WriteFile": true, "Mkdir": true, "MkdirAll": true, "Truncate": true}

func TestFilesGoThroughVFS(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (path == "internal/vfs" || path == "cmd/kvs" || path == "bench/peers" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		importsOS := false
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "os" {
				importsOS = true
			}
		}
		if !importsOS {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name := range forbiddenOS {
			if bytes.Contains(src, []byte("os."+name+"(")) {
				t.Errorf("%s calls os.%s: use internal/vfs so crashes and faults can be simulated", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
