package upstream

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ossHead is a GetObject answer as OSS sends it: its own headers in lower
// case, ETag in its own spelling.
const ossHead = "HTTP/1.1 200 OK\r\n" +
	"Server: AliyunOSS\r\n" +
	"Date: Sat, 21 Nov 2026 10:00:00 GMT\r\n" +
	"Content-Type: image/png\r\n" +
	"Content-Length: 5\r\n" +
	"Connection: keep-alive\r\n" +
	"x-oss-request-id: 5F3A2B1C0D\r\n" +
	"Accept-Ranges: bytes\r\n" +
	"ETag: \"5B3C1A2E053D763E1B002CC607C5A0FE\"\r\n" +
	"Last-Modified: Fri, 20 Nov 2026 08:00:00 GMT\r\n" +
	"x-oss-object-type: Normal\r\n" +
	"x-oss-hash-crc64ecma: 1234567890\r\n" +
	"x-oss-storage-class: Standard\r\n" +
	"x-oss-meta-Author:  someone \t\r\n" +
	"\r\n"

// parsed is what a reader made of one response and what it left behind.
type parsed struct {
	Status        string
	StatusCode    int
	Header        http.Header
	ContentLength int64
	Close         bool
	Body          string
	Next          string // the bytes after the response: the next answer's
	Err           bool
}

func parseWith(read func(*bufio.Reader, *http.Request) (*http.Response, error), raw, method string) parsed {
	br := bufio.NewReaderSize(strings.NewReader(raw), 8<<10)
	req := &http.Request{Method: method}
	resp, err := read(br, req)
	if err != nil {
		return parsed{Err: true}
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return parsed{Err: true}
	}
	next, _ := io.ReadAll(br)
	h := resp.Header
	if len(h) == 0 {
		h = nil
	}
	return parsed{resp.Status, resp.StatusCode, h, resp.ContentLength, resp.Close, string(body), string(next), false}
}

// netHTTP is the reference: net/http's parser, skipping interim answers as
// readResponse does.
func netHTTP(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == 101 {
			return resp, err
		}
	}
}

func TestReadResponseMatchesNetHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, raw, method string
		fast              bool // the fast path must take it
	}{
		{"oss get", ossHead + "hello" + "HTTP/1.1 204 No Content\r\n\r\n", "GET", true},
		{"oss head", strings.Replace(ossHead, "Content-Length: 5", "Content-Length: 1048576", 1), "HEAD", true},
		{"no headers", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nrest", "GET", true},
		{"no reason", "HTTP/1.1 404\r\nContent-Length: 3\r\n\r\nabc", "GET", true},
		{"304 keeps length header", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n", "GET", true},
		{"204", "HTTP/1.1 204 No Content\r\n\r\nnext", "DELETE", true},
		{"close", "HTTP/1.1 403 Forbidden\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nno", "GET", true},
		{"repeated header", "HTTP/1.1 200 OK\r\nVary: Origin\r\nvary: Accept\r\nContent-Length: 1\r\n\r\nx", "GET", true},
		{"empty value", "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 1\r\n\r\nx", "GET", true},
		{"long name", "HTTP/1.1 200 OK\r\nx-oss-meta-" + strings.Repeat("a", 80) + ": v\r\nContent-Length: 1\r\n\r\nx", "GET", true},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "GET", true},
		// The slow path's cases: net/http decides.
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nnext", "GET", false},
		{"chunked and length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "GET", false},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nall of it", "GET", false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "GET", false},
		{"same two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", "GET", false},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nab", "GET", false},
		{"plus length", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nab", "GET", false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"100 continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", "PUT", false},
		{"folded", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"bare lf", "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", "GET", false},
		{"bare cr in value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"nul in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"no colon", "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"garbage status", "HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", "GET", false},
		{"head too big", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\nContent-Length: 1\r\n\r\nx", "GET", false},
		{"truncated head", "HTTP/1.1 200 OK\r\nContent-Len", "GET", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := parseWith(netHTTP, tc.raw, tc.method)
			got := parseWith(readResponse, tc.raw, tc.method)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("readResponse:\n %+v\nnet/http:\n %+v", got, want)
			}
			br := bufio.NewReaderSize(strings.NewReader(tc.raw), 8<<10)
			if _, fast := parseHead(br, &http.Request{Method: tc.method}); fast != tc.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tc.fast)
			}
		})
	}
}

// TestReadResponseAllocs pins the point of the fast path: an OSS answer's
// head costs a handful of allocations (head string, values, map, response,
// body, the one uncommon name), not one or more per header as in net/http.
func TestReadResponseAllocs(t *testing.T) {
	raw := ossHead + "hello"
	sr := strings.NewReader(raw)
	br := bufio.NewReaderSize(sr, 8<<10)
	req := &http.Request{Method: "GET"}
	allocs := testing.AllocsPerRun(100, func() {
		sr.Reset(raw)
		br.Reset(sr)
		if _, err := readResponse(br, req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Fatalf("%v allocations per OSS response head", allocs)
	}
}

// FuzzReadResponse holds readResponse to net/http's reading of any input:
// the same status, headers, framing, body and leftover bytes, or an error
// from both.
func FuzzReadResponse(f *testing.F) {
	f.Add(ossHead+"helloHTTP/1.1 200 OK\r\n\r\n", "GET")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", "HEAD")
	f.Add("HTTP/1.1 304 Not Modified\r\nEtag: x\r\n\r\n", "GET")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", "GET")
	f.Fuzz(func(t *testing.T, raw, method string) {
		if method != "GET" && method != "HEAD" && method != "PUT" {
			method = "GET"
		}
		want := parseWith(netHTTP, raw, method)
		got := parseWith(readResponse, raw, method)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("input %q\nreadResponse: %+v\nnet/http:     %+v", raw, got, want)
		}
	})
}

func BenchmarkReadResponse(b *testing.B) {
	raw := ossHead + "hello"
	for _, bc := range []struct {
		name string
		read func(*bufio.Reader, *http.Request) (*http.Response, error)
	}{{"fast", readResponse}, {"net-http", netHTTP}} {
		b.Run(bc.name, func(b *testing.B) {
			sr := strings.NewReader(raw)
			br := bufio.NewReaderSize(sr, 8<<10)
			req := &http.Request{Method: "GET"}
			b.ReportAllocs()
			for b.Loop() {
				sr.Reset(raw)
				br.Reset(sr)
				if _, err := bc.read(br, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadResponseBareLFDoesNotWait proves a head with bare LF line endings
// is parsed as soon as it is in, not after the fast path has waited for a
// CRLF CRLF that never comes (the header timeout, on a live connection).
func TestReadResponseBareLFDoesNotWait(t *testing.T) {
	for _, raw := range []string{
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok",
		"HTTP/1.1 204 No Content\n\n",
	} {
		pr, pw := io.Pipe()
		go pw.Write([]byte(raw)) // and the connection stays open
		done := make(chan error, 1)
		go func() {
			_, err := readResponse(bufio.NewReaderSize(pr, 8<<10), &http.Request{Method: "GET"})
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%q: %v", raw, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%q: still waiting for more of the head after 5s", raw)
		}
		pw.Close()
	}
}
