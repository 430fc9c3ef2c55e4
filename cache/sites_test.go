package cache

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A site's entries survive a restart only under the fingerprint they were
// stored with: each step reopens the directory, syncs, and checks which
// objects still hit.
func TestSyncSitesAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	a, b := Key{Site: "a", Object: "x.jpg"}, Key{Site: "b", Object: "y.jpg"}
	body := map[Key][]byte{a: payload(100, 1), b: payload(200, 2)}

	c := openT(t, Options{Dir: dir})
	if dropped, err := c.SyncSites(map[string]string{"a": "A1", "b": "B1"}); err != nil || len(dropped) != 0 {
		t.Fatalf("first sync: dropped %v, %v", dropped, err)
	}
	for k, v := range body {
		fillAndWait(t, c, k, newFetcher(v, `"`+k.Site+`"`))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	for _, step := range []struct {
		name        string
		sites       map[string]string
		wantDropped map[string]int
		hits        []Key
	}{
		{"unchanged", map[string]string{"a": "A1", "b": "B1"}, map[string]int{}, []Key{a, b}},
		{"a changed", map[string]string{"a": "A2", "b": "B1"}, map[string]int{"a": 1}, []Key{b}},
		{"a back to A1: its entries are gone, not revived", map[string]string{"a": "A1", "b": "B1"}, map[string]int{}, []Key{b}},
		{"b removed", map[string]string{"a": "A1"}, map[string]int{"b": 1}, nil},
	} {
		c := openT(t, Options{Dir: dir})
		dropped, err := c.SyncSites(step.sites)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if !maps.Equal(dropped, step.wantDropped) {
			t.Errorf("%s: dropped %v, want %v", step.name, dropped, step.wantDropped)
		}
		for _, k := range []Key{a, b} {
			hit := false
			for _, h := range step.hits {
				hit = hit || h == k
			}
			if hit {
				mustHit(t, c, k, body[k])
			} else {
				mustMiss(t, c, k)
			}
		}
		if n := len(entryFiles(t, dir)) - 1; n != len(step.hits) { // - sites.json
			t.Errorf("%s: %d entry files, want %d", step.name, n, len(step.hits))
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Without a record (a directory from before records, or one whose record
// is damaged) no entry can be trusted: all are dropped, and the record is
// written anew.
func TestSyncSitesWithoutRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record string // "" = no file
	}{
		{"missing", ""},
		{"not JSON", "{\"version\":1,\"sites\":{\"a\""},
		{"unknown version", `{"version":2,"sites":{"a":"A1"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openT(t, Options{Dir: dir})
			k := Key{Site: "a", Object: "x"}
			fillAndWait(t, c, k, newFetcher(payload(10, 3), `"x"`))
			if tc.record != "" {
				if err := os.WriteFile(filepath.Join(dir, sitesFile), []byte(tc.record), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			dropped, err := c.SyncSites(map[string]string{"a": "A1"})
			if err != nil || dropped["a"] != 1 {
				t.Fatalf("dropped %v, %v; want a: 1", dropped, err)
			}
			mustMiss(t, c, k)
			if got := readRecord(t, dir); !maps.Equal(got, map[string]string{"a": "A1"}) {
				t.Fatalf("record %v after the sync", got)
			}
		})
	}
}

// The record holds exactly the sites given, empty fingerprints left out
// (they never match, so such a site is dropped at every sync); it is
// replaced by rename, leaving no temporary file.
func TestSyncSitesRecord(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir})
	k := Key{Site: "nofp", Object: "x"}
	if _, err := c.SyncSites(map[string]string{"a": "A1", "nofp": ""}); err != nil {
		t.Fatal(err)
	}
	fillAndWait(t, c, k, newFetcher(payload(10, 4), `"x"`))
	dropped, err := c.SyncSites(map[string]string{"a": "A1", "nofp": ""})
	if err != nil || dropped["nofp"] != 1 {
		t.Fatalf("a site without fingerprint: dropped %v, %v", dropped, err)
	}
	if got := readRecord(t, dir); !maps.Equal(got, map[string]string{"a": "A1"}) {
		t.Fatalf("record %v", got)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range names {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left behind", de.Name())
		}
	}
}

// ChangeSites compares with the fingerprints the caller gives, not with
// the record, and records the new ones for the next start.
func TestChangeSites(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, Options{Dir: dir})
	ks := map[string]Key{}
	for _, site := range []string{"same", "changed", "removed", "uncached"} {
		ks[site] = Key{Site: site, Object: "x"}
		fillAndWait(t, c, ks[site], newFetcher(payload(10, 6), `"x"`))
	}
	// No record exists: ChangeSites must not read it (SyncSites would drop all).
	prev := map[string]string{"same": "S", "changed": "C1", "removed": "R"}
	cur := map[string]string{"same": "S", "changed": "C2", "added": "A"}
	dropped, err := c.ChangeSites(prev, cur)
	want := map[string]int{"changed": 1, "removed": 1, "uncached": 1}
	if err != nil || !maps.Equal(dropped, want) {
		t.Fatalf("dropped %v, %v; want %v", dropped, err, want)
	}
	mustHit(t, c, ks["same"], payload(10, 6))
	if got := readRecord(t, dir); !maps.Equal(got, cur) {
		t.Fatalf("record %v, want %v", got, cur)
	}
}

// A fill running for a site that changes is not stored: it was fetched
// under the old definition.
func TestSyncSitesCutsRunningFill(t *testing.T) {
	c := openT(t, Options{})
	if _, err := c.SyncSites(map[string]string{"a": "A1"}); err != nil {
		t.Fatal(err)
	}
	k := Key{Site: "a", Object: "x"}
	f := newFetcher(payload(64<<10, 5), `"x"`)
	f.holdAt = 1 << 10
	fl := c.Fill(k, f.fetch)
	done := fl.Done()
	if _, err := fl.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SyncSites(map[string]string{"a": "A2"}); err != nil {
		t.Fatal(err)
	}
	close(f.gate)
	if _, b, err := readFill(context.Background(), fl); err != nil || len(b) != 64<<10 {
		t.Fatalf("the waiter still gets the body: %d bytes, %v", len(b), err)
	}
	<-done
	mustMiss(t, c, k)
}

func readRecord(t *testing.T, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, sitesFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec sitesRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return rec.Sites
}
