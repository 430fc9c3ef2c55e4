package deploy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/oss-gateway/gateway/server"
)

// The tests of this package, by file:
//
//   - deploy_test.go (this file): the gateway's real registry (server.NewMetrics)
//     and a PromQL checker over it: every metric name, label, label value
//     and by/on/group clause used by the alerts and the dashboard must exist
//     on the series it is applied to (TestRegistryMatchesDesign,
//     TestCheckerCatchesMistakes).
//   - alerts_test.go: prometheus/alerts.yml parsed with Prometheus's rulefmt,
//     the promised alerts, for:, severity, annotations whose $labels exist,
//     and synthetic scenarios run through the PromQL engine (TestAlertRules,
//     TestAlertScenarios, TestAlertScenariosCanFail).
//   - grafana_test.go: grafana/oss-gateway.json: variables, unique ids,
//     layout, datasource references, every query checked and run on series
//     shaped like the registry (TestGrafanaDashboard,
//     TestGrafanaQueriesReturnData).
//   - systemd_test.go: gateway.service parsed and checked directive by
//     directive, TimeoutStopSec against shutdown_delay + shutdown_grace,
//     systemd-analyze verify and security when installed.
//   - docker_test.go: the Dockerfile checked statically, and its go build
//     line run for real: a static, stripped ELF that prints the version
//     passed in.
//   - docs_test.go: ECS.md's TOML blocks through config.Parse, its RAM
//     policies against the config they serve, its config key names, and
//     prometheus/scrape.yml against the admin port.
//   - storage_test.go: the in-memory series store the PromQL engine reads.

// designMetrics is the documented metric table (README, Metrics): name, type, labels.
var designMetrics = map[string]struct {
	typ    dto.MetricType
	labels []string
}{
	"gateway_requests_total":                               {dto.MetricType_COUNTER, []string{"site", "method", "code"}},
	"gateway_request_duration_seconds":                     {dto.MetricType_HISTOGRAM, []string{"site", "method"}},
	"gateway_response_bytes_total":                         {dto.MetricType_COUNTER, []string{"site"}},
	"gateway_request_bytes_total":                          {dto.MetricType_COUNTER, []string{"site"}},
	"gateway_inflight_requests":                            {dto.MetricType_GAUGE, []string{"site"}},
	"gateway_upstream_requests_total":                      {dto.MetricType_COUNTER, []string{"site", "endpoint", "code"}},
	"gateway_upstream_duration_seconds":                    {dto.MetricType_HISTOGRAM, []string{"site", "endpoint"}},
	"gateway_upstream_retries_total":                       {dto.MetricType_COUNTER, []string{"site", "reason"}},
	"gateway_denied_total":                                 {dto.MetricType_COUNTER, []string{"site", "reason"}},
	"gateway_tls_certificate_expiry_timestamp_seconds":     {dto.MetricType_GAUGE, []string{"domain"}},
	"gateway_config_reloads_total":                         {dto.MetricType_COUNTER, []string{"result"}},
	"gateway_config_last_reload_successful":                {dto.MetricType_GAUGE, nil},
	"gateway_config_last_reload_success_timestamp_seconds": {dto.MetricType_GAUGE, nil},
	"gateway_tls_handshake_errors_total":                   {dto.MetricType_COUNTER, []string{"reason"}},
	"gateway_build_info":                                   {dto.MetricType_GAUGE, []string{"version", "revision", "goversion"}},
	"gateway_cache_requests_total":                         {dto.MetricType_COUNTER, []string{"site", "result"}},
	"gateway_cache_bytes":                                  {dto.MetricType_GAUGE, []string{"tier"}},
	"gateway_cache_evictions_total":                        {dto.MetricType_COUNTER, []string{"tier"}},
}

