package proxy

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// This file holds the [site.limits] admission controls: a token bucket per
// client address, one per site, and an egress cap per response. They are
// golang.org/x/time/rate limiters driven by the caller's clock, so the
// handler passes the request's arrival time and tests can drive time.

const (
	// ipLimiterShards splits the per-IP table so that concurrent requests
	// from different clients rarely contend on the same mutex. A power of
	// two, so a shard is picked with a mask.
	ipLimiterShards = 64

	// defaultIPLimiterEntries bounds the per-IP table when the caller passes
	// no bound: about 200 bytes an entry, so at most ~13 MiB per site.
	defaultIPLimiterEntries = 1 << 16

	// minShardSlots is the fewest slots a shard is given when maxEntries
	// is too small to split 64 ways: with a slot or two per shard, two hot
	// clients hashing together would keep evicting each other.
	minShardSlots = 16

	// idleLookahead is how many slots past an eviction candidate the clock
	// hand peeks at for an idle entry, whose eviction loses nothing, before
	// settling for the candidate, which loses a partly spent bucket.
	idleLookahead = 8

	// egressBurst is the egress bucket size: the first 64 KiB of a response
	// go out at once, so small objects are never slowed, and no single
	// write waits for more than this.
	egressBurst = 64 << 10
)

// ipLimiters is a per-client-IP token bucket set whose memory is bounded.
//
// Why it looks like this: every request of a rate-limited site touches it,
// so a hit on a known address takes one shard mutex and allocates nothing;
// and because the keys are chosen by whoever connects, the table must not
// grow with them. Each shard holds a fixed-size ring of slots and evicts
// with a clock (second-chance) sweep: an entry whose bucket has refilled
// (idle for at least burst/rps) carries no state and goes first; otherwise
// the first entry not used since the hand last passed it goes, an O(1)
// amortised approximation of least recently used. A new address therefore
// always gets a fresh bucket, however many addresses arrive: the limiter
// never refuses a client because the table is full.
//
// IPv6 clients are keyed by their /64 prefix, not the full address: the
// /64 is the smallest block a site is normally assigned (SLAAC hosts and
// privacy addresses pick their low 64 bits freely), so one host could
// otherwise mint a fresh bucket per request. IPv4-mapped IPv6 addresses are
// keyed as the IPv4 address they carry.
type ipLimiters struct {
	limit  rate.Limit
	burst  int
	seed   uint64    // per-table hash key, so clients cannot aim at one shard
	mask   uint64    // len(shards)-1
	shards []ipShard // nil: unlimited
}

// ipShard is one mutex-guarded slice of the per-IP table. Its slots never
// grow past their initial capacity, and the index maps a key to its slot.
type ipShard struct {
	mu    sync.Mutex
	index map[netip.Addr]int32
	slots []ipSlot
	hand  int      // the clock hand: next slot the eviction sweep examines
	_     [64]byte // keep neighbouring shards' mutexes off one cache line
}

// ipSlot is one client's bucket. ref is the clock's "used since the hand
// last passed" bit.
type ipSlot struct {
	key netip.Addr
	lim *rate.Limiter
	ref bool
}

// newIPLimiters returns a per-IP limiter of rps requests per second with
// the given burst (0 means rps, rounded up, at least 1) holding at most
// maxEntries addresses (<= 0 means defaultIPLimiterEntries). rps <= 0 means
// unlimited: allow always succeeds and no state is kept.
func newIPLimiters(rps float64, burst int, maxEntries int) *ipLimiters {
	return newIPLimitersShards(rps, burst, maxEntries, ipLimiterShards)
}

