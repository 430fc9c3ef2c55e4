package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// sitesFile, in Dir, records the fingerprint of each site's definition as
// of the last SyncSites or ChangeSites: what the entries of that site were
// stored under. It is how a start notices that a site changed while the
// gateway was stopped.
const sitesFile = "sites.json"

// sitesRecord is sitesFile's content.
type sitesRecord struct {
	Version int               `json:"version"`
	Sites   map[string]string `json:"sites"` // site name -> fingerprint
}

const sitesVersion = 1

// SyncSites tells the cache, at start, which sites use it now:
// fingerprints maps each such site to a fingerprint of its definition (the
// caller's notion of "the site changed": equal fingerprints mean entries
// stored under one definition may be served under the other). It compares
// them with the fingerprints the last SyncSites or ChangeSites recorded in
// Dir, by this process or an earlier one, so a site changed, removed or
// no longer using the cache while the gateway was stopped loses what it
// stored under its old definition. A missing or unreadable record counts
// as no site recorded: every entry is dropped, the safe way to be wrong.
// Call it after Open, before serving. See ChangeSites for what is dropped
// and recorded, and what it returns.
func (c *Cache) SyncSites(fingerprints map[string]string) (dropped map[string]int, err error) {
	c.sitesMu.Lock()
	defer c.sitesMu.Unlock()
	recorded, rerr := c.readSites()
	if rerr != nil {
		c.log.Warn("cache: the site record is unreadable; entries of every site are dropped", "err", rerr)
	}
	return c.syncSites(recorded, fingerprints)
}

// ChangeSites is SyncSites for a running cache whose caller knows what the
// entries were stored under: prev, the fingerprints of the sites being
// replaced (a config reload), rather than the record. Every site that has
// entries or a running fill, or that prev names, loses its entries and its
// running fills (they are not stored) unless fingerprints has a non-empty
// fingerprint for it equal to prev's. fingerprints is then recorded in Dir
// for the next start: written to a temporary file and renamed, after the
// purges, so a crash between the two only repeats the purges at the next
// start. It returns the entries dropped per site, and an error if the
// record could not be written (the purges happened anyway).
func (c *Cache) ChangeSites(prev, fingerprints map[string]string) (dropped map[string]int, err error) {
	c.sitesMu.Lock()
	defer c.sitesMu.Unlock()
	return c.syncSites(prev, fingerprints)
}

// syncSites drops what was stored under a fingerprint other than the
// current one, then records the current ones. Called with sitesMu held.
func (c *Cache) syncSites(prev, cur map[string]string) (map[string]int, error) {
	dropped := map[string]int{}
	for _, site := range c.sitesInUse(prev) {
		fp, ok := cur[site]
		if ok && fp != "" && prev[site] == fp {
			continue
		}
		if n := c.PurgeSite(site); n > 0 {
			dropped[site] = n
		}
	}
	return dropped, c.writeSites(cur)
}

// sitesInUse lists the sites that have entries or running fills, or that
// prev names.
func (c *Cache) sitesInUse(prev map[string]string) []string {
	seen := map[string]bool{}
	for site := range prev {
		seen[site] = true
	}
	c.mu.Lock()
	for site := range c.idx.sites {
		seen[site] = true
	}
	for _, fl := range c.flights {
		seen[fl.key.Site] = true
	}
	c.mu.Unlock()
	return slices.Collect(maps.Keys(seen))
}

// readSites returns the recorded fingerprints: none (and no error) when
// the file does not exist yet.
func (c *Cache) readSites() (map[string]string, error) {
	p := filepath.Join(c.dir, sitesFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	var rec sitesRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if rec.Version != sitesVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", p, rec.Version, sitesVersion)
	}
	return rec.Sites, nil
}

// writeSites replaces the record with fingerprints (empty ones left out,
// as they match nothing): a temporary file renamed into place, so a
// reader sees the old record or the new one, never a mix. Open deletes a
// temporary file a crash left behind.
func (c *Cache) writeSites(fingerprints map[string]string) error {
	rec := sitesRecord{Version: sitesVersion, Sites: map[string]string{}}
	for site, fp := range fingerprints {
		if fp != "" {
			rec.Sites[site] = fp
		}
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("cache: encoding the site record: %w", err)
	}
	f, err := os.CreateTemp(c.dir, tmpPrefix+"sites-*")
	if err != nil {
		return fmt.Errorf("cache: writing the site record: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	p := filepath.Join(c.dir, sitesFile)
	if werr == nil {
		werr = os.Rename(f.Name(), p)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("cache: writing the site record %s: %w", p, werr)
	}
	return nil
}
