package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"net/http"
	"slices"
	"time"
)

// On-disk entry layout (little endian). One file per entry:
//
//	0    magic "OSSGWCAC"
//	8    u32 format version (1)
//	12   u32 blob length B
//	16   u64 body length N
//	24   [32] SHA-256 of the body
//	56   u32 CRC-32C of bytes 0..56 and of the blob
//	60   u32 zero
//	64   stamp slot 0: i64 Stored (Unix ns), u32 sequence, u32 CRC-32C
//	80   stamp slot 1: the same
//	96   blob: the key and the Meta except Stored
//	96+B body, N bytes, up to the end of the file
//
// The body starts at a known offset so a hit can be sent with sendfile(2).
// The fixed part and the blob are checked by the CRC, the file size must
// equal 96+B+N, and the body by SHA-256 before the first hit after a load;
// anything that fails is not an entry. Stored lives outside the CRC in two
// slots so that Touch can rewrite it in place crash-safely: it writes the
// slot not holding the newest value, and a torn write leaves the other
// (older but valid) one.
const (
	fileMagic   = "OSSGWCAC"
	fileVersion = 1
	prefixLen   = 96
	slotOff     = 64
	slotLen     = 16
	maxBlobLen  = 1 << 20
)

// castagnoli is the CRC-32C table (crc32 builds it once and caches it).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// errFormat marks a file that is not a valid entry; callers delete it.
var errFormat = errors.New("not a valid cache entry")

// fileHeader is the parsed fixed part and blob of an entry file.
type fileHeader struct {
	key     Key
	meta    Meta // Stored from the newest valid slot
	bodyOff int64
	bodyLen int64
	sum     [32]byte
	slot    int    // slot holding Stored
	seq     uint32 // its sequence number
}

// encodeBlob serialises the key and the Meta (without Stored).
func encodeBlob(k Key, m Meta) []byte {
	b := make([]byte, 0, 256)
	for _, s := range [...]string{k.Site, k.Object, k.Process, k.VersionID} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(m.Status))
	b = binary.AppendVarint(b, m.Size)
	b = appendString(b, m.ETag)
	if m.LastModified.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, m.LastModified.Unix())
		b = binary.AppendUvarint(b, uint64(m.LastModified.Nanosecond()))
	}
	names := make([]string, 0, len(m.Header))
	for name := range m.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		b = appendString(b, name)
		vs := m.Header[name]
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// blobReader decodes a blob; the first error sticks.
type blobReader struct {
	b   []byte
	err error
}

