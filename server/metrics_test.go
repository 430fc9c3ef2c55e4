package server

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsExistFromTheStart: the reload results and every handshake
// reason are series before anything happened, the loaded config counts as
// a good load, and build info carries the version.
func TestMetricsExistFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	start := time.Now()
	m := NewMetrics(reg, "v-test")
	if n := testutil.CollectAndCount(m.reloads); n != 2 {
		t.Errorf("%d reload series, want success and error", n)
	}
	if n := testutil.CollectAndCount(m.handshakeErrors); n != len(handshakeReasons()) {
		t.Errorf("%d handshake series, want %d", n, len(handshakeReasons()))
	}
	if v := testutil.ToFloat64(m.lastReloadOK); v != 1 {
		t.Errorf("last reload successful = %v at start, want 1", v)
	}
	if v := testutil.ToFloat64(m.lastReloadTime); v < float64(start.Unix()) {
		t.Errorf("last reload time = %v, before the start %v", v, start.Unix())
	}
	if v := testutil.ToFloat64(m.buildInfo.WithLabelValues("v-test", Revision(), runtime.Version())); v != 1 {
		t.Errorf("build info = %v, want 1", v)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	for _, n := range []string{"gateway_build_info", "gateway_config_reloads_total", "gateway_tls_handshake_errors_total", "go_goroutines"} {
		if !names[n] {
			t.Errorf("%s not gathered", n)
		}
	}
}

// TestReloadedCountsAndRecords: a refused reload counts as an error and
// clears last_reload_successful without moving the success time; a good one
// sets both again.
func TestReloadedCountsAndRecords(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry(), "test")
	before := testutil.ToFloat64(m.lastReloadTime)
	m.reloaded(errors.New("bad file"), time.Unix(1e9, 0))
	if v := testutil.ToFloat64(m.reloads.WithLabelValues("error")); v != 1 {
		t.Errorf("errors = %v", v)
	}
	if v := testutil.ToFloat64(m.lastReloadOK); v != 0 {
		t.Errorf("successful after a refusal = %v", v)
	}
	if v := testutil.ToFloat64(m.lastReloadTime); v != before {
		t.Errorf("success time moved on a refusal: %v -> %v", before, v)
	}
	m.reloaded(nil, time.Unix(2e9, 0))
	if v := testutil.ToFloat64(m.reloads.WithLabelValues("success")); v != 1 {
		t.Errorf("successes = %v", v)
	}
	if ok, at := testutil.ToFloat64(m.lastReloadOK), testutil.ToFloat64(m.lastReloadTime); ok != 1 || at != 2e9 {
		t.Errorf("after a good reload: successful %v at %v", ok, at)
	}
}
