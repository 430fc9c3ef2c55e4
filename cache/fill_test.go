package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// fillModes are the shapes of a fill's shared buffer.
var fillModes = []struct {
	name    string
	size    int
	unknown bool // Meta.Size -1
	memory  int64
}{
	{"memory buffer", 48 << 10, false, 8 << 20},
	{"file", 1 << 20, false, 8 << 20}, // over the 512 KiB memory buffer limit
	{"unknown size", 600 << 10, true, 8 << 20},
}

func TestFillCoalescesConcurrentMisses(t *testing.T) {
	for _, m := range fillModes {
		t.Run(m.name, func(t *testing.T) {
			c := openT(t, Options{Memory: m.memory})
			data := payload(m.size, 20)
			f := newFetcher(data, `"c"`)
			f.holdAt = m.size / 2 // nobody can finish before all have joined
			if m.unknown {
				f.meta.Size = -1
			}
			k := key("c")
			const n = 100
			var called, wg sync.WaitGroup
			called.Add(n)
			bodies := make([][]byte, n)
			errs := make([]error, n)
			joined := make([]bool, n)
			for i := range n {
				wg.Go(func() {
					fl := c.Fill(k, f.fetch)
					joined[i] = fl.Joined()
					called.Done()
					_, bodies[i], errs[i] = readFill(context.Background(), fl)
				})
			}
			called.Wait()
			close(f.gate)
			wg.Wait()
			if got := f.calls.Load(); got != 1 {
				t.Fatalf("%d fetches for %d concurrent misses, want 1", got, n)
			}
			leaders := 0
			for i := range n {
				if errs[i] != nil || !bytes.Equal(bodies[i], data) {
					t.Fatalf("waiter %d: %d bytes, %v", i, len(bodies[i]), errs[i])
				}
				if !joined[i] {
					leaders++
				}
			}
			if leaders != 1 {
				t.Fatalf("%d callers started the fill, want 1", leaders)
			}
			mustHit(t, c, k, data)
			if f.last.Load().closed.Load() != true {
				t.Fatal("upstream body not closed")
			}
		})
	}
}

func TestFillWaiterLeavingEarlyDoesNotAffectOthers(t *testing.T) {
	for _, m := range fillModes {
		t.Run(m.name, func(t *testing.T) {
			c := openT(t, Options{Memory: m.memory})
			data := payload(m.size, 21)
			f := newFetcher(data, `"w"`)
			f.holdAt = m.size / 2
			if m.unknown {
				f.meta.Size = -1
			}
			k := key("w")
			quitter := c.Fill(k, f.fetch)
			ctx, cancel := context.WithCancel(context.Background())
			if _, err := quitter.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			closer := c.Fill(k, f.fetch)
			var wg sync.WaitGroup
			bodies := make([][]byte, 5)
			errs := make([]error, 5)
			fills := make([]*Fill, 5)
			for i := range fills {
				fills[i] = c.Fill(k, f.fetch)
			}
			for i := range fills {
				wg.Go(func() { _, bodies[i], errs[i] = readFill(context.Background(), fills[i]) })
			}
			// The quitter reads a little, then its client goes away while it
			// waits for more; the closer leaves without reading.
			if _, err := io.ReadFull(quitter, make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			_ = closer.Close()
			quitErr := make(chan error, 1)
			go func() { _, err := io.ReadAll(quitter); quitErr <- err }()
			cancel()
			if err := <-quitErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
			}
			_ = quitter.Close()
			close(f.gate)
			wg.Wait()
			for i := range bodies {
				if errs[i] != nil || !bytes.Equal(bodies[i], data) {
					t.Fatalf("waiter %d: %d bytes, %v", i, len(bodies[i]), errs[i])
				}
			}
			<-quitter.Done()
			mustHit(t, c, k, data)
			if f.calls.Load() != 1 {
				t.Fatalf("%d fetches", f.calls.Load())
			}
		})
	}
}

