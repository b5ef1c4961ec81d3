//go:build race

package main

// raceEnabled says the test binary was built with -race, so that a binary
// the tests build reuses the same (cached) race-instrumented packages.
const raceEnabled = true
