package cache

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/oss-gateway/gateway/internal/testkit"
)

func TestKeyHashIsInjectiveAndStable(t *testing.T) {
	a := Key{Site: "s", Object: "a", Process: "bc"}
	b := Key{Site: "s", Object: "ab", Process: "c"}
	if a.Hash() == b.Hash() {
		t.Fatal("length prefixes must keep {a,bc} and {ab,c} apart")
	}
	seen := map[[32]byte]Key{}
	for _, k := range []Key{{}, {Site: "s"}, {Object: "s"}, {Process: "s"}, {VersionID: "s"}, {Site: "s", Object: "o"}, {Site: "so"}} {
		if o, dup := seen[k.Hash()]; dup {
			t.Fatalf("%+v and %+v share a hash", k, o)
		}
		seen[k.Hash()] = k
	}
	// The hash names files: it must never change between releases.
	got := hex.EncodeToString(func() []byte {
		h := (Key{Site: "img", Object: "a/b.jpg", Process: "image/resize,w_100", VersionID: "v1"}).Hash()
		return h[:]
	}())
	const want = "37104858aca900ffdcc1343b6686ccc5b73a44da8e17ab4a6a21ccedb73f300a"
	if got != want {
		t.Fatalf("hash %s, want %s: changing it orphans every stored file", got, want)
	}
	long := Key{Site: "s", Object: strings.Repeat("x", 2000)}
	if long.Hash() == (Key{Site: "s", Object: strings.Repeat("x", 1999)}).Hash() {
		t.Fatal("long keys collide")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	k := Key{Site: "site", Object: "dir/obj ü.txt", Process: "image/resize,w_10", VersionID: "CAEQ"}
	for _, m := range []Meta{
		okMeta(5, `"abc"`),
		{Status: 200, Size: 0, Header: nil, ETag: ""},
		{Status: 200, Size: 3, Header: http.Header{"A": {}, "B": {"", "x"}}, LastModified: time.Unix(1, 5).UTC()},
	} {
		blob := encodeBlob(k, m)
		stored := time.Unix(1700000000, 123).UTC()
		p := encodePrefix(blob, m.Size, [32]byte{1, 2, 3}, stored)
		h, err := parseHeader(p, blob)
		if err != nil {
			t.Fatal(err)
		}
		m.Stored = stored
		if h.key != k || !reflect.DeepEqual(h.meta.Header, m.Header) || h.meta.Status != m.Status || h.meta.Size != m.Size ||
			h.meta.ETag != m.ETag || !h.meta.LastModified.Equal(m.LastModified) || !h.meta.Stored.Equal(stored) || h.sum != [32]byte{1, 2, 3} {
			t.Fatalf("round trip: got %+v %+v, want %+v %+v", h.key, h.meta, k, m)
		}
		// Every single-byte corruption of the fixed part or blob is caught,
		// except in the stamp slots, where only that slot is lost.
		for i := range len(p) + len(blob) {
			pp, bb := bytes.Clone(p), bytes.Clone(blob)
			if i < len(p) {
				pp[i] ^= 0x40
			} else {
				bb[i-len(p)] ^= 0x40
			}
			_, err := parseHeader(pp, bb)
			inSlot := i >= slotOff && i < slotOff+2*slotLen
			if !inSlot && err == nil {
				t.Fatalf("corrupting byte %d went unnoticed", i)
			}
			if i >= slotOff && i < slotOff+slotLen && err == nil {
				t.Fatalf("corrupting the only valid slot (byte %d) went unnoticed", i)
			}
		}
	}
}

func TestFillThenLookupHits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		memory int64
		inMem  bool
	}{
		{"small in memory", 1000, 64 << 20, true},
		{"empty body", 0, 64 << 20, true},
		{"large on disk", 3 << 20, 64 << 20, false},
		{"small without memory tier", 1000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openT(t, Options{Memory: tc.memory})
			data := payload(tc.size, 1)
			f := newFetcher(data, `"e1"`)
			k := key("a.bin")
			if got := fillAndWait(t, c, k, f); !bytes.Equal(got, data) {
				t.Fatal("waiter got a different body")
			}
			o := mustHit(t, c, k, data)
			m := o.Meta()
			if m.ETag != `"e1"` || m.Size != int64(tc.size) || m.Status != 200 || m.Header.Get("X-Oss-Request-Id") != `req-"e1"` || m.Stored.IsZero() {
				t.Fatalf("meta %+v", m)
			}
			if _, ok := o.Bytes(); ok != tc.inMem {
				t.Fatalf("memory object %v, want %v", ok, tc.inMem)
			}
			if _, _, _, ok := o.File(); ok == tc.inMem {
				t.Fatalf("file object %v, want %v", ok, !tc.inMem)
			}
			if f.calls.Load() != 1 {
				t.Fatalf("%d fetches", f.calls.Load())
			}
			mustMiss(t, c, Key{Site: "site", Object: "a.bin", Process: "image/resize,w_1"})
			mustMiss(t, c, Key{Site: "other", Object: "a.bin"})
		})
	}
}

