package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Key names one cached response. Every field takes part in the identity
// because OSS answers differently for each: the same object key under two
// sites may be two buckets, an x-oss-process chain is a different body, and
// a versionId is a different object.
type Key struct {
	Site      string // the gateway site's name
	Object    string // the OSS object key (after the site's prefix is applied)
	Process   string // the x-oss-process value, "" for the object itself
	VersionID string // the versionId query value, "" for the current version
}

// keyDomain is mixed into every hash so that a future change of the
// encoding can never alias an old file name.
const keyDomain = "oss-gateway/cache/key/v1\x00"

// Hash is the SHA-256 of a length-prefixed encoding of the key. Length
// prefixes make the encoding injective ({"a","bc"} and {"ab","c"} differ),
// so two keys share a hash only by a SHA-256 collision. It names the key's
// files on disk and its index slots.
func (k Key) Hash() [32]byte {
	// A stack buffer keeps a lookup allocation-free for ordinary keys.
	var stack [512]byte
	b := append(stack[:0], keyDomain...)
	for _, s := range [...]string{k.Site, k.Object, k.Process, k.VersionID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return sha256.Sum256(b)
}

// String is a short, log-friendly form of the key.
func (k Key) String() string {
	s := k.Site + ":" + k.Object
	if k.Process != "" {
		s += "?x-oss-process=" + k.Process
	}
	if k.VersionID != "" {
		s += "?versionId=" + k.VersionID
	}
	return s
}

func hashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }
