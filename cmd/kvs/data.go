package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/kvs-lab/kvs"
	"github.com/spf13/cobra"
)

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s (got %d argument(s))", cmd.Name(), names, len(args))
		}
		return nil
	}
}

func newPutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Store VALUE under KEY (synced to disk unless --sync none)",
		Args:  exactArgs(2, "KEY and VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			wo, err := g.writeOptions("always")
			if err != nil {
				return err
			}
			return g.withEngine(cmd, true, func(e kvs.Engine) error {
				return e.Put([]byte(args[0]), []byte(args[1]), wo)
			})
		},
	}
}

func newGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value stored under KEY (exit 1 with \"not found\" when absent)",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withEngine(cmd, false, func(e kvs.Engine) error {
				v, err := e.Get([]byte(args[0]))
				if errors.Is(err, kvs.ErrNotFound) {
					return fmt.Errorf("kvs: not found: %s", printable([]byte(args[0]), 80))
				}
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if g.json {
					return printJSON(out, jsonPair([]byte(args[0]), v, false))
				}
				_, err = out.Write(append(v, '\n'))
				return err
			})
		},
	}
}

func newDelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "del KEY",
		Short: "Delete KEY (deleting an absent key is not an error)",
		Args:  exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			wo, err := g.writeOptions("always")
			if err != nil {
				return err
			}
			return g.withEngine(cmd, false, func(e kvs.Engine) error {
				return e.Delete([]byte(args[0]), wo)
			})
		},
	}
}

// pair is a key/value as JSON: text when it is valid UTF-8, else base64
// with Encoding set.
type pair struct {
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

func jsonPair(k, v []byte, keysOnly bool) pair {
	if utf8.Valid(k) && (keysOnly || utf8.Valid(v)) {
		p := pair{Key: string(k)}
		if !keysOnly {
			p.Value = string(v)
		}
		return p
	}
	p := pair{Key: base64.StdEncoding.EncodeToString(k), Encoding: "base64"}
	if !keysOnly {
		p.Value = base64.StdEncoding.EncodeToString(v)
	}
	return p
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func newScanCmd(g *globals) *cobra.Command {
	var prefix, start, end string
	var limit int
	var reverse, keysOnly bool
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Print keys and values in key order: all, a --prefix, or a [--start, --end) range",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usagef("--limit: %d is negative", limit)
			}
			o := &kvs.IterOptions{}
			if start != "" {
				o.LowerBound = []byte(start)
			}
			if end != "" {
				o.UpperBound = []byte(end)
			}
			if prefix != "" {
				p := []byte(prefix)
				if o.LowerBound == nil || bytes.Compare(p, o.LowerBound) > 0 {
					o.LowerBound = p
				}
				if pe := prefixEnd(p); pe != nil && (o.UpperBound == nil || bytes.Compare(pe, o.UpperBound) < 0) {
					o.UpperBound = pe
				}
			}
			return g.withEngine(cmd, false, func(e kvs.Engine) error {
				return scan(cmd, e, o, scanFlags{limit, reverse, keysOnly, g.json})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "", "only keys starting with this prefix")
	f.StringVar(&start, "start", "", "first key of the range (inclusive)")
	f.StringVar(&end, "end", "", "end of the range (exclusive)")
	f.IntVar(&limit, "limit", 0, "print at most this many keys (0: all)")
	f.BoolVar(&reverse, "reverse", false, "walk from the last key backwards")
	f.BoolVar(&keysOnly, "keys-only", false, "print keys without values")
	return cmd
}

type scanFlags struct {
	limit             int
	reverse, keysOnly bool
	json              bool
}

// scan prints the keys of e within o's bounds.
func scan(cmd *cobra.Command, e kvs.Engine, o *kvs.IterOptions, f scanFlags) error {
	it, err := e.NewIter(o)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	var pairs []pair
	n := 0
	step, ok := it.Next, it.First()
	if f.reverse {
		step, ok = it.Prev, it.Last()
	}
	for ; ok && (f.limit == 0 || n < f.limit); ok = step() {
		n++
		switch {
		case f.json:
			pairs = append(pairs, jsonPair(it.Key(), it.Value(), f.keysOnly))
		case f.keysOnly:
			fmt.Fprintln(out, printable(it.Key(), 0))
		default:
			fmt.Fprintf(out, "%s\t%s\n", printable(it.Key(), 0), printable(it.Value(), 0))
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if f.json {
		if pairs == nil {
			pairs = []pair{}
		}
		return printJSON(out, pairs)
	}
	return nil
}
