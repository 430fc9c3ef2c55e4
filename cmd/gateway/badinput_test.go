package main

// Hostile and malformed input: refused or served right, never a crash, a
// hang, or a request reaching a bucket the routed site does not name.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

// rawRoundTrip sends raw on a fresh connection and reads one response. A
// nil response with a non-nil error means the server closed (or reset) the
// connection without answering. No answer and no close within 15 s is a
// hang and fails the test.
func rawRoundTrip(t *testing.T, addr, raw string) (*http.Response, []byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	// Written concurrently: a server may answer (431) and hang up before it
	// has read everything.
	go io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no answer and no close within 15 s to %.80q", raw)
	}
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("body of the answer to %.80q never ended", raw)
	}
	return resp, body, nil
}

// TestBadInputNeitherCrashesNorMisroutes throws malformed and hostile
// requests at the gateway: oversized and numerous headers, request
// smuggling framing, absurd ranges, garbage request lines, ambiguous hosts,
// absolute-form targets and NUL/CRLF injection. None may crash or hang it,
// none answered by the gateway may reach OSS, and none may reach a bucket
// other than the one the routed site names: after each, a normal GET still
// works, and the second site's bucket (behind allow_ips) never sees a
// request at all.
func TestBadInputNeitherCrashesNorMisroutes(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.CreateBucket("secret", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	emu.PutObject("secret", "a.txt", []byte("secret"), nil)
	emu.PutSyntheticObject("bkt", "r.bin", 1<<20, "")
	ep := "http://" + emuAddr
	p := startGateway(t, gatewayConfig(`max_header_bytes = 65536`,
		siteTable("files", "files.test", "bkt", ep, "public", ""),
		siteTable("other", "other.test", "secret", ep, "public", `
[site.limits]
allow_ips = ["203.0.113.0/24"]
`)))

	// stillServes proves the gateway survived: a normal GET on a new
	// connection answers the right object.
	stillServes := func(t *testing.T) {
		t.Helper()
		resp, body := p.get(t, "files.test", "/a.txt", nil)
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("normal GET afterwards: %d %q", resp.StatusCode, body)
		}
	}
	// send runs raw and returns the answer (nil when the connection was
	// closed without one) and the requests OSS saw because of it.
	send := func(t *testing.T, raw string) (*http.Response, []byte, []ossemu.Request) {
		t.Helper()
		before := len(clientRequests(emu))
		resp, body, err := rawRoundTrip(t, p.http, raw)
		if err != nil {
			t.Logf("connection closed without an answer: %v", err)
		}
		return resp, body, clientRequests(emu)[before:]
	}
	status := func(resp *http.Response) int {
		if resp == nil {
			return 0
		}
		return resp.StatusCode
	}
	const get = "GET /a.txt HTTP/1.1\r\nHost: files.test\r\n"

	// Requests the gateway (or net/http inside it) must refuse itself:
	// want lists the acceptable statuses, 0 = closed without an answer.
	refused := []struct {
		name string
		raw  string
		want []int
	}{
		{"headers larger than max_header_bytes", get + "X-Big: " + strings.Repeat("a", 128<<10) + "\r\n\r\n", []int{431}},
		{"content-length and transfer-encoding", "GET /a.txt HTTP/1.1\r\nHost: files.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}},
		{"two host headers", "GET /a.txt HTTP/1.1\r\nHost: files.test\r\nHost: other.test\r\n\r\n", []int{400}},
		{"host list", "GET /a.txt HTTP/1.1\r\nHost: files.test, other.test\r\n\r\n", []int{400, 421}},
		{"host with space", "GET /a.txt HTTP/1.1\r\nHost: files.test other.test\r\n\r\n", []int{400, 421}},
		{"garbage request line", "GARBAGE\r\n\r\n", []int{0, 400}},
		{"method only", "GET\r\n\r\n", []int{0, 400}},
		{"extra field in request line", "GET /a.txt HTTP/1.1 extra\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"unknown protocol version", "GET /a.txt HTTP/9.9\r\nHost: files.test\r\n\r\n", []int{0, 400, 505}},
		{"TLS handshake on the plain port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", []int{0, 400}},
		{"binary garbage", "\x00\x01\x02\xff\xfe\r\n\r\n", []int{0, 400}},
		{"encoded NUL in path", "GET /a%00.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{400}},
		{"raw NUL in path", "GET /a\x00.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"raw CR in path", "GET /a.txt\rX-Injected: yes HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"raw CRLF in path", "GET /a.txt\r\nX-Injected: yes HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"encoded dot segments", "GET /%2e%2e/secret/a.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{400}},
		{"encoded slash", "GET /..%2fsecret%2fa.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{400}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			resp, body, up := send(t, c.raw)
			got := status(resp)
			ok := false
			for _, w := range c.want {
				ok = ok || got == w
			}
			if !ok {
				t.Errorf("status %d (%q), want one of %v", got, body, c.want)
			}
			if len(up) > 0 {
				t.Errorf("reached OSS: %s %s%s (bucket %q key %q)", up[0].Method, up[0].Host, up[0].RawPath, up[0].Bucket, up[0].Key)
			}
			stillServes(t)
		})
	}

	// Many small headers within max_header_bytes are a legal request: it is
	// served from the right object (or refused whole), nothing else.
	t.Run("5000 small headers", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(get)
		for i := range 5000 {
			fmt.Fprintf(&b, "X-H%04d: v\r\n", i)
		}
		b.WriteString("\r\n")
		resp, body, up := send(t, b.String())
		switch got := status(resp); {
		case got == 200 && string(body) == "hello":
		case got == 431 && len(up) == 0:
		default:
			t.Errorf("status %d %q", got, body)
		}
		for _, r := range up {
			if r.Bucket != "bkt" || r.Key != "a.txt" {
				t.Errorf("reached %s/%s", r.Bucket, r.Key)
			}
		}
		stillServes(t)
	})

	// Absurd ranges are OSS's to judge: passed through untouched, and the
	// answer is sane (no 5xx; a 206 covers what it says it covers).
	for _, rng := range []string{
		"bytes=99999999999999999999-",
		"bytes=-0",
		"bytes=5-1",
		"bytes=-99999999999999999999",
		"bytes=0-0,2-2" + func() string {
			var b strings.Builder
			for i := 2; i < 1000; i++ {
				fmt.Fprintf(&b, ",%d-%d", 2*i, 2*i)
			}
			return b.String()
		}(),
	} {
		t.Run("range "+rng[:min(len(rng), 30)], func(t *testing.T) {
			resp, body, up := send(t, "GET /r.bin HTTP/1.1\r\nHost: files.test\r\nRange: "+rng+"\r\n\r\n")
			got := status(resp)
			switch {
			case got == 0 || got >= 500:
				t.Errorf("status %d %q", got, body)
			case got == 200:
				if len(body) != 1<<20 || synthMismatch(0, body) >= 0 {
					t.Errorf("200 with a body of %d bytes that is not the object", len(body))
				}
			case got == 206:
				var first, last, total int64
				if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &total); err != nil ||
					int64(len(body)) != last-first+1 || synthMismatch(first, body) >= 0 {
					t.Errorf("206 %q with %d bytes that are not that range", resp.Header.Get("Content-Range"), len(body))
				}
			}
			if len(up) != 1 || up[0].Bucket != "bkt" || up[0].Key != "r.bin" || up[0].Header.Get("Range") != rng {
				t.Errorf("upstream requests %d; want the one GET of bkt/r.bin with the client's Range", len(up))
			}
			t.Logf("status %d, %d bytes", got, len(body))
			stillServes(t)
		})
	}

	// Percent-encoded CR LF are part of the key (or query), never a header
	// break, on the way to OSS or back.
	for _, target := range []string{"/a.txt%0d%0aX-Injected:%20yes", "/a.txt?x=%0d%0aX-Injected:%20yes"} {
		t.Run("encoded CRLF "+target, func(t *testing.T) {
			resp, body, up := send(t, "GET "+target+" HTTP/1.1\r\nHost: files.test\r\n\r\n")
			if got := status(resp); got == 0 || got >= 500 || resp.Header.Get("X-Injected") != "" {
				t.Errorf("status %d, header %q, %q", got, resp.Header.Get("X-Injected"), body)
			}
			for _, r := range up {
				if r.Bucket != "bkt" || r.Header.Get("X-Injected") != "" {
					t.Errorf("reached %s/%q with X-Injected %q", r.Bucket, r.Key, r.Header.Get("X-Injected"))
				}
			}
			stillServes(t)
		})
	}

	// Absolute-form targets: the site is the one net/http puts in r.Host
	// (RFC 9112 section 3.2.2: the target's authority wins over the Host
	// header), and that same site's rules and bucket apply. A plain net/http
	// server tells what r.Host each request gets.
	echo := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) })}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go echo.Serve(eln)
	defer echo.Close()
	for _, c := range []struct{ target, host string }{
		{"http://other.test/a.txt", "files.test"},
		{"http://files.test/a.txt", "other.test"},
		{"http://unknown.test/a.txt", "files.test"},
		{"http://files.test@other.test/a.txt", "files.test"},
		{"http://other.test:80/a.txt", "files.test"},
	} {
		t.Run("absolute-form "+c.target+" host "+c.host, func(t *testing.T) {
			raw := "GET " + c.target + " HTTP/1.1\r\nHost: " + c.host + "\r\n\r\n"
			eresp, rhost, err := rawRoundTrip(t, eln.Addr().String(), raw)
			if err != nil || eresp.StatusCode != 200 {
				t.Fatalf("net/http refuses %q: %v", raw, err)
			}
			resp, body, up := send(t, raw)
			got := status(resp)
			routed, _, _ := strings.Cut(strings.ToLower(string(rhost)), ":")
			switch routed {
			case "files.test":
				if got != 200 || string(body) != "hello" {
					t.Errorf("r.Host %q: %d %q, want files.test's a.txt", rhost, got, body)
				}
			case "other.test":
				if got != 403 {
					t.Errorf("r.Host %q: %d %q, want other.test's allow_ips refusal", rhost, got, body)
				}
			default:
				if got != 421 {
					t.Errorf("r.Host %q: %d %q, want 421", rhost, got, body)
				}
			}
			for _, r := range up {
				if r.Bucket != "bkt" {
					t.Errorf("reached bucket %q", r.Bucket)
				}
			}
			t.Logf("r.Host %q: %d", rhost, got)
			stillServes(t)
		})
	}

	for _, r := range clientRequests(emu) {
		if r.Bucket != "bkt" {
			t.Errorf("a request reached bucket %q: %s %s%s", r.Bucket, r.Method, r.Host, r.RawPath)
		}
	}
}

