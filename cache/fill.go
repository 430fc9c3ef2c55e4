package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"sync"
)

// FetchFunc gets the response for a key from OSS. It runs once per fill, on
// a goroutine of the cache, with a context that only Close cancels: a
// client that leaves does not cut a fetch other clients wait for. It
// returns the response's Meta (Size -1 if unknown; Stored zero means "now"),
// its body (closed by the cache), and whether it may be stored: the proxy
// decides that (200, an ETag, no Cache-Control private or no-store). A
// non-nil err (no connection, timeout, or a 5xx the proxy would rather
// answer with a stale copy) is handed to every waiter by Wait.
type FetchFunc func(ctx context.Context) (meta Meta, body io.ReadCloser, cacheable bool, err error)

// errTooLong marks an upstream body longer than its Content-Length.
var errTooLong = errors.New("body longer than its Content-Length")

// flight is one running fetch and the shared buffer its waiters read:
//   - store: a temporary file in Dir that becomes the entry, plus an
//     in-memory copy when the size is known and small;
//   - not stored, several waiters: the in-memory copy, or an unlinked
//     temporary file for large or unknown sizes;
//   - not stored, one waiter: that waiter reads the upstream body
//     directly (a large object must not pass through the disk for
//     nothing);
//   - not stored, no waiter left: the body is closed unread.
//
// Waiters read at their own pace behind the writer, so a slow one never
// holds up the others or the fill.
type flight struct {
	c    *Cache
	key  Key
	hash [32]byte
	hdr  chan struct{} // closed once meta or err is set
	done chan struct{} // closed when the fetch is over for the cache
	meta Meta          // written before hdr is closed, read-only after
	err  error         // likewise

	purged bool // guarded by c.mu: a purge matched; never store

	mu       sync.Mutex
	waiters  int   // Fill handles not closed
	refs     int   // handles plus the writer: the file closes at zero
	avail    int64 // body bytes readable
	finished bool  // the body ended (bodyErr says how)
	bodyErr  error
	notify   chan struct{} // closed (and replaced) when avail or finished moves
	waiting  bool          // someone waits on notify
	buf      []byte        // in-memory copy, len = Size (set before hdr)
	file     *os.File      // file copy (set before hdr)
	bodyOff  int64         // where the body starts in file
	direct   io.ReadCloser // the single waiter's upstream body
}

// Fill is one caller's share of a coalesced fetch: Wait for the Meta, then
// Read the body as it arrives, then Close. The first Fill for a key starts
// the fetch; later ones join it while it runs (Joined). A Fill is used by
// one goroutine, like any reader.
type Fill struct {
	fl     *flight
	joined bool
	ctx    context.Context
	pos    int64
	closed bool
}

// Fill returns the caller's share of the fill of k, starting fetch on a
// goroutine unless a fill of k is already running, which it joins instead:
// concurrent misses for one key make one OSS request. A stored copy is
// replaced when the new body is complete; a purge of k while the fill runs
// keeps it from being stored. The caller must Close the Fill.
func (c *Cache) Fill(k Key, fetch FetchFunc) *Fill {
	h := k.Hash()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		fl := &flight{c: c, key: k, hash: h, hdr: make(chan struct{}), done: make(chan struct{}), refs: 1, waiters: 1}
		fl.err = fmt.Errorf("cache: filling %s: %w", k, ErrClosed)
		close(fl.hdr)
		close(fl.done)
		return &Fill{fl: fl}
	}
	if fl := c.flights[h]; fl != nil && fl.key == k {
		fl.mu.Lock()
		fl.waiters++
		fl.refs++
		fl.mu.Unlock()
		c.mu.Unlock()
		return &Fill{fl: fl, joined: true}
	}
	fl := &flight{
		c: c, key: k, hash: h,
		hdr: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}),
		waiters: 1, refs: 2,
	}
	c.flights[h] = fl
	c.wg.Add(1)
	c.mu.Unlock()
	go fl.run(fetch)
	return &Fill{fl: fl}
}

// Joined reports whether this Fill joined a fetch another caller started
// (for a "coalesced" count).
func (f *Fill) Joined() bool { return f.joined }

