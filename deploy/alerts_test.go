package deploy

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The alerts the deployment promises (README, ECS.md section 9).
var requiredAlerts = []string{
	"OSSGatewayInstanceDown",
	"OSSGatewayHigh5xxRatio",
	"OSSGatewayUpstreamRetriesHigh",
	"OSSGatewayDeniedSpike",
	"OSSGatewayCertificateExpiringSoon",
	"OSSGatewayConfigReloadFailed",
	"OSSGatewayCacheHitRatioLow",
	"OSSGatewayCacheMemoryChurn",
}

func loadAlerts(t testing.TB) map[string]rulefmt.Rule {
	t.Helper()
	path := filepath.Join("prometheus", "alerts.yml")
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("%v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	rules := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if _, dup := rules[r.Alert]; dup {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			rules[r.Alert] = r
		}
	}
	return rules
}

// TestAlertRules: alerts.yml parses with Prometheus's own rule parser, has
// every promised alert, each with for, severity and annotations, and every
// metric, label and label value in it exists on the gateway.
func TestAlertRules(t *testing.T) {
	rules := loadAlerts(t)
	for _, name := range requiredAlerts {
		if _, ok := rules[name]; !ok {
			t.Errorf("alerts.yml has no alert %s", name)
		}
	}
	for name, r := range rules {
		if r.For <= 0 {
			t.Errorf("%s: no for: (a single bad scrape would page)", name)
		}
		switch r.Labels["severity"] {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity label %q, want critical, warning or info", name, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s annotation", name, a)
			}
		}
		c := newChecker(t)
		out := c.check(name, r.Expr)
		for _, p := range c.problems {
			t.Error(p)
		}
		for a, text := range r.Annotations {
			for _, m := range alertLabelRE.FindAllStringSubmatch(text, -1) {
				if !out[m[1]] {
					t.Errorf("%s: annotation %s uses $labels.%s, but the expression's result only has %v", name, a, m[1], out.sorted())
				}
			}
		}
		// The annotations must name the site or domain (or the instance)
		// they are about, so the page says where to look.
		if !strings.Contains(r.Annotations["summary"], "$labels.") {
			t.Errorf("%s: the summary names no label (site, domain or instance)", name)
		}
		for _, key := range configKeyRE.FindAllString(r.Annotations["description"], -1) {
			if !knownConfigKey(key) {
				t.Errorf("%s: the description names %q, which is no config key", name, key)
			}
		}
		for _, m := range sectionKeyRE.FindAllStringSubmatch(r.Annotations["description"], -1) {
			if key := m[1] + "." + m[2]; !configKeys()[key] {
				t.Errorf("%s: the description names [%s] %s, which is no config key", name, m[1], m[2])
			}
		}
	}
}

// sectionKeyRE finds keys named as "[section] key" in prose ("[cache]
// max_size", "[site.cache] ttl"), the README's way for sections whose
// dotted form would be ambiguous.
var sectionKeyRE = regexp.MustCompile(`\[([a-z_.]+)\] ([a-z_]+)`)

// scenario is synthetic data for one alert and what must fire on it.
type scenario struct {
	alert string
	data  func(m *memStorage)
	// checks: at each time, exactly these label subsets fire.
	checks []scenarioCheck
}

type scenarioCheck struct {
	at   time.Duration
	want []map[string]string
}

func lset(name string, kv ...string) labels.Labels {
	return labels.FromStrings(append([]string{"__name__", name, "job", "oss-gateway"}, kv...)...)
}

func stepAt(at time.Duration, before, after float64) func(time.Duration) float64 {
	return func(t time.Duration) float64 {
		if t < at {
			return before
		}
		return after
	}
}

