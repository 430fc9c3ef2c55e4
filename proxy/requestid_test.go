package proxy

import (
	"testing"
)

func TestRequestIDs(t *testing.T) {
	g := newRequestIDs()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := g.next()
		if len(id) != 24 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}
