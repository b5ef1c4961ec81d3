package enginetest

import "fmt"

// keyf is fmt.Sprintf, named for what it makes.
func keyf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// pattern returns n bytes that depend on seed, so that values written by
// different operations differ and a value cut short or mixed with another
// is caught.
func pattern(n, seed int) string {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 12345
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}