func TestMemoryHitAllocatesNothing(t *testing.T) {
	c := openT(t, Options{Memory: 64 << 20})
	data := payload(4096, 2)
	k := key("hot")
	fillAndWait(t, c, k, newFetcher(data, `"h"`))
	mustHit(t, c, k, data)
	allocs := testing.AllocsPerRun(1000, func() {
		o, ok := c.Lookup(k)
		if !ok {
			t.Fatal("miss")
		}
		_, _ = o.WriteTo(io.Discard)
		_ = o.Meta()
		_ = o.Close()
	})
	if allocs != 0 {
		t.Fatalf("memory hit: %.1f allocations, want 0", allocs)
	}
}

func TestRestartKeepsEntries(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir, Memory: 64 << 20})
	small, large := payload(100, 3), payload(2<<20, 4)
	fillAndWait(t, c, key("small"), newFetcher(small, `"s"`))
	fillAndWait(t, c, key("large"), newFetcher(large, `"l"`))
	v := Key{Site: "site", Object: "small", VersionID: "v2"}
	fillAndWait(t, c, v, newFetcher(payload(50, 5), `"v"`))
	before := c.Stats()
	stored := mustHit(t, c, key("large"), large).Meta().Stored
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "no-such")); err == nil {
		t.Fatal("unexpected")
	}
	c2 := openT(t, Options{Dir: dir, Memory: 64 << 20})
	after := c2.Stats()
	if after.Entries != before.Entries || after.DiskBytes != before.DiskBytes {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	o := mustHit(t, c2, key("large"), large)
	if m := o.Meta(); !m.Stored.Equal(stored) || m.ETag != `"l"` || m.Header.Get("Content-Type") != "application/octet-stream" || !m.LastModified.Equal(okMeta(0, "").LastModified) {
		t.Fatalf("meta after restart %+v", m)
	}
	mustHit(t, c2, key("small"), small)
	mustHit(t, c2, v, payload(50, 5))
	// Purges work on entries loaded from disk.
	if n := c2.PurgeObject("site", "small"); n != 2 {
		t.Fatalf("PurgeObject dropped %d, want 2 (both versions)", n)
	}
	mustMiss(t, c2, key("small"))
	mustMiss(t, c2, v)
	if got := len(entryFiles(t, dir)); got != 1 {
		t.Fatalf("%d files left, want 1", got)
	}
}

