package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/config"
)

func TestHandoffListenerPassesTheSocketOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHandoffListener(ln)
	first := h.view()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := first.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("first view accepted nothing")
	}

	// The first server shuts down; its view closes, the socket does not.
	first.Close()
	if _, err := first.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed view Accept: %v", err)
	}
	second := h.view()
	dial()
	got := make(chan error, 1)
	go func() {
		c, err := second.Accept()
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second view: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connection made after the handoff was not accepted by the new view")
	}

	// The final close shuts the socket: views fail, dials are refused.
	h.Close()
	if _, err := second.Accept(); err == nil {
		t.Fatal("Accept after the socket closed")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("socket still accepting after Close")
	}
}

func TestLogSwitchFollowsReloads(t *testing.T) {
	var buf bytes.Buffer
	s := newLogSwitch(&buf, config.Log{Format: "json", Level: "info"})
	derived := slog.New(s).With("component", "x") // made before the reload
	derived.Info("one")
	s.set(config.Log{Format: "text", Level: "warn"})
	derived.Info("hidden")
	derived.Warn("two")
	out := buf.String()
	if !strings.Contains(out, `{"time":`) || !strings.Contains(out, `"component":"x"`) || !strings.Contains(out, `"msg":"one"`) {
		t.Errorf("before the reload, not JSON with the attribute:\n%s", out)
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("info logged at level warn:\n%s", out)
	}
	if !strings.Contains(out, "level=WARN msg=two component=x") {
		t.Errorf("after the reload, not text with the attribute:\n%s", out)
	}
}
