package cache

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
)

// readFromRecorder records what io.Copy hands a ReaderFrom: the reader's
// type decides whether net.TCPConn uses sendfile(2).
type readFromRecorder struct {
	io.Writer
	src    io.Reader
	n      int64 // the LimitedReader's N when handed over
	offset int64 // the file's offset then
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.src = src
	if lr, ok := src.(*io.LimitedReader); ok {
		r.n = lr.N
		if f, ok := lr.R.(*os.File); ok {
			r.offset, _ = f.Seek(0, io.SeekCurrent)
		}
	}
	return io.Copy(r.Writer, src)
}

// checkSendfileShape asserts src is an *io.LimitedReader over an *os.File,
// which is what net's sendFile accepts.
func checkSendfileShape(t *testing.T, r *readFromRecorder, wantOff, wantN int64) {
	t.Helper()
	lr, ok := r.src.(*io.LimitedReader)
	if !ok {
		t.Fatalf("ReadFrom got %T, want *io.LimitedReader", r.src)
	}
	if _, ok := lr.R.(*os.File); !ok {
		t.Fatalf("the LimitedReader wraps %T, want *os.File", lr.R)
	}
	if r.n != wantN || r.offset != wantOff {
		t.Fatalf("LimitedReader N %d at offset %d, want %d at %d", r.n, r.offset, wantN, wantOff)
	}
}

func TestFileHitIsSendfileShaped(t *testing.T) {
	c := openT(t, Options{})
	data := payload(300<<10, 40)
	fillAndWait(t, c, key("sf"), newFetcher(data, `"sf"`))
	o := mustHit(t, c, key("sf"), data)
	_, bodyOff, _, _ := o.File()

	var whole bytes.Buffer
	rec := &readFromRecorder{Writer: &whole}
	if _, err := o.WriteTo(rec); err != nil || !bytes.Equal(whole.Bytes(), data) {
		t.Fatalf("WriteTo: %v", err)
	}
	checkSendfileShape(t, rec, bodyOff, int64(len(data)))

	var part bytes.Buffer
	rec = &readFromRecorder{Writer: &part}
	if _, err := o.WriteRangeTo(rec, 1000, 5000); err != nil || !bytes.Equal(part.Bytes(), data[1000:6000]) {
		t.Fatalf("WriteRangeTo: %v", err)
	}
	checkSendfileShape(t, rec, bodyOff+1000, 5000)

	r, err := o.Reader(7, 9)
	if err != nil {
		t.Fatal(err)
	}
	rec = &readFromRecorder{Writer: io.Discard}
	if _, err := io.Copy(rec, r); err != nil {
		t.Fatal(err)
	}
	checkSendfileShape(t, rec, bodyOff+7, 9)
}

// TestServeHitOverHTTP serves a file hit through net/http on loopback, as
// the proxy will: the ResponseWriter's ReadFrom (which passes the reader
// on to the *net.TCPConn after sniffing 512 bytes) gets the sendfile shape.
func TestServeHitOverHTTP(t *testing.T) {
	c := openT(t, Options{})
	data := payload(2<<20, 41)
	fillAndWait(t, c, key("h"), newFetcher(data, `"h"`))
	got := make(chan io.Reader, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, ok := c.Lookup(key("h"))
		if !ok {
			http.Error(w, "miss", 500)
			return
		}
		defer o.Close()
		m := o.Meta()
		w.Header().Set("Content-Length", strconv.FormatInt(o.Size(), 10))
		w.Header().Set("Content-Type", m.Header.Get("Content-Type"))
		w.Header().Set("ETag", m.ETag)
		_, _ = o.WriteTo(readFromSpy{w, got})
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !bytes.Equal(b, data) || resp.Header.Get("Etag") != `"h"` {
		t.Fatalf("GET: %d bytes, %v, %v", len(b), err, resp.Header)
	}
	if src := <-got; !isSendfileShape(src) {
		t.Fatalf("http.ResponseWriter.ReadFrom got %T", src)
	}
}

func isSendfileShape(r io.Reader) bool {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return false
	}
	_, ok = lr.R.(*os.File)
	return ok
}

// readFromSpy passes everything to a ResponseWriter, reporting the reader
// its ReadFrom gets.
type readFromSpy struct {
	w   http.ResponseWriter
	got chan<- io.Reader
}

func (s readFromSpy) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s readFromSpy) ReadFrom(src io.Reader) (int64, error) {
	s.got <- src
	return s.w.(io.ReaderFrom).ReadFrom(src)
}
