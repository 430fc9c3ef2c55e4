package check_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/check"
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
)

// TestValidate: what run refuses beyond config.Load comes back as one
// file:line: key: problem line each, and a config run starts with passes.
func TestValidate(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	goodCert, goodKey, _ := certPair(t, dir, now.Add(-24*time.Hour), now.Add(60*24*time.Hour), "good.test")
	oldCert, oldKey, _ := certPair(t, dir, now.Add(-90*24*time.Hour), now.Add(-24*time.Hour), "old.test")
	missing := filepath.Join(dir, "missing.pem")
	env := map[string]string{"SET_KEY": "k3y"}

	const plain = "[server]\nhttp_listen = \":8080\"\nhttps_listen = \"\"\n"
	const https = "[server]\nhttp_listen = \":8080\"\nhttps_listen = \":8443\"\n"
	site := func(extra string) string {
		return `
[[site]]
name = "s"
domains = ["s.test"]
bucket = "bkt"
region = "cn-hangzhou"
` + extra
	}
	files := func(cert, key string) string {
		return "tls = \"files\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n"
	}
	cases := []struct {
		name string
		doc  string
		want []string // each problem line, after "FILE:"; none = valid
	}{
		{name: "valid", doc: plain + site("tls = \"off\"\n")},
		{name: "url_auth key set", doc: plain + site("tls = \"off\"\n[site.url_auth]\nenabled = true\nkey_env = \"SET_KEY\"\n")},
		{
			name: "url_auth key unset",
			doc:  plain + site("tls = \"off\"\n[site.url_auth]\nenabled = true\nkey_env = \"UNSET_KEY\"\n"),
			want: []string{"13: site[0].url_auth.key_env: environment variable UNSET_KEY (url_auth.key_env) is unset or empty"},
		},
		{
			name: "url_auth key unset, inline table",
			doc:  plain + site("tls = \"off\"\nurl_auth = { enabled = true, key_env = \"UNSET_KEY\" }\n"),
			want: []string{"11: site[0].url_auth.key_env: environment variable UNSET_KEY"},
		},
		{
			name: "url_auth key unset in the second site",
			doc:  plain + site("tls = \"off\"\n") + strings.Replace(site("tls = \"off\"\n[site.url_auth]\nenabled = true\nkey_env = \"UNSET_KEY\"\n"), `"s`, `"t`, 2),
			want: []string{"20: site[1].url_auth.key_env: environment variable UNSET_KEY"},
		},
		{name: "files pair, no https listener", doc: plain + site(files(missing, missing))},
		{name: "files pair, good", doc: https + site(files(goodCert, goodKey))},
		{
			name: "files pair, certificate missing",
			doc:  https + site(files(missing, goodKey)),
			want: []string{`11: site[0].cert_file: cannot read "` + missing + `": no such file or directory`},
		},
		{
			name: "files pair, key missing",
			doc:  https + site(files(goodCert, missing)),
			want: []string{`12: site[0].key_file: cannot read "` + missing + `": no such file or directory`},
		},
		{
			name: "files pair, expired",
			doc:  https + site(files(oldCert, oldKey)),
			want: []string{`11: site[0].cert_file: cert_file "` + oldCert + `": certificate expired at`},
		},
		{
			name: "acme_ca_root missing",
			doc:  https + "[tls]\nacme_ca_root = \"" + missing + "\"\n" + site(""),
			want: []string{`5: tls.acme_ca_root: cannot read "` + missing + `"`},
		},
		{
			name: "two problems, in file order",
			doc:  https + site(files(goodCert, missing)+"[site.url_auth]\nenabled = true\nkey_env = \"UNSET_KEY\"\n"),
			want: []string{"12: site[0].key_file", "15: site[0].url_auth.key_env"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gw.toml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			err = check.ValidateWith(cfg, func(k string) string { return env[k] }, time.Now)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it; want %q", tc.want)
			}
			if _, ok := err.(*config.Error); !ok {
				t.Errorf("error is a %T, want *config.Error", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], path+":"+w) {
					t.Errorf("line %d:\n%s\nwant it to start with\n%s:%s", i, lines[i], path, w)
				}
			}
		})
	}
}

// TestRunStreamsParallelProbes: probes of different sites run at once,
// and Progress gets each row when its probe finishes, so a fast site's
// rows are not held back by a slow one; the report keeps config order.
func TestRunStreamsParallelProbes(t *testing.T) {
	emu, addr := startEmulator(t)
	endpoint := "http://" + addr
	const delay = time.Second
	for _, b := range []string{"slow1", "slow2", "fast"} {
		emu.CreateBucket(b, ossemu.Private)
	}
	emu.AddFault(ossemu.Fault{Bucket: "slow1", Delay: delay})
	emu.AddFault(ossemu.Fault{Bucket: "slow2", Delay: delay})
	off := "tls = \"off\"\n"
	cfg := parseConfig(t, site("slow1", `"slow1.test"`, "slow1", endpoint, "private", off)+
		site("slow2", `"slow2.test"`, "slow2", endpoint, "private", off)+
		site("fast", `"fast.test"`, "fast", endpoint, "private", off))

	var mu sync.Mutex
	seen := map[string]time.Time{} // site/check -> when Progress got it
	var order []string
	rep := check.Run(context.Background(), cfg, check.Options{
		Credentials: static(testKeyID, testSecret),
		Progress: func(r check.Row) {
			mu.Lock()
			defer mu.Unlock()
			k := r.Site + "/" + r.Check
			seen[k] = time.Now()
			order = append(order, k)
		},
	})
	if rep.Failed() {
		t.Fatalf("failed: %+v", rep.Rows)
	}
	t.Logf("rows as they came: %v", order)
	fast, s1, s2 := seen["fast/bucket"], seen["slow1/bucket"], seen["slow2/bucket"]
	if fast.IsZero() || s1.IsZero() || s2.IsZero() {
		t.Fatalf("Progress missed a bucket row: %v", order)
	}
	if !fast.Before(s1) || !fast.Before(s2) {
		t.Errorf("the fast site's bucket row came after a slow one's: %v", order)
	}
	// One after the other, the slow rows would be a whole delay apart.
	if gap := s2.Sub(s1).Abs(); gap > delay*3/4 {
		t.Errorf("the slow sites' bucket rows came %v apart: probed one after the other", gap)
	}
	var sites []string
	for _, r := range rep.Rows {
		if r.Check == "bucket" {
			sites = append(sites, r.Site)
		}
	}
	if strings.Join(sites, ",") != "slow1,slow2,fast" {
		t.Errorf("report bucket rows in order %v, want config order", sites)
	}
	if len(order) != len(rep.Rows) {
		t.Errorf("Progress got %d rows, the report has %d", len(order), len(rep.Rows))
	}
}
