package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the fake clock's origin for the limiter tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// step is one call in a scripted limiter test: at offset at, expect ok and,
// when refused, the exact retryAfter.
type step struct {
	at    time.Duration
	ok    bool
	retry time.Duration
}

// limiterCases drive both the per-IP and the site limiter with a fake clock.
var limiterCases = []struct {
	name  string
	rps   float64
	burst int
	steps []step
}{
	{"unlimited", 0, 0, []step{{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0}}},
	{"1rps burst1", 1, 1, []step{
		{0, true, 0},
		{0, false, time.Second},
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{time.Second, true, 0},
		{time.Second, false, time.Second},
	}},
	{"10rps burst5", 10, 5, []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0}, {0, true, 0},
		{0, false, 100 * time.Millisecond},
		{0, false, 100 * time.Millisecond}, // asking again does not push the wait out
		{100 * time.Millisecond, true, 0},
		{100 * time.Millisecond, false, 100 * time.Millisecond},
		{time.Second, true, 0}, // refilled to burst (5), not beyond
		{time.Second, true, 0}, {time.Second, true, 0}, {time.Second, true, 0}, {time.Second, true, 0},
		{time.Second, false, 100 * time.Millisecond},
	}},
	{"burst 0 means rps", 3, 0, []step{
		{0, true, 0}, {0, true, 0}, {0, true, 0},
		{0, false, time.Second / 3},
	}},
	{"fractional rps gets one token", 0.5, 0, []step{
		{0, true, 0},
		{0, false, 2 * time.Second},
		{1500 * time.Millisecond, false, 500 * time.Millisecond},
		{2 * time.Second, true, 0},
	}},
}

// closeTo allows for the float rounding inside x/time/rate.
func closeTo(got, want time.Duration) bool {
	d := got - want
	return d > -time.Microsecond && d < time.Microsecond
}

func TestIPLimiterScripted(t *testing.T) {
	for _, tc := range limiterCases {
		t.Run(tc.name, func(t *testing.T) {
			l := newIPLimiters(tc.rps, tc.burst, 10_000)
			ip := netip.MustParseAddr("192.0.2.1")
			other := netip.MustParseAddr("192.0.2.2")
			for i, s := range tc.steps {
				ok, retry := l.allow(ip, t0.Add(s.at))
				if ok != s.ok || !closeTo(retry, s.retry) {
					t.Fatalf("step %d at +%v: got (%v, %v), want (%v, %v)", i, s.at, ok, retry, s.ok, s.retry)
				}
				if !ok && retry <= 0 {
					t.Fatalf("step %d: refused with retryAfter %v", i, retry)
				}
			}
			// Another address has its own bucket.
			if ok, _ := l.allow(other, t0.Add(tc.steps[len(tc.steps)-1].at)); !ok {
				t.Fatal("a second address was refused")
			}
			if tc.rps == 0 && l.size() != 0 {
				t.Fatalf("unlimited limiter kept %d entries", l.size())
			}
		})
	}
}