func TestOpenDropsBadFiles(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir, Memory: 64 << 20})
	good, flipped, truncated, grown := payload(3000, 6), payload(300<<10, 7), payload(3000, 8), payload(1000, 9)
	fillAndWait(t, c, key("good"), newFetcher(good, `"g"`))
	fillAndWait(t, c, key("flipped"), newFetcher(flipped, `"f"`))
	fillAndWait(t, c, key("truncated"), newFetcher(truncated, `"t"`))
	fillAndWait(t, c, key("grown"), newFetcher(grown, `"x"`))
	pf, pt, pg := entryFile(t, c, key("flipped")), entryFile(t, c, key("truncated")), entryFile(t, c, key("grown"))
	_ = c.Close()

	// A flipped body byte keeps the header valid: found at the first hit.
	b, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1000] ^= 1
	if err := os.WriteFile(pf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(pt, 500); err != nil {
		t.Fatal(err)
	}
	if f, err := os.OpenFile(pg, os.O_APPEND|os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	} else {
		_, _ = f.Write([]byte("x"))
		_ = f.Close()
	}
	// Leftovers: a temporary file, a file with a valid name and garbage,
	// a file with a name that does not match its key, a foreign file.
	leftover := filepath.Join(dir, tmpPrefix+"123")
	garbage := filepath.Join(dir, hashHex(key("g").Hash())[:2], hashHex(key("g").Hash())+"-0000000000000001")
	misnamed := filepath.Join(dir, hashHex(key("m").Hash())[:2], hashHex(key("m").Hash())+"-0000000000000001")
	foreign := filepath.Join(dir, "README")
	for p, content := range map[string][]byte{leftover: []byte("partial"), garbage: bytes.Repeat([]byte{7}, 200), foreign: []byte("notes")} {
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(entryFile(t, c, key("good")), misnamed); err != nil {
		t.Fatal(err)
	}

	c2 := openT(t, Options{Dir: dir, Memory: 64 << 20})
	mustHit(t, c2, key("good"), good)
	mustMiss(t, c2, key("flipped"))
	mustMiss(t, c2, key("truncated"))
	mustMiss(t, c2, key("grown"))
	for _, p := range []string{pf, pt, pg, leftover, garbage, misnamed} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: still there (%v)", p, err)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a file that is not the cache's was touched: %v", err)
	}
	if s := c2.Stats(); s.Entries != 1 {
		t.Fatalf("stats %+v, want one entry", s)
	}
}

func TestVerifiedOnceAfterLoad(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir})
	data := payload(1<<20, 10)
	fillAndWait(t, c, key("v"), newFetcher(data, `"v"`))
	p := entryFile(t, c, key("v"))
	_ = c.Close()
	c2 := openT(t, Options{Dir: dir})
	mustHit(t, c2, key("v"), data) // verifies
	// Corrupting the file after the check is not looked for again: the
	// check is once per load (a 64 MiB read per hit would defeat the cache).
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	_, _ = f.WriteAt([]byte{0xff}, st.Size()-1)
	_ = f.Close()
	o, ok := c2.Lookup(key("v"))
	if !ok {
		t.Fatal("second hit after a verified load missed")
	}
	_ = o.Close()
	_ = c2.Close()
	c3 := openT(t, Options{Dir: dir})
	mustMiss(t, c3, key("v"))
}

func TestConcurrentFirstHitsVerifyOnce(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir})
	data := payload(2<<20, 11)
	fillAndWait(t, c, key("v"), newFetcher(data, `"v"`))
	_ = c.Close()
	c2 := openT(t, Options{Dir: dir})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			o, ok := c2.Lookup(key("v"))
			if !ok {
				t.Error("miss")
				return
			}
			defer o.Close()
			var b bytes.Buffer
			if _, err := o.WriteTo(&b); err != nil || !bytes.Equal(b.Bytes(), data) {
				t.Errorf("body differs (%v)", err)
			}
		})
	}
	wg.Wait()
}

