package framing

import (
	"bytes"
	"sync/atomic"
)

// state is where the tracker is in the byte stream of one connection.
type state uint8

const (
	stStart       state = iota // before a request line (after a POST: CR/LF may be skipped)
	stMethod                   // in the method
	stTarget                   // in the request-target
	stVersion                  // in the HTTP version
	stLineStart                // at the first byte of a field line (head or trailer)
	stLineStartCR              // a line began with CR: only LF (the end of the section) may follow
	stName                     // in a field name
	stValue                    // in a Content-Length or Transfer-Encoding value
	stSkipLine                 // in a line whose content does not matter, up to its LF
	stChunkSize                // in a chunk-size
	stChunkSizeWS              // whitespace after a chunk-size
	stChunkExt                 // in a chunk extension, up to its LF
	stChunkSizeLF              // CR seen after a chunk-size: LF must follow
	stChunkData                // in chunk data (n bytes left)
	stChunkDataCR              // chunk data read: CR must follow
	stChunkDataLF              // chunk data and CR read: LF must follow
	stBody                     // in a Content-Length body (n bytes left)
	stOff                      // not tracking: failed, or stopped after a conflict
)

// field says which header field a value belongs to.
type field uint8

const (
	fieldOther field = iota
	fieldCL          // Content-Length
	fieldTE          // Transfer-Encoding
)

// valState is the progress of parsing one Content-Length or
// Transfer-Encoding value.
type valState uint8

const (
	valLead  valState = iota // only whitespace so far
	valIn                    // in the value proper
	valTrail                 // whitespace after the value
	valBad                   // not a value net/http accepts
)

const (
	nameCL = "content-length"
	nameTE = "transfer-encoding"
	// maxContentLength is the largest Content-Length net/http accepts
	// (strconv.ParseUint with bitSize 63).
	maxContentLength = 1<<63 - 1
)

// tracker follows the request framing of one HTTP/1.x connection as
// net/http's server does (net/http request.go readRequest, transfer.go
// readTransfer, internal/chunked.go, textproto ReadMIMEHeader), reading
// only what it must: head bytes and chunk-size lines are scanned, body and
// chunk data are skipped by counting.
//
// It is deliberately never stricter than net/http: where net/http accepts
// a message the tracker frames it the same way; where it gives up (stOff)
// net/http rejects the same bytes and closes the connection, so nothing it
// would have seen later can reach a handler. Being stricter would be a
// bypass: an attacker would send one odd-but-accepted request to switch
// tracking off, then the smuggling one. That is also why there is no limit
// on the head's size: the tracker keeps no line buffer, and any limit below
// net/http's own (MaxHeaderBytes+4096 plus what bufio had buffered) would
// be such a switch. Where it is looser than net/http (CRs inside lines,
// chunk extensions, chunk-line length, trailer syntax), net/http fails the
// request or its body and does not reuse the connection.
//
// feed is not safe for concurrent use; conflict is.
type tracker struct {
	state   state
	trailer bool // the field lines being read are a chunked body's trailer
	ended   bool // the last byte fed completed a message

	// Request line.
	skip     uint8 // CR/LF bytes still skippable before the request line
	mlen     uint8 // method length, capped at len("POST")+1
	post     bool  // the method so far is a prefix of "POST"
	lastPOST bool  // the most recent request line had method POST
	ver      [8]byte
	vlen     uint8 // version bytes; len(ver)+1 means too long

	// Field lines.
	fields bool  // a field line has begun (so SP/HT at a line start is a continuation)
	field  field // the field the current line (and its continuations) belongs to
	nlen   uint8 // name length, capped
	isCL   bool  // the name so far is a prefix of Content-Length (any case)
	isTE   bool  // the name so far is a prefix of Transfer-Encoding (any case)
	val    valState
	num    uint64 // Content-Length value so far
	idx    uint8  // bytes of "chunked" matched so far

	// The head so far.
	http11 bool // HTTP/1.1 or later: Transfer-Encoding applies
	hadCL  bool
	hadTE  bool
	clSet  bool
	cl     uint64
	clBad  bool  // a Content-Length value net/http rejects
	teN    uint8 // Transfer-Encoding fields, capped
	teBad  bool  // a Transfer-Encoding value net/http rejects

	n      uint64 // body or chunk bytes left, or the chunk-size so far
	digits uint8  // hex digits of the chunk-size so far

	heads    uint64 // completed heads (read by tests)
	messages uint64 // completed messages (read by tests)
	conflict atomic.Bool
}

