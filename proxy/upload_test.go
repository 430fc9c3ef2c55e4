package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// uploadSite is a private site that takes every write, with a short
// read_header_timeout so a stalled body is cut quickly.
const uploadSite = `
[[site]]
name = "up"
domains = ["up.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
prefix = "up/"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
`

// uploadEnv is an env with the upload site, served over HTTP/1.1 (e.gw)
// and over HTTP/2 with TLS (h2).
func uploadEnv(t *testing.T) (*env, *httptest.Server) {
	t.Helper()
	e := newEnv(t, envOpts{server: `read_header_timeout = "400ms"`, sites: uploadSite})
	h2 := httptest.NewUnstartedServer(e.h)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	return e, h2
}

// rawAnswer is what a client saw for one request.
type rawAnswer struct {
	status    int
	header    http.Header
	body      string
	closed    bool // the server closed the connection after answering
	closeHdr  bool // the answer said Connection: close
	requestID string
}

// h1Exchange writes head and body on a fresh HTTP/1.1 connection, half-
// closes it when halfClose, and reads the answer and whether the server
// then closed the connection (waiting long for that when wantClosed, a
// moment otherwise).
func h1Exchange(t *testing.T, addr, head string, body []byte, halfClose, wantClosed bool) rawAnswer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append([]byte(head), body...)); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(head, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := rawAnswer{status: resp.StatusCode, header: resp.Header, body: string(b), requestID: resp.Header.Get("X-Request-Id"), closeHdr: resp.Close}
	wait := 200 * time.Millisecond
	if wantClosed {
		wait = 5 * time.Second
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err = br.ReadByte()
	a.closed = errors.Is(err, io.EOF)
	return a
}

// h2Conn is a raw HTTP/2 client connection, for frames the Go client does
// not send on purpose (a body shorter than its content-length, a stall,
// an empty DATA frame).
type h2Conn struct {
	t   *testing.T
	c   *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	dec *hpack.Decoder
	cur *rawAnswer // the answer the decoder fills
	buf bytes.Buffer
}

func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, not h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	h := &h2Conn{t: t, c: c, fr: http2.NewFramer(c, c)}
	h.enc = hpack.NewEncoder(&h.buf)
	h.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			h.cur.status, _ = strconv.Atoi(f.Value)
		} else {
			h.cur.header.Add(f.Name, f.Value)
		}
	})
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// request sends HEADERS for stream id (END_STREAM when endStream).
func (h *h2Conn) request(id uint32, method, host, path string, endStream bool, extra ...string) {
	h.buf.Reset()
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", host}, {":path", path}} {
		_ = h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		_ = h.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.buf.Bytes(), EndStream: endStream, EndHeaders: true}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *h2Conn) data(id uint32, p []byte, end bool) {
	if err := h.fr.WriteData(id, end, p); err != nil {
		h.t.Fatal(err)
	}
}

// answer reads frames until stream id's response ends. status is -1 when
// the stream was reset without an answer.
func (h *h2Conn) answer(id uint32) rawAnswer {
	a := rawAnswer{header: http.Header{}}
	h.cur = &a
	var body bytes.Buffer
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != id {
				continue
			}
			if _, err := h.dec.Write(f.HeaderBlockFragment()); err != nil {
				h.t.Fatal(err)
			}
			if f.StreamEnded() {
				a.requestID = a.header.Get("X-Request-Id")
				return a
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			body.Write(f.Data())
			if f.StreamEnded() {
				a.body = body.String()
				a.requestID = a.header.Get("X-Request-Id")
				return a
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				a.status = -1
				return a
			}
		case *http2.GoAwayFrame:
			a.closed = true
		}
	}
}

// logLine finds the access log line of a request id.
func logLine(t *testing.T, e *env, id string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["request_id"] == id {
			return m
		}
	}
	t.Fatalf("no access log line for %q in:\n%s", id, e.logs.String())
	return nil
}

// initiate starts a multipart upload of key through the gateway.
func initiate(t *testing.T, e *env, key string) string {
	t.Helper()
	resp := e.do("POST", "up.test", "/"+key+"?uploads", nil, nil)
	body := readBody(t, resp)
	var r struct{ UploadId string }
	if resp.StatusCode != 200 || xml.Unmarshal([]byte(body), &r) != nil || r.UploadId == "" {
		t.Fatalf("initiate: %d %s", resp.StatusCode, body)
	}
	return r.UploadId
}

