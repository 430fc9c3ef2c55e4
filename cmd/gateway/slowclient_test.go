package main

// Slow and stalled clients: the client-connection timeouts tell an attacker
// from a slow reader.

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// TestSlowlorisDroppedSlowReaderServed proves the client-connection timeouts
// tell an attacker from a slow phone: with read_header_timeout = 1s and
// idle_timeout = 3s, a client that trickles its headers is disconnected, a
// client that reads a 2 MiB body at 64 KiB/s (far longer than idle_timeout
// in all) gets every byte right, and a client that stops reading a 64 MiB
// body is dropped, freeing its request, soon after idle_timeout.
func TestSlowlorisDroppedSlowReaderServed(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	emu.PutSyntheticObject("bkt", "slow.bin", 2<<20, "")
	emu.PutSyntheticObject("bkt", "stall.bin", 64<<20, "")
	ep := "http://" + emuAddr
	p := startGateway(t, gatewayConfig(`read_header_timeout = "1s"
idle_timeout = "3s"`,
		siteTable("files", "files.test", "bkt", ep, "public", ""),
		siteTable("stall", "stall.test", "bkt", ep, "public", "")))

	var wg sync.WaitGroup
	defer wg.Wait()

	// Slowloris: a request line, then one header byte every 500 ms.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.WriteString(c, "GET /a.txt HTTP/1.1\r\nHost: files.test\r\nX-Slow: ")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		start := time.Now()
		c.SetReadDeadline(start.Add(15 * time.Second))
		got, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("slowloris client still connected after %s (read %q)", time.Since(start).Round(time.Millisecond), got)
			return
		}
		if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
			t.Errorf("slowloris client got %q", got)
		}
		t.Logf("slowloris client dropped after %s (%v, %d bytes)", time.Since(start).Round(time.Millisecond), err, len(got))
	}()

	// A reader that stops: headers, then nothing.
	stallConn, stallResp := rawGET(t, p.http, "stall.test", "/stall.bin")
	if stallResp.StatusCode != 200 {
		t.Fatalf("stall.bin: %d", stallResp.StatusCode)
	}
	stalledAt := time.Now()

	// A slow reader: 8 KiB every 125 ms, 64 KiB/s, about 32 s for 2 MiB.
	slowConn, slowResp := rawGET(t, p.http, "files.test", "/slow.bin")
	if slowResp.StatusCode != 200 || slowResp.ContentLength != 2<<20 {
		t.Fatalf("slow.bin: %d, %d bytes", slowResp.StatusCode, slowResp.ContentLength)
	}
	slowDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(slowDone)
		defer slowConn.Close()
		start := time.Now()
		n, err, bad := pacedRead(slowResp.Body, 64<<10, 8<<10, nil)
		if err != nil || n != 2<<20 || bad >= 0 {
			t.Errorf("slow reader: %d of %d bytes, err %v, first wrong byte at %d", n, 2<<20, err, bad)
			return
		}
		t.Logf("slow reader received 2 MiB intact in %s", time.Since(start).Round(time.Millisecond))
	}()

	// The stalled request leaves the gateway (inflight back to 0, access
	// log written) once a write has been blocked for idle_timeout.
	dropped := testkit.Within(20*time.Second, func() bool {
		v, ok := metricValue(scrape(t, p.admin), `gateway_inflight_requests{site="stall"}`)
		_, logged := accessLine(p, "stall.bin")
		return ok && v == 0 && logged
	})
	if !dropped {
		t.Errorf("a client that stopped reading is still being served %s later", time.Since(stalledAt).Round(time.Millisecond))
	} else {
		line, _ := accessLine(p, "stall.bin")
		t.Logf("stalled reader dropped after %s: %v bytes sent", time.Since(stalledAt).Round(time.Millisecond), line["bytes_out"])
		if b, _ := line["bytes_out"].(float64); b >= 64<<20 {
			t.Errorf("stalled reader: access log says all %v bytes were sent", line["bytes_out"])
		}
		// The connection itself is closed: what the kernel buffered drains,
		// then the body ends short.
		stallConn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := io.Copy(io.Discard, stallResp.Body)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("stalled reader's connection still open after the gateway gave up on it")
		} else if err == nil {
			t.Errorf("stalled reader's body ended cleanly after %d bytes; want it cut", n)
		}
	}

	<-slowDone
	// The slow download stayed in the gateway for longer than idle_timeout,
	// so its writes really waited on the client and were not all absorbed
	// by socket buffers: the per-write deadline is what kept it alive.
	line := waitAccessLine(t, p, "slow.bin", 10*time.Second)
	if d, _ := line["duration"].(float64); d <= 3 {
		t.Errorf("slow download took %.1fs in the gateway, no longer than idle_timeout: the test proved nothing", d)
	}
	if line["status"] != float64(200) || line["bytes_out"] != float64(2<<20) {
		t.Errorf("slow.bin access log: %v", line)
	}
	if resp, body := p.get(t, "files.test", "/a.txt", nil); resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("after: %d %q", resp.StatusCode, body)
	}
}