func TestTouchSurvivesRestartAndTornWrite(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := openT(t, Options{Dir: dir, Memory: 1 << 20, Now: func() time.Time { return now }})
	k := key("t")
	data := payload(100, 12)
	fillAndWait(t, c, k, newFetcher(data, `"t"`))
	if got := mustHit(t, c, k, data).Meta().Stored; !got.Equal(now) {
		t.Fatalf("Stored %v, want %v", got, now)
	}
	t1, t2 := now.Add(time.Hour), now.Add(2*time.Hour)
	if err := c.Touch(k, t1); err != nil {
		t.Fatal(err)
	}
	if got := mustHit(t, c, k, data).Meta().Stored; !got.Equal(t1) { // memory object sees it
		t.Fatalf("after Touch Stored %v, want %v", got, t1)
	}
	if err := c.Touch(k, t2); err != nil {
		t.Fatal(err)
	}
	if err := c.Touch(key("absent"), t2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Touch of an absent key: %v", err)
	}
	p := entryFile(t, c, k)
	_ = c.Close()

	c2 := openT(t, Options{Dir: dir})
	if got := mustHit(t, c2, k, data).Meta().Stored; !got.Equal(t2) {
		t.Fatalf("after restart Stored %v, want %v", got, t2)
	}
	_ = c2.Close()

	// A torn write of the newest slot leaves the previous Stored.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var pre [prefixLen]byte
	if _, err := f.ReadAt(pre[:], 0); err != nil {
		t.Fatal(err)
	}
	_, slot, _, _ := parseSlots(pre[:])
	if _, err := f.WriteAt([]byte{0xde, 0xad}, int64(slotOff+slot*slotLen+2)); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	c3 := openT(t, Options{Dir: dir})
	if got := mustHit(t, c3, k, data).Meta().Stored; !got.Equal(t1) {
		t.Fatalf("after a torn stamp Stored %v, want the previous %v", got, t1)
	}
}

func TestPurge(t *testing.T) {
	c := openT(t, Options{Memory: 1 << 20})
	keys := []Key{
		{Site: "a", Object: "img/1.jpg"},
		{Site: "a", Object: "img/1.jpg", Process: "image/resize,w_10"},
		{Site: "a", Object: "img/1.jpg", VersionID: "v1"},
		{Site: "a", Object: "img/2.jpg"},
		{Site: "a", Object: "img2/3.jpg"},
		{Site: "a", Object: "doc/x"},
		{Site: "b", Object: "img/1.jpg"},
	}
	fill := func() {
		for i, k := range keys {
			fillAndWait(t, c, k, newFetcher(payload(100+i, uint64(i)), `"x"`))
		}
	}
	fill()
	if n := c.PurgeObject("a", "img/1.jpg"); n != 3 {
		t.Fatalf("PurgeObject: %d, want 3", n)
	}
	for _, k := range keys[:3] {
		mustMiss(t, c, k)
	}
	mustHit(t, c, keys[3], payload(103, 3))
	mustHit(t, c, keys[6], payload(106, 6))
	fill()
	if n := c.PurgePrefix("a", "img/"); n != 4 {
		t.Fatalf("PurgePrefix: %d, want 4", n)
	}
	mustHit(t, c, keys[4], payload(104, 4)) // img2/ does not start with img/
	mustHit(t, c, keys[6], payload(106, 6))
	if n := c.PurgeSite("a"); n != 2 {
		t.Fatalf("PurgeSite: %d, want 2", n)
	}
	if s := c.Stats(); s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := len(entryFiles(t, c.dir)); got != 1 {
		t.Fatalf("%d files, want 1", got)
	}
	if n := c.PurgeSite("nope"); n != 0 {
		t.Fatal(n)
	}
}

func TestPurgeDuringFillIsNotStored(t *testing.T) {
	c := openT(t, Options{})
	f := newFetcher(payload(1<<20, 13), `"p"`)
	f.holdAt = 100 << 10
	k := key("p")
	fl := c.Fill(k, f.fetch)
	if _, err := fl.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.PurgeObject("site", "p")
	// A caller after the purge gets a new fetch, not the pre-purge one.
	fl2 := c.Fill(k, f.fetch)
	close(f.gate)
	b, err := io.ReadAll(fl)
	if err != nil || !bytes.Equal(b, f.data) {
		t.Fatalf("waiter: %v", err)
	}
	_ = fl.Close()
	<-fl.Done()
	if _, b2, err := readFill(context.Background(), fl2); err != nil || !bytes.Equal(b2, f.data) {
		t.Fatalf("second fill: %v", err)
	}
	<-fl2.Done()
	if f.calls.Load() != 2 {
		t.Fatalf("%d fetches, want 2", f.calls.Load())
	}
	mustHit(t, c, k, f.data) // stored by the second fill only
	if got := len(entryFiles(t, c.dir)); got != 1 {
		t.Fatalf("%d files, want 1", got)
	}
}