func TestFillUpstreamFailureFailsEveryWaiter(t *testing.T) {
	type variant struct {
		name      string
		mutate    func(f *fetcher)
		wantErr   error
		cacheable bool
	}
	for _, m := range fillModes {
		for _, v := range []variant{
			{"reset after N bytes", func(f *fetcher) { f.failAt = len(f.data) / 3 }, errUpstream, true},
			{"short body", func(f *fetcher) { f.meta.Size = int64(len(f.data)) + 10 }, io.ErrUnexpectedEOF, true},
			{"long body", func(f *fetcher) { f.meta.Size = int64(len(f.data)) - 10 }, errTooLong, true},
			{"reset, not cacheable", func(f *fetcher) { f.failAt = len(f.data) / 3; f.cacheable = false }, errUpstream, false},
		} {
			if m.unknown && v.name != "reset after N bytes" {
				continue
			}
			t.Run(m.name+"/"+v.name, func(t *testing.T) {
				c := openT(t, Options{Memory: m.memory})
				f := newFetcher(payload(m.size, 22), `"f"`)
				if m.unknown {
					f.meta.Size = -1
				}
				f.holdAt = 1
				f.hdrGate = make(chan struct{})
				v.mutate(f)
				k := key("f")
				fills := make([]*Fill, 20)
				for i := range fills {
					fills[i] = c.Fill(k, f.fetch)
				}
				close(f.hdrGate)
				close(f.gate)
				var wg sync.WaitGroup
				for i, fl := range fills {
					wg.Go(func() {
						_, b, err := readFill(context.Background(), fl)
						if err == nil || errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
							t.Errorf("waiter %d: %d bytes and %v, want an error", i, len(b), err)
						} else if !errors.Is(err, v.wantErr) {
							t.Errorf("waiter %d: %v, want %v", i, err, v.wantErr)
						}
					})
				}
				wg.Wait()
				<-fills[0].Done()
				mustMiss(t, c, k)
				if got := entryFiles(t, c.dir); len(got) != 0 {
					t.Fatalf("files left after a failed fill: %v", got)
				}
				if f.calls.Load() != 1 {
					t.Fatalf("%d fetches for 20 waiters", f.calls.Load())
				}
				// The failure is not remembered: the next miss fetches again.
				f.failAt, f.meta.Size, f.hdrGate = -1, int64(len(f.data)), nil
				f.cacheable = true
				fillAndWait(t, c, k, f)
				mustHit(t, c, k, f.data)
			})
		}
	}
}

func TestFillSingleWaiterFailureIsAnError(t *testing.T) {
	// One waiter, not stored: it reads the upstream body directly.
	c := openT(t, Options{})
	f := newFetcher(payload(1<<20, 23), `"d"`)
	f.cacheable = false
	f.failAt = 1000
	_, b, err := readFill(context.Background(), c.Fill(key("d"), f.fetch))
	if !errors.Is(err, errUpstream) {
		t.Fatalf("%d bytes, %v; want the upstream error", len(b), err)
	}
	f.failAt = -1
	f.meta.Size += 5
	if _, _, err := readFill(context.Background(), c.Fill(key("d"), f.fetch)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short direct body: %v", err)
	}
}

func TestFillNotStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		mutate func(f *fetcher)
	}{
		{"not cacheable", 2 << 20, func(f *fetcher) { f.cacheable = false }},
		{"not cacheable, small", 10 << 10, func(f *fetcher) { f.cacheable = false }},
		{"larger than MaxObjectSize", 2 << 20, func(f *fetcher) {}},
		{"unknown size, grows past MaxObjectSize", 2 << 20, func(f *fetcher) { f.meta.Size = -1 }},
		{"status 404", 1000, func(f *fetcher) { f.meta.Status = 404 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openT(t, Options{MaxObjectSize: 1 << 20, Memory: 4 << 20})
			data := payload(tc.size, 24)
			f := newFetcher(data, `"n"`)
			f.holdAt = len(data) / 2
			f.hdrGate = make(chan struct{})
			tc.mutate(f)
			k := key("n")
			fills := make([]*Fill, 3)
			for i := range fills {
				fills[i] = c.Fill(k, f.fetch)
			}
			close(f.hdrGate)
			close(f.gate)
			var wg sync.WaitGroup
			for i, fl := range fills {
				wg.Go(func() {
					if _, b, err := readFill(context.Background(), fl); err != nil || !bytes.Equal(b, data) {
						t.Errorf("waiter %d: %d bytes, %v", i, len(b), err)
					}
				})
			}
			wg.Wait()
			<-fills[0].Done()
			if f.calls.Load() != 1 {
				t.Fatalf("%d fetches", f.calls.Load())
			}
			mustMiss(t, c, k)
			if got := entryFiles(t, c.dir); len(got) != 0 {
				t.Fatalf("files left: %v", got)
			}
			f.hdrGate = nil
			_, _, _ = readFill(context.Background(), c.Fill(k, f.fetch))
			if f.calls.Load() != 2 {
				t.Fatal("a later caller joined a finished, not stored fill")
			}
		})
	}
}