// Done is closed when the fetch is over as far as the cache is concerned:
// the body stored, dropped, failed, or handed to the only waiter. Waiters
// need not wait for it; tests and shutdown do.
func (f *Fill) Done() <-chan struct{} { return f.fl.done }

// Wait waits for the response headers (or the fetch's error, or ctx) and
// returns the Meta; its Header is shared by all waiters and read-only. The
// ctx also bounds the waits of later Reads. Leaving (ctx done, Close) never
// cancels the fetch for the others.
func (f *Fill) Wait(ctx context.Context) (Meta, error) {
	f.ctx = ctx
	if err := f.waitHeaders(); err != nil {
		return Meta{}, err
	}
	return f.fl.meta, nil
}

func (f *Fill) waitHeaders() error {
	if f.closed {
		return errors.New("cache: Fill used after Close")
	}
	ctx := f.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-f.fl.hdr:
	case <-ctx.Done():
		return fmt.Errorf("cache: waiting for the fill of %s: %w", f.fl.key, ctx.Err())
	}
	return f.fl.err
}

// Read reads the body as it arrives. It returns io.EOF only after the
// whole body (exactly Meta.Size bytes when that is known); if the upstream
// body fails, is short or too long, every waiter's Read returns a non-EOF
// error, so the proxy can cut the client's connection instead of sending a
// short body as if it were whole.
func (f *Fill) Read(p []byte) (int, error) {
	if err := f.waitHeaders(); err != nil {
		return 0, err
	}
	fl := f.fl
	if fl.direct != nil {
		return f.readDirect(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		fl.mu.Lock()
		if fl.bodyErr != nil {
			err := fl.bodyErr
			fl.mu.Unlock()
			return 0, err
		}
		if f.pos < fl.avail {
			n := int(min(int64(len(p)), fl.avail-f.pos))
			buf, file, off := fl.buf, fl.file, fl.bodyOff
			fl.mu.Unlock()
			if buf != nil {
				copy(p, buf[f.pos:f.pos+int64(n)])
			} else {
				k, err := file.ReadAt(p[:n], off+f.pos)
				if k < n {
					f.pos += int64(k)
					return k, fmt.Errorf("cache: reading the fill of %s: %w", fl.key, noEOF(err))
				}
			}
			f.pos += int64(n)
			return n, nil
		}
		if fl.finished {
			fl.mu.Unlock()
			return 0, io.EOF
		}
		ch := fl.notify
		fl.waiting = true
		fl.mu.Unlock()
		ctx := f.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("cache: reading the fill of %s: %w", fl.key, ctx.Err())
		}
	}
}

// readDirect reads the upstream body of a fill with a single waiter.
func (f *Fill) readDirect(p []byte) (int, error) {
	fl := f.fl
	n, err := fl.direct.Read(p)
	f.pos += int64(n)
	if limit := fl.meta.Size; limit >= 0 && bodyAllowed(fl.meta.Status) && f.pos > limit {
		return n, fmt.Errorf("cache: fill of %s: %w", fl.key, errTooLong)
	}
	switch {
	case err == io.EOF:
		if limit := fl.meta.Size; limit >= 0 && bodyAllowed(fl.meta.Status) && f.pos < limit {
			return n, fmt.Errorf("cache: fill of %s: %w after %d of %d bytes", fl.key, io.ErrUnexpectedEOF, f.pos, limit)
		}
		return n, io.EOF
	case err != nil:
		return n, fmt.Errorf("cache: fill of %s: upstream body: %w", fl.key, err)
	}
	return n, nil
}