var scenarios = []scenario{
	{
		alert: "OSSGatewayInstanceDown",
		data: func(m *memStorage) {
			m.add(lset("up", "instance", "gw-a:9090"), 20*time.Minute, stepAt(10*time.Minute, 1, 0))
			m.add(lset("up", "instance", "gw-b:9090"), 20*time.Minute, constant(1))
		},
		checks: []scenarioCheck{
			{at: 11 * time.Minute, want: nil}, // down for 1 of the 2 minutes
			{at: 15 * time.Minute, want: []map[string]string{{"instance": "gw-a:9090"}}},
		},
	},
	{
		alert: "OSSGatewayHigh5xxRatio",
		data: func(m *memStorage) {
			const end = 40 * time.Minute
			in := []string{"instance", "gw-a:9090", "method", "GET"}
			// images: 502s at 0.7/s next to 10/s of 200s from minute 20 (6.5%).
			m.add(lset("gateway_requests_total", append(in, "site", "images", "code", "200")...), end, steady(10))
			m.add(lset("gateway_requests_total", append(in, "site", "images", "code", "502")...), end,
				counter([]time.Duration{0, 20 * time.Minute}, []float64{0, 0.7}))
			// files: 2.9% errors, below the threshold.
			m.add(lset("gateway_requests_total", append(in, "site", "files", "code", "200")...), end, steady(10))
			m.add(lset("gateway_requests_total", append(in, "site", "files", "code", "500")...), end, steady(0.3))
			// tiny: half its requests fail, but it serves one request every 25 s.
			m.add(lset("gateway_requests_total", append(in, "site", "tiny", "code", "200")...), end, steady(0.02))
			m.add(lset("gateway_requests_total", append(in, "site", "tiny", "code", "503")...), end, steady(0.02))
		},
		checks: []scenarioCheck{
			{at: 19 * time.Minute, want: nil},
			{at: 23 * time.Minute, want: nil}, // not yet 5 minutes
			{at: 30 * time.Minute, want: []map[string]string{{"site": "images"}}},
		},
	},
	{
		alert: "OSSGatewayUpstreamRetriesHigh",
		data: func(m *memStorage) {
			const end = 40 * time.Minute
			in := []string{"instance", "gw-a:9090", "method", "GET", "code", "200"}
			m.add(lset("gateway_requests_total", append(in, "site", "images")...), end, steady(10))
			m.add(lset("gateway_requests_total", append(in, "site", "files")...), end, steady(10))
			m.add(lset("gateway_upstream_retries_total", "instance", "gw-a:9090", "site", "images", "reason", "status"), end, steady(0.9))
			m.add(lset("gateway_upstream_retries_total", "instance", "gw-a:9090", "site", "images", "reason", "dial"), end, steady(0.3))
			m.add(lset("gateway_upstream_retries_total", "instance", "gw-a:9090", "site", "files", "reason", "reset"), end, steady(0.8))
		},
		checks: []scenarioCheck{
			{at: 40 * time.Minute, want: []map[string]string{{"site": "images"}}}, // 12% vs 8%
		},
	},
	{
		alert: "OSSGatewayDeniedSpike",
		data: func(m *memStorage) {
			const end = 90 * time.Minute
			spike := []time.Duration{0, 60 * time.Minute}
			d := func(site, reason string) labels.Labels {
				return lset("gateway_denied_total", "instance", "gw-a:9090", "site", site, "reason", reason)
			}
			m.add(d("images", "referer"), end, counter(spike, []float64{0.5, 10})) // 20x its usual rate
			m.add(d("images", "rate_limit"), end, steady(5))                       // high but usual
			m.add(d("images", "cors"), end, counter(spike, []float64{0.05, 0.8}))  // 16x, but under 1/s
			m.add(d("files", "ip"), end, steady(60))                               // always above 50/s
		},
		checks: []scenarioCheck{
			{at: 65 * time.Minute, want: []map[string]string{{"site": "files", "reason": "ip"}}},
			{at: 75 * time.Minute, want: []map[string]string{{"site": "images", "reason": "referer"}, {"site": "files", "reason": "ip"}}},
		},
	},
	{
		alert: "OSSGatewayCertificateExpiringSoon",
		data: func(m *memStorage) {
			const end = 3 * time.Hour
			now := end.Seconds()
			exp := func(domain string, left time.Duration) {
				m.add(lset("gateway_tls_certificate_expiry_timestamp_seconds", "instance", "gw-a:9090", "domain", domain), end, constant(now+left.Seconds()))
			}
			exp("img.example.com", 10*24*time.Hour)
			exp("cdn.example.com", 14*24*time.Hour-2*time.Hour) // just under 14 days for the whole hour
			exp("files.example.com", 30*24*time.Hour)
			exp("static.example.com", 14*24*time.Hour+2*time.Hour) // still over 14 days at the end
		},
		checks: []scenarioCheck{
			{at: 3 * time.Hour, want: []map[string]string{{"domain": "img.example.com"}, {"domain": "cdn.example.com"}}},
		},
	},
	{
		alert: "OSSGatewayConfigReloadFailed",
		data: func(m *memStorage) {
			const end = 70 * time.Minute
			ok := func(instance string) labels.Labels {
				return lset("gateway_config_last_reload_successful", "instance", instance)
			}
			// gw-a: a reload refused at 40m, fixed by a good one at 55m.
			m.add(ok("gw-a:9090"), end, func(t time.Duration) float64 {
				if t >= 40*time.Minute && t < 55*time.Minute {
					return 0
				}
				return 1
			})
			m.add(ok("gw-b:9090"), end, constant(1)) // never refused: quiet
		},
		checks: []scenarioCheck{
			{at: 39 * time.Minute, want: nil},
			{at: 45 * time.Minute, want: []map[string]string{{"instance": "gw-a:9090"}}},
			{at: 54 * time.Minute, want: []map[string]string{{"instance": "gw-a:9090"}}}, // no waiting for a rate window
			{at: 57 * time.Minute, want: nil},                                            // cleared by the good reload
		},
	},
	{
		alert: "OSSGatewayCacheHitRatioLow",
		data: func(m *memStorage) {
			const end = 90 * time.Minute
			c := func(site, result string) labels.Labels {
				return lset("gateway_cache_requests_total", "instance", "gw-a:9090", "site", site, "result", result)
			}
			drop := []time.Duration{0, 20 * time.Minute}
			// images: 91% until minute 20, then 29% (a purge that never
			// refilled, a ttl or max_object_size change...). Over 30m the
			// ratio crosses 50% at 42.5m, so it fires from 72.5m.
			m.add(c("images", "hit"), end, counter(drop, []float64{20, 4}))
			m.add(c("images", "miss"), end, counter(drop, []float64{2, 10}))
			// files: 60% counting revalidated and stale as answered from
			// the cache; 30% if only hit counted.
			m.add(c("files", "hit"), end, steady(3))
			m.add(c("files", "revalidated"), end, steady(2))
			m.add(c("files", "stale"), end, steady(1))
			m.add(c("files", "miss"), end, steady(4))
			// quiet: 6% but 0.32 requests/s, under the floor.
			m.add(c("quiet", "hit"), end, steady(0.02))
			m.add(c("quiet", "miss"), end, steady(0.3))
			// nothing: every answer a miss, so no hit series exists at all.
			m.add(c("nothing", "miss"), end, steady(3))
		},
		checks: []scenarioCheck{
			{at: 25 * time.Minute, want: nil},                                                          // nothing: low from the start, not yet for 30m
			{at: 70 * time.Minute, want: []map[string]string{{"site": "nothing"}}},                     // images: low since 42.5m only
			{at: 76 * time.Minute, want: []map[string]string{{"site": "images"}, {"site": "nothing"}}}, // at 30% it would wait to 80m
		},
	},
	{
		alert: "OSSGatewayCacheMemoryChurn",
		data: func(m *memStorage) {
			const end = 60 * time.Minute
			ev := func(instance, tier string) labels.Labels {
				return lset("gateway_cache_evictions_total", "instance", instance, "tier", tier)
			}
			req := func(instance, result string) labels.Labels {
				return lset("gateway_cache_requests_total", "instance", instance, "site", "images", "result", result)
			}
			// gw-a: 5 memory evictions/s against 3 hits/s: churn.
			m.add(ev("gw-a:9090", "memory"), end, steady(5))
			m.add(req("gw-a:9090", "hit"), end, steady(2))
			m.add(req("gw-a:9090", "revalidated"), end, steady(1))
			m.add(req("gw-a:9090", "miss"), end, steady(1))
			// gw-b: the same evictions, but 20 hits/s: the tier earns its keep.
			m.add(ev("gw-b:9090", "memory"), end, steady(5))
			m.add(req("gw-b:9090", "hit"), end, steady(20))
			// gw-c: evicts more than it serves, but only 0.5/s.
			m.add(ev("gw-c:9090", "memory"), end, steady(0.5))
			m.add(req("gw-c:9090", "hit"), end, steady(0.1))
			// gw-d: the disk tier churns (misses, another alert's business).
			m.add(ev("gw-d:9090", "memory"), end, constant(0))
			m.add(ev("gw-d:9090", "disk"), end, steady(50))
			m.add(req("gw-d:9090", "hit"), end, steady(1))
			// gw-e: evictions and only misses, so no hit series at all.
			m.add(ev("gw-e:9090", "memory"), end, steady(3))
			m.add(req("gw-e:9090", "miss"), end, steady(4))
		},
		checks: []scenarioCheck{
			{at: 20 * time.Minute, want: nil}, // not yet for 30m
			{at: 50 * time.Minute, want: []map[string]string{{"instance": "gw-a:9090"}, {"instance": "gw-e:9090"}}},
		},
	},
}