// labelValues are the label values the metrics contract fixes, per metric family and
// label. Selectors that compare these labels must name one of them, and the
// synthetic series use all of them.
var labelValues = map[string]map[string][]string{
	"gateway_upstream_requests_total":    {"endpoint": {"primary", "fallback"}},
	"gateway_upstream_duration_seconds":  {"endpoint": {"primary", "fallback"}},
	"gateway_upstream_retries_total":     {"reason": {"status", "reset", "dial", "timeout", "body_cut"}},
	"gateway_denied_total":               {"reason": {"referer", "cors", "ip", "rate_limit", "method", "url_auth", "path", "header", "process"}},
	"gateway_config_reloads_total":       {"result": {"success", "error"}},
	"gateway_cache_requests_total":       {"result": {"hit", "miss", "revalidated", "stale"}},
	"gateway_cache_bytes":                {"tier": {"memory", "disk"}},
	"gateway_cache_evictions_total":      {"tier": {"memory", "disk"}},
	"gateway_tls_handshake_errors_total": {"reason": {"eof", "timeout", "unknown_server_name", "protocol_version", "no_shared_cipher", "not_tls", "client_rejected_certificate", "other"}},
}

// sampleValues are the values the synthetic series use for the other labels.
var sampleValues = map[string][]string{
	"site":      {"images", "files"},
	"method":    {"GET", "HEAD"},
	"code":      {"200", "304", "404", "503"},
	"domain":    {"img.example.com"},
	"version":   {"test"},
	"goversion": {runtime.Version()},
	"revision":  {"unknown"},
}

// series is what the checker knows of one series name (a family, or a
// histogram's _bucket/_sum/_count).
type series struct {
	family string
	typ    dto.MetricType
	labels map[string]bool
}

// gatewayMetrics is the gateway's registry, gathered once: its families with
// one sample for every combination of the label values above, and the series
// names with their labels.
type gatewayMetrics struct {
	families []*dto.MetricFamily
	series   map[string]*series
}

var (
	registryOnce sync.Once
	registry     *gatewayMetrics
	registryErr  error
)

// recorder is a Registerer that remembers what server.NewMetrics registers,
// so that every vector can be given samples before gathering.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func loadRegistry() (*gatewayMetrics, error) {
	rec := &recorder{Registry: prometheus.NewRegistry()}
	server.NewMetrics(rec, "test")
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		var descs []*prometheus.Desc
		for d := range ch {
			descs = append(descs, d)
		}
		touch := vectorTouch(c)
		if touch == nil {
			continue // the Go and process collectors
		}
		if len(descs) != 1 {
			return nil, fmt.Errorf("a metric vector describes %d metrics, want 1", len(descs))
		}
		m := descRE.FindStringSubmatch(descs[0].String())
		if m == nil {
			return nil, fmt.Errorf("cannot read the descriptor %s", descs[0])
		}
		name, names := m[1], strings.Split(m[2], ",")
		if m[2] == "" {
			names = nil
		}
		var choices [][]string
		for _, l := range names {
			l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")
			vals := labelValues[name][l]
			if vals == nil {
				vals = sampleValues[l]
			}
			if vals == nil {
				return nil, fmt.Errorf("%s: no sample values for label %q (add it to sampleValues)", name, l)
			}
			choices = append(choices, vals)
		}
		for _, combo := range product(choices) {
			touch(combo)
		}
	}
	fams, err := rec.Gather()
	if err != nil {
		return nil, err
	}
	g := &gatewayMetrics{families: fams, series: map[string]*series{}}
	for _, f := range fams {
		ls := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				ls[lp.GetName()] = true
			}
		}
		add := func(name string, extra ...string) {
			s := &series{family: f.GetName(), typ: f.GetType(), labels: map[string]bool{}}
			for l := range ls {
				s.labels[l] = true
			}
			for _, l := range extra {
				s.labels[l] = true
			}
			g.series[name] = s
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			add(f.GetName()+"_bucket", "le")
			add(f.GetName() + "_sum")
			add(f.GetName() + "_count")
		case dto.MetricType_SUMMARY:
			add(f.GetName(), "quantile")
			add(f.GetName() + "_sum")
			add(f.GetName() + "_count")
		default:
			add(f.GetName())
		}
	}
	return g, nil
}

