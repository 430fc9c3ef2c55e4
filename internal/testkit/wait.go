package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds and fails the test, naming what it
// waited for, if it does not within the bound. Tests wait this way for
// effects they cannot join: a child process's output arriving through a
// pipe, a metric a goroutine updates, a fill stored in the background. A
// single read right after the action races the effect and fails at random
// on a loaded machine; within is a bound that turns a hang into a failure,
// not a performance assertion, so make it generous.
//
// cond runs on the calling goroutine, so it may call t.Fatal itself.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(within, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}

// Within polls cond for up to d and reports whether it held, for callers
// that judge a timeout themselves: a non-fatal t.Errorf, a message built
// from state gathered after the wait, or a condition that is expected to
// stay false. cond is checked at least once, and once more at the end of
// d, so a d shorter than the polling interval still gets a fair look.
func Within(d time.Duration, cond func() bool) bool {
	// Start fast, so the common case of an effect a few milliseconds
	// away costs little, and back off, so a condition that is slow to
	// check (a /metrics scrape) does not eat the shared cores.
	const maxInterval = 50 * time.Millisecond
	interval := time.Millisecond
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, maxInterval)
	}
}
