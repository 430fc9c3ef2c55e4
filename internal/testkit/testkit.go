// Package testkit holds the small helpers that tests across packages
// share: a buffer loggers and tests can use at once, a clock a test can
// move, waiting for an effect the test cannot join (Eventually, Within),
// and serving something on loopback for the test's lifetime (Listen,
// Serve). One copy here instead of one per package.
//
// It imports nothing of the module, so that any package's tests, including
// in-package tests of ossemu, can use it without an import cycle.
package testkit

import (
	"bytes"
	"sync"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writers (loggers, a child
// process's output) and readers (the test), also after the test ended.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Clock is the real clock shifted by an offset the test sets, for Now
// options (an emulator planting old Last-Modified times, expiring tokens).
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the shifted time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Set makes the clock run d ahead of real time (behind, when negative).
func (c *Clock) Set(d time.Duration) {
	c.mu.Lock()
	c.offset = d
	c.mu.Unlock()
}