// newIPLimitersShards is newIPLimiters with the shard count chosen, so tests
// can make eviction order deterministic with a single shard.
func newIPLimitersShards(rps float64, burst, maxEntries, shards int) *ipLimiters {
	if unlimited(rps) {
		return &ipLimiters{}
	}
	if maxEntries <= 0 {
		maxEntries = defaultIPLimiterEntries
	}
	// Fewer shards than requested when the table is small, so that every
	// shard keeps enough slots (minShardSlots) for the clock to choose a
	// good victim, and the total stays within maxEntries.
	n := 1
	for n*2 <= shards && n*2*minShardSlots <= maxEntries {
		n *= 2
	}
	per := maxEntries / n
	l := &ipLimiters{
		limit:  rate.Limit(rps),
		burst:  normBurst(rps, burst),
		seed:   rand.Uint64(),
		mask:   uint64(n - 1),
		shards: make([]ipShard, n),
	}
	for i := range l.shards {
		l.shards[i].index = make(map[netip.Addr]int32, per)
		l.shards[i].slots = make([]ipSlot, 0, per)
	}
	return l
}

// allow spends one token for ip; when refused, retryAfter is how long until
// a token is available (>0).
func (l *ipLimiters) allow(ip netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil || l.shards == nil {
		return true, 0
	}
	key := ipKey(ip)
	sh := &l.shards[l.shardIndex(key)]
	sh.mu.Lock()
	var lim *rate.Limiter
	if i, found := sh.index[key]; found {
		s := &sh.slots[i]
		s.ref = true
		lim = s.lim
	} else {
		lim = sh.insert(l, key, now)
	}
	// Under the shard lock no other request can spend this bucket between
	// the refusal and the reservation, so the delay is exact.
	ok, retryAfter = take(lim, now)
	sh.mu.Unlock()
	return ok, retryAfter
}

// size returns how many addresses the table holds (for tests and metrics).
func (l *ipLimiters) size() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.slots)
		sh.mu.Unlock()
	}
	return n
}

// shardIndex hashes key with the table's seed. Two murmur3 finalisers over
// the address halves: cheap, allocation-free, and well mixed for IPv4
// addresses, whose upper half is constant.
func (l *ipLimiters) shardIndex(key netip.Addr) uint64 {
	b := key.As16()
	hi := binary.LittleEndian.Uint64(b[:8])
	lo := binary.LittleEndian.Uint64(b[8:])
	return (fmix64(lo^l.seed) ^ fmix64(hi+l.seed)) & l.mask
}

// fmix64 is murmur3's 64-bit finaliser.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53e94cb
	h ^= h >> 33
	return h
}

// ipKey is the table key for a client address: IPv4 as is (unmapped), IPv6
// reduced to its /64 (zone dropped), for the reason given on ipLimiters.
func ipKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	b := a.As16()
	clear(b[8:])
	return netip.AddrFrom16(b)
}

// insert gives key a fresh, full bucket, in a free slot or in place of an
// evicted one. The new entry starts unreferenced: an address seen once (a
// scan, a flood) is the first to go on the hand's next pass, while one that
// comes back earns its second chance. Called with sh.mu held.
func (sh *ipShard) insert(l *ipLimiters, key netip.Addr, now time.Time) *rate.Limiter {
	if len(sh.slots) < cap(sh.slots) {
		lim := rate.NewLimiter(l.limit, l.burst)
		sh.slots = append(sh.slots, ipSlot{key: key, lim: lim})
		sh.index[key] = int32(len(sh.slots) - 1)
		return lim
	}
	i := sh.victim(now, float64(l.burst))
	s := &sh.slots[i]
	delete(sh.index, s.key)
	// A bucket that is full at now behaves exactly like a new one, so it is
	// reused rather than reallocated.
	if s.lim.TokensAt(now) < float64(l.burst) {
		s.lim = rate.NewLimiter(l.limit, l.burst)
	}
	s.key, s.ref = key, false
	sh.index[key] = int32(i)
	return s.lim
}