// TestBrokenUploadsStoreNothing: a body that ends early, has broken
// chunking, or stops arriving aborts the request to OSS so that OSS
// stores nothing, for PutObject, AppendObject and UploadPart, over
// HTTP/1.1 and HTTP/2; the client gets 400 IncompleteBody or
// RequestTimeout with the connection closed, and the access log and the
// metrics say exactly that, as a client error.
func TestBrokenUploadsStoreNothing(t *testing.T) {
	e, h2srv := uploadEnv(t)
	type op struct {
		name   string
		target func(key string) (method, target string, stored func() bool)
	}
	ops := []op{
		{"put", func(key string) (string, string, func() bool) {
			return "PUT", "/" + key, func() bool { _, ok := e.emu.Object(prvBucket, "up/"+key); return ok }
		}},
		{"append", func(key string) (string, string, func() bool) {
			return "POST", "/" + key + "?append&position=0", func() bool { _, ok := e.emu.Object(prvBucket, "up/"+key); return ok }
		}},
		{"part", func(key string) (string, string, func() bool) {
			id := initiate(t, e, key)
			return "PUT", "/" + key + "?partNumber=1&uploadId=" + id, func() bool {
				parts, ok := e.emu.PendingParts(prvBucket, "up/"+key, id)
				return !ok || len(parts) > 0
			}
		}},
	}
	faults := []struct {
		name  string
		proto string
		code  string
		send  func(t *testing.T, method, target string) rawAnswer
	}{
		{"short", "h1", "IncompleteBody", func(t *testing.T, method, target string) rawAnswer {
			return h1Exchange(t, e.gw.Listener.Addr().String(), method+" "+target+" HTTP/1.1\r\nHost: up.test\r\nContent-Length: 100\r\n\r\n", bytes.Repeat([]byte("a"), 50), true, true)
		}},
		{"bad chunk", "h1", "IncompleteBody", func(t *testing.T, method, target string) rawAnswer {
			return h1Exchange(t, e.gw.Listener.Addr().String(), method+" "+target+" HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n", []byte("5\r\nhello\r\nZZ\r\nxx\r\n0\r\n\r\n"), false, true)
		}},
		{"stall", "h1", "RequestTimeout", func(t *testing.T, method, target string) rawAnswer {
			return h1Exchange(t, e.gw.Listener.Addr().String(), method+" "+target+" HTTP/1.1\r\nHost: up.test\r\nContent-Length: 100\r\n\r\n", bytes.Repeat([]byte("a"), 50), false, true)
		}},
		{"short", "h2", "IncompleteBody", func(t *testing.T, method, target string) rawAnswer {
			h := dialH2(t, h2srv.Listener.Addr().String())
			h.request(1, method, "up.test", target, false, "content-length", "100")
			h.data(1, bytes.Repeat([]byte("a"), 50), true)
			return h.answer(1)
		}},
		{"stall", "h2", "RequestTimeout", func(t *testing.T, method, target string) rawAnswer {
			h := dialH2(t, h2srv.Listener.Addr().String())
			h.request(1, method, "up.test", target, false, "content-length", "100")
			h.data(1, bytes.Repeat([]byte("a"), 50), false)
			return h.answer(1)
		}},
	}
	n := 0
	for _, o := range ops {
		for _, f := range faults {
			n++
			t.Run(o.name+"/"+f.proto+"/"+f.name, func(t *testing.T) {
				key := fmt.Sprintf("obj-%d.bin", n)
				method, target, stored := o.target(key)
				before := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": "up", "code": "400"})
				a := f.send(t, method, target)
				if a.status != 400 || !strings.Contains(a.body, "<Code>"+f.code+"</Code>") {
					t.Fatalf("answer %d %q, want 400 %s", a.status, a.body, f.code)
				}
				if f.proto == "h1" && (!a.closeHdr || !a.closed) {
					t.Errorf("Connection: close sent %v, connection closed %v; want both", a.closeHdr, a.closed)
				}
				if stored() {
					t.Fatal("OSS stored the broken upload")
				}
				line := logLine(t, e, a.requestID)
				if line["status"] != float64(400) || line["bytes_out"] != float64(len(a.body)) || line["upstream_error"] != "" {
					t.Errorf("access log %v, client saw 400 with %d bytes", line, len(a.body))
				}
				if got := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": "up", "code": "400"}); got != before+1 {
					t.Errorf("requests{code=400} went %v -> %v", before, got)
				}
			})
		}
	}
	for _, m := range []struct{ name, code string }{{"gateway_upstream_requests_total", "0"}, {"gateway_upstream_requests_total", "400"}} {
		if got := counterValue(t, e.reg, m.name, map[string]string{"site": "up", "code": m.code}); got != 0 {
			t.Errorf("%s{code=%s} = %v: broken client bodies counted as upstream failures", m.name, m.code, got)
		}
	}
	if got := counterValue(t, e.reg, "gateway_upstream_retries_total", map[string]string{"site": "up"}); got != 0 {
		t.Errorf("retries = %v", got)
	}
	// A whole upload on the same site still works, on both protocols.
	if resp := e.do("PUT", "up.test", "/whole.bin", nil, strings.NewReader("whole")); readBody(t, resp) != "" || resp.StatusCode != 200 {
		t.Fatalf("whole PUT: %d", resp.StatusCode)
	}
	h := dialH2(t, h2srv.Listener.Addr().String())
	h.request(1, "PUT", "up.test", "/whole2.bin", false, "content-length", "5")
	h.data(1, []byte("whole"), true)
	if a := h.answer(1); a.status != 200 {
		t.Fatalf("whole h2 PUT: %d %s", a.status, a.body)
	}
	if got, _ := e.emu.Object(prvBucket, "up/whole2.bin"); string(got) != "whole" {
		t.Fatalf("stored %q", got)
	}
}