// vectorTouch returns a function creating (and counting once in) the child
// of c with the given label values, or nil when c is not a vector.
func vectorTouch(c prometheus.Collector) func([]string) {
	switch v := c.(type) {
	case *prometheus.CounterVec:
		return func(lv []string) { v.WithLabelValues(lv...).Add(1) }
	case *prometheus.GaugeVec:
		return func(lv []string) { v.WithLabelValues(lv...).Set(1) }
	case *prometheus.HistogramVec:
		return func(lv []string) { v.WithLabelValues(lv...).Observe(0.05) }
	case *prometheus.SummaryVec:
		return func(lv []string) { v.WithLabelValues(lv...).Observe(0.05) }
	}
	return nil
}

func product(choices [][]string) [][]string {
	out := [][]string{nil}
	for _, vals := range choices {
		var next [][]string
		for _, prefix := range out {
			for _, v := range vals {
				next = append(next, append(slices.Clone(prefix), v))
			}
		}
		out = next
	}
	return out
}

func gatewayRegistry(t testing.TB) *gatewayMetrics {
	t.Helper()
	registryOnce.Do(func() { registry, registryErr = loadRegistry() })
	if registryErr != nil {
		t.Fatalf("gateway registry: %v", registryErr)
	}
	return registry
}

// TestRegistryMatchesDesign anchors everything else here: the registry the
// checks use is the documented one, names, types and labels.
func TestRegistryMatchesDesign(t *testing.T) {
	g := gatewayRegistry(t)
	for name, want := range designMetrics {
		var fam *dto.MetricFamily
		for _, f := range g.families {
			if f.GetName() == name {
				fam = f
			}
		}
		if fam == nil {
			t.Errorf("the gateway does not export %s", name)
			continue
		}
		if fam.GetType() != want.typ {
			t.Errorf("%s is a %v, the contract says %v", name, fam.GetType(), want.typ)
		}
		var got []string
		for l := range g.series[seriesName(name, want.typ)].labels {
			if l != "le" {
				got = append(got, l)
			}
		}
		sort.Strings(got)
		w := slices.Sorted(slices.Values(want.labels))
		if !slices.Equal(got, w) {
			t.Errorf("%s has labels %v, the contract says %v", name, got, w)
		}
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total", "go_memstats_heap_inuse_bytes", "process_open_fds", "process_max_fds"} {
		if g.series[n] == nil {
			t.Errorf("the Go/process collectors do not export %s", n)
		}
	}
}

func seriesName(family string, typ dto.MetricType) string {
	if typ == dto.MetricType_HISTOGRAM {
		return family + "_bucket"
	}
	return family
}