func TestDiskLRUEviction(t *testing.T) {
	bytesVec, evVec := NewMetricVecs()
	// Each entry is 10 KiB of body plus a small header; room for 4.
	const body = 10 << 10
	c := openT(t, Options{MaxSize: 4*body + 4*400, Bytes: bytesVec, Evictions: evVec})
	for i := range 4 {
		fillAndWait(t, c, key(itoa(i)), newFetcher(payload(body, uint64(i)), `"x"`))
		time.Sleep(2 * time.Millisecond) // hits are stamped to the ms
	}
	p0, p1 := entryFile(t, c, key("0")), entryFile(t, c, key("1"))
	mustHit(t, c, key("0"), payload(body, 0)) // 1 is now the least recently used
	time.Sleep(2 * time.Millisecond)
	fillAndWait(t, c, key("4"), newFetcher(payload(body, 4), `"x"`))
	mustMiss(t, c, key("1"))
	for _, i := range []int{0, 2, 3, 4} {
		mustHit(t, c, key(itoa(i)), payload(body, uint64(i)))
	}
	if _, err := os.Stat(p1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("evicted file still there: %v", err)
	}
	if _, err := os.Stat(p0); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(evVec.WithLabelValues("disk")); got != 1 {
		t.Fatalf("disk evictions %v, want 1", got)
	}
	s := c.Stats()
	if got := testutil.ToFloat64(bytesVec.WithLabelValues("disk")); got != float64(s.DiskBytes) || s.DiskBytes > c.maxSize {
		t.Fatalf("disk bytes gauge %v, stats %+v, max %d", got, s, c.maxSize)
	}
	var files int64
	for _, p := range entryFiles(t, c.dir) {
		st, _ := os.Stat(p)
		files += st.Size()
	}
	if files != s.DiskBytes {
		t.Fatalf("files hold %d bytes, index says %d", files, s.DiskBytes)
	}
	// Reopening with a smaller MaxSize evicts down to it.
	dir := c.dir
	_ = c.Close()
	c2 := openT(t, Options{Dir: dir, MaxSize: 2*body + 2*400})
	if s := c2.Stats(); s.Entries != 2 {
		t.Fatalf("after shrinking: %+v", s)
	}
}

func TestMemoryTierBounded(t *testing.T) {
	bytesVec, evVec := NewMetricVecs()
	c := openT(t, Options{Memory: 64 << 10, MemoryObjectSize: 8 << 10, Bytes: bytesVec, Evictions: evVec})
	for i := range 40 {
		fillAndWait(t, c, key(itoa(i)), newFetcher(payload(4<<10, uint64(i)), `"m"`))
	}
	c.mem.CleanUp()
	testkit.Eventually(t, 10*time.Second, "memory evictions", func() bool { return testutil.ToFloat64(evVec.WithLabelValues("memory")) > 0 })
	s := c.Stats()
	if s.MemoryBytes > 64<<10 || s.Entries != 40 {
		t.Fatalf("stats %+v", s)
	}
	// Every entry is still on disk, whichever tier serves it.
	for i := range 40 {
		mustHit(t, c, key(itoa(i)), payload(4<<10, uint64(i)))
	}
	// Larger than MemoryObjectSize: served from the file.
	fillAndWait(t, c, key("big"), newFetcher(payload(16<<10, 99), `"b"`))
	if o := mustHit(t, c, key("big"), payload(16<<10, 99)); func() bool { _, ok := o.Bytes(); return ok }() {
		t.Fatal("a body over MemoryObjectSize is in memory")
	}
	testkit.Eventually(t, 10*time.Second, "memory gauge", func() bool {
		return testutil.ToFloat64(bytesVec.WithLabelValues("memory")) == float64(c.mem.WeightedSize())
	})
}

