package deploy

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/oss-gateway/gateway/config"
)

// This file keeps ECS.md and scrape.yml honest: every TOML block parses with
// the gateway's own config parser, every JSON block (the RAM policies) parses
// and grants what the config needs, every config key named in the text
// exists, and the scrape job targets the admin port the config opens.

type mdBlock struct {
	lang, body string
	line       int
	indent     int // of the opening fence; stripped from the body's lines
}

// markdownBlocks returns a Markdown file's text and its fenced code blocks.
func markdownBlocks(t testing.TB, path string) (text string, blocks []mdBlock) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text = string(b)
	var cur *mdBlock
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		indent := len(l) - len(trimmed)
		switch {
		case !strings.HasPrefix(trimmed, "```"):
			if cur != nil {
				cur.body += l[min(indent, cur.indent):] + "\n"
			}
		case cur == nil:
			cur = &mdBlock{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1, indent: indent}
		default:
			blocks = append(blocks, *cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Fatalf("%s: the code block opened at line %d is never closed", path, cur.line)
	}
	return text, blocks
}

// minimalSite completes a TOML fragment (a [server] table, say) so that the
// config parser can judge its keys.
const minimalSite = `
[[site]]
name = "fragment"
domains = ["fragment.example.com"]
bucket = "example-bucket"
region = "cn-hangzhou"
`

var (
	ecsOnce   sync.Once
	ecsConfig *config.Config
	ecsErr    string
)

// fleetConfig is the first complete config in ECS.md: the one the guide
// deploys, which the unit, the scrape job and the RAM policy must fit.
func fleetConfig(t testing.TB) *config.Config {
	t.Helper()
	ecsOnce.Do(func() {
		_, blocks := markdownBlocks(t, "ECS.md")
		for _, b := range blocks {
			if b.lang == "toml" && strings.Contains(b.body, "[[site]]") {
				cfg, err := config.Parse("ECS.md", []byte(b.body))
				if err != nil {
					ecsErr = err.Error()
				}
				ecsConfig = cfg
				return
			}
		}
		ecsErr = "ECS.md has no complete config (a toml block with [[site]])"
	})
	if ecsErr != "" {
		t.Fatal(ecsErr)
	}
	return ecsConfig
}

// configKeys lists every key path of the config file ("server.shutdown_delay",
// "site.limits.allow_ips", ...), read from the config package's toml tags.
func configKeys() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			keys[path] = true
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath() {
				walk(ft, path)
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	return keys
}

// knownConfigKey reports whether key ("shutdown_delay", "tls.storage",
// "limits.allow_ips") names a config key: the whole path, or its tail.
func knownConfigKey(key string) bool {
	for k := range configKeys() {
		if k == key || strings.HasSuffix(k, "."+key) {
			return true
		}
	}
	return false
}

// configKeyRE finds dotted config references in prose ("tls.storage").
var configKeyRE = regexp.MustCompile(`\b(?:server|admin|log|credentials|tls|referer|limits|retry|website|disposition|url_auth)\.[a-z][a-z0-9_]*\b`)

// notConfigKeys are backticked snake_case words in ECS.md that are not
// config keys: values, access log fields, Prometheus and SLB terms.
var notConfigKeys = map[string]bool{
	"ecs_ram_role": true, "client_ip": true, "upstream_request_id": true,
	"http_2xx": true, "job_name": true, "ecs_sd_configs": true,
}

var backtickRE = regexp.MustCompile("`([^`\n]+)`")

func TestECSGuide(t *testing.T) {
	text, blocks := markdownBlocks(t, "ECS.md")

	var tomls, jsons int
	var policies []ramPolicy
	for _, b := range blocks {
		switch b.lang {
		case "toml":
			tomls++
			doc := b.body
			if !strings.Contains(doc, "[[site]]") {
				doc += minimalSite
			}
			if _, err := config.Parse("ECS.md", []byte(doc)); err != nil {
				t.Errorf("ECS.md:%d: the toml block does not parse as a gateway config:\n%v", b.line, err)
			}
		case "json":
			jsons++
			var p ramPolicy
			dec := json.NewDecoder(strings.NewReader(b.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				t.Errorf("ECS.md:%d: the json block is not a RAM policy: %v", b.line, err)
			}
			policies = append(policies, p)
		}
	}
	if tomls < 3 || jsons < 2 {
		t.Errorf("ECS.md has %d toml and %d json blocks; want the fleet config, the layer-4/layer-7 variants and two RAM policies", tomls, jsons)
	}

	cfg := fleetConfig(t)
	if cfg.Credentials.Source != "ecs_ram_role" {
		t.Errorf("the fleet config uses credentials.source %q, want ecs_ram_role", cfg.Credentials.Source)
	}
	for _, s := range cfg.Sites {
		if s.Endpoint != "internal" {
			t.Errorf("site %s uses endpoint %q; the guide's point is the internal endpoint", s.Name, s.Endpoint)
		}
	}
	if !strings.HasPrefix(cfg.TLS.Storage, "oss://") {
		t.Errorf("tls.storage %q: a fleet shares certificates through oss://", cfg.TLS.Storage)
	}
	if !slices.Contains(cfg.Admin.AllowNets, netip.MustParsePrefix("100.64.0.0/10")) {
		t.Errorf("admin.allow %v lacks the SLB health check range 100.64.0.0/10", cfg.Admin.Allow)
	}
	host, _, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil || (host != "" && netip.MustParseAddr(host).IsLoopback()) {
		t.Errorf("admin.listen %q: the SLB and Prometheus cannot reach a loopback listener", cfg.Admin.Listen)
	}
	if cfg.Server.ShutdownDelay.D() <= 0 {
		t.Errorf("shutdown_delay is 0: behind an SLB the instance must fail /readyz before closing")
	}

	if len(policies) >= 2 {
		checkInstancePolicy(t, cfg, policies[0])
		ops := policies[1].actions()
		for _, a := range []string{"oss:CreateCnameToken", "oss:GetCnameToken", "oss:PutCname", "oss:ListCname", "oss:DeleteCname"} {
			if !ops[a] {
				t.Errorf("the operator's CNAME policy lacks %s (gateway cname needs it)", a)
			}
		}
	}

	keys := configKeys()
	for _, m := range backtickRE.FindAllStringSubmatch(text, -1) {
		w := m[1]
		if !regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`).MatchString(w) || !strings.ContainsAny(w, "_.") {
			continue
		}
		if strings.HasPrefix(w, "gateway_") || strings.HasPrefix(w, "process_") || strings.HasPrefix(w, "go_") || notConfigKeys[w] {
			continue
		}
		if strings.Contains(w, ".") && !configKeyRE.MatchString(w) && !keys[w] {
			continue // a file or host name, not a key
		}
		if !knownConfigKey(w) {
			t.Errorf("ECS.md names `%s`, which is no config key (config/types.go spells them)", w)
		}
	}
	for _, k := range configKeyRE.FindAllString(text, -1) {
		if !knownConfigKey(k) {
			t.Errorf("ECS.md names %s, which is no config key", k)
		}
	}

	for _, must := range []string{
		"gateway check -config", "systemctl enable --now gateway", "systemctl reload gateway",
		"gateway cname token", "gateway cname bind", "/readyz", "100.64.0.0/10",
		"proxy_protocol = true", "trusted_proxies", "X-Forwarded-For", `endpoint = "internal"`,
		`source = "ecs_ram_role"`, "oss://", "shutdown_delay", "TTL", "Roll back",
		"gateway.service", "prometheus/scrape.yml", "prometheus/alerts.yml", "grafana/oss-gateway.json",
	} {
		if !strings.Contains(text, must) {
			t.Errorf("ECS.md no longer mentions %q", must)
		}
	}
	for _, f := range []string{"gateway.service", "prometheus/scrape.yml", "prometheus/alerts.yml", "grafana/oss-gateway.json", "Dockerfile"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("ECS.md refers to %s: %v", f, err)
		}
	}
}

type ramPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]map[string][]string
	}
}

func (p ramPolicy) actions() map[string]bool {
	out := map[string]bool{}
	for _, s := range p.Statement {
		for _, a := range s.Action {
			out[a] = true
		}
	}
	return out
}

// allows reports whether p lets action act on resource; for oss:ListObjects
// listPrefix is the prefix listed, checked against an oss:Prefix condition.
func (p ramPolicy) allows(action, resource, listPrefix string) bool {
	for _, s := range p.Statement {
		if s.Effect != "Allow" || !slices.Contains(s.Action, action) {
			continue
		}
		okRes := false
		for _, r := range s.Resource {
			if globMatch(r, resource) {
				okRes = true
			}
		}
		if !okRes {
			continue
		}
		if pfx, ok := s.Condition["StringLike"]["oss:Prefix"]; ok {
			okPfx := false
			for _, g := range pfx {
				if globMatch(g, listPrefix) {
					okPfx = true
				}
			}
			if !okPfx {
				continue
			}
		}
		return true
	}
	return false
}

// globMatch matches RAM's wildcards: * any run of characters, ? one.
func globMatch(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

// checkInstancePolicy: the instances' RAM policy lets the fleet config do its
// work (serve, check, keep certificates) and nothing of the operator's.
func checkInstancePolicy(t *testing.T, cfg *config.Config, p ramPolicy) {
	t.Helper()
	for _, s := range cfg.Sites {
		obj := "acs:oss:*:*:" + s.Bucket + "/" + s.Prefix + "dir/a.jpg"
		if !p.allows("oss:GetObject", obj, "") {
			t.Errorf("the instance policy does not let site %s read %s", s.Name, obj)
		}
		bucket := "acs:oss:*:*:" + s.Bucket
		for _, a := range []string{"oss:GetBucketInfo", "oss:ListCname"} {
			if !p.allows(a, bucket, "") {
				t.Errorf("the instance policy lacks %s on %s (gateway check calls it)", a, bucket)
			}
		}
	}
	rest, ok := strings.CutPrefix(cfg.TLS.Storage, "oss://")
	if ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		prefix = strings.Trim(prefix, "/")
		obj := "acs:oss:*:*:" + bucket + "/" + prefix + "/certificates/acme/img.example.com/img.example.com.key"
		for _, a := range []string{"oss:GetObject", "oss:PutObject", "oss:DeleteObject"} {
			if !p.allows(a, obj, "") {
				t.Errorf("the instance policy lacks %s on the certificate storage (%s)", a, obj)
			}
		}
		if !p.allows("oss:ListObjects", "acs:oss:*:*:"+bucket, prefix+"/certificates/") {
			t.Errorf("the instance policy cannot list %s/ in %s", prefix, bucket)
		}
		if p.allows("oss:PutObject", "acs:oss:*:*:"+bucket+"/elsewhere/x", "") {
			t.Errorf("the instance policy lets the instances write outside the certificate prefix")
		}
	}
	for a := range p.actions() {
		if strings.Contains(a, "*") || strings.Contains(a, "Cname") && a != "oss:ListCname" {
			t.Errorf("the instance policy grants %s: keep wildcards and the CNAME lifecycle off the instances", a)
		}
	}
}

// TestScrapeConfig: scrape.yml is YAML Prometheus reads, and its job scrapes
// /metrics on the admin port of the ECS.md config.
func TestScrapeConfig(t *testing.T) {
	sc := loadScrape(t)
	cfg := fleetConfig(t)
	_, adminPort, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, j := range sc.ScrapeConfigs {
		if j.JobName != "oss-gateway" {
			continue
		}
		found = true
		if j.MetricsPath != "/metrics" {
			t.Errorf("metrics_path %q, the admin listener serves /metrics", j.MetricsPath)
		}
		if j.Scheme != "http" {
			t.Errorf("scheme %q, the admin listener is plain HTTP", j.Scheme)
		}
		n := 0
		for _, s := range j.StaticConfigs {
			for _, target := range s.Targets {
				n++
				_, port, err := net.SplitHostPort(target)
				if err != nil || port != adminPort {
					t.Errorf("target %q: want the admin port %s", target, adminPort)
				}
			}
		}
		if n == 0 {
			t.Error("the oss-gateway job has no targets")
		}
	}
	if !found {
		t.Error(`scrape.yml has no job "oss-gateway" (the alerts and dashboard select job="oss-gateway")`)
	}
}