func (r *blobReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errFormat
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errFormat
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errFormat
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *blobReader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errFormat
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func decodeBlob(b []byte) (Key, Meta, error) {
	r := blobReader{b: b}
	var k Key
	k.Site, k.Object, k.Process, k.VersionID = r.str(), r.str(), r.str(), r.str()
	var m Meta
	if st := r.uvarint(); st <= 999 {
		m.Status = int(st)
	} else {
		r.err = errFormat
	}
	m.Size = r.varint()
	m.ETag = r.str()
	switch r.byte1() {
	case 0:
	case 1:
		sec := r.varint()
		ns := r.uvarint()
		if ns >= 1e9 {
			r.err = errFormat
		}
		m.LastModified = time.Unix(sec, int64(ns)).UTC()
	default:
		r.err = errFormat
	}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // every name takes at least one byte
		r.err = errFormat
	}
	if r.err == nil && n > 0 {
		m.Header = make(http.Header, n)
		for range n {
			name := r.str()
			nv := r.uvarint()
			if nv > uint64(len(r.b)) {
				r.err = errFormat
				break
			}
			vs := make([]string, 0, nv)
			for range nv {
				vs = append(vs, r.str())
			}
			if r.err != nil {
				break
			}
			m.Header[name] = vs
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errFormat
	}
	if r.err != nil {
		return Key{}, Meta{}, fmt.Errorf("decoding entry header: %w", r.err)
	}
	return k, m, nil
}

// encodePrefix returns the fixed 96 bytes: sums filled in, Stored in slot 0.
func encodePrefix(blob []byte, bodyLen int64, sum [32]byte, stored time.Time) []byte {
	p := make([]byte, prefixLen)
	copy(p, fileMagic)
	binary.LittleEndian.PutUint32(p[8:], fileVersion)
	binary.LittleEndian.PutUint32(p[12:], uint32(len(blob)))
	binary.LittleEndian.PutUint64(p[16:], uint64(bodyLen))
	copy(p[24:56], sum[:])
	crc := crc32.Update(crc32.Checksum(p[:56], castagnoli()), castagnoli(), blob)
	binary.LittleEndian.PutUint32(p[56:], crc)
	putSlot(p[slotOff:slotOff+slotLen], 0, stored, 1)
	return p
}

// putSlot fills a 16-byte stamp slot; the CRC covers the slot's index too,
// so a slot copied to the other position does not validate.
func putSlot(b []byte, idx int, stored time.Time, seq uint32) {
	binary.LittleEndian.PutUint64(b[0:], uint64(stored.UnixNano()))
	binary.LittleEndian.PutUint32(b[8:], seq)
	binary.LittleEndian.PutUint32(b[12:], slotCRC(b[:12], idx))
}

func slotCRC(b []byte, idx int) uint32 {
	return crc32.Update(crc32.Checksum(b, castagnoli()), castagnoli(), []byte{byte(idx)})
}

// parseSlots picks the valid slot with the highest sequence number.
func parseSlots(p []byte) (stored time.Time, slot int, seq uint32, ok bool) {
	for i := range 2 {
		b := p[slotOff+i*slotLen : slotOff+(i+1)*slotLen]
		if binary.LittleEndian.Uint32(b[12:]) != slotCRC(b[:12], i) {
			continue
		}
		s := binary.LittleEndian.Uint32(b[8:])
		if s == 0 || (ok && s <= seq) {
			continue
		}
		stored, slot, seq, ok = time.Unix(0, int64(binary.LittleEndian.Uint64(b[0:]))), i, s, true
	}
	return stored, slot, seq, ok
}

// parsePrefix checks the fixed part and returns the blob length, the body
// length and sum; the CRC is checked with the blob by parseHeader.
func parsePrefix(p []byte) (blobLen int, bodyLen int64, err error) {
	if len(p) < prefixLen || string(p[:8]) != fileMagic {
		return 0, 0, fmt.Errorf("bad magic: %w", errFormat)
	}
	if binary.LittleEndian.Uint32(p[60:]) != 0 {
		return 0, 0, fmt.Errorf("reserved bytes set: %w", errFormat)
	}
	if v := binary.LittleEndian.Uint32(p[8:]); v != fileVersion {
		return 0, 0, fmt.Errorf("format version %d: %w", v, errFormat)
	}
	bl := binary.LittleEndian.Uint32(p[12:])
	n := binary.LittleEndian.Uint64(p[16:])
	if bl > maxBlobLen || n > math.MaxInt64/2 {
		return 0, 0, fmt.Errorf("lengths out of range: %w", errFormat)
	}
	return int(bl), int64(n), nil
}

// parseHeader parses the fixed part p (96 bytes) and the blob that follows.
func parseHeader(p, blob []byte) (fileHeader, error) {
	var h fileHeader
	bl, n, err := parsePrefix(p)
	if err != nil {
		return h, err
	}
	if len(blob) != bl {
		return h, fmt.Errorf("short header: %w", errFormat)
	}
	crc := crc32.Update(crc32.Checksum(p[:56], castagnoli()), castagnoli(), blob)
	if crc != binary.LittleEndian.Uint32(p[56:]) {
		return h, fmt.Errorf("header checksum mismatch: %w", errFormat)
	}
	stored, slot, seq, ok := parseSlots(p)
	if !ok {
		return h, fmt.Errorf("no valid stored-time slot: %w", errFormat)
	}
	k, m, err := decodeBlob(blob)
	if err != nil {
		return h, err
	}
	m.Stored = stored
	copy(h.sum[:], p[24:56])
	h.key, h.meta, h.bodyOff, h.bodyLen, h.slot, h.seq = k, m, int64(prefixLen+bl), n, slot, seq
	return h, nil
}