func TestFillSingleNotStoredWaiterReadsUpstreamDirectly(t *testing.T) {
	c := openT(t, Options{})
	f := newFetcher(payload(1<<20, 25), `"d"`)
	f.cacheable = false
	fl := c.Fill(key("d"), f.fetch)
	if _, err := fl.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-fl.Done()
	for _, p := range entryFiles(t, c.dir) {
		t.Fatalf("a direct fill made a file: %s", p)
	}
	if _, err := io.ReadFull(fl, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	_ = fl.Close()
	if !f.last.Load().closed.Load() {
		t.Fatal("leaving a direct fill did not close the upstream body")
	}
}

func TestSlowWaiterDoesNotStallFill(t *testing.T) {
	c := openT(t, Options{})
	data := payload(4<<20, 26)
	f := newFetcher(data, `"s"`)
	k := key("s")
	slow := c.Fill(k, f.fetch) // never reads until the fill is over
	defer slow.Close()
	fast := c.Fill(k, f.fetch)
	if _, b, err := readFill(context.Background(), fast); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("fast waiter: %v", err)
	}
	<-slow.Done()
	mustHit(t, c, k, data)
	// The slow one catches up from the (now renamed) file.
	if _, b, err := readFill(context.Background(), slow); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("slow waiter: %v", err)
	}
}

func TestFillGoesOnWhenEveryWaiterLeaves(t *testing.T) {
	c := openT(t, Options{Memory: 1 << 20})
	for _, size := range []int{1000, 2 << 20} {
		data := payload(size, 27)
		f := newFetcher(data, `"l"`)
		k := key("l" + itoa(size))
		fl := c.Fill(k, f.fetch)
		_ = fl.Close() // the client left before the headers
		<-fl.Done()
		mustHit(t, c, k, data)
	}
}

func TestFillFetchError(t *testing.T) {
	c := openT(t, Options{})
	f := newFetcher(nil, `"e"`)
	f.err = errors.New("dial tcp: connection refused")
	k := key("e")
	// The fetch fails at once: hold it until both fills are attached, so
	// they share it whatever the scheduler does.
	release := make(chan struct{})
	held := func(ctx context.Context) (Meta, io.ReadCloser, bool, error) {
		<-release
		return f.fetch(ctx)
	}
	a, b := c.Fill(k, held), c.Fill(k, held)
	close(release)
	for _, fl := range []*Fill{a, b} {
		if _, err := fl.Wait(context.Background()); err == nil || !errors.Is(err, f.err) {
			t.Fatalf("Wait: %v, want the fetch error", err)
		}
		if _, err := fl.Read(make([]byte, 1)); !errors.Is(err, f.err) {
			t.Fatalf("Read: %v", err)
		}
		_ = fl.Close()
	}
	<-a.Done()
	_, _, _ = readFill(context.Background(), c.Fill(k, f.fetch)) // a failed fill is not kept: a new fetch
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one shared by the two concurrent fills, one after)", n)
	}
	// A panicking fetch fails its waiters, not the process.
	p := c.Fill(key("panic"), func(context.Context) (Meta, io.ReadCloser, bool, error) { panic("boom") })
	if _, err := p.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panicking fetch: %v", err)
	}
	_ = p.Close()
}