func TestReplaceKeepsOneFile(t *testing.T) {
	c := openT(t, Options{Memory: 1 << 20})
	k := key("r")
	fillAndWait(t, c, k, newFetcher(payload(2000, 1), `"v1"`))
	old := mustHit(t, c, k, payload(2000, 1))
	fillAndWait(t, c, k, newFetcher(payload(3000, 2), `"v2"`))
	if o := mustHit(t, c, k, payload(3000, 2)); o.Meta().ETag != `"v2"` {
		t.Fatal("old version served after a replacement")
	}
	if old.Meta().ETag != `"v1"` {
		t.Fatal("an Object's meta changed under it")
	}
	if got := len(entryFiles(t, c.dir)); got != 1 {
		t.Fatalf("%d files, want 1", got)
	}
}

func TestEvictDuringSend(t *testing.T) {
	c := openT(t, Options{})
	data := payload(1<<20, 14)
	fillAndWait(t, c, key("e"), newFetcher(data, `"e"`))
	o, ok := c.Lookup(key("e"))
	if !ok {
		t.Fatal("miss")
	}
	defer o.Close()
	c.PurgeSite("site") // unlinks the file the Object has open
	if len(entryFiles(t, c.dir)) != 0 {
		t.Fatal("file not removed")
	}
	var b bytes.Buffer
	if _, err := o.WriteTo(&b); err != nil || !bytes.Equal(b.Bytes(), data) {
		t.Fatalf("send after eviction: %v", err)
	}
}

func TestObjectRanges(t *testing.T) {
	for _, memory := range []int64{0, 8 << 20} {
		c := openT(t, Options{Memory: memory})
		data := payload(100<<10, 15)
		fillAndWait(t, c, key("r"), newFetcher(data, `"r"`))
		o := mustHit(t, c, key("r"), data)
		for _, r := range [][2]int64{{0, 0}, {0, 1}, {5, 100}, {99 << 10, 1 << 10}, {100<<10 - 1, 1}, {100 << 10, 0}} {
			var b bytes.Buffer
			if _, err := o.WriteRangeTo(&b, r[0], r[1]); err != nil || !bytes.Equal(b.Bytes(), data[r[0]:r[0]+r[1]]) {
				t.Fatalf("memory %d: WriteRangeTo %v: %v", memory, r, err)
			}
			rd, err := o.Reader(r[0], r[1])
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(rd); err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
				t.Fatalf("memory %d: Reader %v: %v", memory, r, err)
			}
			sr := io.NewSectionReader(o, r[0], r[1])
			if got, err := io.ReadAll(sr); err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
				t.Fatalf("memory %d: SectionReader %v: %v", memory, r, err)
			}
		}
		for _, r := range [][2]int64{{-1, 1}, {0, 100<<10 + 1}, {100<<10 + 1, 0}, {1, -1}} {
			if _, err := o.WriteRangeTo(io.Discard, r[0], r[1]); err == nil {
				t.Fatalf("range %v accepted", r)
			}
		}
		if n, err := o.ReadAt(make([]byte, 10), 100<<10-4); n != 4 || err != io.EOF {
			t.Fatalf("ReadAt at the end: %d, %v", n, err)
		}
	}
}

func TestSecondOpenOfDirFails(t *testing.T) {
	dir := t.TempDir()
	openT(t, Options{Dir: dir})
	if c, err := Open(Options{Dir: dir, MaxSize: 1 << 20}); err == nil {
		_ = c.Close()
		t.Fatal("a second Open of a locked dir succeeded")
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {Dir: t.TempDir()}, {Dir: t.TempDir(), MaxSize: 1, Memory: -1}} {
		if c, err := Open(o); err == nil {
			_ = c.Close()
			t.Fatalf("Open(%+v) succeeded", o)
		}
	}
}

