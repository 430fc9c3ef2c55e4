package deploy

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
)

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ H, W, X, Y int }

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	GridPos    gridPos  `json:"gridPos"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	RefID        string `json:"refId"`
	Datasource   *dsRef `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *dsRef          `json:"datasource"`
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

// The metrics the dashboard must show (the documented table plus the process
// health the deployment brief asks for).
var dashboardMetrics = []string{
	"gateway_requests_total", "gateway_request_duration_seconds_bucket", "gateway_response_bytes_total",
	"gateway_request_bytes_total", "gateway_inflight_requests", "gateway_upstream_requests_total",
	"gateway_upstream_duration_seconds_bucket", "gateway_upstream_retries_total", "gateway_denied_total",
	"gateway_tls_certificate_expiry_timestamp_seconds", "gateway_config_reloads_total", "gateway_build_info",
	"gateway_cache_requests_total", "gateway_cache_bytes", "gateway_cache_evictions_total",
	"go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total",
}

func loadDashboard(t testing.TB) *dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "oss-gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/oss-gateway.json: %v", err)
	}
	return &d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// grafanaVars stands in for Grafana's template variables so that the
// expressions become plain PromQL.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "${__rate_interval}", "1m",
	"$__interval", "1m", "$__range", "1h",
	"${site}", ".*", "$site", ".*",
	"${instance}", ".*", "$instance", ".*",
)

var labelValuesRE = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// TestGrafanaDashboard: the dashboard is valid JSON for schema ~39, has the
// datasource and site variables, unique ids, no overlapping panels, and every
// panel queries metrics and labels the gateway really exports.
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d, want about 39", d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf(`want a variable "datasource" of type datasource for prometheus, got %+v`, v)
	}
	c := newChecker(t)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := variableQuery(v)
		m := labelValuesRE.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		c.check("variable "+v.Name, fmt.Sprintf("count by (%s) (%s)", m[2], m[1]))
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not query the ${datasource} variable", v.Name)
		}
	}
	if q := variableQuery(vars["site"]); q != "label_values(gateway_requests_total, site)" {
		t.Errorf("variable site: query %q, want label_values(gateway_requests_total, site)", q)
	}

	ids := map[int]string{}
	panels := allPanels(d.Panels)
	for i, p := range panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for _, q := range panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", q.Title, p.Title)
			}
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("row %q has queries", p.Title)
			}
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q %s", p.Title, tg.RefID)
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: empty expr", where)
				continue
			}
			if refs[tg.RefID] {
				t.Errorf("%s: refId used twice", where)
			}
			refs[tg.RefID] = true
			ds := tg.Datasource
			if ds == nil {
				ds = p.Datasource
			}
			if ds == nil || ds.UID != "${datasource}" {
				t.Errorf("%s: datasource %+v, want uid ${datasource} (a fixed uid breaks import)", where, ds)
			}
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("%s: %q uses an unknown variable", where, tg.Expr)
				continue
			}
			out := c.check(where, expr)
			for _, m := range legendLabelRE.FindAllStringSubmatch(tg.LegendFormat, -1) {
				if !out[m[1]] {
					t.Errorf("%s: legend uses {{%s}}, but the result only has %v", where, m[1], out.sorted())
				}
			}
		}
	}
	for _, p := range c.problems {
		t.Error(p)
	}
	for _, m := range dashboardMetrics {
		if !c.used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

func variableQuery(v variable) string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// registryStorage turns the gateway's registry into 30 minutes of series:
// counters and histogram buckets grow steadily, gauges hold their value.
func registryStorage(t testing.TB, end time.Duration) *memStorage {
	g := gatewayRegistry(t)
	m := &memStorage{}
	target := []string{"job", "oss-gateway", "instance", "gw-a:9090"}
	for _, s := range loadScrape(t).ScrapeConfigs {
		for _, sc := range s.StaticConfigs {
			for k, v := range sc.Labels {
				target = append(target, k, v)
			}
		}
	}
	ls := func(name string, mt *dto.Metric, extra ...string) labels.Labels {
		kv := append([]string{"__name__", name}, target...)
		for _, lp := range mt.GetLabel() {
			kv = append(kv, lp.GetName(), lp.GetValue())
		}
		return labels.FromStrings(append(kv, extra...)...)
	}
	for _, f := range g.families {
		name := f.GetName()
		for _, mt := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				m.add(ls(name, mt), end, steady(mt.GetCounter().GetValue()))
			case dto.MetricType_GAUGE:
				v := mt.GetGauge().GetValue()
				if name == "gateway_tls_certificate_expiry_timestamp_seconds" {
					v = end.Seconds() + 30*86400
				}
				m.add(ls(name, mt), end, constant(v))
			case dto.MetricType_HISTOGRAM:
				bs := mt.GetHistogram().GetBucket()
				for i, b := range bs {
					m.add(ls(name+"_bucket", mt, "le", strconv.FormatFloat(b.GetUpperBound(), 'f', -1, 64)), end, steady(float64(i+1)))
				}
				n := float64(len(bs) + 1)
				m.add(ls(name+"_bucket", mt, "le", "+Inf"), end, steady(n))
				m.add(ls(name+"_count", mt), end, steady(n))
				m.add(ls(name+"_sum", mt), end, steady(0.05*n))
			case dto.MetricType_SUMMARY:
				for _, q := range mt.GetSummary().GetQuantile() {
					m.add(ls(name, mt, "quantile", strconv.FormatFloat(q.GetQuantile(), 'f', -1, 64)), end, constant(q.GetValue()))
				}
				m.add(ls(name+"_count", mt), end, steady(1))
				m.add(ls(name+"_sum", mt), end, steady(0.001))
			default:
				m.add(ls(name, mt), end, constant(mt.GetUntyped().GetValue()))
			}
		}
	}
	m.add(labels.FromStrings(append([]string{"__name__", "up"}, target...)...), end, constant(1))
	return m
}

