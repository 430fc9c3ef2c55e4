package cache

import (
	"container/heap"
	"strings"
	"sync"
	"sync/atomic"
)

// entry is one stored object in the disk tier's index. The index keeps
// Site and Object of every entry (also those loaded from disk after a
// restart), so purges need no file reads.
type entry struct {
	hash    [32]byte
	key     Key
	root    *string // the cache directory, shared by every entry
	gen     uint64  // the file's generation: its name is path()
	size    int64   // file size, what counts against MaxSize
	bodyOff int64
	bodyLen int64
	sum     [32]byte

	// meta is replaced, never changed, so an Object can hand it out
	// while Touch installs a newer Stored.
	meta atomic.Pointer[Meta]
	// access is the last hit, in ns on the cache's clock (LRU order).
	// Hits store it without taking the index lock.
	access atomic.Int64
	// diskHits counts hits served from the file while the memory tier
	// was full (see Cache.promote).
	diskHits atomic.Uint32
	// verified is set once the body's SHA-256 matched (always for
	// entries this process wrote); until then the first hit verifies.
	verified atomic.Bool
	verifyMu sync.Mutex

	// touchMu serialises Touch's writes of the stamp slots.
	touchMu sync.Mutex
	slot    int
	seq     uint32

	// Guarded by Cache.mu.
	heapKey int64 // access when last placed in the heap
	heapIdx int   // position in the heap, -1 when not in the index
}

// touchAccess records a hit. It skips the store when the stamp is recent,
// so a hot entry's cache line is not written by every core on every hit;
// LRU order is exact to the millisecond.
func (e *entry) touchAccess(now int64) {
	if now-e.access.Load() > 1e6 {
		e.access.Store(now)
	}
}

// lruHeap orders entries by the access stamp they had when pushed or last
// fixed. Hits only move the atomic stamp forward, so every heap key is <=
// its entry's real stamp; eviction pops the root and, when its stamp moved,
// re-keys it and tries again. The first root whose key is current has the
// smallest real stamp of all: exact least-recently-used order, with hits
// that never take the index lock.
type lruHeap []*entry

func (h lruHeap) Len() int           { return len(h) }
func (h lruHeap) Less(i, j int) bool { return h[i].heapKey < h[j].heapKey }
func (h lruHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *lruHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *lruHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}

// index is the disk tier's bookkeeping, guarded by Cache.mu.
//
// Purges use a per-site map of object key to its variants (Process,
// VersionID): PurgeObject and PurgeSite touch only the entries they drop;
// PurgePrefix scans the object keys of one site. A sorted structure would
// make prefix purges faster but cost on every insert, and purges are rare
// admin actions while inserts happen on every fill. An object's variants
// are a slice, not a map: nearly every object has one, and a map of one
// costs hundreds of bytes per entry.
type index struct {
	byHash map[[32]byte]*entry
	sites  map[string]map[string][]*entry // site -> object -> variants
	lru    lruHeap
	bytes  int64 // sum of entry sizes
}

func newIndex() index {
	return index{byHash: map[[32]byte]*entry{}, sites: map[string]map[string][]*entry{}}
}

// add inserts e; it returns the entry it replaced, if any.
func (x *index) add(e *entry) (old *entry) {
	if old = x.byHash[e.hash]; old != nil {
		x.remove(old)
	}
	x.byHash[e.hash] = e
	objs := x.sites[e.key.Site]
	if objs == nil {
		objs = map[string][]*entry{}
		x.sites[e.key.Site] = objs
	}
	objs[e.key.Object] = append(objs[e.key.Object], e)
	e.heapKey = e.access.Load()
	heap.Push(&x.lru, e)
	x.bytes += e.size
	return old
}

// remove drops e if it is still indexed; it reports whether it was.
func (x *index) remove(e *entry) bool {
	if e.heapIdx < 0 || x.byHash[e.hash] != e {
		return false
	}
	delete(x.byHash, e.hash)
	if objs := x.sites[e.key.Site]; objs != nil {
		vars := objs[e.key.Object]
		for i, v := range vars {
			if v == e {
				vars[i] = vars[len(vars)-1]
				vars[len(vars)-1] = nil
				vars = vars[:len(vars)-1]
				break
			}
		}
		if len(vars) == 0 {
			delete(objs, e.key.Object)
		} else {
			objs[e.key.Object] = vars
		}
		if len(objs) == 0 {
			delete(x.sites, e.key.Site)
		}
	}
	heap.Remove(&x.lru, e.heapIdx)
	x.bytes -= e.size
	return true
}

// oldest removes and returns the least recently used entry.
func (x *index) oldest() *entry {
	for len(x.lru) > 0 {
		e := x.lru[0]
		if a := e.access.Load(); a != e.heapKey {
			e.heapKey = a
			heap.Fix(&x.lru, 0)
			continue
		}
		x.remove(e)
		return e
	}
	return nil
}

// matching lists the entries of site whose object key is object (prefix
// false) or starts with it (prefix true); object "" with prefix is the
// whole site.
func (x *index) matching(site, object string, prefix bool) []*entry {
	objs := x.sites[site]
	var out []*entry
	if !prefix {
		return append(out, objs[object]...)
	}
	for name, vars := range objs {
		if strings.HasPrefix(name, object) {
			out = append(out, vars...)
		}
	}
	return out
}

// path is the entry's file. It is computed, not kept: a million entries
// would otherwise hold a hundred megabytes of file names.
func (e *entry) path() string { return entryName(*e.root, e.hash, e.gen) }