func TestClosedCache(t *testing.T) {
	c := openT(t, Options{Memory: 1 << 20})
	fillAndWait(t, c, key("x"), newFetcher(payload(10, 1), `"x"`))
	_ = c.Close()
	mustMiss(t, c, key("x"))
	fl := c.Fill(key("x"), newFetcher(nil, `"x"`).fetch)
	defer fl.Close()
	if _, err := fl.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fill after Close: %v", err)
	}
	if err := c.Touch(key("x"), time.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Touch after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestIndexKeepsNoHeaders: an entry in the index holds what freshness and
// conditionals need, never OSS's header, so the index costs a fixed few
// hundred bytes per entry however much OSS sent; hits still answer with
// the whole header, from memory or read from the file (also after a
// restart), and a file whose header went bad since it was loaded is a miss,
// never headers from another response.
func TestIndexKeepsNoHeaders(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir, Memory: 64 << 10, MemoryObjectSize: 8 << 10})
	big := func(etag string) Meta {
		m := okMeta(0, etag)
		for i := range 20 {
			m.Header.Set("X-Oss-Meta-Field-"+itoa(i), strings.Repeat("v", 100))
		}
		return m
	}
	fill := func(c *Cache, k Key, data []byte, etag string) {
		t.Helper()
		f := newFetcher(data, etag)
		f.meta = big(etag)
		f.meta.Size = int64(len(data))
		fillAndWait(t, c, k, f)
	}
	noHeaders := func(c *Cache) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.idx.byHash {
			if h := e.meta.Load().Header; h != nil {
				t.Fatalf("index entry %s keeps %d headers", e.key, len(h))
			}
		}
	}
	fill(c, key("mem"), payload(1000, 1), `"m"`)
	fill(c, key("file"), payload(16<<10, 2), `"f"`)
	noHeaders(c)
	bodies := map[Key][]byte{key("mem"): payload(1000, 1), key("file"): payload(16<<10, 2)}
	for _, k := range []Key{key("mem"), key("file")} {
		if got := mustHit(t, c, k, bodies[k]).Meta().Header.Get("X-Oss-Meta-Field-19"); len(got) != 100 {
			t.Fatalf("%s: hit header %q", k, got)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := openT(t, Options{Dir: dir, Memory: 64 << 10, MemoryObjectSize: 8 << 10})
	noHeaders(c2)
	for _, k := range []Key{key("mem"), key("file")} {
		if got := mustHit(t, c2, k, bodies[k]).Meta().Header.Get("X-Oss-Meta-Field-0"); len(got) != 100 {
			t.Fatalf("%s after restart: hit header %q", k, got)
		}
	}
	// Damage the header of a loaded file entry: its next hit misses and
	// drops it.
	fill(c2, key("late"), payload(16<<10, 3), `"l"`)
	path := entryFile(t, c2, key("late"))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), prefixLen+4); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustMiss(t, c2, key("late"))
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the damaged entry's file is still there: %v", err)
	}
}

// TestFullMemoryTierPromotesEarnedHits: while the memory tier is full, a
// disk hit is served from the file and does not move its body into memory
// (which would read and allocate it and evict another, at the rate of
// hits) until the entry has earned it with promoteEvery disk hits.
func TestFullMemoryTierPromotesEarnedHits(t *testing.T) {
	c := openT(t, Options{Memory: 64 << 10, MemoryObjectSize: 8 << 10})
	for i := range 40 {
		fillAndWait(t, c, key(itoa(i)), newFetcher(payload(4<<10, uint64(i)), `"m"`))
	}
	c.mem.CleanUp()
	var cold Key
	for i := range 40 {
		if _, ok := c.mem.GetIfPresent(key(itoa(i)).Hash()); !ok {
			cold = key(itoa(i))
			break
		}
	}
	if cold == (Key{}) {
		t.Fatal("every entry is in a 64 KiB memory tier")
	}
	want := payload(4<<10, uint64(mustAtoi(t, cold.Object)))
	for n := 1; n < promoteEvery; n++ {
		if _, inMem := mustHit(t, c, cold, want).Bytes(); inMem {
			t.Fatalf("disk hit %d of %s moved it into the full memory tier", n, cold)
		}
	}
	// The promoted body is offered to the memory tier, whose own policy
	// decides whether it stays: what this hit returns is the body read.
	if _, inMem := mustHit(t, c, cold, want).Bytes(); !inMem {
		t.Fatalf("disk hit %d of %s did not promote it", promoteEvery, cold)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
