package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// body returns n bytes of the pattern, with byte bad flipped when bad >= 0.
func body(n, bad int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % period)
	}
	if bad >= 0 {
		b[bad] ^= 0xff
	}
	return b
}

func TestCheckBody(t *testing.T) {
	buf := make([]byte, chunk)
	for _, c := range []struct {
		n, bad int
		ok     bool
	}{{0, -1, true}, {1, -1, true}, {1 << 10, -1, true}, {3*chunk + 17, -1, true}, {3*chunk + 17, 2*chunk + 5, false}, {1 << 10, 0, false}} {
		b := body(c.n, c.bad)
		n, ok, err := checkBody(bytes.NewReader(b), buf)
		if err != nil || n != int64(c.n) || ok != c.ok {
			t.Errorf("%d bytes, bad %d: n %d ok %v err %v", c.n, c.bad, n, ok, err)
		}
		// HalfReader splits the body at offsets that are no multiple
		// of the period.
		n, ok, err = checkBody(iotest.HalfReader(bytes.NewReader(b)), buf)
		if err != nil || n != int64(c.n) || ok != c.ok {
			t.Errorf("%d bytes, bad %d, half reads: n %d ok %v err %v", c.n, c.bad, n, ok, err)
		}
	}
}

// server serves the pattern: /<n> is n bytes; ?bad=i flips byte i,
// ?short=1 declares one byte more than it sends. It counts paths.
type server struct {
	mu    sync.Mutex
	paths map[string]int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths[r.URL.Path]++
	s.mu.Unlock()
	last := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	n, err := strconv.Atoi(last)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	bad := -1
	if v := r.URL.Query().Get("bad"); v != "" {
		bad, _ = strconv.Atoi(v)
	}
	w.Header().Set("X-Cache", "HIT")
	if r.URL.Query().Get("miss") != "" {
		w.Header().Set("X-Cache", "MISS")
	}
	b := body(n, bad)
	w.Header().Set("Content-Length", strconv.Itoa(n))
	if r.URL.Query().Get("short") != "" {
		w.Header().Set("Content-Length", strconv.Itoa(n+1))
	}
	_, _ = w.Write(b)
}

func newServer(t *testing.T) (*server, *httptest.Server) {
	s := &server{paths: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func TestHerd(t *testing.T) {
	s, srv := newServer(t)
	var out strings.Builder
	if err := run([]string{"-url", srv.URL + "/obj/herd/300000", "-n", "50", "-size", "300000", "-report-header", "X-Cache"}, &out); err != nil {
		t.Fatalf("herd: %v (%s)", err, out.String())
	}
	for _, want := range []string{"requests=50 ok=50 bad=0 net_errors=0 bytes=15000000 ", "statuses=200:50 ", "x-cache=HIT:50 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q: %s", want, out.String())
		}
	}
	if s.paths["/obj/herd/300000"] != 50 {
		t.Errorf("server saw %d requests, want 50", s.paths["/obj/herd/300000"])
	}
	for _, c := range []struct{ name, url string }{
		{"corrupt byte", "/x/300000?bad=299999"},
		{"short body", "/x/1000?short=1"},
		{"404", "/x/nope"},
		{"wrong size", "/x/299999"},
	} {
		out.Reset()
		err := run([]string{"-url", srv.URL + c.url, "-n", "3", "-size", "300000"}, &out)
		if c.name == "short body" {
			err = run([]string{"-url", srv.URL + c.url, "-n", "3"}, &out)
		}
		if !errors.Is(err, errFailed) || !strings.Contains(out.String(), "ok=0 bad=3") {
			t.Errorf("%s: err %v, output %s", c.name, err, out.String())
		}
	}
}

func TestWarm(t *testing.T) {
	s, srv := newServer(t)
	var out strings.Builder
	if err := run([]string{"-url", srv.URL + "/obj/%d/1024", "-from", "5", "-keys", "105", "-c", "8", "-want-header", "X-Cache=HIT"}, &out); err != nil {
		t.Fatalf("warm: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "requests=100 ok=100 bad=0") || !strings.Contains(out.String(), "x-cache=HIT:100") {
		t.Errorf("output: %s", out.String())
	}
	for k := 5; k < 105; k++ {
		if p := "/obj/" + strconv.Itoa(k) + "/1024"; s.paths[p] != 1 {
			t.Fatalf("%s fetched %d times, want 1", p, s.paths[p])
		}
	}
	if len(s.paths) != 100 {
		t.Errorf("%d paths fetched, want 100", len(s.paths))
	}
	// A header that is not the wanted one fails the request.
	out.Reset()
	err := run([]string{"-url", srv.URL + "/obj/%d/1024?miss=1", "-keys", "4", "-want-header", "X-Cache=HIT"}, &out)
	if !errors.Is(err, errFailed) || !strings.Contains(out.String(), "x-cache=MISS:4") {
		t.Errorf("MISS with -want-header X-Cache=HIT: err %v, output %s", err, out.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-url", "http://127.0.0.1:1/%d"}, {"-url", "http://127.0.0.1:1/x", "-n", "0"}, {"-url", "http://127.0.0.1:1/x", "-want-header", "X"}} {
		var out strings.Builder
		if err := run(args, &out); err == nil || errors.Is(err, errFailed) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
}
