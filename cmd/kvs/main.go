// Command kvs drives the kvs storage engines from the shell: put, get, del
// and scan keys, load generated data, print statistics, compact, inspect
// the files an engine wrote, and compare engines with a quick benchmark.
//
// Every command that touches data takes --engine and --dir. Output is meant
// for people by default and for scripts with --json. Errors go to stderr and
// the exit status is non-zero: 1 for a failed operation (including "not
// found"), 2 for a command line that could not be understood.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/kvs-lab/kvs/bitcask" // registers the "bitcask" engine
	_ "github.com/kvs-lab/kvs/lsm"     // registers the "lsm" engine
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// usageError marks a command line that could not be understood (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run executes one kvs command line and returns the exit status. Tests call
// it directly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "kvs") {
		msg = "kvs: " + msg
	}
	fmt.Fprintln(stderr, msg)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintln(stderr, "run 'kvs help' for usage")
		return 2
	}
	return 1
}

// isCobraUsage recognises the errors cobra makes for bad flags and
// commands, which it does not type.
func isCobraUsage(err error) bool {
	m := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least"} {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}
