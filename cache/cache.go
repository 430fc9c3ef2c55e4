package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors callers can test with errors.Is.
var (
	// ErrClosed is returned by a Fill (and Touch) of a closed Cache, and
	// is the cause of the fills that Close cut short.
	ErrClosed = errors.New("cache: closed")
	// ErrNotFound is returned by Touch for a key that has no entry.
	ErrNotFound = errors.New("cache: no such entry")
)

// Options configure Open. Dir, MaxSize, Memory and MaxObjectSize map
// one to one onto the [cache] section of the config.
type Options struct {
	// Dir holds the disk tier, one file per entry under 256 fan-out
	// subdirectories. It is created if missing and locked (flock) so
	// that two processes never share it.
	Dir string
	// MaxSize bounds the disk tier's files (headers included); the least
	// recently used entries are deleted past it. Files of fills still
	// being written are not counted until they complete.
	MaxSize int64
	// Memory bounds the bodies kept in memory for hot objects; 0 turns
	// the memory tier off (every hit then reads the disk tier).
	Memory int64
	// MaxObjectSize is the largest body stored; larger ones are still
	// streamed to their waiters. 0 or more than MaxSize means MaxSize.
	MaxObjectSize int64
	// MemoryObjectSize is the largest body the memory tier keeps; 0 means
	// min(Memory/16, 1 MiB). Larger hot objects are served from the disk
	// tier with sendfile(2), where the page cache keeps them anyway, so
	// memory is spent on the small objects whose per-hit file operations
	// would cost more than sending them.
	MemoryObjectSize int64

	// Bytes, if set, is gateway_cache_bytes{tier}: the gauge is kept at
	// the bytes held by tier="memory" (bodies) and tier="disk" (files).
	Bytes *prometheus.GaugeVec
	// Evictions, if set, is gateway_cache_evictions_total{tier}: entries
	// dropped to make room (not purges, replacements or corrupt files).
	Evictions *prometheus.CounterVec
	// Logger receives errors the cache handles by itself (a file it could
	// not write or remove, a corrupt entry dropped); nil discards them.
	Logger *slog.Logger
	// Now is the clock for Meta.Stored; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Cache is the object cache: a disk tier that holds every stored object
// and survives restarts, a memory tier for hot small bodies on top of it,
// and coalesced fills that stream one OSS response to every waiting client.
// All methods are safe for concurrent use.
type Cache struct {
	dir       string
	maxSize   int64
	maxObject int64
	memMax    int64  // largest body in the memory tier
	memLimit  uint64 // Options.Memory: the memory tier's weight limit
	bufMax    int64  // largest body a fill buffers in memory for its waiters
	now       func() time.Time
	log       *slog.Logger

	// clock is the LRU's time base: Unix ns at start plus monotonic time,
	// so it continues the file times the index was rebuilt from.
	start time.Time
	base  int64

	mem *otter.Cache[[32]byte, *Object] // nil without a memory tier

	memBytes, diskBytes prometheus.Gauge
	memEvict, diskEvict prometheus.Counter

	gen atomic.Uint64 // file name generations, unique per entry

	ctx    context.Context // the fills' context: cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // running fills

	lockFile *os.File

	sitesMu sync.Mutex // serialises SyncSites (its record file)

	mu      sync.Mutex
	closed  bool
	idx     index
	flights map[[32]byte]*flight
}

// Open opens (or creates) the cache in o.Dir and rebuilds the index from
// the files there: entries survive a restart, while leftover temporary
// files and files that are not a complete entry are deleted. Bodies of
// loaded entries are verified against their SHA-256 on their first hit.
func Open(o Options) (*Cache, error) {
	switch {
	case o.Dir == "":
		return nil, errors.New("cache: Options.Dir is empty")
	case o.MaxSize <= 0:
		return nil, fmt.Errorf("cache: Options.MaxSize %d is not positive", o.MaxSize)
	case o.Memory < 0 || o.MaxObjectSize < 0 || o.MemoryObjectSize < 0:
		return nil, errors.New("cache: negative size in Options")
	}
	c := &Cache{
		dir:       o.Dir,
		maxSize:   o.MaxSize,
		maxObject: o.MaxObjectSize,
		now:       o.Now,
		log:       o.Logger,
		flights:   map[[32]byte]*flight{},
		idx:       newIndex(),
	}
	if c.maxObject == 0 || c.maxObject > c.maxSize {
		c.maxObject = c.maxSize
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.start = time.Now()
	c.base = c.start.UnixNano()
	if o.Memory > 0 {
		c.memMax = o.MemoryObjectSize
		if c.memMax == 0 {
			c.memMax = min(o.Memory/16, 1<<20)
		}
		c.memMax = min(c.memMax, o.Memory, 1<<30, c.maxObject) // weights are uint32
	}
	c.bufMax = max(c.memMax, 256<<10)
	c.memBytes, c.diskBytes, c.memEvict, c.diskEvict = tierMetrics(o.Bytes, o.Evictions)

	if err := os.MkdirAll(c.dir, 0o750); err != nil {
		return nil, fmt.Errorf("cache: creating %s: %w", c.dir, err)
	}
	lf, err := lockDir(c.dir)
	if err != nil {
		return nil, err
	}
	c.lockFile = lf
	maxGen, err := c.load()
	if err != nil {
		_ = lf.Close()
		return nil, err
	}
	c.gen.Store(max(maxGen, uint64(c.base)))
	victims := c.evictLocked() // MaxSize may have shrunk since the files were written
	c.removeFiles(victims, "evicted at open")
	c.diskEvict.Add(float64(len(victims)))
	c.diskBytes.Set(float64(c.idx.bytes))

	if o.Memory > 0 {
		c.memLimit = uint64(o.Memory)
		c.mem = otter.Must(&otter.Options[[32]byte, *Object]{
			MaximumWeight: uint64(o.Memory),
			Weigher: func(_ [32]byte, ob *Object) uint32 {
				return memWeight(int64(len(ob.body)), ob.ent.bodyOff-prefixLen)
			},
			OnDeletion: func(ev otter.DeletionEvent[[32]byte, *Object]) {
				if ev.Cause == otter.CauseOverflow {
					c.memEvict.Inc()
				}
				c.memBytes.Set(float64(c.mem.WeightedSize()))
			},
			Logger: otterLogger{c.log},
		})
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close stops the cache: running fills are cancelled (their waiters get an
// error wrapping ErrClosed) and waited for, and later calls miss. Objects
// already handed out stay readable until closed. Entries stay on disk for
// the next Open.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	clear(c.flights)
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	if c.mem != nil {
		c.mem.InvalidateAll()
		c.mem.StopAllGoroutines()
	}
	if err := c.lockFile.Close(); err != nil {
		return fmt.Errorf("cache: releasing the lock of %s: %w", c.dir, err)
	}
	return nil
}

// Lookup returns the stored object for k. A memory hit allocates nothing
// and returns an Object shared with other hits; a disk hit opens the
// entry's file, which the Object keeps open (pinned) until Close, so an
// eviction during the send does not cut it. The first hit of an entry
// loaded at Open reads its whole body once to check the SHA-256: a
// mismatch deletes the file and misses. The caller must Close the Object.
func (c *Cache) Lookup(k Key) (*Object, bool) {
	h := k.Hash()
	now := c.clock()
	if c.mem != nil {
		if o, ok := c.mem.GetIfPresent(h); ok && o.ent.key == k {
			o.ent.touchAccess(now)
			return o, true
		}
	}
	c.mu.Lock()
	e := c.idx.byHash[h]
	closed := c.closed
	c.mu.Unlock()
	if e == nil || closed || e.key != k {
		return nil, false
	}
	e.touchAccess(now)
	o, err := c.open(e)
	if err != nil {
		// A missing file was evicted or purged meanwhile; a corrupt one
		// must go. Anything else (EMFILE, EIO) may pass: just miss.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errCorrupt) {
			c.log.Warn("cache: dropping an entry that cannot be served", "key", k.String(), "err", err)
			c.drop(e)
		} else {
			c.log.Warn("cache: entry unreadable, serving a miss", "key", k.String(), "err", err)
		}
		return nil, false
	}
	return o, true
}

// open makes an Object of a disk entry, verifying the body first if it was
// loaded from disk, and moving a small body into the memory tier.
func (c *Cache) open(e *entry) (*Object, error) {
	f, err := os.Open(e.path())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", e.path(), err)
	}
	keep := c.mem != nil && e.bodyLen <= c.memMax && c.promote(e)
	body, err := e.verify(f, keep)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	hdr, err := e.readHeader(f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if !keep {
		return &Object{ent: e, f: f, off: e.bodyOff, n: e.bodyLen, hdr: hdr}, nil
	}
	if body == nil {
		body = make([]byte, e.bodyLen)
		if _, err := f.ReadAt(body, e.bodyOff); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("reading %s: %w", e.path(), err)
		}
	}
	_ = f.Close()
	o := &Object{ent: e, inMem: true, body: body, n: e.bodyLen, hdr: hdr}
	c.mu.Lock()
	if !c.closed && c.idx.byHash[e.hash] == e { // not purged or replaced meanwhile
		c.mem.Set(e.hash, o)
	}
	c.mu.Unlock()
	c.memBytes.Set(float64(c.mem.WeightedSize()))
	return o, nil
}

// promoteEvery is how many disk hits of an entry earn it one move into a
// full memory tier.
const promoteEvery = 16

// promote decides whether a disk hit moves its body into the memory tier.
// While the tier has room, every small body does. Once it is full, a
// promotion evicts another body and costs a read and an allocation of this
// one, so an entry earns it with promoteEvery disk hits: a hot set larger
// than memory then stays mostly on disk (sendfile from the page cache)
// instead of churning the heap at the rate of hits, while the memory tier
// still follows a hot set that moves.
func (c *Cache) promote(e *entry) bool {
	if c.mem.WeightedSize()+uint64(memWeight(e.bodyLen, e.bodyOff-prefixLen)) <= c.memLimit {
		return true
	}
	return e.diskHits.Add(1)%promoteEvery == 0
}

// drop removes e (if still indexed) and its file.
func (c *Cache) drop(e *entry) {
	c.mu.Lock()
	ok := c.idx.remove(e)
	if ok && c.mem != nil {
		c.mem.Invalidate(e.hash)
	}
	bytes := c.idx.bytes
	c.mu.Unlock()
	if ok {
		c.diskBytes.Set(float64(bytes))
		c.removeFiles([]*entry{e}, "dropped")
	}
}

// Touch records a successful revalidation (OSS answered 304): Stored
// becomes now, in memory and in the entry's file, so the entry is fresh
// again for the site's ttl, also after a restart. The file write is a
// 16-byte pwrite into whichever of the two stamp slots is older, so a crash
// mid-write leaves the previous Stored. It returns an error wrapping
// ErrNotFound if k has no entry; a failed file write still updates memory.
func (c *Cache) Touch(k Key, now time.Time) error {
	h := k.Hash()
	c.mu.Lock()
	e := c.idx.byHash[h]
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("cache: touching %s: %w", k, ErrClosed)
	}
	if e == nil || e.key != k {
		return fmt.Errorf("cache: touching %s: %w", k, ErrNotFound)
	}
	e.touchMu.Lock()
	defer e.touchMu.Unlock()
	m := *e.meta.Load()
	m.Stored = now
	e.meta.Store(&m)
	slot, seq := 1-e.slot, e.seq+1
	var b [slotLen]byte
	putSlot(b[:], slot, now, seq)
	f, err := os.OpenFile(e.path(), os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: touching %s: evicted meanwhile: %w", k, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cache: touching %s: %w", k, err)
	}
	_, err = f.WriteAt(b[:], int64(slotOff+slot*slotLen))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: touching %s: writing %s: %w", k, e.path(), err)
	}
	e.slot, e.seq = slot, seq
	return nil
}

