package bench

import (
	"fmt"
	"slices"
	"strings"
)

// OpKind is one kind of operation a workload issues.
type OpKind int

// The operations. Each is timed on its own and gets its own latency
// histogram.
const (
	OpRead        OpKind = iota // Get of a key that exists
	OpReadMissing               // Get of a key never written
	OpUpdate                    // Put over a key that exists
	OpInsert                    // Put of a new key
	OpScan                      // Scan of a short range from a key
	OpRMW                       // Get then Put of the same key (read-modify-write)
	OpDelete                    // Delete of a key that exists
	numOpKinds
)

var opNames = [numOpKinds]string{"read", "readmissing", "update", "insert", "scan", "rmw", "delete"}

func (k OpKind) String() string {
	if k < 0 || k >= numOpKinds {
		return fmt.Sprintf("op(%d)", int(k))
	}
	return opNames[k]
}

// Dist is how a workload picks the key of an operation among the keys
// loaded.
type Dist int

// The key distributions.
const (
	Uniform    Dist = iota // every key equally likely
	Zipfian                // a few keys hot (YCSB's scrambled zipfian, theta 0.99)
	Latest                 // the newest keys hot (YCSB's "latest": zipfian by recency)
	Sequential             // keys in index order, each once
	Permuted               // keys in a random order, each once
)

var distNames = []string{"uniform", "zipfian", "latest", "sequential", "permuted"}

func (d Dist) String() string {
	if d < 0 || int(d) >= len(distNames) {
		return fmt.Sprintf("dist(%d)", int(d))
	}
	return distNames[d]
}

// Share is an operation kind and its weight in a workload's mix.
type Share struct {
	Op     OpKind
	Weight int
}

// Workload is a named mix of operations over a key space. The runner
// first loads the key space when Preload is set (untimed, in random order,
// without sync), then issues the timed operations, each drawn from Mix
// with its weight.
type Workload struct {
	Name    string
	Doc     string
	Preload bool
	Mix     []Share
	Dist    Dist
	// ScanMax is the longest scan; each scan's length is uniform in
	// [1, ScanMax] (YCSB E), or exactly ScanMax when ScanFixed.
	ScanMax   int
	ScanFixed bool
}

// Workloads are the workloads the runner knows, in the order tables list
// them: db_bench's classics, then YCSB's core workloads A to F.
var Workloads = []Workload{
	{Name: "fillseq", Doc: "puts of new keys in key order into an empty engine",
		Mix: []Share{{OpInsert, 1}}, Dist: Sequential},
	{Name: "fillrandom", Doc: "puts of keys in random order into an empty engine (each key once)",
		Mix: []Share{{OpInsert, 1}}, Dist: Permuted},
	{Name: "overwrite", Doc: "puts over loaded keys drawn uniformly",
		Preload: true, Mix: []Share{{OpUpdate, 1}}, Dist: Uniform},
	{Name: "readrandom", Doc: "gets of loaded keys drawn uniformly",
		Preload: true, Mix: []Share{{OpRead, 1}}, Dist: Uniform},
	{Name: "readmissing", Doc: "gets of keys never written",
		Preload: true, Mix: []Share{{OpReadMissing, 1}}, Dist: Uniform},
	{Name: "readseq", Doc: "the loaded keys read in key order, 1000 per scan; an op is one key",
		Preload: true, Mix: []Share{{OpScan, 1}}, Dist: Sequential, ScanMax: 1000, ScanFixed: true},
	{Name: "scan", Doc: "scans of 100 keys from uniformly drawn keys",
		Preload: true, Mix: []Share{{OpScan, 1}}, Dist: Uniform, ScanMax: 100, ScanFixed: true},
	{Name: "deleterandom", Doc: "deletes of the loaded keys in random order (each once)",
		Preload: true, Mix: []Share{{OpDelete, 1}}, Dist: Permuted},
	{Name: "ycsb-a", Doc: "update heavy: 50% reads, 50% updates, zipfian",
		Preload: true, Mix: []Share{{OpRead, 50}, {OpUpdate, 50}}, Dist: Zipfian},
	{Name: "ycsb-b", Doc: "read mostly: 95% reads, 5% updates, zipfian",
		Preload: true, Mix: []Share{{OpRead, 95}, {OpUpdate, 5}}, Dist: Zipfian},
	{Name: "ycsb-c", Doc: "read only: 100% reads, zipfian",
		Preload: true, Mix: []Share{{OpRead, 1}}, Dist: Zipfian},
	{Name: "ycsb-d", Doc: "read latest: 95% reads, 5% inserts, the newest keys hot",
		Preload: true, Mix: []Share{{OpRead, 95}, {OpInsert, 5}}, Dist: Latest},
	{Name: "ycsb-e", Doc: "short ranges: 95% scans of 1-100 keys, 5% inserts, zipfian",
		Preload: true, Mix: []Share{{OpScan, 95}, {OpInsert, 5}}, Dist: Zipfian, ScanMax: 100},
	{Name: "ycsb-f", Doc: "read-modify-write: 50% reads, 50% read-modify-writes, zipfian",
		Preload: true, Mix: []Share{{OpRead, 50}, {OpRMW, 50}}, Dist: Zipfian},
}

// WorkloadNames returns the names of Workloads.
func WorkloadNames() []string {
	names := make([]string, len(Workloads))
	for i, w := range Workloads {
		names[i] = w.Name
	}
	return names
}

// FindWorkload returns the workload called name.
func FindWorkload(name string) (Workload, error) {
	i := slices.IndexFunc(Workloads, func(w Workload) bool { return w.Name == name })
	if i < 0 {
		return Workload{}, fmt.Errorf("bench: unknown workload %q (known: %s)", name, strings.Join(WorkloadNames(), ", "))
	}
	return Workloads[i], nil
}

// ParseWorkloads turns a comma-separated list into workloads; "all" is
// every one.
func ParseWorkloads(list string) ([]Workload, error) {
	if list == "all" {
		return slices.Clone(Workloads), nil
	}
	var out []Workload
	for _, name := range strings.Split(list, ",") {
		w, err := FindWorkload(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}
