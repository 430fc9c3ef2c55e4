package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// upstreamClient is the gateway's HTTP/1.1 client to OSS. It does what
// http.Transport does for this one job with less machinery: a request is
// written and its response read on the calling goroutine (no per-connection
// read and write loops, no channels), so a small object costs one write and
// one read on the OSS connection and no goroutine handoffs. Connections are
// kept per connKey in a LIFO idle list; a response body returns its
// connection to the list when read to the end with nothing after it, and
// closes it otherwise (a multi-GiB body is never drained). An idle
// connection is checked before reuse (one non-blocking read) and closed by
// the reaper once idle for idleTimeout. Where it departs from net/http it is
// stricter, never more lenient: see conformance_test.go.
type upstreamClient struct {
	dialer           net.Dialer
	tlsConfig        *tls.Config
	headerTimeout    time.Duration
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	// writeTimeout bounds each write to OSS: a socket that takes no bytes
	// for this long ends the request, however long the upload.
	writeTimeout   time.Duration
	maxIdlePerHost int
	// maxHeadBytes bounds a response head, interim 1xx heads included.
	maxHeadBytes int64

	mu    sync.Mutex
	idle  map[connKey][]*upConn // oldest first
	nidle int                   // connections in idle
	// reaper closes connections idle past idleTimeout; it is armed while
	// idle holds any (reaping) and stops when the pool empties.
	reaper  *time.Timer
	reaping bool
}

// connKey is what makes connections interchangeable: one may carry another's
// request only when all of these match.
type connKey struct {
	scheme, addr string
	serverName   string      // TLS server name (SNI, and the name verified)
	tls          *tls.Config // the TLS settings it was verified with
}

// maxResponseHeadBytes is the native client's response head limit (interim
// heads included). OSS's heads are a few KiB; net/http allows 10 MB, this is
// stricter on purpose.
const maxResponseHeadBytes = 1 << 20

// defaultWriteTimeout bounds each write to OSS when the header timeout is
// shorter: generous, as a slow link with a large send buffer can stay full
// for seconds while still moving.
const defaultWriteTimeout = 30 * time.Second

// upConn is one connection to OSS. It sits between the connection and its
// buffers: reads under br count against the head limit while a head is
// read, and writes from bw are counted and each given the progress deadline.
type upConn struct {
	key    connKey
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
	// headFirst says the current request's head was flushed before any of
	// its body was read (see exchange).
	headFirst bool
	// longIdle says the connection was idle for headFirstAfter or more
	// before this reuse.
	longIdle bool
	// readDeadline is the read deadline set on nc. The one left after
	// headers whose body came with them is kept: the next exchange either
	// reuses it or replaces it before reading.
	readDeadline time.Time
	// writeDeadline is the write deadline set on nc, renewed by Write once
	// less than half of writeTimeout is left.
	writeDeadline time.Time
	writeTimeout  time.Duration
	// written counts the bytes of the current request the connection
	// accepted: none means OSS cannot have seen any of it.
	written int64
	// headLeft is how many more bytes a response head may take while
	// headLimited.
	headLeft    int64
	headLimited bool
	// aborted is set when the request's context ends: from then on every
	// deadline set on nc is one in the past.
	aborted atomic.Bool

	// isTLS says nc is a *tls.Conn; lastFull that the last read from it
	// filled the buffer it was given, so the TLS layer may hold more of
	// the record it came from.
	isTLS, lastFull bool

	// raw is the socket under nc, for the idle check; nil where there is
	// none or it cannot be polled.
	raw       syscall.RawConn
	peekFn    func(fd uintptr) bool // conn.peek, bound once
	peekState int
	peekBuf   [1]byte
}

// Read is what br reads from: nc, limited while a head is read.
func (conn *upConn) Read(p []byte) (int, error) {
	if conn.headLimited {
		if conn.headLeft <= 0 {
			return 0, errHeadTooLarge
		}
		if int64(len(p)) > conn.headLeft {
			p = p[:conn.headLeft]
		}
	}
	n, err := conn.nc.Read(p)
	conn.headLeft -= int64(n)
	conn.lastFull = n == len(p)
	return n, err
}