// Seek moves where the next Read starts, for answering a Range request
// from a fill (io.SeekStart, io.SeekCurrent; io.SeekEnd needs a known
// Meta.Size). Seeking past what has arrived is fine: Read waits. A fill
// read straight from upstream (one waiter, not stored) seeks forward only.
func (f *Fill) Seek(offset int64, whence int) (int64, error) {
	if err := f.waitHeaders(); err != nil {
		return 0, err
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = f.pos + offset
	case io.SeekEnd:
		if f.fl.meta.Size < 0 {
			return 0, errors.New("cache: Seek from the end of a body of unknown size")
		}
		abs = f.fl.meta.Size + offset
	default:
		return 0, fmt.Errorf("cache: Seek whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("cache: Seek to %d: negative position", abs)
	}
	if f.fl.direct == nil {
		f.pos = abs
		return abs, nil
	}
	if abs < f.pos {
		return 0, fmt.Errorf("cache: Seek back to %d from %d in a body read from upstream", abs, f.pos)
	}
	if _, err := io.CopyN(io.Discard, readerFunc(f.readDirect), abs-f.pos); err != nil {
		return f.pos, fmt.Errorf("cache: Seek to %d: %w", abs, err)
	}
	return abs, nil
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

// Close leaves the fill. The fetch goes on for the other waiters and to be
// stored; only a not-stored fill with no waiter left stops early.
func (f *Fill) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	fl := f.fl
	fl.mu.Lock()
	fl.waiters--
	d := fl.direct
	fl.mu.Unlock()
	var err error
	if d != nil {
		if cerr := d.Close(); cerr != nil {
			err = fmt.Errorf("cache: closing the upstream body of %s: %w", fl.key, cerr)
		}
	}
	fl.release()
	return err
}

// release drops a reference; the last one closes the shared file.
func (fl *flight) release() {
	fl.mu.Lock()
	fl.refs--
	last := fl.refs == 0
	file := fl.file
	fl.mu.Unlock()
	if last && file != nil {
		_ = file.Close()
	}
}

// wakeLocked wakes the readers waiting for progress. fl.mu held.
func (fl *flight) wakeLocked() {
	if fl.waiting {
		close(fl.notify)
		fl.notify = make(chan struct{})
		fl.waiting = false
	}
}

// unmapLocked stops new callers from joining fl. c.mu held.
func (fl *flight) unmapLocked() {
	if fl.c.flights[fl.hash] == fl {
		delete(fl.c.flights, fl.hash)
	}
}

func (fl *flight) unmap() {
	fl.c.mu.Lock()
	fl.unmapLocked()
	fl.c.mu.Unlock()
}

// finish ends the body for every reader: err nil is EOF.
func (fl *flight) finish(err error) {
	fl.mu.Lock()
	fl.finished = true
	fl.bodyErr = err
	fl.wakeLocked()
	fl.mu.Unlock()
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && (status < 100 || status >= 200)
}

// fetchSafely calls fetch, turning a panic into an error so that a bug in
// the proxy's fetch fails its waiters instead of the process.
func fetchSafely(ctx context.Context, fetch FetchFunc) (meta Meta, body io.ReadCloser, cacheable bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fetch panicked: %v", r)
		}
	}()
	return fetch(ctx)
}

// run performs the fetch and streams the body into the flight's buffer.
func (fl *flight) run(fetch FetchFunc) {
	c := fl.c
	defer c.wg.Done()
	defer close(fl.done)
	defer fl.release()

	meta, body, cacheable, err := fetchSafely(c.ctx, fetch)
	if err == nil && body == nil {
		body = http.NoBody
	}
	if err != nil {
		if body != nil {
			_ = body.Close()
		}
		if c.ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		fl.err = fmt.Errorf("cache: fetching %s: %w", fl.key, err)
		fl.unmap()
		close(fl.hdr)
		return
	}
	meta.Header = meta.Header.Clone()
	if meta.Stored.IsZero() {
		meta.Stored = c.now()
	}
	if !bodyAllowed(meta.Status) {
		meta.Size = 0
	}
	small := meta.Size >= 0 && meta.Size <= c.bufMax

	// The entry file is made before deciding, outside the locks.
	eligible := cacheable && meta.Status == http.StatusOK && meta.Size <= c.maxObject
	var w *entryWriter
	if eligible {
		if w, err = c.newEntryWriter(fl.key, meta); err != nil {
			c.log.Warn("cache: cannot store, streaming only", "key", fl.key.String(), "err", err)
			eligible = false
		}
	}

	c.mu.Lock()
	store := eligible && !fl.purged && !c.closed
	if !store {
		fl.unmapLocked() // later callers start a new fill
	}
	fl.mu.Lock()
	fl.meta = meta
	mode := "file"
	switch {
	case store:
	case fl.waiters == 0:
		mode = "discard"
	case fl.waiters == 1:
		mode = "direct"
		fl.direct = body
	case small:
		mode = "memory"
	}
	fl.mu.Unlock()
	c.mu.Unlock()

	if w != nil && !store {
		w.abort()
		w = nil
	}
	switch mode {
	case "discard":
		_ = body.Close()
		fl.finish(nil)
		close(fl.hdr)
		return
	case "direct":
		close(fl.hdr)
		return
	}
	var buf []byte
	var file *os.File
	var bodyOff int64
	if small {
		buf = make([]byte, meta.Size)
	}
	if w != nil {
		file, bodyOff = w.f, w.bodyOff
	} else if buf == nil {
		f, err := os.CreateTemp(c.dir, tmpPrefix+"stream-*")
		if err == nil {
			err = os.Remove(f.Name()) // only its readers' fds keep it
		}
		if err != nil {
			if f != nil {
				_ = f.Close()
			}
			_ = body.Close()
			fl.err = fmt.Errorf("cache: fill of %s: creating a stream buffer: %w", fl.key, err)
			close(fl.hdr)
			return
		}
		file = f
	}
	// Under fl.mu: a Close before the headers reads file in release.
	fl.mu.Lock()
	fl.buf, fl.file, fl.bodyOff = buf, file, bodyOff
	fl.mu.Unlock()
	close(fl.hdr)
	fl.stream(body, w)
}

