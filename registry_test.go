package kvs

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs/internal/vfs"
)

var errTestOpen = errors.New("test engine opened")

func init() {
	Register("registry-test", func(dir string, opts *Options) (Engine, error) {
		if opts.FS == nil || opts.Logger == nil {
			return nil, errors.New("options reached the engine without defaults")
		}
		return nil, errTestOpen
	})
}

func TestOpenDispatchesByName(t *testing.T) {
	if _, err := Open("registry-test", t.TempDir(), nil); !errors.Is(err, errTestOpen) {
		t.Fatalf("Open = %v, want the registered engine's result", err)
	}
}

func TestOpenUnknownEngineListsKnownOnes(t *testing.T) {
	_, err := Open("no-such-engine", t.TempDir(), nil)
	if !errors.Is(err, ErrUnknownEngine) || !strings.Contains(err.Error(), "registry-test") {
		t.Fatalf("Open = %v, want ErrUnknownEngine listing registered engines", err)
	}
}

func TestOpenRejectsInvalidOptions(t *testing.T) {
	_, err := Open("registry-test", t.TempDir(), &Options{MaxValueSize: -1})
	if err == nil || !strings.Contains(err.Error(), "MaxValueSize") {
		t.Fatalf("Open = %v, want an error naming MaxValueSize", err)
	}
}

func TestOpenChecksEngineFile(t *testing.T) {
	dir := t.TempDir()
	if err := WriteEngineFile(vfs.Default, dir, "bitcask"); err != nil {
		t.Fatal(err)
	}
	if got, err := DetectEngine(vfs.Default, dir); err != nil || got != "bitcask" {
		t.Fatalf("DetectEngine = %q, %v", got, err)
	}
	_, err := Open("registry-test", dir, nil)
	if !errors.Is(err, ErrNotKVSDir) || !strings.Contains(err.Error(), `"bitcask"`) {
		t.Fatalf("Open of a bitcask dir as another engine = %v, want ErrNotKVSDir naming bitcask", err)
	}
	if _, err := Open("", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), EngineFile) {
		t.Fatalf("Open with no name on an empty dir = %v, want an error about %s", err, EngineFile)
	}
}
