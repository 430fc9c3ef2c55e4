package testkit

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinSeesALateCondition(t *testing.T) {
	var n atomic.Int32
	if !Within(10*time.Second, func() bool { return n.Add(1) >= 5 }) {
		t.Fatal("a condition true on its fifth check was not seen")
	}
	if n.Load() != 5 {
		t.Fatalf("cond checked %d times after it held, want 5", n.Load())
	}
}

func TestWithinChecksAgainAtTheEnd(t *testing.T) {
	var n atomic.Int32
	if Within(0, func() bool { n.Add(1); return false }) {
		t.Fatal("a condition never true held")
	}
	if n.Load() < 1 {
		t.Fatal("cond never checked")
	}
}

// fatalRecorder is a testing.TB whose Fatalf only records the message, so
// a test can watch Eventually give up.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestEventuallyNamesWhatItWaitedFor(t *testing.T) {
	f := &fatalRecorder{TB: t}
	Eventually(f, 20*time.Millisecond, "the impossible", func() bool { return false })
	if f.msg != "timed out after 20ms waiting for the impossible" {
		t.Fatalf("message %q", f.msg)
	}
	f.msg = ""
	Eventually(f, time.Second, "the obvious", func() bool { return true })
	if f.msg != "" {
		t.Fatalf("failed on a condition that held: %q", f.msg)
	}
}

func TestServeListensOnLoopbackUntilTheTestEnds(t *testing.T) {
	var addr string
	t.Run("serve", func(t *testing.T) {
		addr = Serve(t, func(ln net.Listener) *http.Server {
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up") })}
			go srv.Serve(ln)
			return srv
		})
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			t.Fatalf("listening on %s", addr)
		}
		resp, err := http.Get("http://" + addr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "up" {
			t.Fatalf("answer %q", b)
		}
	})
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after its test ended", addr)
	}
}
