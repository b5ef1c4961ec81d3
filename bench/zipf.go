package bench

import (
	"math"
	"math/rand/v2"
)

// zipfian draws ranks in [0, n) with P(rank r) proportional to
// 1/(r+1)^theta: rank 0 is the most popular. It is the generator YCSB uses
// (Gray et al., "Quickly Generating Billion-Record Synthetic Databases",
// SIGMOD 1994), which, unlike math/rand's Zipf, accepts YCSB's default
// theta of 0.99 (< 1) and draws in O(1) after an O(n) set-up.
type zipfian struct {
	n                   float64
	theta, alpha, zetan float64
	eta, half           float64
}

// zipfTheta is YCSB's default skew: over a million keys, the hottest 0.1%
// take about half the draws (TestZipfianSkew).
const zipfTheta = 0.99

func newZipfian(n int, theta float64) *zipfian {
	z := &zipfian{n: float64(n), theta: theta, alpha: 1 / (1 - theta)}
	z.zetan = zeta(n, theta)
	zeta2 := zeta(2, theta)
	z.eta = (1 - math.Pow(2/z.n, 1-theta)) / (1 - zeta2/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	return z
}

// zeta is the generalized harmonic number: sum over i in [1, n] of
// 1/i^theta.
func zeta(n int, theta float64) float64 {
	s := 0.0
	for i := 1; i <= n; i++ {
		s += 1 / math.Pow(float64(i), theta)
	}
	return s
}

// next returns a rank in [0, n).
func (z *zipfian) next(rng *rand.Rand) int {
	u := rng.Float64()
	uz := u * z.zetan
	switch {
	case uz < 1:
		return 0
	case uz < z.half:
		return 1
	}
	r := int(z.n * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(r, int(z.n)-1)
}

// scatter maps a rank to a key index in [0, n) by a hash, so the popular
// keys are spread over the key space instead of sitting together at its
// start (YCSB's "scrambled" zipfian).
func scatter(rank, n int) int {
	return int(splitmix64(uint64(rank)) % uint64(n))
}
