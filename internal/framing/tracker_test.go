package framing

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Requests the table combines into pipelined streams.
const (
	get     = "GET /a?b=c HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"
	getLF   = "GET /lf HTTP/1.1\nHost: x\nX-A: 1\n\n"
	get10   = "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
	putCL   = "PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
	putCL0  = "PUT /z HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	putTE   = "PUT /c HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n5;name=val\r\nhello\r\n006\r\n world\r\nA \r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n"
	putTE0  = "PUT /c0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	clte    = "POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	tecl    = "POST /e HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n"
	clte10  = "POST /f HTTP/1.0\r\nContent-LENGTH: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
	trap    = "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	putTrap = "PUT /t HTTP/1.1\r\nHost: x\r\nContent-Length: 51\r\n\r\n" + trap
)

func init() {
	if len(trap) != 51 {
		panic(len(trap))
	}
}

// chunkedTrap carries the trap text as chunk data.
var chunkedTrap = "PUT /ct HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
	fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(trap), trap)

type trackerCase struct {
	name   string
	stream string
	heads  []bool // the conflict answer as each head completes
	off    bool   // tracking has stopped by the end
}

var trackerCases = []trackerCase{
	{"get", get + get + getLF, []bool{false, false, false}, false},
	{"content-length body", putCL + get + putCL0 + putCL, []bool{false, false, false, false}, false},
	{"chunked with extensions and trailers", putTE + putTE0 + get, []bool{false, false, false}, false},
	{"CL then TE", get + clte + get, []bool{false, true}, true},
	{"TE then CL, other case", putCL + putTE + tecl, []bool{false, false, true}, true},
	{"conflict first", clte + get, []bool{true}, true},
	{"HTTP/1.0 conflict", get10 + clte10, []bool{false, true}, true},
	{"trap in a CL body", putTrap + get + get, []bool{false, false, false}, false},
	{"trap in chunk data", chunkedTrap + get, []bool{false, false}, false},
	{"trap body then conflict", putTrap + get + clte, []bool{false, false, true}, true},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n\tb\r\n  c\r\n\r\n" + get, []bool{false, false}, false},
	{"obs-fold hides a name", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nhi" + get, []bool{false, false}, false},
	{"obs-fold CL value", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n \r\n\r\nhello" + get, []bool{false, false}, false},
	{"obs-fold TE value", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n" + get, []bool{false, false}, false},
	{"obs-fold TE value, trailing", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n \r\n\r\n" + get, []bool{false}, true},
	{"duplicate equal CL", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length:  2 \r\n\r\nhi" + get, []bool{false, false}, false},
	{"HTTP/1.0 ignores TE", "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n" + get, []bool{false, false}, false},
	{"CRLF after a POST body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\r\n" + get + "POST / HTTP/1.1\r\nHost: x\r\n\r\n\n\r\n\r" + clte, []bool{false, false, false, true}, true},
	{"long head is still tracked", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("v", 100<<10) + "\r\n\r\n" + clte, []bool{false, true}, true},

	// net/http refuses these and closes: tracking stops, no conflict.
	{"differing CL", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi" + clte, []bool{false}, true},
	{"bad CL", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello" + clte, []bool{false}, true},
	{"empty CL", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n" + clte, []bool{false}, true},
	{"CL too large", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n" + clte, []bool{false}, true},
	{"unknown TE", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + clte, []bool{false}, true},
	{"two TE fields", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + clte, []bool{false}, true},
	{"bad chunk size", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 ;x\r\nhello\r\n0\r\n\r\n" + clte, []bool{false}, true},
	{"chunk without CRLF", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n" + clte, []bool{false}, true},
	{"chunk size too long", "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\nx\r\n0\r\n\r\n" + clte, []bool{false}, true},
	{"bad request line", "GET /\r\nHost: x\r\n\r\n" + clte, nil, true},
	{"blank request line", "\r\n" + clte, nil, true},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + clte, nil, true},
	{"TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 abc\r\n" + clte, nil, true},
	{"field without colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n" + clte, nil, true},
	{"leading continuation", "GET / HTTP/1.1\r\n Host: x\r\n\r\n" + clte, nil, true},
}

// observed is what feeding a stream showed.
type observed struct {
	heads []bool // conflict answer at each completed head
	ends  []int  // stream offsets where messages completed
	off   bool
}

// feedPieces feeds the stream in the given pieces the way Conn does: a
// piece the tracker stopped in is fed again from where it stopped.
func feedPieces(t testing.TB, pieces [][]byte) observed {
	var tr tracker
	var o observed
	pos := 0
	for _, p := range pieces {
		for len(p) > 0 {
			heads, msgs := tr.heads, tr.messages
			n := tr.feed(p)
			if n <= 0 || n > len(p) {
				t.Fatalf("feed consumed %d of %d", n, len(p))
			}
			pos += n
			p = p[n:]
			switch tr.heads - heads {
			case 0:
			case 1:
				o.heads = append(o.heads, tr.conflict.Load())
			default:
				t.Fatalf("one feed completed %d heads", tr.heads-heads)
			}
			switch tr.messages - msgs {
			case 0:
			case 1:
				o.ends = append(o.ends, pos)
			default:
				t.Fatalf("one feed completed %d messages", tr.messages-msgs)
			}
			if len(p) > 0 && tr.messages == msgs && tr.active() {
				t.Fatalf("feed stopped at %d without ending a message", pos)
			}
		}
	}
	o.off = !tr.active()
	if tr.conflict.Load() && !slices.Contains(o.heads, true) {
		t.Fatal("conflict reported without a conflicting head")
	}
	return o
}

// splits yields the ways the tests cut a stream: whole, one byte at a
// time, at every single position, and in random pieces.
func splits(s []byte, seeds int) func(yield func(string, [][]byte) bool) {
	return func(yield func(string, [][]byte) bool) {
		if !yield("whole", [][]byte{s}) {
			return
		}
		bytewise := make([][]byte, len(s))
		for i := range s {
			bytewise[i] = s[i : i+1]
		}
		if !yield("bytewise", bytewise) {
			return
		}
		for i := 1; i < len(s); i++ {
			if !yield(fmt.Sprintf("at %d", i), [][]byte{s[:i], s[i:]}) {
				return
			}
		}
		for seed := range seeds {
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			var pieces [][]byte
			for rest := s; len(rest) > 0; {
				n := min(len(rest), 1+r.IntN(64))
				pieces, rest = append(pieces, rest[:n]), rest[n:]
			}
			if !yield(fmt.Sprintf("random %d", seed), pieces) {
				return
			}
		}
	}
}

func TestTracker(t *testing.T) {
	for _, tc := range trackerCases {
		t.Run(tc.name, func(t *testing.T) {
			s := []byte(tc.stream)
			want := observed{}
			first := true
			for how, pieces := range splits(s, 20) {
				if len(s) > 4096 && strings.HasPrefix(how, "at ") {
					continue
				}
				o := feedPieces(t, pieces)
				if !slices.Equal(o.heads, tc.heads) || o.off != tc.off {
					t.Fatalf("%s: heads %v off %v, want %v off %v", how, o.heads, o.off, tc.heads, tc.off)
				}
				if first {
					want, first = o, false
					checkAgainstNetHTTP(t, s, o)
				} else if !slices.Equal(o.ends, want.ends) {
					t.Fatalf("%s: message ends %v, whole stream gave %v", how, o.ends, want.ends)
				}
			}
		})
	}
}

// netHTTPEnds reads s as net/http's server would (ReadRequest is the same
// parser and body framing; the CR/LF skip after a POST is the server's)
// and returns where each request it fully accepts ends.
func netHTTPEnds(s []byte) []int {
	rd := bytes.NewReader(s)
	br := bufio.NewReader(rd)
	var ends []int
	post := false
	for {
		if post {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil || req.ProtoMajor != 1 {
			return ends
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return ends
		}
		ends = append(ends, len(s)-rd.Len()-br.Buffered())
		post = req.Method == "POST"
	}
}

// checkAgainstNetHTTP requires the tracker to frame every message net/http
// accepts exactly where net/http does, and never to give up (without a
// conflict) on a message net/http accepted: that would let a request that
// follows it go unchecked.
func checkAgainstNetHTTP(t testing.TB, s []byte, o observed) {
	t.Helper()
	ref := netHTTPEnds(s)
	n := min(len(ref), len(o.ends))
	if !slices.Equal(ref[:n], o.ends[:n]) {
		t.Fatalf("message ends %v, net/http %v", o.ends, ref)
	}
	conflict := slices.Contains(o.heads, true)
	if !conflict && len(o.ends) < len(ref) && o.off {
		t.Fatalf("tracking stopped after %d messages; net/http accepted %d (%v)", len(o.ends), len(ref), ref)
	}
}

// FuzzTracker feeds arbitrary bytes, cut arbitrarily: no panic, the same
// answers fed whole as byte by byte, and framing that agrees with net/http.
func FuzzTracker(f *testing.F) {
	for _, tc := range trackerCases {
		if len(tc.stream) < 4096 {
			f.Add([]byte(tc.stream), uint64(len(tc.stream)))
		}
	}
	f.Fuzz(func(t *testing.T, s []byte, seed uint64) {
		whole := feedPieces(t, [][]byte{s})
		checkAgainstNetHTTP(t, s, whole)
		bytewise := make([][]byte, len(s))
		for i := range s {
			bytewise[i] = s[i : i+1]
		}
		for _, pieces := range [][][]byte{bytewise, randomPieces(s, seed)} {
			o := feedPieces(t, pieces)
			if !slices.Equal(o.heads, whole.heads) || !slices.Equal(o.ends, whole.ends) || o.off != whole.off {
				t.Fatalf("pieces gave %+v, whole %+v", o, whole)
			}
		}
	})
}

func randomPieces(s []byte, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed>>32))
	var pieces [][]byte
	for len(s) > 0 {
		n := min(len(s), 1+r.IntN(16))
		pieces, s = append(pieces, s[:n]), s[n:]
	}
	return pieces
}

func BenchmarkTrackerBody(b *testing.B) {
	buf := make([]byte, 64<<10)
	var tr tracker
	tr.feed([]byte("PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\n"))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		tr.feed(buf)
	}
	if tr.state != stBody {
		b.Fatal("left the body")
	}
}

func BenchmarkTrackerChunkedBody(b *testing.B) {
	chunk := fmt.Appendf(nil, "%x\r\n%s\r\n", 64<<10, make([]byte, 64<<10))
	var tr tracker
	tr.feed([]byte("PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"))
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		tr.feed(chunk)
	}
	if tr.state != stChunkSize {
		b.Fatal("lost the chunk framing")
	}
}

// benchHead is a typical signed OSS request head (about 700 bytes).
const benchHead = "GET /bucket/path/to/some/object.jpg?x-oss-process=image%2Fresize%2Cw_300 HTTP/1.1\r\n" +
	"Host: static.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n" +
	"Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9,zh-CN;q=0.8\r\n" +
	"Referer: https://www.example.com/gallery/2024/summer\r\n" +
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n" +
	"X-Forwarded-For: 203.0.113.7\r\n" +
	"If-None-Match: \"5d41402abc4b2a76b9719d911017c592\"\r\n" +
	"Content-Length: 0\r\n" +
	"Connection: keep-alive\r\n\r\n"

func BenchmarkTrackerHead(b *testing.B) {
	head := []byte(benchHead)
	var tr tracker
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if tr.feed(head) != len(head) {
			b.Fatal("short feed")
		}
	}
	if !tr.active() || tr.heads == 0 {
		b.Fatal("stopped tracking")
	}
}
