package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// pattern is size bytes that differ with their offset, so a byte lost,
// doubled or reordered shows.
func pattern(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

type sendResult struct {
	spliced bool // the body went by the sink's direct path
	n       int64
	err     error
}

// spyWriter is a client's ResponseWriter that tells whether Stream used
// its ReaderFrom (the splice path).
type spyWriter struct {
	http.ResponseWriter
	used bool
}

func (s *spyWriter) ReadFrom(r io.Reader) (int64, error) {
	s.used = true
	return s.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

func (s *spyWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// streamToClient sends body to w as the proxy does for a plain HTTP/1.1
// client: through w, or by w's ReaderFrom (splice) when the body allows,
// each chunk with a write deadline.
func streamToClient(w http.ResponseWriter, body io.Reader) sendResult {
	sink := Sink{W: w}
	spy := &spyWriter{ResponseWriter: w}
	if _, ok := w.(io.ReaderFrom); ok {
		sink.Client, sink.Progress = spy, 5*time.Second
	}
	n, err := Stream(sink, body)
	return sendResult{spy.used, n, err}
}

// spliceEnv is an upstream that serves body (cut after cutAt bytes when
// cutAt > 0) and a gateway-like handler that fetches it with the upstream
// client and sends it with Stream.
func spliceEnv(t testing.TB, body []byte, cutAt int, copyOnly bool) (gw *httptest.Server, results chan sendResult, conns func() int64) {
	t.Helper()
	addr, nconns := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		if cutAt > 0 {
			w.Write(body[:cutAt])
			return false
		}
		w.Write(body)
		return true
	})
	c := newTestClient()
	results = make(chan sendResult, 64)
	gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if copyOnly {
			w = struct{ http.ResponseWriter }{w} // hides ReadFrom: no splice
		}
		resp, err := get(t, c, addr, "GET", nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
		w.WriteHeader(resp.StatusCode)
		results <- streamToClient(w, resp.Body)
	}))
	t.Cleanup(gw.Close)
	return gw, results, nconns.Load
}

// TestStreamSplicesWholeBodies proves a large body on plain TCP goes by
// splice, arrives byte for byte, and leaves its connection reusable.
func TestStreamSplicesWholeBodies(t *testing.T) {
	body := pattern(3<<20 + 17)
	gw, results, conns := spliceEnv(t, body, 0, false)
	for i := 0; i < 2; i++ {
		resp, err := http.Get(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res := <-results
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("client got %d bytes (err %v), want the %d sent", len(got), err, len(body))
		}
		if !res.spliced || res.err != nil || res.n != int64(len(body)) {
			t.Fatalf("Stream: %+v", res)
		}
	}
	if n := conns(); n != 1 {
		t.Fatalf("%d upstream connections for two spliced bodies, want 1 reused", n)
	}
}

// TestStreamTellsWhichSideBroke proves a splice failure is blamed on the
// right end: OSS cutting the body is an upstream error (which the resume
// then repairs), the client leaving is ErrClientWrite (which ends it).
func TestStreamTellsWhichSideBroke(t *testing.T) {
	t.Run("upstream cut", func(t *testing.T) {
		body := pattern(4 << 20)
		gw, results, _ := spliceEnv(t, body, 1<<20+5, false)
		resp, err := http.Get(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res := <-results
		if !res.spliced || res.err == nil || errors.Is(res.err, ErrClientWrite) {
			t.Fatalf("Stream: %+v, want an upstream error", res)
		}
		if res.n != 1<<20+5 || !bytes.Equal(got, body[:len(got)]) {
			t.Fatalf("sent %d, client got %d bytes", res.n, len(got))
		}
	})
	t.Run("client left", func(t *testing.T) {
		body := pattern(64 << 20)
		gw, results, _ := spliceEnv(t, body, 0, false)
		resp, err := http.Get(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, resp.Body, 256<<10)
		resp.Body.Close() // closes the connection: the body was not read out
		select {
		case res := <-results:
			if !res.spliced || !errors.Is(res.err, ErrClientWrite) {
				t.Fatalf("Stream: %+v, want ErrClientWrite", res)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Stream still sending 10s after the client left")
		}
	})
}

// BenchmarkStream moves a 64 MiB body from an upstream socket to a
// client socket over loopback, by splice and by the pooled-buffer copy loop,
// with 16 downloads at a time. Upstream, gateway and client all run in the
// benchmark's process, so this is a comparison of the two paths, not a
// throughput figure (bench/run.sh gives those).
func BenchmarkStream(b *testing.B) {
	body := pattern(64 << 20)
	for _, bc := range []struct {
		name     string
		copyOnly bool
	}{{"splice", false}, {"copy", true}} {
		b.Run(bc.name, func(b *testing.B) {
			gw, results, _ := spliceEnv(b, body, 0, bc.copyOnly)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 256<<10)
				for pb.Next() {
					resp, err := client.Get(gw.URL)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
					resp.Body.Close()
					if res := <-results; res.err != nil || n != int64(len(body)) {
						b.Errorf("%+v, client read %d", res, n)
						return
					}
				}
			})
		})
	}
}
