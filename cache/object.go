package cache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// errCorrupt marks an entry whose body does not match its checksum.
var errCorrupt = errors.New("body does not match its SHA-256")

var errObjectClosed = errors.New("cache: Object used after Close")

// Object is a stored response as a hit returns it. Its body lives either
// in memory (Bytes: the slice itself, shared and read-only, so a memory hit
// copies and allocates nothing) or in the entry's file, kept open by the
// Object (File, WriteTo, WriteRangeTo, Reader: positioned reads that
// net/http sends with sendfile(2), so the body never passes through user
// space on plain-HTTP connections).
//
// A memory Object is shared by concurrent hits and safe for concurrent
// use. A file Object belongs to one caller: WriteTo, WriteRangeTo and
// Reader move its file offset (sendfile sends from it), so use one at a
// time; ReadAt may be used concurrently. Always Close it.
type Object struct {
	ent   *entry
	inMem bool     // a memory Object
	body  []byte   // its body
	f     *os.File // file Object: the pinned entry file
	off   int64    // body offset in f
	n     int64    // body length
	hdr   http.Header
	lr    io.LimitedReader
}

// Meta returns the entry's metadata, with the Stored of the latest Touch.
// Its Header is shared: do not modify it.
func (o *Object) Meta() Meta {
	m := *o.ent.meta.Load()
	m.Header = o.hdr
	return m
}

// memWeight is what a memory Object counts against Options.Memory: its
// body, and its header (encodedHeader bytes in the entry file) as the heap
// holds it, a map of strings about three times that size, with the Object
// around it.
func memWeight(bodyLen, encodedHeader int64) uint32 {
	return uint32(max(bodyLen+3*encodedHeader+256, 1))
}

// readHeader reads e's response header from its open file. The index keeps
// only what freshness and conditionals need (Meta without Header), so an
// entry costs a few hundred bytes of memory whatever OSS sent; the header
// comes from the file when a hit needs it, checked like the rest of the
// file's header (CRC, key).
func (e *entry) readHeader(f *os.File) (http.Header, error) {
	p := make([]byte, e.bodyOff)
	if _, err := f.ReadAt(p, 0); err != nil {
		return nil, fmt.Errorf("reading the header of %s: %w: %w", e.path(), errCorrupt, err)
	}
	fh, err := parseHeader(p[:prefixLen], p[prefixLen:])
	if err != nil || fh.key != e.key || fh.bodyLen != e.bodyLen {
		return nil, fmt.Errorf("header of %s: %w (%v)", e.path(), errCorrupt, err)
	}
	return fh.meta.Header, nil
}

// Key returns the key the object is stored under.
func (o *Object) Key() Key { return o.ent.key }

// Size is the body length in bytes.
func (o *Object) Size() int64 { return o.n }

// Bytes returns the body of a memory Object (ok true); it is shared with
// other hits and must not be modified. A file Object returns nil, false.
func (o *Object) Bytes() (body []byte, ok bool) { return o.body, o.inMem }

// File returns a file Object's open file and where the body is in it, for
// callers that drive sendfile or splice themselves; the file stays owned
// by the Object (do not close it, do not rely on its offset). A memory
// Object returns ok false.
func (o *Object) File() (f *os.File, off, n int64, ok bool) {
	if o.inMem || o.f == nil {
		return nil, 0, 0, false
	}
	return o.f, o.off, o.n, true
}

