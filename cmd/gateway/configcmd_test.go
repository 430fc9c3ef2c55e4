package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/oss-gateway/gateway/config"
)

// oneSite is the smallest [[site]] a config needs.
const oneSite = `
[[site]]
name = "one"
domains = ["one.example.com"]
bucket = "one-bucket"
region = "cn-hangzhou"
tls = "off"
`

// TestConfigCommand: `gateway config` prints every key with its default
// filled in, the credentials redacted and nothing else, as TOML that
// loads back into the same config (and prints the same again).
func TestConfigCommand(t *testing.T) {
	const secret, keyID, token = "config-secret-never-printed", "LTAIconfigkeyid", "sts-token-never-printed"
	cases := []struct {
		name     string
		doc      string
		redacted int      // how many "<redacted>"
		want     []string // lines the output holds
	}{
		{
			name: "static credentials with a token",
			doc: `
[credentials]
source = "static"
access_key_id = "` + keyID + `"
access_key_secret = "` + secret + `"
security_token = "` + token + `"

[[site]]
name = "img"
domains = ["IMG.Example.com."]
bucket = "img-bucket"
region = "cn-hangzhou"
methods = ["get", "head"]

[site.url_auth]
enabled = true
key_env = "IMG_URL_KEY"
`,
			redacted: 3,
			want: []string{
				"access_key_id = '<redacted>'", "access_key_secret = '<redacted>'", "security_token = '<redacted>'",
				"shutdown_grace = '30s'", "http_listen = ':80'", "listen = '127.0.0.1:9090'", // defaults
				"domains = ['img.example.com']", "methods = ['GET', 'HEAD']", // normalised
				"key_env = 'IMG_URL_KEY'", "max_attempts = 3", // not a secret; a site default
			},
		},
		{
			name: "static credentials without a token",
			doc: `
[credentials]
source = "static"
access_key_id = "` + keyID + `"
access_key_secret = "` + secret + `"
` + oneSite,
			redacted: 2,
			want:     []string{"security_token = ''"},
		},
		{
			name: "env credentials: nothing to redact",
			doc: "[server]\nhttp_listen = \":8080\"\n" + oneSite + `
[[site.cors]]
allowed_origins = ["https://app.example.com"]
allow_credentials = true

[site.limits]
per_ip_rps = 5
allow_ips = ["10.0.0.0/8", "192.0.2.1"]
`,
			redacted: 0,
			want:     []string{"source = 'env'", "access_key_id = ''", "http_listen = ':8080'", "https_listen = ':443'"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "gateway.toml", tc.doc)
			res := runBin(t, "", nil, "config", "-config", path)
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			out := res.stdout
			for _, s := range []string{secret, keyID, token} {
				if strings.Contains(out, s) {
					t.Errorf("the output holds %q", s)
				}
			}
			if n := strings.Count(out, "<redacted>"); n != tc.redacted {
				t.Errorf("%d values redacted, want %d", n, tc.redacted)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, w := range tc.want {
				if !lines[w] {
					t.Errorf("no line %q", w)
				}
			}

			// Round trip: the output loads, to the config loaded from the
			// file (credentials aside), and prints the same again.
			again, err := config.Parse("printed.toml", []byte(out))
			if err != nil {
				t.Fatalf("the output does not load:\n%v", err)
			}
			orig, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*config.Config{orig, again} {
				c.Path = ""
				c.Credentials.AccessKeyID, c.Credentials.AccessKeySecret, c.Credentials.SecurityToken = "", "", ""
			}
			a, _ := toml.Marshal(orig)
			b, _ := toml.Marshal(again)
			if string(a) != string(b) {
				t.Errorf("the output loads to another config:\n%s\nwant\n%s", b, a)
			}
			printed := filepath.Join(t.TempDir(), "printed.toml")
			if err := os.WriteFile(printed, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			res2 := runBin(t, "", nil, "config", "-config", printed)
			body := func(s string) string { _, rest, _ := strings.Cut(s, "\n"); return rest }
			if res2.code != 0 || body(res2.stdout) != body(out) {
				t.Errorf("printing the output again gives another config (exit %d)", res2.code)
			}
		})
	}

	// A bad config: exit 2, one file:line: key line per problem.
	bad := writeConfig(t, "bad.toml", "[server]\nbogus = 1\n"+oneSite)
	res := runBin(t, "", nil, "config", "-config", bad)
	if res.code != 2 || res.stdout != "" || !strings.Contains(res.stderr, bad+":2: server.bogus") {
		t.Errorf("bad config: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}
