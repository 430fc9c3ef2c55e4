package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// readResponse reads OSS's response head from br. The common answer (an
// HTTP/1.1 status line, clean headers, a body framed by one Content-Length
// or none at all) is parsed straight from the read buffer into one string
// and one slice of values, with canonical names of OSS's usual headers
// shared: a few allocations instead of net/http's dozens. Anything else
// (chunked or close-delimited bodies, folded or odd header lines, interim
// 1xx answers, a head larger than the buffer) goes to http.ReadResponse,
// whose hardened parser then has the final word. Nothing is consumed from br
// until the fast path has accepted the whole head.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		if resp, ok := parseHead(br, req); ok {
			return resp, nil
		}
		resp, err := http.ReadResponse(br, req)
		switch {
		case err != nil:
			return nil, err
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("OSS answered 101 Switching Protocols to a plain request")
		case resp.StatusCode < 200:
			continue // an interim answer (100 Continue, 103 Early Hints): the final one follows
		}
		return resp, nil
	}
}

// parseHead is readResponse's fast path; ok=false leaves br untouched.
func parseHead(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	n, ok := headLen(br)
	if !ok {
		return nil, false
	}
	raw, _ := br.Peek(n)
	// Validate before copying: a head the fast path refuses costs nothing.
	line, rest := cutLine(raw)
	code, ok := statusLine(line)
	if !ok {
		return nil, false
	}
	lines := 0
	for rest := rest; len(rest) > 0; lines++ {
		var l []byte
		l, rest = cutLine(rest)
		if len(l) == 0 {
			break
		}
		if !headerLine(l) {
			return nil, false
		}
	}

	head := string(raw) // every name and value below is a substring of it
	hdr := make(http.Header, lines)
	vals := make([]string, lines)
	s := head[len(line)+2:]
	for i := 0; i < lines; i++ {
		var l string
		l, s = cutLineString(s)
		colon := indexByteString(l, ':')
		key := canonicalName(l[:colon])
		v := trimOWS(l[colon+1:])
		if prev, dup := hdr[key]; dup {
			hdr[key] = append(prev, v)
			continue
		}
		vals[i] = v
		hdr[key] = vals[i : i+1 : i+1]
	}

	resp := &http.Response{
		Status:     head[len("HTTP/1.1 "):len(line)],
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Request:    req,
	}
	cl := hdr["Content-Length"]
	if len(hdr["Transfer-Encoding"]) > 0 || len(cl) > 1 {
		return nil, false
	}
	length := int64(-1)
	if len(cl) == 1 {
		v, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil {
			return nil, false
		}
		length = int64(v)
	}
	for _, v := range hdr["Connection"] {
		if hasToken(v, "close") {
			resp.Close = true
		}
	}
	if resp.Close {
		delete(hdr, "Connection") // as net/http does
	}
	switch {
	case req.Method == http.MethodHead:
		resp.ContentLength = length
		resp.Body = http.NoBody
	case code == http.StatusNoContent || code == http.StatusNotModified:
		resp.Body = http.NoBody
	case length < 0:
		return nil, false // read until close: rare, and net/http knows it
	case length == 0:
		resp.Body = http.NoBody
	default:
		resp.ContentLength = length
		resp.Body = &fixedBody{br: br, n: length}
	}
	_, _ = br.Discard(n)
	return resp, true
}

// headLen returns the length of the response head (through its empty line)
// once all of it is in br's buffer, reading more as needed; false when it
// does not fit the buffer or the connection fails first (the slow path then
// reports that).
func headLen(br *bufio.Reader) (int, bool) {
	for want := 1; ; {
		buf, err := br.Peek(want)
		if err != nil {
			return 0, false
		}
		buf, _ = br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return i + 4, true
		}
		if len(buf) >= br.Size() || bareLF(buf) {
			return 0, false // a bare LF may end the head already: never wait for a CRLF
		}
		want = len(buf) + 1
	}
}