// Write is what bw writes to: nc, with a progress deadline on every write.
func (conn *upConn) Write(p []byte) (int, error) {
	if d := conn.writeTimeout; d > 0 {
		now := time.Now()
		if conn.writeDeadline.Sub(now) < d/2 {
			conn.writeDeadline = now.Add(d)
			_ = conn.nc.SetWriteDeadline(conn.writeDeadline)
			if conn.aborted.Load() { // the context's cancel must win
				_ = conn.nc.SetWriteDeadline(aLongTimeAgo)
			}
		}
	}
	n, err := conn.nc.Write(p)
	conn.written += int64(n)
	return n, err
}

// setReadDeadline sets nc's read deadline, unless it is set to t already.
func (conn *upConn) setReadDeadline(t time.Time) {
	if t.Equal(conn.readDeadline) {
		return
	}
	conn.readDeadline = t
	_ = conn.nc.SetReadDeadline(t)
	if conn.aborted.Load() { // the context's cancel must win
		_ = conn.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// errHeadTooLarge is a response head over maxHeadBytes.
var errHeadTooLarge = errors.New("OSS response head too large")

// errHeaderTimeout is the header timeout expiring.
var errHeaderTimeout error = headerTimeoutError{}

type headerTimeoutError struct{}

func (headerTimeoutError) Error() string   { return "timeout awaiting response headers from OSS" }
func (headerTimeoutError) Timeout() bool   { return true }
func (headerTimeoutError) Temporary() bool { return true }

var _ http.RoundTripper = (*upstreamClient)(nil)

// errStaleConn marks a failure on a reused connection that OSS closed while
// it was idle, where sending the request again cannot repeat it: no byte of
// it was taken (any request), or no answer came to a replayable one (GET,
// HEAD, OPTIONS, TRACE, or with an idempotency key, and no body), as net/http
// decides.
var errStaleConn = errors.New("idle connection closed by OSS")

// RoundTrip sends req to OSS and returns the response with its body
// streaming from the connection. Cancelling req's context aborts the
// exchange at any point, the body included.
func (c *upstreamClient) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	key := c.keyFor(req.URL)
	for {
		conn, err := c.getConn(req.Context(), key)
		if err != nil {
			return nil, err
		}
		resp, err := c.exchange(conn, req)
		if errors.Is(err, errStaleConn) {
			continue // only reused connections go stale: this ends once the idle ones are gone
		}
		return resp, err
	}
}

// keyFor is the connection key for requests to u.
func (c *upstreamClient) keyFor(u *url.URL) connKey {
	k := connKey{scheme: u.Scheme, addr: u.Host}
	if u.Scheme == "https" {
		k.serverName = u.Host
		if host, _, err := net.SplitHostPort(u.Host); err == nil {
			k.serverName = host
		} else if len(u.Host) > 1 && u.Host[0] == '[' && u.Host[len(u.Host)-1] == ']' {
			k.serverName = u.Host[1 : len(u.Host)-1]
		}
		k.tls = c.tlsConfig
	}
	return k
}

// retryable reports whether a request that failed on conn may be sent again
// on a new connection (see errStaleConn).
func (conn *upConn) retryable(req *http.Request, hasBody bool) bool {
	if !conn.reused {
		return false // a new connection failing is OSS's answer
	}
	if conn.written == 0 && (!hasBody || conn.headFirst) {
		return true // nothing taken, and any body still whole
	}
	return !hasBody && replayable(req)
}

// headFirstAfter is how long a connection must have been idle for an
// upload on it to send its head alone before reading any of its body. The
// idle check before reuse catches a connection OSS closed while idle; the
// head sent first covers one that dies between that check and the first
// write: such a write fails with nothing taken and the body unread, so the
// upload goes again, whole, on a new connection (net/http would fail it).
// Closes come after long idleness; a connection in steady use sends head
// and body together, one write (and packet) fewer.
const headFirstAfter = time.Second

// replayable is net/http's rule for requests it sends again after a reused
// connection failed without an answer.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	_, xok := req.Header["X-Idempotency-Key"]
	return ok || xok
}