// active reports whether feed still looks at the bytes it is given.
func (t *tracker) active() bool { return t.state != stOff }

// feed advances the tracker over p and returns how many bytes it consumed:
// all of p, except that it stops right after a byte that completes a
// message (head and body), so the caller can hold the rest back. Once
// stopped or failed it consumes everything without looking.
func (t *tracker) feed(p []byte) int {
	i := 0
	for i < len(p) {
		// States that skip many bytes at once.
		switch t.state {
		case stOff:
			return len(p)
		case stBody:
			k := min(t.n, uint64(len(p)-i))
			i += int(k)
			t.n -= k
			if t.n == 0 {
				t.endMessage()
				t.ended = false // the flag is for the byte path below
				return i
			}
			continue
		case stChunkData:
			k := min(t.n, uint64(len(p)-i))
			i += int(k)
			t.n -= k
			if t.n == 0 {
				t.state = stChunkDataCR
			}
			continue
		case stSkipLine, stChunkExt:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				return len(p)
			}
			i += j + 1
			if t.state == stSkipLine {
				t.state = stLineStart
			} else {
				t.chunkLineDone()
			}
			continue
		case stTarget:
			rest := p[i:]
			sp := bytes.IndexByte(rest, ' ')
			if sp >= 0 {
				rest = rest[:sp]
			}
			if bytes.IndexByte(rest, '\n') >= 0 {
				t.fail() // a request line needs two spaces
				return len(p)
			}
			if sp < 0 {
				return len(p)
			}
			i += sp + 1
			t.state = stVersion
			continue
		case stName:
			// Fast path for a name wholly in p; otherwise byte by byte.
			if t.nlen == 0 {
				rest := p[i:]
				if j := bytes.IndexByte(rest, ':'); j >= 0 && bytes.IndexByte(rest[:j], '\n') < 0 {
					name := rest[:j]
					t.nlen = uint8(min(len(name), 255))
					t.isCL = equalLower(name, nameCL)
					t.isTE = equalLower(name, nameTE)
					i += j + 1
					t.endName()
					continue
				}
			}
		}

		b := p[i]
		i++
		switch t.state {
		case stStart:
			if t.skip > 0 && (b == '\r' || b == '\n') {
				t.skip-- // net/http's tolerance for a CRLF after a POST body
				continue
			}
			t.beginRequest()
			i-- // the byte begins the method
		case stMethod:
			switch b {
			case ' ':
				t.state = stTarget
			case '\n':
				t.fail()
			default:
				if t.mlen >= 4 || b != "POST"[t.mlen] {
					t.post = false
				}
				if t.mlen <= 4 {
					t.mlen++
				}
			}
		case stVersion:
			switch b {
			case '\r':
			case '\n':
				t.endRequestLine()
			default:
				if int(t.vlen) < len(t.ver) {
					t.ver[t.vlen] = b
					t.vlen++
				} else {
					t.vlen = uint8(len(t.ver)) + 1
				}
			}
		case stLineStart:
			switch {
			case b == '\n':
				t.endSection()
			case b == '\r':
				t.state = stLineStartCR
			case t.trailer:
				t.state = stSkipLine // trailer fields do not frame anything
			case b == ' ' || b == '\t':
				t.continuation()
			default:
				t.endField()
				t.fields, t.field = true, fieldOther
				t.nlen, t.isCL, t.isTE = 0, true, true
				t.state = stName
				i-- // the byte begins the name
			}
		case stLineStartCR:
			if b != '\n' {
				t.fail()
				break
			}
			t.endSection()
		case stName:
			switch b {
			case ':':
				t.endName()
			case '\n':
				t.fail() // a field line without a colon
			default:
				t.nameByte(b)
			}
		case stValue:
			switch {
			case b == '\n':
				t.state = stLineStart
			case t.field == fieldCL:
				t.clByte(b)
			default:
				t.teByte(b)
			}
		case stChunkSize:
			if v, ok := unhex(b); ok {
				if t.digits == 16 {
					t.fail() // net/http: "http chunk length too large"
					break
				}
				t.n = t.n<<4 | uint64(v)
				t.digits++
				break
			}
			switch {
			case t.digits == 0:
				t.fail()
			case b == ';':
				t.state = stChunkExt
			case b == ' ' || b == '\t':
				t.state = stChunkSizeWS
			case b == '\r':
				t.state = stChunkSizeLF
			default:
				t.fail() // includes a bare LF, which net/http refuses here
			}
		case stChunkSizeWS:
			switch b {
			case ' ', '\t':
			case '\r':
				t.state = stChunkSizeLF
			default:
				t.fail() // net/http trims trailing OWS only: "5 ;x" is refused
			}
		case stChunkSizeLF:
			if b != '\n' {
				t.fail()
				break
			}
			t.chunkLineDone()
		case stChunkDataCR:
			if b != '\r' {
				t.fail()
				break
			}
			t.state = stChunkDataLF
		case stChunkDataLF:
			if b != '\n' {
				t.fail()
				break
			}
			t.state, t.n, t.digits = stChunkSize, 0, 0
		}
		if t.ended {
			t.ended = false
			return i
		}
	}
	return len(p)
}