// bareLF reports an LF not preceded by CR, which the fast path refuses.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// headBuffered reports whether br's buffer already holds a whole final
// response head, so reading it needs nothing more from the connection. An
// interim (1xx) head does not count: the final one may be long in coming.
func headBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return len(buf) > 9 && buf[9] != '1' && bytes.Contains(buf, []byte("\r\n\r\n"))
}

// cutLine splits b at its first CRLF. The fast path takes CRLF only; a bare
// LF stays inside the line and fails validation there.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
		return b[:i], b[i+2:]
	}
	return b, nil
}

func cutLineString(s string) (line, rest string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return s[:i], s[i+2:]
		}
	}
	return s, ""
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// statusLine accepts "HTTP/1.1 NNN reason" with a final (non-1xx) status.
func statusLine(l []byte) (int, bool) {
	if len(l) < len("HTTP/1.1 200") || string(l[:9]) != "HTTP/1.1 " {
		return 0, false
	}
	c := l[9:12]
	if c[0] < '2' || c[0] > '5' || c[1] < '0' || c[1] > '9' || c[2] < '0' || c[2] > '9' {
		return 0, false
	}
	if len(l) > 12 {
		if l[12] != ' ' {
			return 0, false
		}
		for _, b := range l[13:] {
			if b < ' ' && b != '\t' || b == 0x7f {
				return 0, false
			}
		}
	}
	return int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0'), true
}

// headerLine accepts "name: value" with a token name and a value free of
// control characters other than tab. Folded continuation lines, a space
// before the colon, bare CR or LF: all refused here.
func headerLine(l []byte) bool {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 {
		return false
	}
	for _, b := range l[:colon] {
		if !isTokenChar[b] {
			return false
		}
	}
	for _, b := range l[colon+1:] {
		if b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// isTokenChar marks RFC 9110 tchar.
var isTokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// canonicalName is http.CanonicalHeaderKey for a token name, without an
// allocation when the name is already canonical or one of OSS's usual
// headers in any case (OSS sends its own in lower case).
func canonicalName(name string) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name)
	}
	b := buf[:len(name)]
	canonical := true
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			canonical = false
		}
		b[i] = c
		upper = c == '-'
	}
	if canonical {
		return name
	}
	if k, ok := commonResponseHeaders[string(b)]; ok {
		return k
	}
	return string(b)
}

// commonResponseHeaders interns the names OSS answers with.
var commonResponseHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Md5", "Content-Range",
		"Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified", "Location",
		"Server", "Vary", "X-Oss-Cdn-Auth", "X-Oss-Ec", "X-Oss-Expiration", "X-Oss-Hash-Crc64ecma",
		"X-Oss-Next-Append-Position", "X-Oss-Object-Type", "X-Oss-Request-Id", "X-Oss-Restore",
		"X-Oss-Server-Side-Encryption", "X-Oss-Server-Time", "X-Oss-Storage-Class",
		"X-Oss-Tagging-Count", "X-Oss-Version-Id",
	} {
		m[k] = k
	}
	return m
}()

// hasToken reports whether the comma-separated list v holds token,
// case-insensitively.
func hasToken(v, token string) bool {
	for v != "" {
		var f string
		if i := indexByteString(v, ','); i >= 0 {
			f, v = v[:i], v[i+1:]
		} else {
			f, v = v, ""
		}
		if asciiEqualFold(trimOWS(f), token) {
			return true
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold for ASCII, without its Unicode
// folding.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// fixedBody is a body of known length read straight off the connection's
// buffer. A large read with the buffer empty goes directly into the
// caller's slice.
type fixedBody struct {
	br *bufio.Reader
	n  int64 // bytes still to come
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		// Ask for one byte more than is left (a read returns what is
		// there, so this never waits for it): a byte past the body is
		// put back into br, where it keeps the connection from reuse. A
		// read of exactly the rest could leave it unseen below br (in
		// the TLS layer, which holds the rest of a record).
		p = p[:b.n+1]
	}
	n, err := b.br.Read(p)
	if int64(n) > b.n {
		n = int(b.n)
		_ = b.br.UnreadByte() // the last byte read is that one
	}
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }
