package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// tmpPrefix starts the names of files being written; Open deletes them.
const tmpPrefix = ".tmp-"

// load rebuilds the index from Dir: it deletes leftover temporary files,
// creates the fan-out directories, and reads every entry's header in
// parallel. Files that are not complete entries are deleted; files whose
// names are not the cache's are left alone (the directory may be shared
// with an operator's notes). It returns the highest file generation seen.
func (c *Cache) load() (uint64, error) {
	top, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("cache: reading %s: %w", c.dir, err)
	}
	for _, de := range top {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			p := filepath.Join(c.dir, de.Name())
			if err := os.Remove(p); err != nil {
				c.log.Warn("cache: removing a leftover temporary file", "path", p, "err", err)
			}
		}
	}
	for i := range 256 {
		if err := os.Mkdir(filepath.Join(c.dir, fmt.Sprintf("%02x", i)), 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("cache: creating a fan-out directory: %w", err)
		}
	}

	type result struct {
		es     []*entry
		maxGen uint64
		err    error
	}
	results := make([]result, 256)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(8, 2*runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				results[i].es, results[i].maxGen, results[i].err = c.loadDir(fmt.Sprintf("%02x", i))
			}
		})
	}
	for i := range 256 {
		next <- i
	}
	close(next)
	wg.Wait()

	var maxGen uint64
	for _, r := range results {
		if r.err != nil {
			return 0, r.err
		}
		maxGen = max(maxGen, r.maxGen)
		for _, e := range r.es {
			if old := c.idx.byHash[e.hash]; old != nil {
				// A crash between a replacement's rename and the removal of
				// the file it replaced: keep the newer one.
				if old.meta.Load().Stored.After(e.meta.Load().Stored) {
					c.removeFiles([]*entry{e}, "superseded")
					continue
				}
				c.removeFiles([]*entry{old}, "superseded")
			}
			c.idx.add(e)
		}
	}
	return maxGen, nil
}

// loadDir reads the entries of one fan-out directory.
func (c *Cache) loadDir(sub string) ([]*entry, uint64, error) {
	dir := filepath.Join(c.dir, sub)
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("cache: reading %s: %w", dir, err)
	}
	var es []*entry
	var maxGen uint64
	for _, de := range des {
		h, gen, ok := parseEntryName(de.Name())
		if !ok || hashHex(h)[:2] != sub || !de.Type().IsRegular() {
			continue
		}
		maxGen = max(maxGen, gen)
		p := filepath.Join(dir, de.Name())
		e, err := loadEntry(p, h, gen, &c.dir)
		if err != nil {
			c.log.Warn("cache: deleting a file that is not a complete entry", "path", p, "err", err)
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("cache: removing a bad entry file", "path", p, "err", err)
			}
			continue
		}
		es = append(es, e)
	}
	return es, maxGen, nil
}

// parseEntryName splits "<64 hex>-<16 hex>".
func parseEntryName(name string) (h [32]byte, gen uint64, ok bool) {
	hx, gx, found := strings.Cut(name, "-")
	if !found || len(hx) != 64 || len(gx) != 16 {
		return h, 0, false
	}
	for i := range 32 {
		v, err := strconv.ParseUint(hx[2*i:2*i+2], 16, 8)
		if err != nil {
			return h, 0, false
		}
		h[i] = byte(v)
	}
	gen, err := strconv.ParseUint(gx, 16, 64)
	if err != nil || hashHex(h) != hx {
		return h, 0, false
	}
	return h, gen, true
}

// loadEntry reads and checks an entry file's header: magic, version, CRC,
// a valid stamp slot, the key hashing to the file's name, and the file
// size matching header plus body. The body is checked on the first hit.
func loadEntry(path string, h [32]byte, gen uint64, root *string) (*entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	p := make([]byte, prefixLen)
	if _, err := io.ReadFull(f, p); err != nil {
		return nil, fmt.Errorf("reading the header: %w: %w", errFormat, err)
	}
	bl, n, err := parsePrefix(p)
	if err != nil {
		return nil, err
	}
	if want := int64(prefixLen+bl) + n; st.Size() != want {
		return nil, fmt.Errorf("file is %d bytes, header says %d: %w", st.Size(), want, errFormat)
	}
	blob := make([]byte, bl)
	if _, err := io.ReadFull(f, blob); err != nil {
		return nil, fmt.Errorf("reading the header: %w: %w", errFormat, err)
	}
	fh, err := parseHeader(p, blob)
	if err != nil {
		return nil, err
	}
	if fh.key.Hash() != h {
		return nil, fmt.Errorf("key %s does not match the file name: %w", fh.key, errFormat)
	}
	if fh.meta.Size != fh.bodyLen {
		return nil, fmt.Errorf("Meta.Size %d but body %d bytes: %w", fh.meta.Size, fh.bodyLen, errFormat)
	}
	e := &entry{
		hash: h, key: fh.key, root: root, gen: gen, size: st.Size(),
		bodyOff: fh.bodyOff, bodyLen: fh.bodyLen, sum: fh.sum,
		slot: fh.slot, seq: fh.seq, heapIdx: -1,
	}
	fh.meta.Header = nil // read from the file by the hits that need it
	e.meta.Store(&fh.meta)
	e.access.Store(st.ModTime().UnixNano())
	return e, nil
}