// fail stops tracking for good without reporting a conflict: net/http
// refuses these bytes too and closes the connection.
func (t *tracker) fail() { t.state = stOff }

// beginRequest resets the per-head state at the first byte of a request
// line.
func (t *tracker) beginRequest() {
	t.state = stMethod
	t.skip, t.mlen, t.post, t.vlen = 0, 0, true, 0
	t.fields, t.field = false, fieldOther
	t.http11, t.hadCL, t.hadTE = false, false, false
	t.clSet, t.cl, t.clBad = false, 0, false
	t.teN, t.teBad = 0, false
	t.trailer = false
}

// endRequestLine checks the version the way net/http's ParseHTTPVersion
// and http1ServerSupportsRequest do: "HTTP/1.d" only. (PRI * HTTP/2.0 and
// others end HTTP/1 on this connection.)
func (t *tracker) endRequestLine() {
	v := &t.ver
	if t.vlen != 8 || string(v[:5]) != "HTTP/" || v[5] != '1' || v[6] != '.' || !isDigit(v[7]) {
		t.fail()
		return
	}
	t.http11 = v[7] >= '1'
	t.lastPOST = t.post && t.mlen == 4
	t.state = stLineStart
}

// nameByte matches one field-name byte against both names of interest.
// textproto canonicalizes valid names case-insensitively, so
// "content-length" and "CONTENT-LENGTH" are both Content-Length; a name
// with any other difference (a space before the colon, say) is another
// field to net/http, and so to the tracker.
func (t *tracker) nameByte(b byte) {
	c := lower(b)
	if int(t.nlen) >= len(nameCL) || nameCL[t.nlen] != c {
		t.isCL = false
	}
	if int(t.nlen) >= len(nameTE) || nameTE[t.nlen] != c {
		t.isTE = false
	}
	if t.nlen < 255 {
		t.nlen++
	}
}

// endName classifies the field at its colon.
func (t *tracker) endName() {
	switch {
	case t.nlen == 0:
		t.fail() // net/http refuses an empty name
		return
	case t.isCL && int(t.nlen) == len(nameCL):
		t.field, t.hadCL = fieldCL, true
	case t.isTE && int(t.nlen) == len(nameTE):
		t.field, t.hadTE = fieldTE, true
	default:
		t.state = stSkipLine
		return
	}
	t.val, t.num, t.idx = valLead, 0, 0
	t.state = stValue
}