// PurgeObject drops every entry of one object of a site, all x-oss-process
// and versionId variants: what a PUT, POST or DELETE of the key through the
// gateway must do. A fill of the object still running is not stored. It
// returns the number of entries dropped.
func (c *Cache) PurgeObject(site, object string) int { return c.purge(site, object, false) }

// PurgePrefix drops every entry of the site whose object key starts with
// prefix (admin POST /-/purge?site=S&prefix=P); it scans the site's object
// keys. It returns the number of entries dropped.
func (c *Cache) PurgePrefix(site, prefix string) int { return c.purge(site, prefix, true) }

// PurgeSite drops every entry of the site, e.g. when its bucket changed.
func (c *Cache) PurgeSite(site string) int { return c.purge(site, "", true) }

func (c *Cache) purge(site, object string, prefix bool) int {
	c.mu.Lock()
	victims := c.idx.matching(site, object, prefix)
	for _, e := range victims {
		c.idx.remove(e)
		if c.mem != nil {
			c.mem.Invalidate(e.hash)
		}
	}
	for h, fl := range c.flights {
		if fl.key.Site == site && (fl.key.Object == object || prefix && len(fl.key.Object) >= len(object) && fl.key.Object[:len(object)] == object) {
			fl.purged = true
			delete(c.flights, h)
		}
	}
	bytes := c.idx.bytes
	c.mu.Unlock()
	c.diskBytes.Set(float64(bytes))
	c.removeFiles(victims, "purged")
	return len(victims)
}

