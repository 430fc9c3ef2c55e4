package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openT opens a cache in a fresh temporary directory (unless o.Dir is
// set) and closes it when the test ends.
func openT(t testing.TB, o Options) *Cache {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.MaxSize == 0 {
		o.MaxSize = 1 << 30
	}
	c, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// payload is n deterministic pseudo-random bytes.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func okMeta(size int64, etag string) Meta {
	return Meta{
		Status: 200, Size: size, ETag: etag,
		Header:       http.Header{"Content-Type": {"application/octet-stream"}, "Etag": {etag}, "X-Oss-Request-Id": {"req-" + etag}},
		LastModified: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
}

// testBody is an upstream body: it hands out data in chunks, can hold
// before a given offset until gate is closed, and can fail at failAt.
type testBody struct {
	data   []byte
	pos    int
	chunk  int
	holdAt int           // -1: never
	gate   chan struct{} // closed to let the body past holdAt
	failAt int           // -1: never
	ctx    context.Context
	closed atomic.Bool
}

var errUpstream = errors.New("upstream connection reset")

func (b *testBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errors.New("read after close")
	}
	if b.holdAt >= 0 && b.pos >= b.holdAt {
		select {
		case <-b.gate:
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if b.failAt >= 0 && b.pos >= b.failAt {
		return 0, errUpstream
	}
	if b.pos >= len(b.data) {
		return 0, io.EOF
	}
	n := min(len(p), b.chunk, len(b.data)-b.pos)
	if b.holdAt >= 0 && b.pos < b.holdAt {
		n = min(n, b.holdAt-b.pos)
	}
	if b.failAt >= 0 {
		n = min(n, b.failAt-b.pos)
	}
	copy(p, b.data[b.pos:b.pos+n])
	b.pos += n
	return n, nil
}

func (b *testBody) Close() error { b.closed.Store(true); return nil }

// fetcher counts its calls and serves data with the given options.
type fetcher struct {
	calls     atomic.Int32
	meta      Meta
	data      []byte
	cacheable bool
	chunk     int
	holdAt    int
	gate      chan struct{}
	failAt    int
	err       error
	hdrGate   chan struct{} // if set, the headers wait for it
	last      atomic.Pointer[testBody]
	ctxSeen   atomic.Pointer[context.Context]
}

func newFetcher(data []byte, etag string) *fetcher {
	return &fetcher{meta: okMeta(int64(len(data)), etag), data: data, cacheable: true, chunk: 32 << 10, holdAt: -1, failAt: -1, gate: make(chan struct{})}
}

func (f *fetcher) fetch(ctx context.Context) (Meta, io.ReadCloser, bool, error) {
	f.calls.Add(1)
	f.ctxSeen.Store(&ctx)
	if f.hdrGate != nil {
		<-f.hdrGate
	}
	if f.err != nil {
		return Meta{}, nil, false, f.err
	}
	b := &testBody{data: f.data, chunk: f.chunk, holdAt: f.holdAt, gate: f.gate, failAt: f.failAt, ctx: ctx}
	f.last.Store(b)
	return f.meta, b, f.cacheable, nil
}

// readFill waits for and reads a whole fill.
func readFill(ctx context.Context, fl *Fill) (Meta, []byte, error) {
	defer fl.Close()
	m, err := fl.Wait(ctx)
	if err != nil {
		return m, nil, err
	}
	var buf bytes.Buffer
	if m.Size > 0 {
		buf.Grow(int(m.Size) + bytes.MinRead) // io.ReadAll's growth dominates a test of 100 waiters
	}
	_, err = buf.ReadFrom(fl)
	return m, buf.Bytes(), err
}

// fillAndWait fills k completely through one waiter and waits until the
// fill is over for the cache.
func fillAndWait(t testing.TB, c *Cache, k Key, f *fetcher) []byte {
	t.Helper()
	fl := c.Fill(k, f.fetch)
	done := fl.Done()
	_, b, err := readFill(context.Background(), fl)
	if err != nil {
		t.Fatalf("fill %s: %v", k, err)
	}
	<-done
	return b
}

// objectBody reads a hit's whole body through ReadAt and WriteTo and
// checks they agree.
func objectBody(t testing.TB, o *Object) []byte {
	t.Helper()
	var w bytes.Buffer
	if _, err := o.WriteTo(&w); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	b := make([]byte, o.Size())
	if n, err := o.ReadAt(b, 0); int64(n) != o.Size() || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !bytes.Equal(w.Bytes(), b) {
		t.Fatal("WriteTo and ReadAt disagree")
	}
	return b
}

// mustHit looks k up and checks the body.
func mustHit(t testing.TB, c *Cache, k Key, want []byte) *Object {
	t.Helper()
	o, ok := c.Lookup(k)
	if !ok {
		t.Fatalf("Lookup(%s): miss, want a hit", k)
	}
	t.Cleanup(func() { _ = o.Close() })
	if got := objectBody(t, o); !bytes.Equal(got, want) {
		t.Fatalf("Lookup(%s): body of %d bytes differs from the %d stored", k, len(got), len(want))
	}
	return o
}

func mustMiss(t testing.TB, c *Cache, k Key) {
	t.Helper()
	if o, ok := c.Lookup(k); ok {
		_ = o.Close()
		t.Fatalf("Lookup(%s): hit, want a miss", k)
	}
}

// entryFiles lists the entry files under dir.
func entryFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != ".lock" {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func entryFile(t testing.TB, c *Cache, k Key) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.idx.byHash[k.Hash()]
	if e == nil {
		t.Fatalf("no entry for %s", k)
	}
	return e.path()
}

func key(obj string) Key { return Key{Site: "site", Object: obj} }

func itoa(i int) string { return strconv.Itoa(i) }

var _ = strings.HasPrefix
var _ sync.Mutex