func TestCloseCancelsRunningFills(t *testing.T) {
	c := openT(t, Options{})
	f := newFetcher(payload(1<<20, 28), `"x"`)
	f.holdAt = 1000
	k := key("x")
	fl := c.Fill(k, f.fetch)
	fl2 := c.Fill(k, f.fetch)
	defer fl.Close()
	defer fl2.Close()
	if _, err := fl.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = c.Close() // returns only after the fill has stopped
	if ctx := f.ctxSeen.Load(); (*ctx).Err() == nil {
		t.Fatal("the fetch's context was not cancelled")
	}
	if _, err := io.ReadAll(fl); !errors.Is(err, ErrClosed) {
		t.Fatalf("waiter after Close: %v, want ErrClosed", err)
	}
	if entries, _ := os.ReadDir(c.dir); len(entryFiles(t, c.dir)) != 0 {
		t.Fatalf("files left: %v", entries)
	}
}

func TestFillSeek(t *testing.T) {
	for _, cacheable := range []bool{true, false} {
		c := openT(t, Options{})
		data := payload(1<<20, 29)
		f := newFetcher(data, `"r"`)
		f.cacheable = cacheable // false: one waiter reads upstream directly
		fl := c.Fill(key("r"), f.fetch)
		if _, err := fl.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := fl.Seek(1000, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 500)
		if _, err := io.ReadFull(fl, got); err != nil || !bytes.Equal(got, data[1000:1500]) {
			t.Fatalf("cacheable %v: range after Seek: %v", cacheable, err)
		}
		if pos, err := fl.Seek(-100, io.SeekEnd); err != nil || pos != int64(len(data)-100) {
			t.Fatalf("SeekEnd: %d, %v", pos, err)
		}
		rest, err := io.ReadAll(fl)
		if err != nil || !bytes.Equal(rest, data[len(data)-100:]) {
			t.Fatalf("cacheable %v: tail: %d bytes, %v", cacheable, len(rest), err)
		}
		_, err = fl.Seek(0, io.SeekStart)
		if cacheable != (err == nil) {
			t.Fatalf("cacheable %v: seeking back: %v", cacheable, err)
		}
		_ = fl.Close()
	}
}

func TestConcurrentFillsLookupsPurges(t *testing.T) {
	c := openT(t, Options{Memory: 256 << 10, MaxSize: 3 << 20, MemoryObjectSize: 64 << 10})
	// Every version of a key has a body derived from (key, version): any
	// body a reader sees must be one that was fetched for that key.
	sizes := []int{1 << 10, 100 << 10, 700 << 10}
	bodyOf := func(k, v int) []byte { return payload(sizes[k%3], uint64(k*1000+v)) }
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				ki := (w + i) % 6
				k := key(itoa(ki))
				switch i % 5 {
				case 0, 1, 2:
					if o, ok := c.Lookup(k); ok {
						b := make([]byte, o.Size())
						if _, err := o.ReadAt(b, 0); err != nil && err != io.EOF {
							t.Errorf("ReadAt: %v", err)
						}
						if !matchesAVersion(b, ki, bodyOf) {
							t.Errorf("hit %s: a body that was never stored", k)
						}
						_ = o.Close()
						continue
					}
					v := i % 3
					f := newFetcher(bodyOf(ki, v), `"`+itoa(v)+`"`)
					_, b, err := readFill(context.Background(), c.Fill(k, func(ctx context.Context) (Meta, io.ReadCloser, bool, error) {
						return f.fetch(ctx)
					}))
					if err != nil || !matchesAVersion(b, ki, bodyOf) {
						t.Errorf("fill %s: %v", k, err)
					}
				case 3:
					c.PurgeObject("site", itoa(ki))
				case 4:
					_ = c.Touch(k, c.now())
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	if s.DiskBytes > 3<<20 {
		t.Fatalf("disk over MaxSize: %+v", s)
	}
}

func matchesAVersion(b []byte, k int, bodyOf func(k, v int) []byte) bool {
	for v := range 3 {
		if bytes.Equal(b, bodyOf(k, v)) {
			return true
		}
	}
	return false
}
