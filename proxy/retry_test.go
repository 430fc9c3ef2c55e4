package proxy

import (
	"testing"
	"time"
)

func TestRetryBudget(t *testing.T) {
	w0 := time.Unix(1_700_000_000, 0).Truncate(budgetWindow)
	for _, tc := range []struct {
		name     string
		ratio    float64
		requests int
		want     int // retries granted in one window
	}{
		{"quiet site gets the floor", 0.2, 3, budgetFloor},
		{"floor when ratio share is below it", 0.2, 40, budgetFloor},
		{"ratio share above the floor", 0.2, 200, 40},
		{"ratio 1 allows one retry per request", 1, 50, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newRetryBudget(tc.ratio)
			for i := 0; i < tc.requests; i++ {
				b.request(w0)
			}
			got := 0
			for i := 0; i < 10*tc.requests+budgetFloor; i++ {
				if b.take(w0.Add(time.Second)) {
					got++
				}
			}
			if got != tc.want {
				t.Fatalf("granted %d retries, want %d", got, tc.want)
			}
			// The next window starts over.
			if !b.take(w0.Add(budgetWindow)) {
				t.Fatal("a new window has no budget")
			}
		})
	}
}