// TestAmbiguousFramingIsRefusedAndClosed: a request head with both
// Content-Length and Transfer-Encoding, after a clean request on the same
// keep-alive connection, gets 400 InvalidRequest, the connection closes,
// nothing reaches OSS, and the refusal is logged and counted.
func TestAmbiguousFramingIsRefusedAndClosed(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	p := startGateway(t, gatewayConfig("", siteTable("files", "files.test", "bkt", "http://"+emuAddr, "private", `methods = ["GET", "HEAD", "PUT"]`)), testCredentials...)

	for _, order := range []string{"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "transfer-encoding: chunked\r\ncontent-length: 5\r\n"} {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		fmt.Fprint(c, "GET /a.txt HTTP/1.1\r\nHost: files.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("clean request first: %d %q", resp.StatusCode, body)
		}
		before := len(clientRequests(emu))
		fmt.Fprint(c, "PUT /b.txt HTTP/1.1\r\nHost: files.test\r\n"+order+"\r\n5\r\nhello\r\n0\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "<Code>InvalidRequest</Code>") || !resp.Close {
			t.Fatalf("%q: %d close=%v %s", order, resp.StatusCode, resp.Close, body)
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("%q: connection still open after the refusal (%v)", order, err)
		}
		c.Close()
		if up := clientRequests(emu)[before:]; len(up) != 0 {
			t.Fatalf("reached OSS: %v", up[0])
		}
		if _, ok := emu.Object("bkt", "b.txt"); ok {
			t.Fatal("stored")
		}
	}
	if v, ok := metricValue(scrape(t, p.admin), `gateway_requests_total{code="400",method="PUT",site="files"}`); !ok || v != 2 {
		t.Fatalf("requests{code=400} = %v %v", v, ok)
	}
}
