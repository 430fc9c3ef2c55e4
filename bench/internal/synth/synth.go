// Package synth is the bench's object content, shared by the upstream that
// serves it and the clients that check it: byte o of every object is
// o % Period, so any body is served from one small buffer and checked
// without keeping a copy.
package synth

// Period is the length of the repeating pattern; a prime, so that a wrong
// offset in a range shows up in a content check.
const Period = 251

// Chunk is how many bytes one write hands to a connection, and how many a
// checking read asks for.
const Chunk = 256 << 10

// Pattern returns Chunk+Period bytes of the pattern: for any start offset
// s, Pattern()[s%Period:][:n] is the next n <= Chunk bytes of any body. Each
// call builds a new slice; callers keep theirs.
func Pattern() []byte {
	b := make([]byte, Chunk+Period)
	for i := range b {
		b[i] = byte(i % Period)
	}
	return b
}