// firing returns the label sets for which expr held at every evaluation
// from at-for to at: the alerts that are firing at at.
func firing(t testing.TB, m *memStorage, r rulefmt.Rule, at time.Duration) ([]labels.Labels, error) {
	const every = 30 * time.Second
	hold := time.Duration(r.For)
	mat, err := m.rangeEval(t, newEngine(), r.Expr, at-hold, at, every)
	if err != nil {
		return nil, err
	}
	steps := int(hold/every) + 1
	var out []labels.Labels
	for _, s := range mat {
		if len(s.Floats) == steps {
			out = append(out, s.Metric)
		}
	}
	return out, nil
}

// runScenario returns the problems of r on sc's data.
func runScenario(t testing.TB, sc scenario, r rulefmt.Rule) []string {
	m := &memStorage{}
	sc.data(m)
	var problems []string
	for _, ck := range sc.checks {
		got, err := firing(t, m, r, ck.at)
		if err != nil {
			return append(problems, fmt.Sprintf("%s at %v: %v", sc.alert, ck.at, err))
		}
		var gotS, wantS []string
		for _, l := range got {
			sub := map[string]string{}
			if len(ck.want) > 0 {
				for k := range ck.want[0] {
					sub[k] = l.Get(k)
				}
			}
			gotS = append(gotS, fmt.Sprint(sub))
		}
		for _, w := range ck.want {
			wantS = append(wantS, fmt.Sprint(w))
		}
		slices.Sort(gotS)
		slices.Sort(wantS)
		if len(ck.want) == 0 && len(got) > 0 {
			problems = append(problems, fmt.Sprintf("%s at %v: fires for %v, want silence", sc.alert, ck.at, got))
		} else if !slices.Equal(gotS, wantS) {
			problems = append(problems, fmt.Sprintf("%s at %v: fires for %v, want %v", sc.alert, ck.at, gotS, wantS))
		}
	}
	return problems
}

