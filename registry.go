package kvs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"

	"github.com/kvs-lab/kvs/internal/vfs"
)

// OpenFunc opens (creating if needed) an engine in dir. opts has had
// EnsureDefaults applied and passed Validate.
type OpenFunc func(dir string, opts *Options) (Engine, error)

var registry = struct {
	sync.Mutex
	m map[string]OpenFunc
}{m: map[string]OpenFunc{}}

// Register makes an engine available to Open under name. Engines call it
// from init; registering a name twice panics.
func Register(name string, open OpenFunc) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		panic("kvs: engine registered twice: " + name)
	}
	registry.m[name] = open
}

// Engines returns the registered engine names, sorted.
func Engines() []string {
	registry.Lock()
	defer registry.Unlock()
	var names []string
	for n := range registry.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// EngineFile is the name of the file in which an engine records its name
// when it creates a directory, so that the directory is never opened by the
// wrong engine and tools can find the engine without being told.
const EngineFile = "ENGINE"

// Open opens the engine called name in dir. An empty name means "whatever
// engine created dir" (read from its ENGINE file). opts may be nil.
func Open(name, dir string, opts *Options) (Engine, error) {
	opts = opts.Clone().EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	found, err := DetectEngine(opts.FS, dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	switch {
	case name == "" && found == "":
		return nil, fmt.Errorf("kvs: no engine named and %s has no %s file saying which engine made it", dir, EngineFile)
	case name == "":
		name = found
	case found != "" && found != name:
		return nil, fmt.Errorf("%w: %s holds a %q engine, not %q", ErrNotKVSDir, dir, found, name)
	}
	registry.Lock()
	open, ok := registry.m[name]
	registry.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %v)", ErrUnknownEngine, name, Engines())
	}
	return open(dir, opts)
}

// DetectEngine returns the engine name recorded in dir's ENGINE file. It
// returns an error wrapping fs.ErrNotExist when the file is absent.
func DetectEngine(fsys vfs.FS, dir string) (string, error) {
	if fsys == nil {
		fsys = vfs.Default
	}
	f, err := fsys.Open(fsys.PathJoin(dir, EngineFile))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return "", fmt.Errorf("kvs: read %s: %w", fsys.PathJoin(dir, EngineFile), err)
	}
	name := string(bytes.TrimSpace(b))
	if name == "" || len(b) == 64 {
		return "", fmt.Errorf("%w: %s does not hold an engine name", ErrNotKVSDir, fsys.PathJoin(dir, EngineFile))
	}
	return name, nil
}

// WriteEngineFile records name in dir's ENGINE file durably (file synced,
// then the directory). Engines call it when they create a directory.
func WriteEngineFile(fsys vfs.FS, dir, name string) error {
	path := fsys.PathJoin(dir, EngineFile)
	tmp := path + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("kvs: create %s: %w", tmp, err)
	}
	if _, err := f.Write([]byte(name + "\n")); err != nil {
		f.Close()
		return fmt.Errorf("kvs: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("kvs: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("kvs: close %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("kvs: rename %s: %w", tmp, err)
	}
	return vfs.SyncDir(fsys, dir)
}