// cancelCheck is how long an exchange waits for OSS's headers before it
// starts watching the request's context. Nearly every answer arrives well
// within it and so costs no context registration (a child in the server's
// request context, a goroutine on cancel); a client that leaves while OSS is
// slow still stops the wait within this much time.
const cancelCheck = 100 * time.Millisecond

// exchange writes req on conn and reads the response headers.
func (c *upstreamClient) exchange(conn *upConn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var stop func() bool // set once the context is watched
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody {
		stop = conn.watch(ctx) // an upload can wait on OSS for as long as the client sends
	}
	conn.written = 0
	conn.headFirst = hasBody && conn.reused && conn.longIdle
	if err := writeRequest(conn.bw, req, conn.headFirst); err != nil {
		var cbe *ClientBodyError
		if errors.As(err, &cbe) {
			// The client's body broke: close before the framing is
			// complete, so OSS sees a cut request and stores nothing.
			return conn.fail(ctx, stop, err)
		}
		if conn.retryable(req, hasBody) {
			return conn.fail(ctx, stop, fmt.Errorf("%w: %v", errStaleConn, err))
		}
		// OSS may have answered (a 403, say) and closed before taking the
		// whole body: that answer is worth more than the write error.
		conn.setReadDeadline(time.Now().Add(time.Second))
		if resp, rerr := c.readHead(conn, req, time.Time{}); rerr == nil {
			conn.setReadDeadline(time.Time{})
			resp.Body = &upBody{c: c, conn: conn, body: resp.Body, stop: stop}
			return resp, nil
		}
		return conn.fail(ctx, stop, err)
	}
	now := time.Now()
	var deadline time.Time // zero: no header timeout
	if c.headerTimeout > 0 {
		deadline = now.Add(c.headerTimeout)
	}
	first := deadline
	if stop == nil && (deadline.IsZero() || c.headerTimeout > cancelCheck) {
		first = now.Add(cancelCheck)
		// A busy connection still has the check deadline of its last
		// exchange, a few milliseconds old: keep it rather than pay for a
		// timer update. Expiring a little early only brings the context
		// check forward.
		if conn.readDeadline.After(now.Add(cancelCheck/2)) && !conn.readDeadline.After(first) {
			first = conn.readDeadline
		}
	}
	conn.setReadDeadline(first)
	conn.headLimited, conn.headLeft = true, c.maxHeadBytes
	// Peek first, so a connection OSS closed while idle (EOF or reset with
	// nothing read) is told apart from a failure mid-response.
	_, err := conn.br.Peek(1)
	if err != nil && stop == nil && !first.Equal(deadline) && IsTimeout(err) {
		// OSS is taking its time: from here on the client leaving ends it.
		if ctx.Err() != nil {
			return conn.fail(ctx, stop, ctx.Err())
		}
		conn.setReadDeadline(deadline) // before watch, whose cancel must win
		stop = conn.watch(ctx)
		_, err = conn.br.Peek(1)
	}
	if err != nil {
		conn.headLimited = false
		if isConnClosed(err) && conn.retryable(req, hasBody) {
			return conn.fail(ctx, stop, fmt.Errorf("%w: %v", errStaleConn, err))
		}
		if IsTimeout(err) && !deadline.IsZero() && !time.Now().Before(deadline) {
			err = errHeaderTimeout
		}
		return conn.fail(ctx, stop, err)
	}
	if !conn.readDeadline.Equal(deadline) && !headBuffered(conn.br) {
		// The head is coming in pieces: the rest of it gets the whole
		// header timeout, watched like a slow answer.
		conn.setReadDeadline(deadline)
		if stop == nil {
			stop = conn.watch(ctx)
		}
	}
	resp, err := c.readHead(conn, req, deadline)
	if err != nil {
		return conn.fail(ctx, stop, err)
	}
	inMemory := resp.ContentLength >= 0 && len(resp.TransferEncoding) == 0 && int64(conn.br.Buffered()) >= resp.ContentLength
	if resp.Body != http.NoBody && !inMemory {
		// The body is read off the connection: no deadline, and the
		// client leaving must end a read OSS holds up, as it does the
		// wait for headers. (A body that came with its headers cannot be
		// held up: it costs no watch.)
		conn.setReadDeadline(time.Time{})
		if stop == nil {
			stop = conn.watch(ctx)
		}
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody { // HEAD, 204, 304: the exchange is over
		if unwatch(stop) && keep {
			c.putConn(conn) // unless something follows the head: see putConn
		} else {
			conn.nc.Close()
		}
		return resp, nil
	}
	resp.Body = &upBody{c: c, conn: conn, body: resp.Body, stop: stop, keep: keep, inMemory: inMemory}
	return resp, nil
}

// readHead reads a response head on conn within the head limit. A failure
// at or past deadline (non-zero) is the header timeout, whatever the parser
// made of the part that came: a line cut by the deadline reads as malformed.
func (c *upstreamClient) readHead(conn *upConn, req *http.Request, deadline time.Time) (*http.Response, error) {
	if !conn.headLimited {
		conn.headLimited, conn.headLeft = true, c.maxHeadBytes-int64(conn.br.Buffered())
	}
	resp, err := readResponse(conn.br, req)
	over := conn.headLeft <= 0
	conn.headLimited = false
	switch {
	case err == nil:
		return resp, nil
	case over:
		return nil, fmt.Errorf("%w (over %d bytes)", errHeadTooLarge, c.maxHeadBytes)
	case !deadline.IsZero() && !time.Now().Before(deadline):
		return nil, errHeaderTimeout
	}
	return nil, err
}

// watch aborts conn's IO once ctx ends; the returned stop ends the watch.
// aborted keeps a deadline set after the cancel (a write's renewal, say)
// from undoing it.
func (conn *upConn) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		conn.aborted.Store(true)
		_ = conn.nc.SetDeadline(aLongTimeAgo)
	})
}