// TestAlertScenarios replays synthetic series through each alert with the
// real PromQL engine: the alert fires where it must, after its for:, and
// stays quiet on healthy, low-volume and old data.
func TestAlertScenarios(t *testing.T) {
	rules := loadAlerts(t)
	covered := map[string]bool{}
	for _, sc := range scenarios {
		covered[sc.alert] = true
		r, ok := rules[sc.alert]
		if !ok {
			t.Errorf("no alert %s", sc.alert)
			continue
		}
		for _, p := range runScenario(t, sc, r) {
			t.Error(p)
		}
	}
	for name := range rules {
		if !covered[name] {
			t.Errorf("alert %s has no scenario in alerts_test.go", name)
		}
	}
}

// TestAlertScenariosCanFail: a rule whose threshold is off by a factor of
// ten, that lost its for: or its traffic floor, or that counts the wrong
// series fails its scenario.
func TestAlertScenariosCanFail(t *testing.T) {
	rules := loadAlerts(t)
	replace := func(old, new string) func(rulefmt.Rule) rulefmt.Rule {
		return func(r rulefmt.Rule) rulefmt.Rule {
			r.Expr = strings.Replace(r.Expr, old, new, 1)
			return r
		}
	}
	mutations := []struct {
		alert, what string
		mutate      func(rulefmt.Rule) rulefmt.Rule
	}{
		{"OSSGatewayHigh5xxRatio", "threshold x10", replace("> 0.05", "> 0.5")},
		{"OSSGatewayCertificateExpiringSoon", "threshold x10", replace("14 * 86400", "140 * 86400")},
		{"OSSGatewayInstanceDown", "no for:", func(r rulefmt.Rule) rulefmt.Rule { r.For = 0; return r }},
		{"OSSGatewayConfigReloadFailed", "inverted", replace(`== 0`, `== 1`)},
		{"OSSGatewayCacheHitRatioLow", "threshold /10", replace("< 0.5", "< 0.05")},
		{"OSSGatewayCacheHitRatioLow", "floor /100", replace("> 1", "> 0.01")},
		{"OSSGatewayCacheHitRatioLow", "only hit counted", func(r rulefmt.Rule) rulefmt.Rule {
			r.Expr = `sum by (site) (rate(gateway_cache_requests_total{result="hit"}[30m])) / sum by (site) (rate(gateway_cache_requests_total[30m])) < 0.5 and sum by (site) (rate(gateway_cache_requests_total[30m])) > 1`
			return r
		}},
		{"OSSGatewayCacheHitRatioLow", "hits over all", func(r rulefmt.Rule) rulefmt.Rule {
			// The obvious form misses a site with no hit series.
			r.Expr = `sum by (site) (rate(gateway_cache_requests_total{result=~"hit|revalidated|stale"}[30m])) / sum by (site) (rate(gateway_cache_requests_total[30m])) < 0.5 and sum by (site) (rate(gateway_cache_requests_total[30m])) > 1`
			return r
		}},
		{"OSSGatewayCacheMemoryChurn", "disk tier", replace(`tier="memory"`, `tier="disk"`)},
		{"OSSGatewayCacheMemoryChurn", "floor /10", replace("> 1", "> 0.1")},
		{"OSSGatewayCacheMemoryChurn", "no hit-less arm", func(r rulefmt.Rule) rulefmt.Rule {
			r.Expr = `sum by (instance) (rate(gateway_cache_evictions_total{tier="memory"}[15m])) > sum by (instance) (rate(gateway_cache_requests_total{result=~"hit|revalidated|stale"}[15m])) and sum by (instance) (rate(gateway_cache_evictions_total{tier="memory"}[15m])) > 1`
			return r
		}},
	}
	scenarioOf := map[string]scenario{}
	for _, sc := range scenarios {
		scenarioOf[sc.alert] = sc
	}
	for _, mu := range mutations {
		orig, ok := rules[mu.alert]
		sc, hasScenario := scenarioOf[mu.alert]
		if !ok || !hasScenario {
			t.Errorf("%s: no such alert or no scenario for it", mu.alert)
			continue
		}
		r := mu.mutate(orig)
		if r.Expr == orig.Expr && r.For == orig.For {
			t.Errorf("%s (%s): the mutation changed nothing; update this test", mu.alert, mu.what)
			continue
		}
		if len(runScenario(t, sc, r)) == 0 {
			t.Errorf("%s (%s): a broken rule still passes its scenario", mu.alert, mu.what)
		}
	}
}