// stream copies the upstream body into the flight's buffer (and entry
// file), publishing each chunk to the readers, then stores or fails.
func (fl *flight) stream(body io.ReadCloser, w *entryWriter) {
	c := fl.c
	defer body.Close()
	var scratch []byte
	if fl.buf == nil {
		scratch = make([]byte, 256<<10)
	} else {
		scratch = make([]byte, 512) // only to see a body longer than Size
	}
	limit := fl.meta.Size
	var written int64
	fail := func(err error) {
		if w != nil {
			w.abort()
		}
		fl.unmap()
		fl.finish(fmt.Errorf("cache: fill of %s: %w", fl.key, err))
	}
	for {
		p := scratch
		if fl.buf != nil && written < int64(len(fl.buf)) {
			p = fl.buf[written:]
		}
		n, rerr := body.Read(p)
		if n > 0 {
			if limit >= 0 && written+int64(n) > limit {
				fail(fmt.Errorf("%w (%d)", errTooLong, limit))
				return
			}
			chunk := p[:n]
			if w != nil {
				if err := w.write(chunk, written); err != nil {
					if fl.buf == nil { // the waiters read the file: they cannot go on
						fail(err)
						return
					}
					c.log.Warn("cache: cannot store, streaming only", "key", fl.key.String(), "err", err)
					w.abort()
					w = nil
					fl.unmap()
				}
			} else if fl.buf == nil {
				if _, err := fl.file.WriteAt(chunk, fl.bodyOff+written); err != nil {
					fail(fmt.Errorf("writing the stream buffer: %w", err))
					return
				}
			}
			written += int64(n)
			if w != nil && limit < 0 && written > c.maxObject {
				w.abort() // larger than max_object_size: stream only
				w = nil
				fl.unmap()
			}
			fl.mu.Lock()
			fl.avail = written
			fl.wakeLocked()
			left := fl.waiters
			fl.mu.Unlock()
			if w == nil && left == 0 {
				fl.unmap()
				fl.finish(errors.New("cache: fill abandoned by every waiter"))
				return
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if c.ctx.Err() != nil {
				rerr = fmt.Errorf("%w: %w", ErrClosed, rerr)
			}
			fail(fmt.Errorf("upstream body after %d bytes: %w", written, rerr))
			return
		}
	}
	if limit >= 0 && written < limit {
		fail(fmt.Errorf("upstream body: %w after %d of %d bytes", io.ErrUnexpectedEOF, written, limit))
		return
	}
	if w != nil {
		var body []byte
		if fl.buf != nil {
			body = fl.buf
		}
		if err := c.commit(fl, w, written, body); err != nil {
			c.log.Warn("cache: storing a fill", "key", fl.key.String(), "err", err)
		}
	}
	fl.unmap()
	fl.finish(nil)
}

// entryWriter writes a new entry's temporary file: header first (with
// placeholders for the body's length and sum), body at bodyOff, and the
// real fixed part last, just before the rename that publishes it.
type entryWriter struct {
	c       *Cache
	f       *os.File
	tmp     string
	blob    []byte
	bodyOff int64
	sha     hash.Hash
	aborted bool
}

func (c *Cache) newEntryWriter(k Key, m Meta) (*entryWriter, error) {
	blob := encodeBlob(k, m)
	if len(blob) > maxBlobLen {
		return nil, fmt.Errorf("header of %d bytes is too large to store", len(blob))
	}
	f, err := os.CreateTemp(c.dir, tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary entry file: %w", err)
	}
	w := &entryWriter{c: c, f: f, tmp: f.Name(), blob: blob, bodyOff: int64(prefixLen + len(blob)), sha: sha256.New()}
	// Zero fixed part: an invalid magic until the entry is complete.
	head := make([]byte, prefixLen, int(w.bodyOff))
	head = append(head, blob...)
	if _, err := f.WriteAt(head, 0); err != nil {
		w.abort()
		return nil, fmt.Errorf("writing %s: %w", w.tmp, err)
	}
	return w, nil
}

func (w *entryWriter) write(p []byte, at int64) error {
	if _, err := w.f.WriteAt(p, w.bodyOff+at); err != nil {
		return fmt.Errorf("writing %s: %w", w.tmp, err)
	}
	w.sha.Write(p)
	return nil
}

// abort removes the temporary file; the open fd stays for the readers.
func (w *entryWriter) abort() {
	if w.aborted {
		return
	}
	w.aborted = true
	if err := os.Remove(w.tmp); err != nil {
		w.c.log.Warn("cache: removing a temporary entry file", "path", w.tmp, "err", err)
	}
}

// commit completes the entry file, renames it into place and indexes it
// (replacing an older entry of the key, evicting to fit MaxSize); a small
// body also goes to the memory tier. The flight's waiters see EOF only
// after this, so a Lookup after a complete read hits.
func (c *Cache) commit(fl *flight, w *entryWriter, n int64, body []byte) error {
	var sum [32]byte
	w.sha.Sum(sum[:0])
	meta := fl.meta
	meta.Size = n
	if _, err := w.f.WriteAt(encodePrefix(w.blob, n, sum, meta.Stored), 0); err != nil {
		w.abort()
		return fmt.Errorf("writing %s: %w", w.tmp, err)
	}
	gen := c.gen.Add(1)
	path := entryName(c.dir, fl.hash, gen)
	if err := os.Rename(w.tmp, path); err != nil {
		w.abort()
		return fmt.Errorf("publishing %s: %w", path, err)
	}
	e := &entry{
		hash: fl.hash, key: fl.key, root: &c.dir, gen: gen, size: w.bodyOff + n,
		bodyOff: w.bodyOff, bodyLen: n, sum: sum, slot: 0, seq: 1, heapIdx: -1,
	}
	hdr := meta.Header
	meta.Header = nil // the index keeps no header: hits read it from memory or the file
	e.meta.Store(&meta)
	e.access.Store(c.clock())
	e.verified.Store(true)

	c.mu.Lock()
	if fl.purged || c.closed {
		c.mu.Unlock()
		c.removeFiles([]*entry{e}, "purged while filling")
		return nil
	}
	old := c.idx.add(e)
	victims := c.evictLocked()
	if c.mem != nil {
		if body != nil && n <= c.memMax && e.heapIdx >= 0 {
			c.mem.Set(fl.hash, &Object{ent: e, inMem: true, body: body, n: n, hdr: hdr})
		} else if old != nil {
			c.mem.Invalidate(fl.hash)
		}
	}
	fl.unmapLocked()
	bytes := c.idx.bytes
	c.mu.Unlock()

	if old != nil {
		c.removeFiles([]*entry{old}, "replaced")
	}
	c.removeFiles(victims, "evicted")
	c.diskEvict.Add(float64(len(victims)))
	c.diskBytes.Set(float64(bytes))
	if c.mem != nil {
		c.memBytes.Set(float64(c.mem.WeightedSize()))
	}
	return nil
}

// noEOF turns a premature EOF into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
