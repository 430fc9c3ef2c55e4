package main

// SIGTERM: the drain of what is in flight, and the cut of what outlives
// shutdown_grace.

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// waitExit waits up to d for the gateway to exit and returns its exit error
// (nil = status 0). A gateway still running after d is killed and the test
// fails: that is a hang. Wait always returns before waitExit does, so the
// cleanup startGateway registered never races with it.
func waitExit(t *testing.T, p *process, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("gateway still running %s after SIGTERM\n%s", d, p.stderr.String())
		return nil
	}
}

// waitClosed waits up to d for ch to be closed; what names it in the
// failure.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("no %s within %s", what, d)
	}
}

// TestSIGTERMDrainsInFlightDownload proves the shutdown sequence with a
// download running: /readyz fails at once while the listener still takes
// connections for shutdown_delay, then new connections are refused, the
// in-flight 64 MiB download finishes intact within shutdown_grace, and the
// process exits 0.
func TestSIGTERMDrainsInFlightDownload(t *testing.T) {
	const size = 64 << 20
	const delay = 2 * time.Second
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	emu.PutSyntheticObject("bkt", "big.bin", size, "")
	p := startGateway(t, gatewayConfig(`shutdown_grace = "20s"
shutdown_delay = "2s"`, siteTable("files", "files.test", "bkt", "http://"+emuAddr, "public", "")))

	conn, resp := rawGET(t, p.http, "files.test", "/big.bin")
	if resp.StatusCode != 200 || resp.ContentLength != size {
		t.Fatalf("big.bin: %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}
	firstMiB := make(chan struct{})
	type result struct {
		n        int64
		err      error
		bad      int64
		finished time.Time
	}
	done := make(chan result, 1)
	go func() {
		defer conn.Close()
		var once sync.Once
		// 16 MiB/s: about 4 s for the whole object.
		n, err, bad := pacedRead(resp.Body, 16<<20, 256<<10, func(n int64) {
			if n >= 1<<20 {
				once.Do(func() { close(firstMiB) })
			}
		})
		once.Do(func() { close(firstMiB) })
		done <- result{n, err, bad, time.Now()}
	}()
	waitClosed(t, firstMiB, 30*time.Second, "the first MiB of big.bin")

	sigterm := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)

	// /readyz fails at once (the admin listener stays up during the drain).
	if !testkit.Within(10*time.Second, func() bool {
		r, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 503
	}) {
		t.Errorf("/readyz never answered 503 after SIGTERM")
	}
	notReady := time.Since(sigterm)

	// During shutdown_delay the listener still serves, so the SLB can
	// notice /readyz before connections start being refused. Only judged
	// when the machine was quick enough for the answer to mean something.
	nc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+p.http+"/a.txt", nil)
	req.Host = "files.test"
	r, err := nc.Do(req)
	if err == nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if elapsed := time.Since(sigterm); (err != nil || r.StatusCode != 200) && elapsed < delay/2 {
		t.Errorf("new request %s after SIGTERM, within shutdown_delay: %v", elapsed.Round(time.Millisecond), err)
	}

	// Then new connections are refused, but not before shutdown_delay.
	refused := testkit.Within(15*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", p.http, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	refusedAfter := time.Since(sigterm)
	if !refused {
		t.Errorf("listener still accepting %s after SIGTERM", refusedAfter.Round(time.Millisecond))
	} else if refusedAfter < delay-50*time.Millisecond {
		t.Errorf("connections refused %s after SIGTERM, before shutdown_delay (%s)", refusedAfter.Round(time.Millisecond), delay)
	}

	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("download did not finish within 60 s of SIGTERM")
	}
	if res.err != nil || res.n != size || res.bad >= 0 {
		t.Errorf("in-flight download: %d of %d bytes, err %v, first wrong byte at %d", res.n, size, res.err, res.bad)
	}
	if err := waitExit(t, p, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
	}
	exited := time.Since(sigterm)
	t.Logf("readyz 503 after %s, connections refused after %s, download finished after %s, exit 0 after %s",
		notReady.Round(time.Millisecond), refusedAfter.Round(time.Millisecond),
		res.finished.Sub(sigterm).Round(time.Millisecond), exited.Round(time.Millisecond))
}

// TestSIGTERMCutsWhatOutlivesGrace proves shutdown_grace is a bound: a
// download that would take 10 s is cut 1 s after SIGTERM, the client sees a
// broken body (never a short one passed off as whole), the process still
// exits 0 promptly, and stderr says how many requests it cut.
func TestSIGTERMCutsWhatOutlivesGrace(t *testing.T) {
	const size = 64 << 20
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutSyntheticObject("bkt", "big.bin", size, "")
	p := startGateway(t, gatewayConfig(`shutdown_grace = "1s"`, siteTable("files", "files.test", "bkt", "http://"+emuAddr, "public", "")))

	conn, resp := rawGET(t, p.http, "files.test", "/big.bin")
	if resp.StatusCode != 200 {
		t.Fatalf("big.bin: %d", resp.StatusCode)
	}
	firstMiB := make(chan struct{})
	type result struct {
		n   int64
		err error
		bad int64
	}
	done := make(chan result, 1)
	go func() {
		defer conn.Close()
		var once sync.Once
		// 6.4 MiB/s: 10 s for the whole object.
		n, err, bad := pacedRead(resp.Body, size/10, 64<<10, func(n int64) {
			if n >= 1<<20 {
				once.Do(func() { close(firstMiB) })
			}
		})
		once.Do(func() { close(firstMiB) })
		done <- result{n, err, bad}
	}()
	waitClosed(t, firstMiB, 30*time.Second, "the first MiB of big.bin")
	sigterm := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, p, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
	}
	exited := time.Since(sigterm)

	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("client still reading 30 s after the gateway exited")
	}
	if res.err == nil || res.n >= size {
		t.Errorf("client read %d of %d bytes and err %v: want a broken body", res.n, size, res.err)
	}
	if res.bad >= 0 {
		t.Errorf("byte %d of the cut body is wrong", res.bad)
	}
	stderr := p.stderr.String()
	if !strings.Contains(stderr, "cutting requests still running") || !strings.Contains(stderr, `"cut":1`) {
		t.Errorf("stderr does not report the cut request:\n%s", stderr)
	}
	t.Logf("exit 0 %s after SIGTERM; client got %d of %d bytes, then %v", exited.Round(time.Millisecond), res.n, size, res.err)
}