// ReadAt reads the body at off (an io.ReaderAt: wrap it in an
// io.SectionReader for a range). It does not move the file offset.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cache: ReadAt offset %d: negative", off)
	}
	if off >= o.n {
		return 0, io.EOF
	}
	if o.inMem {
		n := copy(p, o.body[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	if o.f == nil {
		return 0, errObjectClosed
	}
	want := p
	if rem := o.n - off; int64(len(want)) > rem {
		want = want[:rem]
	}
	n, err := o.f.ReadAt(want, o.off+off)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file is shorter than its header said
		}
		return n, fmt.Errorf("cache: reading %s: %w", o.ent.path(), err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Reader returns a reader of n body bytes from off. For a file Object it
// is an *io.LimitedReader over the *os.File positioned at the range, the
// shape net/http's ResponseWriter.ReadFrom (via io.Copy) turns into
// sendfile(2); for a memory Object a bytes.Reader. The file offset is the
// Object's: finish one reader before starting the next.
func (o *Object) Reader(off, n int64) (io.Reader, error) {
	if err := o.checkRange(off, n); err != nil {
		return nil, err
	}
	if o.inMem {
		return bytes.NewReader(o.body[off : off+n]), nil
	}
	if o.f == nil {
		return nil, errObjectClosed
	}
	if _, err := o.f.Seek(o.off+off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("cache: seeking %s: %w", o.ent.path(), err)
	}
	return &io.LimitedReader{R: o.f, N: n}, nil
}

// WriteTo writes the whole body to w (io.WriterTo). A memory body is one
// Write of the shared slice; a file body goes through w's ReadFrom when it
// has one (http.ResponseWriter, *net.TCPConn): sendfile(2) on Linux.
func (o *Object) WriteTo(w io.Writer) (int64, error) { return o.WriteRangeTo(w, 0, o.n) }

// WriteRangeTo writes n body bytes from off to w, like WriteTo: what a
// Range request is answered with.
func (o *Object) WriteRangeTo(w io.Writer, off, n int64) (int64, error) {
	if err := o.checkRange(off, n); err != nil {
		return 0, err
	}
	if o.inMem {
		k, err := w.Write(o.body[off : off+n])
		return int64(k), err
	}
	if o.f == nil {
		return 0, errObjectClosed
	}
	if _, err := o.f.Seek(o.off+off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("cache: seeking %s: %w", o.ent.path(), err)
	}
	o.lr = io.LimitedReader{R: o.f, N: n}
	written, err := io.Copy(w, &o.lr)
	if err == nil && written < n {
		err = fmt.Errorf("cache: %s: %w after %d of %d bytes", o.ent.path(), io.ErrUnexpectedEOF, written, n)
	}
	return written, err
}

func (o *Object) checkRange(off, n int64) error {
	if off < 0 || n < 0 || off > o.n || n > o.n-off {
		return fmt.Errorf("cache: range %d+%d outside a body of %d bytes", off, n, o.n)
	}
	return nil
}

// Close releases a file Object's file; for a memory Object it does
// nothing (it is shared). Close is idempotent for file Objects.
func (o *Object) Close() error {
	if o.inMem || o.f == nil {
		return nil
	}
	f := o.f
	o.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("cache: closing %s: %w", o.ent.path(), err)
	}
	return nil
}

// verify checks the body in f against e.sum once per load of the entry;
// concurrent first hits wait for one check. With keep, the body is
// returned when it was read to check it.
func (e *entry) verify(f *os.File, keep bool) ([]byte, error) {
	if e.verified.Load() {
		return nil, nil
	}
	e.verifyMu.Lock()
	defer e.verifyMu.Unlock()
	if e.verified.Load() {
		return nil, nil
	}
	h := sha256.New()
	var body []byte
	if keep {
		body = make([]byte, e.bodyLen)
		if _, err := f.ReadAt(body, e.bodyOff); err != nil {
			return nil, fmt.Errorf("verifying %s: %w: %w", e.path(), errCorrupt, err)
		}
		h.Write(body)
	} else {
		n, err := io.CopyBuffer(h, io.NewSectionReader(f, e.bodyOff, e.bodyLen), make([]byte, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("verifying %s: %w", e.path(), err)
		}
		if n != e.bodyLen {
			return nil, fmt.Errorf("verifying %s: %d of %d bytes: %w", e.path(), n, e.bodyLen, errCorrupt)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if sum != e.sum {
		return nil, fmt.Errorf("verifying %s: %w", e.path(), errCorrupt)
	}
	e.verified.Store(true)
	return body, nil
}