// Stats is a snapshot of the cache's size, for admin pages and tests.
type Stats struct {
	Entries       int   // entries in the disk tier
	DiskBytes     int64 // their file sizes
	MemoryEntries int   // bodies in the memory tier (approximate)
	MemoryBytes   int64 // their sizes (approximate: otter applies writes lazily)
	Fills         int   // fills that new callers can still join
}

// Stats returns the current sizes.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	s := Stats{Entries: len(c.idx.byHash), DiskBytes: c.idx.bytes, Fills: len(c.flights)}
	c.mu.Unlock()
	if c.mem != nil {
		s.MemoryEntries = c.mem.EstimatedSize()
		s.MemoryBytes = int64(c.mem.WeightedSize())
	}
	return s
}

// clock is the LRU time: Unix ns, advancing with the monotonic clock.
func (c *Cache) clock() int64 { return c.base + int64(time.Since(c.start)) }

// evictLocked removes least recently used entries until the disk tier
// fits MaxSize and returns them; the caller removes their files outside
// c.mu and counts them. Called with c.mu held (or before Open returns).
func (c *Cache) evictLocked() []*entry {
	var victims []*entry
	for c.idx.bytes > c.maxSize {
		e := c.idx.oldest()
		if e == nil {
			break
		}
		if c.mem != nil {
			c.mem.Invalidate(e.hash)
		}
		victims = append(victims, e)
	}
	return victims
}

// removeFiles deletes the files of entries no longer indexed. Open Objects
// keep reading them: on Linux an unlinked file lives until its last fd.
func (c *Cache) removeFiles(es []*entry, why string) {
	for _, e := range es {
		if err := os.Remove(e.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: removing an entry file", "why", why, "path", e.path(), "err", err)
		}
	}
}

// entryName names the file of hash h at generation gen: a fan-out
// directory by the first byte, the key hash, and the generation, so that a
// replacement never shares a path with the file it replaces (its removal
// cannot hit the new one).
func entryName(dir string, h [32]byte, gen uint64) string {
	hx := hashHex(h)
	return filepath.Join(dir, hx[:2], fmt.Sprintf("%s-%016x", hx, gen))
}

// otterLogger sends otter's rare warnings to the cache's logger instead of
// slog.Default.
type otterLogger struct{ l *slog.Logger }

func (o otterLogger) Warn(ctx context.Context, msg string, err error) {
	o.l.WarnContext(ctx, "cache: memory tier: "+msg, "err", err)
}

func (o otterLogger) Error(ctx context.Context, msg string, err error) {
	o.l.ErrorContext(ctx, "cache: memory tier: "+msg, "err", err)
}
