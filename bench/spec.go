package bench

import (
	"fmt"
	"strings"

	"github.com/kvs-lab/kvs"
)

// EngineSpec names an engine and a variant of its options, written
// "engine" or "engine/variant" (bitcask/hash, bitcask/btree, lsm/tiered).
type EngineSpec struct {
	Label   string // as the user wrote it, used in tables
	Engine  string // registered engine name
	Options *kvs.Options
}

// ParseEngineSpec turns "bitcask" or "bitcask/btree" into an EngineSpec.
func ParseEngineSpec(s string) (EngineSpec, error) {
	name, variant, _ := strings.Cut(s, "/")
	spec := EngineSpec{Label: s, Engine: name, Options: &kvs.Options{}}
	switch name {
	case "bitcask":
		switch variant {
		case "", kvs.IndexHash:
			spec.Options.Bitcask.Index = kvs.IndexHash
			spec.Label = "bitcask/hash"
		case kvs.IndexBTree:
			spec.Options.Bitcask.Index = kvs.IndexBTree
		default:
			return spec, fmt.Errorf("bench: engine %q: bitcask variant must be %q or %q", s, kvs.IndexHash, kvs.IndexBTree)
		}
	case "lsm":
		switch variant {
		case "", kvs.CompactionLeveled:
			spec.Label = "lsm"
		case kvs.CompactionTiered:
			spec.Options.LSM.Compaction = kvs.CompactionTiered
		default:
			return spec, fmt.Errorf("bench: engine %q: lsm variant must be %q or %q", s, kvs.CompactionLeveled, kvs.CompactionTiered)
		}
	default:
		if variant != "" {
			return spec, fmt.Errorf("bench: engine %q: %s has no variants", s, name)
		}
	}
	for _, e := range kvs.Engines() {
		if e == name {
			return spec, nil
		}
	}
	return spec, fmt.Errorf("bench: unknown engine %q (registered: %s)", name, strings.Join(kvs.Engines(), ", "))
}
