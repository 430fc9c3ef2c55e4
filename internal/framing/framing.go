// Package framing lets a handler learn that an HTTP/1.x request head
// carried both Content-Length and Transfer-Encoding, which net/http hides.
//
// The gateway's contract answers such a request 400 and closes the
// connection: a message framed two ways is the raw material of request
// smuggling, and a front proxy that honours the other header would
// disagree with us about where the next request starts. net/http resolves
// the conflict before any handler runs (transfer.go: parseTransferEncoding
// keeps "chunked", fixLength deletes Content-Length), so the handler cannot
// tell that both were sent. This package watches the bytes instead: a
// listener wrapper whose connections follow request framing exactly as
// net/http does (heads scanned, bodies skipped by counting) and remember
// whether a head had both fields; ConnContext and Conflict carry that to
// the handler.
//
// Only plain-HTTP listeners can be wrapped: under TLS the bytes are
// ciphertext. Wiring (server side):
//
//	ln = framing.NewListener(ln)         // outermost: after PROXY-protocol and socket-option wrappers
//	srv.ConnContext = framing.ConnContext
//	// in the handler, for the plain-HTTP server:
//	if framing.Conflict(r) { /* 400, Connection: close */ }
package framing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// NewListener wraps ln so that every accepted connection is a *Conn that
// tracks request framing. It must be the outermost wrapper of a plain-HTTP
// listener (outside PROXY-protocol parsing, which consumes its header
// before any byte reaches the tracker), and must not be used under TLS.
func NewListener(ln net.Listener) net.Listener { return listener{ln} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return &Conn{nc: c}, nil
}

// Conn is a connection whose reads are followed by a request-framing
// tracker. Everything but Read passes straight through to the wrapped
// connection.
//
// Read stops at the end of each request (head and body) when more bytes
// were received, keeping the rest for the next Read. net/http reads ahead
// into its 4 KiB buffer, so without this a pipelined request's head could
// be tracked before the handler of the request in front of it runs, and
// Conflict would answer for the wrong request. The held bytes are copied
// once into a buffer kept per connection; a connection that never
// pipelines never allocates it.
//
// Read must not be called concurrently with itself (net/http never does);
// Conflict may be called from any goroutine.
type Conn struct {
	nc    net.Conn
	t     tracker
	held  []byte // received bytes after a request's end, not yet returned
	off   int    // held[off:] is still to be returned
	dferr error  // the error that came with the held bytes
}

// Read reads from the wrapped connection and feeds what it returns to the
// tracker.
func (c *Conn) Read(p []byte) (int, error) {
	if c.off < len(c.held) {
		n := copy(p, c.held[c.off:])
		n = c.t.feed(p[:n])
		c.off += n
		if c.off == len(c.held) {
			c.held, c.off = c.held[:0], 0
		}
		return n, nil
	}
	if err := c.dferr; err != nil {
		c.dferr = nil
		return 0, err
	}
	n, err := c.nc.Read(p)
	if n > 0 && c.t.active() {
		if m := c.t.feed(p[:n]); m < n {
			c.held = append(c.held[:0], p[m:n]...)
			c.off, c.dferr = 0, err
			return m, nil
		}
	}
	return n, err
}

// Conflict reports whether a request head read on this connection had
// both Content-Length and Transfer-Encoding. Once true it stays true (the
// tracker stops there: the connection is to be closed after the answer).
func (c *Conn) Conflict() bool { return c.t.conflict.Load() }

// Write passes through.
func (c *Conn) Write(p []byte) (int, error) { return c.nc.Write(p) }

// Close passes through.
func (c *Conn) Close() error { return c.nc.Close() }

// LocalAddr passes through.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr passes through (so a PROXY-protocol client address stays).
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline passes through.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline passes through.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline passes through.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// NetConn returns the wrapped connection, as tls.Conn.NetConn does, for
// code that needs the real socket. Reading from it bypasses the tracker.
func (c *Conn) NetConn() net.Conn { return c.nc }

// ReadFrom keeps net/http's response fast path: http.response.ReadFrom
// (the io.ReaderFrom behind the gateway's splice of OSS bodies) hands the
// copy to the connection's own ReadFrom when it has one, and
// *net.TCPConn's uses splice(2) or sendfile(2). Without this method the
// wrapper would silently turn that into a user-space copy.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.nc.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.nc, r)
}

// CloseWrite half-closes the wrapped connection when it can. net/http
// uses it (closeWriteAndWait) to send FIN before closing a connection
// with unread request bytes, so the client is not reset before it has read
// the final response.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("framing: %T has no CloseWrite: %w", c.nc, errors.ErrUnsupported)
}

// SyscallConn gives socket-option code the wrapped connection's raw
// socket when it has one.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.nc.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, fmt.Errorf("framing: %T has no SyscallConn: %w", c.nc, errors.ErrUnsupported)
}

// connKey is the context key under which ConnContext stores the *Conn.
type connKey struct{}

// ConnContext is for http.Server.ConnContext: it stores the connection's
// *Conn in the context every request on it inherits, so Conflict can find
// it. c is searched through NetConn() wrappers; a connection without a
// *Conn leaves ctx unchanged.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for range 8 {
		switch x := c.(type) {
		case *Conn:
			return context.WithValue(ctx, connKey{}, x)
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return ctx
		}
	}
	return ctx
}

// FromRequest returns the *Conn r arrived on, for a handler that sets
// socket options on its own connection; nil for HTTP/2, TLS and
// connections not accepted through NewListener (or a server without
// ConnContext).
func FromRequest(r *http.Request) *Conn {
	if r.ProtoMajor != 1 || r.TLS != nil {
		return nil
	}
	c, _ := r.Context().Value(connKey{}).(*Conn)
	return c
}

// Conflict reports whether r's head had both Content-Length and
// Transfer-Encoding, so the handler can answer 400 and close.
//
// Contract: call it from r's handler, at any point before the handler
// returns. net/http reads the next request's head only after the handler
// returns (while it runs, at most one byte of it), and Conn.Read never
// returns bytes past the end of r's body with r's body, so the most
// recently completed head on the connection is r's. The answer is sticky:
// after a conflicting head the connection keeps answering true, since it
// must be closed. The one known read-ahead, a chunked trailer ending in a
// bare LF followed by a pipelined conflicting request, can only make an
// earlier request of that same connection answer true.
//
// It is false for HTTP/2, for TLS connections, and for connections not
// accepted through NewListener (or a server without ConnContext).
func Conflict(r *http.Request) bool {
	c := FromRequest(r)
	return c != nil && c.Conflict()
}
