package deploy

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// A tiny in-memory Prometheus: series built by the tests, queried with the
// real PromQL engine. It lets the alert rules and dashboard queries run on
// data shaped like the gateway's.

const scrapeStep = 15 * time.Second

type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

type memSeries struct {
	lset    labels.Labels
	samples []chunks.Sample
}

type memStorage struct{ series []memSeries }

// add appends a series sampled every scrapeStep from 0 to end with value(t).
func (m *memStorage) add(lset labels.Labels, end time.Duration, value func(t time.Duration) float64) {
	var ss []chunks.Sample
	for t := time.Duration(0); t <= end; t += scrapeStep {
		ss = append(ss, fsample{t: t.Milliseconds(), f: value(t)})
	}
	m.series = append(m.series, memSeries{lset: lset, samples: ss})
}

type seriesSet struct {
	s []storage.Series
	i int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i <= len(s.s) }
func (s *seriesSet) At() storage.Series                { return s.s[s.i-1] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

func (m *memStorage) queryable() storage.Queryable {
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []memSeries
		next:
			for _, s := range m.series {
				for _, mt := range ms {
					if !mt.Matches(s.lset.Get(mt.Name)) {
						continue next
					}
				}
				out = append(out, s)
			}
			sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lset, out[j].lset) < 0 })
			set := &seriesSet{}
			for _, s := range out {
				set.s = append(set.s, storage.NewListSeries(s.lset, s.samples))
			}
			return set
		},
	}}
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:    10_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
		Parser:        parser.NewParser(parser.Options{}),
	})
}

// instant evaluates expr at t.
func (m *memStorage) instant(t testing.TB, eng *promql.Engine, expr string, at time.Duration) (promql.Vector, error) {
	t.Helper()
	q, err := eng.NewInstantQuery(context.Background(), m.queryable(), nil, expr, time.UnixMilli(at.Milliseconds()))
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{{F: v.V, T: v.T}}, nil
	}
	return nil, nil
}

// rangeEval evaluates expr every step from start to end.
func (m *memStorage) rangeEval(t testing.TB, eng *promql.Engine, expr string, start, end, step time.Duration) (promql.Matrix, error) {
	t.Helper()
	q, err := eng.NewRangeQuery(context.Background(), m.queryable(), nil, expr,
		time.UnixMilli(start.Milliseconds()), time.UnixMilli(end.Milliseconds()), step)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		return nil, res.Err
	}
	mat, err := res.Matrix()
	return mat, err
}

// counter returns a counter's value at t for piecewise-constant rates:
// rates[i] per second from steps[i] on (steps[0] must be 0).
func counter(steps []time.Duration, rates []float64) func(time.Duration) float64 {
	return func(t time.Duration) float64 {
		v := 0.0
		for i, from := range steps {
			to := t
			if i+1 < len(steps) && steps[i+1] < t {
				to = steps[i+1]
			}
			if to > from {
				v += rates[i] * (to - from).Seconds()
			}
		}
		return v
	}
}

func steady(perSec float64) func(time.Duration) float64 {
	return counter([]time.Duration{0}, []float64{perSec})
}

func constant(v float64) func(time.Duration) float64 {
	return func(time.Duration) float64 { return v }
}