// unwatch stops a watch, if there is one, and reports whether the
// connection is still usable (the context had not ended it).
func unwatch(stop func() bool) bool { return stop == nil || stop() }

// fail ends an exchange that went wrong: the connection is closed, and a
// context that ended is the reason given.
func (conn *upConn) fail(ctx context.Context, stop func() bool, err error) (*http.Response, error) {
	unwatch(stop)
	conn.nc.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, err
}

// aLongTimeAgo is a deadline that has passed: setting it aborts blocked IO.
var aLongTimeAgo = time.Unix(1, 0)

// isConnClosed reports an EOF or reset, as a server closing an idle
// keep-alive connection produces.
func isConnClosed(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// writeRequest writes req's request line, headers and body in HTTP/1.1.
// Header values cannot hold CR or LF: the client side's parser refused
// them and the gateway's own values never have them; any that did would be
// dropped rather than split into a second header. With flushHead, the head
// is flushed before the first body byte is read.
func writeRequest(bw *bufio.Writer, req *http.Request, flushHead bool) error {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" || k == "Expect" {
			continue
		}
		for _, v := range vv {
			if v == "" && k == "User-Agent" {
				continue
			}
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		var b [20]byte
		bw.Write(strconv.AppendInt(b[:0], req.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		if flushHead {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		n, err := Copy(bw, io.LimitReader(req.Body, req.ContentLength))
		if err != nil {
			return err
		}
		if n < req.ContentLength {
			return &ClientBodyError{io.ErrUnexpectedEOF} // never let OSS wait for the rest
		}
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if flushHead {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		cw := &chunkedWriter{bw}
		if _, err := Copy(cw, req.Body); err != nil {
			return err
		}
		bw.WriteString("0\r\n\r\n")
	case req.Method == http.MethodPut || req.Method == http.MethodPost:
		bw.WriteString("Content-Length: 0\r\n\r\n")
	default:
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// chunkedWriter frames each write as one HTTP/1.1 chunk.
type chunkedWriter struct{ bw *bufio.Writer }

func (w *chunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var b [16]byte
	w.bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
	w.bw.WriteString("\r\n")
	n, err := w.bw.Write(p)
	w.bw.WriteString("\r\n")
	return n, err
}

// upBody is a response body streaming from an upstream connection.
type upBody struct {
	c    *upstreamClient
	conn *upConn
	body io.ReadCloser
	stop func() bool // stops watching the context (nil: not watched); false if it already fired
	keep bool        // the connection may be reused once the body is read
	// inMemory says the whole body was already read off the connection
	// with the headers: reading it cannot stall.
	inMemory bool
	eof      atomic.Bool
	done     bool
	mu       sync.Mutex // Close may race a Read (the stall guard closes from a timer)
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// Close returns the connection to the idle list when the body was read to
// its end, and closes it otherwise.
func (b *upBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	if unwatch(b.stop) && b.eof.Load() && b.keep {
		b.c.putConn(b.conn)
		return nil
	}
	return b.conn.nc.Close()
}

// getConn returns an idle connection for key, or dials one.
func (c *upstreamClient) getConn(ctx context.Context, key connKey) (*upConn, error) {
	now := time.Now()
	for {
		c.mu.Lock()
		list := c.idle[key]
		if len(list) == 0 {
			c.mu.Unlock()
			break
		}
		conn := list[len(list)-1]
		list[len(list)-1] = nil
		c.idle[key] = list[:len(list)-1]
		c.nidle--
		c.mu.Unlock()
		// Idle too long, OSS may be closing it right now; anything that
		// arrived while idle (EOF, a reset, stray bytes) means it is done.
		if idle := now.Sub(conn.idleAt); idle < c.idleTimeout && conn.quiet(now) {
			conn.reused, conn.longIdle = true, idle >= headFirstAfter
			return conn, nil
		}
		conn.nc.Close()
	}

	hostport := key.addr
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		host := strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
		if key.scheme == "https" {
			hostport = net.JoinHostPort(host, "443")
		} else {
			hostport = net.JoinHostPort(host, "80")
		}
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	conn := &upConn{key: key, writeTimeout: c.writeTimeout}
	if idleCheckable {
		if sc, ok := nc.(syscall.Conn); ok {
			if raw, err := sc.SyscallConn(); err == nil {
				conn.raw, conn.peekFn = raw, conn.peek
			}
		}
	}
	if key.scheme == "https" {
		cfg := key.tls.Clone()
		cfg.ServerName = key.serverName
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, c.handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc, conn.isTLS = tc, true
	}
	conn.nc = nc
	conn.br = bufio.NewReaderSize(conn, 8<<10) // bodies bypass it: Copy reads 64 KiB at a time
	conn.bw = bufio.NewWriterSize(conn, 8<<10)
	return conn, nil
}

// idleCheckable says whether this platform's sockets are non-blocking
// descriptors that read(2) can poll; elsewhere (Windows handles) an idle
// connection's state shows when it is used.
const idleCheckable = runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1"

// Peek states.
const (
	peekQuiet = iota // nothing to read
	peekData         // bytes arrived
	peekEnded        // EOF or an error (a reset)
)

// quiet reports whether nothing has arrived on an idle connection: no EOF,
// no reset, no stray bytes. It costs one non-blocking read(2), which is
// what lets a connection OSS closed while idle be replaced before any
// request byte is written to it, and keeps bytes OSS sent where no answer
// was due from being read as the next request's answer. (net/http learns
// the same from the read it keeps pending on every idle connection.)
func (conn *upConn) quiet(now time.Time) bool {
	if conn.br.Buffered() > 0 {
		return false
	}
	if conn.raw == nil {
		return !conn.isTLS || !conn.lastFull || conn.tlsQuiet()
	}
	if !conn.readDeadline.IsZero() && !conn.readDeadline.After(now) {
		conn.setReadDeadline(time.Time{}) // an expired one fails the read before it is tried
	}
	if conn.isTLS && conn.lastFull && !conn.tlsQuiet() {
		return false
	}
	conn.peekState = peekEnded
	if err := conn.raw.Read(conn.peekFn); err != nil {
		return false
	}
	return conn.peekState == peekQuiet
}

// tlsQuiet reports whether the TLS layer holds nothing more from OSS: a
// read from it with the deadline past returns what it has buffered or
// decrypted, and fails without touching the socket otherwise.
func (conn *upConn) tlsQuiet() bool {
	conn.setReadDeadline(aLongTimeAgo)
	n, err := conn.nc.Read(conn.peekBuf[:])
	conn.setReadDeadline(time.Time{})
	return n == 0 && IsTimeout(err)
}

// peek is quiet's read(2) on the socket. A byte it takes is lost, and with it
// the connection, which is closed: any byte here is one too many.
func (conn *upConn) peek(fd uintptr) bool {
	n, err := sysRead(syscall.Read, fd, conn.peekBuf[:])
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		conn.peekState = peekQuiet
	case err == nil && n > 0:
		conn.peekState = peekData
	default:
		conn.peekState = peekEnded
	}
	return true // never wait for readability
}

// sysRead calls read with fd converted to the platform's descriptor type
// (int on Unix).
func sysRead[FD ~int | ~uintptr](read func(FD, []byte) (int, error), fd uintptr, p []byte) (int, error) {
	return read(FD(fd), p)
}

// putConn keeps conn for reuse, unless its host already has enough idle
// connections, or something already follows the exchange it finished in
// its read buffer (bytes after a body, a body on a 204, 304 or HEAD
// answer): those were meant for no request, and the next one must not read
// them as its answer.
//
// No deadline is left on a connection put back: the header deadline is
// cleared once headers arrive, and a connection whose context deadline fired
// (stop returned false) is closed instead.
func (c *upstreamClient) putConn(conn *upConn) {
	if conn.br.Buffered() > 0 {
		conn.nc.Close()
		return
	}
	c.mu.Lock()
	if c.idle == nil {
		c.idle = map[connKey][]*upConn{}
	}
	list := c.idle[conn.key]
	if len(list) >= c.maxIdlePerHost {
		c.mu.Unlock()
		conn.nc.Close()
		return
	}
	conn.idleAt = time.Now() // under mu: each list stays in idle order
	c.idle[conn.key] = append(list, conn)
	c.nidle++
	if !c.reaping {
		c.reaping = true
		if c.reaper == nil {
			c.reaper = time.AfterFunc(c.idleTimeout, c.reap)
		} else {
			c.reaper.Reset(c.idleTimeout)
		}
	}
	c.mu.Unlock()
}

// reapSlack lets one reaper run close every connection due within it, so
// that a busy pool costs a timer wakeup per slack, not one per connection.
func (c *upstreamClient) reapSlack() time.Duration {
	return min(time.Second, c.idleTimeout/8)
}

// reap closes the connections idle for idleTimeout (or within reapSlack of
// it) and re-arms for the next one due; with none left the reaper stops
// until putConn needs it again.
func (c *upstreamClient) reap() {
	var dead []*upConn
	c.mu.Lock()
	now := time.Now()
	cutoff := c.idleTimeout - c.reapSlack()
	next := time.Duration(-1)
	for k, list := range c.idle {
		i := 0
		for i < len(list) && now.Sub(list[i].idleAt) >= cutoff {
			i++
		}
		if i > 0 {
			dead = append(dead, list[:i]...)
			n := copy(list, list[i:])
			clear(list[n:])
			list = list[:n]
			c.idle[k] = list
		}
		if len(list) == 0 {
			delete(c.idle, k)
			continue
		}
		if d := c.idleTimeout - now.Sub(list[0].idleAt); next < 0 || d < next {
			next = d
		}
	}
	c.nidle -= len(dead)
	if next >= 0 && c.reaping {
		c.reaper.Reset(next)
	} else {
		c.reaping = false
	}
	c.mu.Unlock()
	for _, conn := range dead {
		conn.nc.Close()
	}
}

// CloseIdleConnections closes every idle connection (config reloads,
// shutdown, tests); the reaper stops with the pool empty.
func (c *upstreamClient) CloseIdleConnections() {
	c.mu.Lock()
	var dead []*upConn
	for k, list := range c.idle {
		dead = append(dead, list...)
		delete(c.idle, k)
	}
	c.nidle = 0
	if c.reaping {
		c.reaper.Stop()
		c.reaping = false
	}
	c.mu.Unlock()
	for _, conn := range dead {
		conn.nc.Close()
	}
}