func TestSiteLimiterScripted(t *testing.T) {
	for _, tc := range limiterCases {
		t.Run(tc.name, func(t *testing.T) {
			l := newSiteLimiter(tc.rps, tc.burst)
			for i, s := range tc.steps {
				ok, retry := l.allow(t0.Add(s.at))
				if ok != s.ok || !closeTo(retry, s.retry) {
					t.Fatalf("step %d at +%v: got (%v, %v), want (%v, %v)", i, s.at, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "1"},
		{-time.Second, "1"},
		{time.Nanosecond, "1"},
		{100 * time.Millisecond, "1"},
		{time.Second, "1"},
		{time.Second + time.Nanosecond, "2"},
		{2500 * time.Millisecond, "3"},
		{time.Minute, "60"},
		{time.Duration(1<<63 - 1), "9223372037"},
	} {
		if got := retryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("retryAfterSeconds(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestIPv6KeyedByPrefix64(t *testing.T) {
	l := newIPLimiters(1, 1, 10_000)
	a := netip.MustParseAddr("2001:db8:1:2:aaaa::1")
	sameNet := netip.MustParseAddr("2001:db8:1:2:ffff:ffff:ffff:fffe")
	zoned := netip.MustParseAddr("2001:db8:1:2::7%eth0")
	otherNet := netip.MustParseAddr("2001:db8:1:3::1")
	if ok, _ := l.allow(a, t0); !ok {
		t.Fatal("first request refused")
	}
	for _, ip := range []netip.Addr{sameNet, zoned} {
		if ok, _ := l.allow(ip, t0); ok {
			t.Errorf("%v shares the /64 of %v but got its own bucket", ip, a)
		}
	}
	if ok, _ := l.allow(otherNet, t0); !ok {
		t.Errorf("%v is another /64 but was refused", otherNet)
	}
	// An IPv4-mapped address is the IPv4 client, not a /64.
	v4 := netip.MustParseAddr("198.51.100.7")
	mapped := netip.MustParseAddr("::ffff:198.51.100.7")
	mappedNeighbour := netip.MustParseAddr("::ffff:198.51.100.8")
	if ok, _ := l.allow(v4, t0); !ok {
		t.Fatal("IPv4 first request refused")
	}
	if ok, _ := l.allow(mapped, t0); ok {
		t.Error("the IPv4-mapped form of a limited address got its own bucket")
	}
	if ok, _ := l.allow(mappedNeighbour, t0); !ok {
		t.Error("a neighbouring IPv4 address (mapped) was refused")
	}
	if got := l.size(); got != 4 {
		t.Errorf("entries = %d, want 4 (two /64s, two IPv4)", got)
	}
}

// TestIPLimiterConcurrent checks under -race that the buckets stay exact
// when many goroutines hammer the same and different addresses: with the
// clock frozen, exactly burst requests per address get through.
func TestIPLimiterConcurrent(t *testing.T) {
	const (
		goroutines = 8
		calls      = 10_000
		burst      = 100
	)
	ips := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("2001:db8:0:1::1"),
	}
	l := newIPLimiters(1, burst, 1000)
	s := newSiteLimiter(1, burst)
	var allowed [4]atomic.Int64
	var siteAllowed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				k := (g + i) % len(ips)
				ok, retry := l.allow(ips[k], t0)
				if ok {
					allowed[k].Add(1)
				} else if retry <= 0 {
					t.Errorf("refused with retryAfter %v", retry)
					return
				}
				if ok, _ := s.allow(t0); ok {
					siteAllowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range ips {
		if got := allowed[k].Load(); got != burst {
			t.Errorf("%v: %d allowed, want %d", ips[k], got, burst)
		}
	}
	if got := siteAllowed.Load(); got != burst {
		t.Errorf("site: %d allowed, want %d", got, burst)
	}
}

// TestIPLimiterConcurrentEviction runs many goroutines over far more
// addresses than the table holds, with a moving clock, so eviction races
// with hits under -race.
func TestIPLimiterConcurrentEviction(t *testing.T) {
	const max = 256
	l := newIPLimiters(5, 2, max)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				ip := netip.AddrFrom4([4]byte{10, byte(1 + g), byte(i >> 8), byte(i)})
				now := t0.Add(time.Duration(i) * time.Millisecond)
				if ok, _ := l.allow(ip, now); !ok {
					t.Errorf("first request of %v refused", ip)
					return
				}
				l.allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 16)}), now) // a hot set
			}
		})
	}
	wg.Wait()
	if n := l.size(); n > max {
		t.Fatalf("table holds %d entries, bound is %d", n, max)
	}
}

// TestIPLimiterFlood: a million distinct addresses never grow the table past
// its bound, and none of them is refused for lack of room.
func TestIPLimiterFlood(t *testing.T) {
	const max = 10_000
	l := newIPLimiters(1, 1, max)
	now := t0
	for i := range 1_000_000 {
		ip := netip.AddrFrom4([4]byte{byte(1 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, retry := l.allow(ip, now); !ok {
			t.Fatalf("request %d: new address %v refused (retryAfter %v)", i, ip, retry)
		}
		if i%100_000 == 0 {
			if n := l.size(); n > max {
				t.Fatalf("after %d addresses the table holds %d entries, bound is %d", i+1, n, max)
			}
		}
		now = now.Add(time.Microsecond)
	}
	if n := l.size(); n > max {
		t.Fatalf("table holds %d entries, bound is %d", n, max)
	} else if n < max*9/10 {
		t.Errorf("table holds only %d entries; shards are badly balanced", n)
	}
}

// TestIPLimiterEvictionPrefersIdle drives a single shard of four slots so
// the eviction order is observable.
func TestIPLimiterEvictionPrefersIdle(t *testing.T) {
	addr := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, b}) }
	has := func(l *ipLimiters, b byte) bool {
		_, ok := l.shards[0].index[addr(b)]
		return ok
	}
	allow := func(l *ipLimiters, b byte, at time.Duration) bool {
		ok, _ := l.allow(addr(b), t0.Add(at))
		return ok
	}

	t.Run("idle before active", func(t *testing.T) {
		l := newIPLimitersShards(1, 2, 4, 1)
		allow(l, 1, 0)
		allow(l, 1, 0) // A: bucket empty, referenced
		allow(l, 2, 0)
		allow(l, 3, 0)
		allow(l, 4, 0)
		// At +1s B, C, D have refilled (idle); A has one token of two.
		if !allow(l, 5, time.Second) {
			t.Fatal("new address refused")
		}
		if !has(l, 1) || has(l, 2) || !has(l, 5) {
			t.Fatalf("want A kept, B (idle) evicted, E in; index = %v", l.shards[0].index)
		}
		// A kept its state: one token left, then refused.
		if !allow(l, 1, time.Second) || allow(l, 1, time.Second) {
			t.Fatal("A's bucket was reset")
		}
	})

	t.Run("lookahead finds idle past an unreferenced candidate", func(t *testing.T) {
		l := newIPLimitersShards(1, 1, 4, 1)
		allow(l, 1, 500*time.Millisecond) // A: full again at +1.5s
		allow(l, 2, 0)                    // B: full again at +1s
		allow(l, 3, 500*time.Millisecond)
		allow(l, 4, 500*time.Millisecond)
		// At +1.2s A (at the hand, unreferenced) still has a partly spent
		// bucket, B is idle: B goes.
		allow(l, 5, 1200*time.Millisecond)
		if !has(l, 1) || has(l, 2) {
			t.Fatalf("want A kept and idle B evicted; index = %v", l.shards[0].index)
		}
	})

	t.Run("least recently used when none idle", func(t *testing.T) {
		l := newIPLimitersShards(1, 2, 4, 1)
		for b := byte(1); b <= 4; b++ {
			allow(l, b, 0)
		}
		for b := byte(2); b <= 4; b++ {
			allow(l, b, 0) // B, C, D used again; A not
		}
		if !allow(l, 5, 0) {
			t.Fatal("new address refused")
		}
		if has(l, 1) || !has(l, 2) || !has(l, 3) || !has(l, 4) || !has(l, 5) {
			t.Fatalf("want A (least recently used) evicted; index = %v", l.shards[0].index)
		}
		// The evicted address returns with a fresh bucket.
		if !allow(l, 1, 0) {
			t.Fatal("evicted address refused on return")
		}
	})

	t.Run("small tables keep their bound", func(t *testing.T) {
		for _, max := range []int{1, 5, 17, 100, 1000} {
			l := newIPLimiters(1, 1, max)
			for i := range 5000 {
				ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
				if ok, _ := l.allow(ip, t0); !ok {
					t.Fatalf("max %d: address %v refused", max, ip)
				}
				if n := l.size(); n > max {
					t.Fatalf("max %d: table holds %d entries", max, n)
				}
			}
		}
	})
}

