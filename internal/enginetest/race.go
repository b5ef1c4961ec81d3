//go:build race

package enginetest

// raceEnabled is true under the race detector, which slows the suite
// down enough to sample fewer fault points.
const raceEnabled = true