// continuation handles an obs-fold line (one starting with SP or HT).
// textproto joins it to the field above with one space after trimming
// both pieces.
func (t *tracker) continuation() {
	if !t.fields {
		t.fail() // net/http: "malformed MIME header initial line"
		return
	}
	switch t.field {
	case fieldCL:
		t.clByte(' ') // the joining space: "5" + " " + "" is still "5"
		t.state = stValue
	case fieldTE:
		// The value is TrimLeft(join), not trimmed on the right, so a
		// continuation after any value byte leaves "chunked " or worse.
		if t.val != valLead {
			t.val = valBad
		}
		t.state = stValue
	default:
		t.state = stSkipLine
	}
}

// clByte parses one Content-Length value byte: textproto.TrimString,
// then strconv.ParseUint(s, 10, 63). A CR counts as whitespace: where it
// is not the line's end net/http refuses the field anyway.
func (t *tracker) clByte(b byte) {
	switch {
	case b == ' ' || b == '\t' || b == '\r':
		if t.val == valIn {
			t.val = valTrail
		}
	case isDigit(b) && (t.val == valLead || t.val == valIn):
		d := uint64(b - '0')
		if t.num > (maxContentLength-d)/10 {
			t.val = valBad
			return
		}
		t.num, t.val = t.num*10+d, valIn
	default:
		t.val = valBad
	}
}

// teByte matches one Transfer-Encoding value byte against "chunked"
// (ASCII case-insensitive, surrounding whitespace ignored), the only
// value net/http accepts.
func (t *tracker) teByte(b byte) {
	switch {
	case b == ' ' || b == '\t' || b == '\r':
		if t.val == valIn {
			t.val = valTrail
		}
	case (t.val == valLead || t.val == valIn) && int(t.idx) < len("chunked") && lower(b) == "chunked"[t.idx]:
		t.idx++
		t.val = valIn
	default:
		t.val = valBad
	}
}

// endField records a finished Content-Length or Transfer-Encoding field
// (with any continuation lines).
func (t *tracker) endField() {
	switch t.field {
	case fieldCL:
		switch {
		case t.val != valIn && t.val != valTrail:
			t.clBad = true // empty or malformed
		case t.clSet && t.cl != t.num:
			t.clBad = true // differing values
		default:
			t.cl, t.clSet = t.num, true
		}
	case fieldTE:
		if t.teN < 255 {
			t.teN++
		}
		if t.val == valBad || int(t.idx) != len("chunked") {
			t.teBad = true
		}
	}
	t.field = fieldOther
}

// endSection handles the blank line ending a head or a trailer.
func (t *tracker) endSection() {
	if t.trailer {
		t.endMessage()
		return
	}
	t.endField()
	t.heads++
	if t.hadCL && t.hadTE {
		// The conflict is reported from now on; the connection is
		// closed after its answer, so the rest need not be followed.
		t.conflict.Store(true)
		t.state = stOff
		return
	}
	switch {
	case t.hadTE && t.http11: // HTTP/1.0 ignores Transfer-Encoding
		if t.teBad || t.teN != 1 {
			t.fail()
			return
		}
		t.state, t.n, t.digits = stChunkSize, 0, 0
	case t.hadCL:
		if t.clBad {
			t.fail()
			return
		}
		if t.cl == 0 {
			t.endMessage()
			return
		}
		t.state, t.n = stBody, t.cl
	default: // a request without either has no body
		t.endMessage()
	}
}

// chunkLineDone acts on a complete chunk-size line: the last chunk is
// followed by a trailer section, any other by its data.
func (t *tracker) chunkLineDone() {
	if t.n == 0 {
		t.trailer = true
		t.state = stLineStart
		return
	}
	t.state = stChunkData
}

// endMessage makes the next byte the start of a new request.
func (t *tracker) endMessage() {
	t.state = stStart
	t.skip = 0
	if t.lastPOST {
		t.skip = 4 // net/http discards up to 4 leading CR/LF after a POST
	}
	t.messages++
	t.ended = true
}

// equalLower reports whether b equals the lower-case ASCII s, ignoring
// ASCII case.
func equalLower(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if lower(c) != s[i] {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

func unhex(b byte) (byte, bool) {
	switch {
	case '0' <= b && b <= '9':
		return b - '0', true
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10, true
	case 'A' <= b && b <= 'F':
		return b - 'A' + 10, true
	}
	return 0, false
}