func TestIPLimiterHitDoesNotAllocate(t *testing.T) {
	l := newIPLimiters(1e9, 1<<20, 1000)
	ip := netip.MustParseAddr("2001:db8::1")
	now := t0
	l.allow(ip, now)
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Microsecond)
		l.allow(ip, now)
	}); n != 0 {
		t.Fatalf("a hit allocates %v times", n)
	}
}

func TestEgressWriterRate(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 1.5 s")
	}
	src := make([]byte, 256<<10)
	rand.Read(src)
	var dst bytes.Buffer
	w := newEgressWriter(context.Background(), &dst, 128<<10)
	start := time.Now()
	n, err := w.Write(src)
	elapsed := time.Since(start)
	if err != nil || n != len(src) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(dst.Bytes(), src) {
		t.Fatal("bytes differ")
	}
	// 64 KiB burst at once, then 192 KiB at 128 KiB/s: about 1.5 s. Only
	// the lower bound is asserted; a shared machine can be slow, never fast.
	if elapsed < time.Second {
		t.Fatalf("256 KiB at 128 KiB/s took %v, want at least 1 s", elapsed)
	}
	t.Logf("256 KiB at 128 KiB/s took %v", elapsed)
}

func TestEgressWriterUnlimited(t *testing.T) {
	var dst bytes.Buffer
	if w := newEgressWriter(context.Background(), &dst, 0); w != &dst {
		t.Fatal("bytesPerSec 0 must return the writer unchanged")
	}
	if w := newEgressWriter(context.Background(), &dst, -1); w != &dst {
		t.Fatal("negative bytesPerSec must return the writer unchanged")
	}
}

func TestEgressWriterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var dst bytes.Buffer
	w := newEgressWriter(ctx, &dst, 1024) // the second 64 KiB would wait a minute
	done := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = w.Write(make([]byte, 128<<10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n != egressBurst || dst.Len() != egressBurst {
			t.Fatalf("wrote %d (buffer %d), want only the %d-byte burst", n, dst.Len(), egressBurst)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not stop the waiting write")
	}
}

// BenchmarkIPLimiterHit is the per-request cost for a known address; it
// must report 0 allocs/op.
func BenchmarkIPLimiterHit(b *testing.B) {
	l := newIPLimiters(1e9, 1<<20, defaultIPLimiterEntries)
	ip := netip.MustParseAddr("198.51.100.7")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		if ok, _ := l.allow(ip, now); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkIPLimiterParallel spreads all CPUs over 1000 addresses.
func BenchmarkIPLimiterParallel(b *testing.B) {
	l := newIPLimiters(1e9, 1<<20, defaultIPLimiterEntries)
	ips := make([]netip.Addr, 1000)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
		l.allow(ips[i], time.Now()) // the table is warm: every call is a hit
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seed atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i++
			if ok, _ := l.allow(ips[i%len(ips)], time.Now()); !ok {
				b.Error("refused")
				return
			}
		}
	})
}

// BenchmarkIPLimiterMiss is the cost of a new address in a full table
// (an eviction per call).
func BenchmarkIPLimiterMiss(b *testing.B) {
	l := newIPLimiters(1, 1, 10_000)
	now := time.Now()
	i := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		i++
		now = now.Add(time.Microsecond)
		l.allow(netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
}