// TestGrafanaQueriesReturnData runs every panel query with the PromQL engine
// on series shaped exactly like the gateway's registry: each must return
// data, and each legend label must be set on what it returns.
func TestGrafanaQueriesReturnData(t *testing.T) {
	const end = 30 * time.Minute
	d := loadDashboard(t)
	m := registryStorage(t, end)
	eng := newEngine()
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q %s", p.Title, tg.RefID)
			vec, err := m.instant(t, eng, grafanaVars.Replace(tg.Expr), end)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if len(vec) == 0 {
				t.Errorf("%s: %s returns nothing on the gateway's series", where, tg.Expr)
			}
			for _, s := range vec {
				if !isFinite(s.F) {
					t.Errorf("%s: %s gives %v", where, s.Metric, s.F)
				}
				for _, l := range legendLabelRE.FindAllStringSubmatch(tg.LegendFormat, -1) {
					if s.Metric.Get(l[1]) == "" {
						t.Errorf("%s: legend {{%s}} is empty for %s", where, l[1], s.Metric)
					}
				}
			}
		}
	}
}

// panelByTitle returns the dashboard's panel with that title.
func panelByTitle(t testing.TB, d *dashboard, title string) panel {
	t.Helper()
	for _, p := range allPanels(d.Panels) {
		if p.Title == title {
			return p
		}
	}
	t.Fatalf("the dashboard has no panel %q", title)
	return panel{}
}

// TestGrafanaCacheHitRatio runs the hit ratio panel on series of known
// ratios: revalidated and stale answers count as answered from the cache,
// and a site whose answers are all hits, or all misses, still has a line.
func TestGrafanaCacheHitRatio(t *testing.T) {
	const end = 30 * time.Minute
	p := panelByTitle(t, loadDashboard(t), "Cache hit ratio by site")
	if len(p.Targets) != 1 {
		t.Fatalf("want one query, got %d", len(p.Targets))
	}
	m := &memStorage{}
	c := func(site, result string, perSec float64) {
		m.add(lset("gateway_cache_requests_total", "instance", "gw-a:9090", "site", site, "result", result), end, steady(perSec))
	}
	c("images", "hit", 6)
	c("images", "revalidated", 1.5)
	c("images", "stale", 0.5)
	c("images", "miss", 2)
	c("allhit", "hit", 3)
	c("allmiss", "miss", 3)
	// A second instance of images doubles its traffic, not its ratio.
	m.add(lset("gateway_cache_requests_total", "instance", "gw-b:9090", "site", "images", "result", "hit"), end, steady(8))
	m.add(lset("gateway_cache_requests_total", "instance", "gw-b:9090", "site", "images", "result", "miss"), end, steady(2))
	want := map[string]float64{"images": 0.8, "allhit": 1, "allmiss": 0}

	vec, err := m.instant(t, newEngine(), grafanaVars.Replace(p.Targets[0].Expr), end)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range vec {
		got[s.Metric.Get("site")] = s.F
	}
	for site, w := range want {
		g, ok := got[site]
		if !ok {
			t.Errorf("site %s: no ratio (got %v)", site, got)
			continue
		}
		if math.Abs(g-w) > 1e-9 {
			t.Errorf("site %s: ratio %v, want %v", site, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("ratios for %v, want the sites of %v", got, want)
	}
}

// TestGrafanaCacheEvictions: the evictions panel splits by tier and
// instance, and shows the hits the churn alert compares them with.
func TestGrafanaCacheEvictions(t *testing.T) {
	const end = 30 * time.Minute
	p := panelByTitle(t, loadDashboard(t), "Cache evictions by tier")
	m := &memStorage{}
	m.add(lset("gateway_cache_evictions_total", "instance", "gw-a:9090", "tier", "memory"), end, steady(5))
	m.add(lset("gateway_cache_evictions_total", "instance", "gw-a:9090", "tier", "disk"), end, steady(0.5))
	for result, rate := range map[string]float64{"hit": 2, "revalidated": 0.5, "stale": 0.5, "miss": 7} {
		m.add(lset("gateway_cache_requests_total", "instance", "gw-a:9090", "site", "images", "result", result), end, steady(rate))
	}
	want := map[string]float64{"memory": 5, "disk": 0.5, "hits": 3}
	got := map[string]float64{}
	for _, tg := range p.Targets {
		vec, err := m.instant(t, newEngine(), grafanaVars.Replace(tg.Expr), end)
		if err != nil {
			t.Fatalf("%s: %v", tg.RefID, err)
		}
		for _, s := range vec {
			k := s.Metric.Get("tier")
			if k == "" {
				k = "hits"
			}
			got[k] += s.F
		}
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-9 {
			t.Errorf("%s: %v per second, want %v (all: %v)", k, got[k], w, got)
		}
	}
}