// victim picks the slot to evict from a full shard. It always returns: each
// step either returns or clears a ref bit, and after one revolution no bit
// is set. Each bit cleared was set by a request, so the work is O(1)
// amortised per request. Called with sh.mu held.
func (sh *ipShard) victim(now time.Time, burst float64) int {
	n := len(sh.slots)
	next := func(i int) int {
		if i++; i == n {
			return 0
		}
		return i
	}
	for {
		i := sh.hand
		sh.hand = next(i)
		s := &sh.slots[i]
		if s.lim.TokensAt(now) >= burst {
			return i // idle: its bucket is full, nothing is lost
		}
		if s.ref {
			s.ref = false // used since the last pass: second chance
			continue
		}
		// i is the approximate LRU entry. Before discarding its partly
		// spent bucket, look a little further for one that costs nothing.
		for j, k := sh.hand, 0; k < idleLookahead && j != i; j, k = next(j), k+1 {
			if sh.slots[j].lim.TokensAt(now) >= burst {
				return j
			}
		}
		return i
	}
}

// siteLimiter is the site-wide token bucket (site_rps, site_burst). It is a
// thin wrapper so that "unlimited" costs a nil check, not a lock.
type siteLimiter struct {
	lim *rate.Limiter // nil: unlimited
}

// newSiteLimiter returns a limiter of rps requests per second with the
// given burst (0 means rps, rounded up, at least 1); rps <= 0 is unlimited.
func newSiteLimiter(rps float64, burst int) *siteLimiter {
	if unlimited(rps) {
		return &siteLimiter{}
	}
	return &siteLimiter{lim: rate.NewLimiter(rate.Limit(rps), normBurst(rps, burst))}
}

// allow spends one site token; when refused, retryAfter (>0) is how long
// until one is available.
func (l *siteLimiter) allow(now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil || l.lim == nil {
		return true, 0
	}
	return take(l.lim, now)
}

// take spends one token of lim at now. On refusal it learns the wait from a
// reservation that it then cancels, so asking costs the client nothing. If
// a token became free between the two calls (another goroutine cancelled a
// reservation), the reservation stands and the request is allowed.
func take(lim *rate.Limiter, now time.Time) (bool, time.Duration) {
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() { // burst < 1; normBurst prevents it
		return false, time.Second
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return true, 0
	}
	r.CancelAt(now)
	return false, d
}

// unlimited reports whether rps means "no limit": zero, negative, NaN or
// +Inf (config validation refuses the odd ones; this keeps them harmless).
func unlimited(rps float64) bool {
	return !(rps > 0) || math.IsInf(rps, 1)
}

// normBurst applies "burst 0 = rps" and guarantees at least one token, so
// a fractional rps (0.5/s) still admits requests.
func normBurst(rps float64, burst int) int {
	if burst > 0 {
		return burst
	}
	if rps >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(1, int(math.Ceil(rps)))
}

// egressWriter caps the bytes per second written to w. Writes are split
// into chunks no larger than the bucket, and each chunk waits for its
// tokens bound to ctx, so a client that hangs up (ctx cancelled) releases
// the handler at once instead of after the rest of the wait.
type egressWriter struct {
	ctx context.Context
	w   io.Writer
	lim *rate.Limiter
}

// newEgressWriter caps the bytes per second written to w (burst 64 KiB,
// writes split into chunks <= burst), waiting with rate.Limiter.WaitN bound
// to ctx so a departed client stops the wait; bytesPerSec <= 0 returns w
// unchanged.
func newEgressWriter(ctx context.Context, w io.Writer, bytesPerSec int64) io.Writer {
	if bytesPerSec <= 0 {
		return w
	}
	return &egressWriter{ctx: ctx, w: w, lim: rate.NewLimiter(rate.Limit(bytesPerSec), egressBurst)}
}

// Write writes p in chunks of at most egressBurst bytes, each after its
// tokens are available. It returns the context's error if ctx ends first.
func (e *egressWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), egressBurst)
		if err := e.lim.WaitN(e.ctx, c); err != nil {
			return n, err
		}
		m, err := e.w.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		p = p[c:]
	}
	return n, nil
}

// Flush passes a flush through to w when it is an http.Flusher, so wrapping
// a ResponseWriter does not hide streaming flushes.
func (e *egressWriter) Flush() {
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1, for the
// Retry-After header (which has no sub-second form; rounding down would
// invite the client back before a token exists).
func retryAfterSeconds(d time.Duration) string {
	s := d / time.Second
	if d%time.Second > 0 {
		s++
	}
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(int64(s), 10)
}