// TestRequestFraming: 405 comes before any body check; a body on a
// method that takes none is 400 with the connection closed; an empty
// body in any framing is no body.
func TestRequestFraming(t *testing.T) {
	e, h2srv := uploadEnv(t)
	e.emu.PutObject(prvBucket, "up/a.txt", []byte("aaa"), nil)
	addr := e.gw.Listener.Addr().String()
	tests := []struct {
		name   string
		head   string
		body   string
		status int
		code   string
		closed bool
	}{
		{"PATCH with body is 405", "PATCH /a.txt HTTP/1.1\r\nHost: up.test\r\nContent-Length: 3\r\n\r\n", "abc", 405, "MethodNotAllowed", false},
		{"OPTIONS with body, not listed, is 405", "OPTIONS /a.txt HTTP/1.1\r\nHost: up.test\r\nContent-Length: 3\r\n\r\n", "abc", 405, "MethodNotAllowed", false},
		{"DELETE with body is 400", "DELETE /a.txt HTTP/1.1\r\nHost: up.test\r\nContent-Length: 3\r\n\r\n", "abc", 400, "InvalidRequest", true},
		{"GET with body is 400", "GET /a.txt HTTP/1.1\r\nHost: up.test\r\nContent-Length: 3\r\n\r\n", "abc", 400, "InvalidRequest", true},
		{"GET with chunked body is 400", "GET /a.txt HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", 400, "InvalidRequest", true},
		{"GET with empty chunked body", "GET /a.txt HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n", 200, "", false},
		{"GET with Content-Length 0", "GET /a.txt HTTP/1.1\r\nHost: up.test\r\nContent-Length: 0\r\n\r\n", "", 200, "", false},
		{"HEAD with empty chunked body", "HEAD /a.txt HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n", 200, "", false},
		{"DELETE with empty chunked body", "DELETE /gone.txt HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n", 204, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.emu.ResetRequests()
			a := h1Exchange(t, addr, tc.head, []byte(tc.body), false, tc.closed)
			if a.status != tc.status || (tc.code != "" && !strings.Contains(a.body, "<Code>"+tc.code+"</Code>")) {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
			if a.closed != tc.closed {
				t.Errorf("connection closed = %v, want %v", a.closed, tc.closed)
			}
			if tc.status >= 400 && e.upstreamCount() != 0 {
				t.Errorf("refused request reached OSS")
			}
		})
	}

	// HTTP/2: HEADERS without END_STREAM, then an empty DATA frame that
	// ends the stream, as the Go SDK sends a GET over HTTP/2.
	h := dialH2(t, h2srv.Listener.Addr().String())
	for i, m := range []string{"GET", "HEAD", "DELETE"} {
		id := uint32(2*i + 1)
		target := "/a.txt"
		if m == "DELETE" {
			target = "/gone.txt"
		}
		h.request(id, m, "up.test", target, false)
		h.data(id, nil, true)
		if a := h.answer(id); a.status != 200 && a.status != 204 {
			t.Errorf("h2 %s with an empty DATA frame: %d %s", m, a.status, a.body)
		}
	}
	h.request(7, "GET", "up.test", "/a.txt", false)
	h.data(7, []byte("x"), true)
	if a := h.answer(7); a.status != 400 || !strings.Contains(a.body, "InvalidRequest") {
		t.Errorf("h2 GET with a body: %d %s", a.status, a.body)
	}
}