// scrapeJobs reads prometheus/scrape.yml: its job names and the labels its
// targets add to every series.
type scrapeConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		Scheme        string `yaml:"scheme"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func loadScrape(t testing.TB) *scrapeConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("prometheus", "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var sc scrapeConfig
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&sc); err != nil {
		t.Fatalf("prometheus/scrape.yml: %v", err)
	}
	return &sc
}

// checker checks PromQL against the gateway's series. Its methods collect
// problems instead of failing, so that tests can also prove it catches
// mistakes.
type checker struct {
	g            *gatewayMetrics
	jobs         []string        // scrape job names: the values job may take
	targetLabels map[string]bool // labels every scraped series carries
	problems     []string
	used         map[string]bool // series names referenced
}

func newChecker(t testing.TB) *checker {
	t.Helper()
	sc := loadScrape(t)
	c := &checker{g: gatewayRegistry(t), targetLabels: map[string]bool{"job": true, "instance": true}, used: map[string]bool{}}
	for _, j := range sc.ScrapeConfigs {
		c.jobs = append(c.jobs, j.JobName)
		for _, s := range j.StaticConfigs {
			for l := range s.Labels {
				c.targetLabels[l] = true
			}
		}
	}
	return c
}

func (c *checker) errorf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

type labelSet map[string]bool

func (s labelSet) sorted() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range s {
			if !yield(k) {
				return
			}
		}
	})
}

// check parses expr and returns the labels its result carries.
func (c *checker) check(where, expr string) labelSet {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		c.errorf("%s: %v", where, err)
		return nil
	}
	return c.labels(where, e)
}

func (c *checker) labels(where string, e parser.Expr) labelSet {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return c.selector(where, n)
	case *parser.MatrixSelector:
		return c.labels(where, n.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(where, n.Expr)
	case *parser.ParenExpr:
		return c.labels(where, n.Expr)
	case *parser.UnaryExpr:
		return c.labels(where, n.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(where, n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return labelSet{}
	case *parser.AggregateExpr:
		in := c.labels(where, n.Expr)
		if n.Param != nil {
			c.labels(where, n.Param)
		}
		if n.Without {
			out := copySet(in)
			for _, l := range n.Grouping {
				delete(out, l)
			}
			return out
		}
		for _, l := range n.Grouping {
			if !in[l] {
				c.errorf("%s: %s by (%s): its input %s has no label %q", where, n.Op, strings.Join(n.Grouping, ", "), n.Expr, l)
			}
		}
		switch n.Op {
		case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO:
			return in
		}
		out := labelSet{}
		for _, l := range n.Grouping {
			out[l] = true
		}
		return out
	case *parser.Call:
		var args []labelSet
		for _, a := range n.Args {
			args = append(args, c.labels(where, a))
		}
		switch n.Func.Name {
		case "histogram_quantile":
			in := args[1]
			if !in["le"] {
				c.errorf("%s: histogram_quantile over %s, which has no le label (sum by (..., le) a _bucket series)", where, n.Args[1])
			}
			out := copySet(in)
			delete(out, "le")
			return out
		case "label_replace", "label_join":
			out := copySet(args[0])
			if s, ok := n.Args[1].(*parser.StringLiteral); ok {
				out[s.Val] = true
			}
			return out
		}
		for i, a := range n.Args {
			if t := a.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
				return args[i]
			}
		}
		return labelSet{}
	case *parser.BinaryExpr:
		l, r := c.labels(where, n.LHS), c.labels(where, n.RHS)
		ls, rs := n.LHS.Type() == parser.ValueTypeScalar, n.RHS.Type() == parser.ValueTypeScalar
		switch {
		case ls && rs:
			return labelSet{}
		case ls:
			return r
		case rs:
			return l
		}
		vm := n.VectorMatching
		if n.Op == parser.LOR {
			out := labelSet{}
			for k := range l {
				if r[k] {
					out[k] = true
				}
			}
			return out
		}
		if vm.On {
			for _, m := range vm.MatchingLabels {
				if !l[m] || !r[m] {
					c.errorf("%s: on(%s) but one side of %s lacks %q", where, strings.Join(vm.MatchingLabels, ", "), n, m)
				}
			}
		} else {
			lm, rm := copySet(l), copySet(r)
			for _, m := range vm.MatchingLabels {
				delete(lm, m)
				delete(rm, m)
			}
			if vm.Card != parser.CardOneToOne {
				// group_left/right: the "one" side's labels must all be on the "many" side.
				many, one := lm, rm
				if vm.Card == parser.CardOneToMany {
					many, one = rm, lm
				}
				for k := range one {
					if !many[k] {
						c.errorf("%s: the sides of %s never match: %v vs %v", where, n, lm.sorted(), rm.sorted())
						break
					}
				}
			} else if !slices.Equal(lm.sorted(), rm.sorted()) {
				c.errorf("%s: the sides of %s never match: labels %v vs %v", where, n, lm.sorted(), rm.sorted())
			}
		}
		if n.Op == parser.LAND || n.Op == parser.LUNLESS {
			return l
		}
		var out labelSet
		switch vm.Card {
		case parser.CardOneToOne:
			if vm.On {
				out = labelSet{}
				for _, m := range vm.MatchingLabels {
					out[m] = true
				}
			} else {
				out = copySet(l)
				for _, m := range vm.MatchingLabels {
					delete(out, m)
				}
			}
		case parser.CardManyToOne:
			out = copySet(l)
		case parser.CardOneToMany:
			out = copySet(r)
		default:
			out = copySet(l)
		}
		for _, m := range vm.Include {
			out[m] = true
		}
		return out
	}
	c.errorf("%s: the checker does not know %T (%s); extend checker.labels", where, e, e)
	return labelSet{}
}

func (c *checker) selector(where string, vs *parser.VectorSelector) labelSet {
	name := vs.Name
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	if name == "" {
		c.errorf("%s: %s selects no metric by name", where, vs)
		return labelSet{}
	}
	known := map[string]bool{}
	switch name {
	case "up":
		// synthesised by Prometheus for every target
	default:
		s := c.g.series[name]
		if s == nil {
			c.errorf("%s: the gateway exports no metric %q", where, name)
			return labelSet{}
		}
		for l := range s.labels {
			known[l] = true
		}
	}
	c.used[name] = true
	for l := range c.targetLabels {
		known[l] = true
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			continue
		}
		if !known[m.Name] {
			c.errorf("%s: %s has no label %q (it has %v)", where, name, m.Name, labelSet(known).sorted())
			continue
		}
		c.matcherValues(where, name, m)
	}
	return known
}

// matcherValues checks = and =~ matchers on labels whose values are fixed.
func (c *checker) matcherValues(where, name string, m *labels.Matcher) {
	if m.Type != labels.MatchEqual && m.Type != labels.MatchRegexp {
		return
	}
	var allowed []string
	switch {
	case m.Name == "job":
		allowed = c.jobs
	case m.Name == "code":
		allowed = append(allowed, "0")
		for code := 100; code < 600; code++ {
			allowed = append(allowed, strconv.Itoa(code))
		}
	default:
		fam := name
		if s := c.g.series[name]; s != nil {
			fam = s.family
		}
		allowed = labelValues[fam][m.Name]
	}
	if allowed == nil {
		return
	}
	for _, v := range allowed {
		if m.Matches(v) {
			return
		}
	}
	c.errorf("%s: %s{%s} matches none of the values %s can take (%s)", where, name, m, m.Name, strings.Join(allowed[:min(len(allowed), 8)], ", "))
}

func copySet(s labelSet) labelSet {
	out := labelSet{}
	for k := range s {
		out[k] = true
	}
	return out
}

// templateLabels finds {{ $labels.x }} (alert annotations) or {{x}} (Grafana
// legends) references.
var (
	alertLabelRE  = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	legendLabelRE = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// TestCheckerCatchesMistakes proves the checks below can fail: each broken
// expression must produce a problem, and the sound one none.
func TestCheckerCatchesMistakes(t *testing.T) {
	bad := map[string]string{
		"renamed metric":           `rate(gateway_request_total[5m])`,
		"unknown label":            `sum by (domain) (rate(gateway_requests_total[5m]))`,
		"label not on that metric": `gateway_denied_total{endpoint="primary"}`,
		"bad enum value":           `increase(gateway_config_reloads_total{result="failure"}[15m]) > 0`,
		"bad retry reason":         `rate(gateway_upstream_retries_total{reason="timeouts"}[5m])`,
		"no such status":           `gateway_requests_total{code=~"6.."}`,
		"wrong job":                `up{job="gateway"} == 0`,
		"quantile without le":      `histogram_quantile(0.99, sum by (site) (rate(gateway_request_duration_seconds_bucket[5m])))`,
		"sides never match":        `sum by (site) (rate(gateway_requests_total[5m])) / sum by (site, reason) (rate(gateway_denied_total[5m]))`,
		"on() label missing":       `rate(gateway_requests_total[5m]) / on (domain) gateway_tls_certificate_expiry_timestamp_seconds`,
		"not PromQL":               `sum by site (gateway_requests_total`,
	}
	for name, expr := range bad {
		c := newChecker(t)
		c.check(name, expr)
		if len(c.problems) == 0 {
			t.Errorf("%s: %s passed the checker", name, expr)
		}
	}
	c := newChecker(t)
	out := c.check("good", `sum by (site) (rate(gateway_requests_total{code=~"5..", job="oss-gateway"}[5m])) / sum by (site) (rate(gateway_requests_total[5m]))`)
	if len(c.problems) != 0 || !slices.Equal(out.sorted(), []string{"site"}) {
		t.Errorf("sound expression: problems %v, labels %v", c.problems, out.sorted())
	}
	out = c.check("good", `histogram_quantile(0.99, sum by (site, endpoint, le) (rate(gateway_upstream_duration_seconds_bucket{endpoint="fallback"}[5m])))`)
	if len(c.problems) != 0 || !slices.Equal(out.sorted(), []string{"endpoint", "site"}) {
		t.Errorf("sound expression: problems %v, labels %v", c.problems, out.sorted())
	}
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
