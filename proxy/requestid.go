package proxy

import (
	"crypto/rand"
	"sync/atomic"
)

// requestIDs makes X-Request-Id values: a random per-process prefix, so IDs
// from several gateways behind one load balancer never collide, and a counter,
// so making one costs a single atomic add and one small allocation.
type requestIDs struct {
	prefix [8]byte // upper-case hex of 4 random bytes
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var raw [4]byte
	_, _ = rand.Read(raw[:])
	g := &requestIDs{}
	for i, c := range raw {
		g.prefix[2*i] = hexDigits[c>>4]
		g.prefix[2*i+1] = hexDigits[c&0xf]
	}
	return g
}

const hexDigits = "0123456789ABCDEF"

// next returns a 24-character hex ID, the length OSS uses for its own.
func (g *requestIDs) next() string {
	v := g.n.Add(1)
	var b [24]byte
	copy(b[:8], g.prefix[:])
	for i := 23; i >= 8; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}
