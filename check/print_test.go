package check_test

import (
	"bytes"
	"testing"

	"github.com/oss-gateway/gateway/check"
)

// TestPrinter pins the streamed table: columns sized from the config (its
// longest target here is the endpoint host,
// bkt.oss-cn-hangzhou.aliyuncs.com), rows printed as given, and
// Report.Print's summary line.
func TestPrinter(t *testing.T) {
	cfg := parseConfig(t, site("img", `"img.test"`, "bkt", "public", "public", "tls = \"off\"\n"))
	cfg.Path = "gw.toml"
	var out bytes.Buffer
	p := check.NewPrinter(&out, cfg)
	p.Header()
	rows := []check.Row{
		{Site: "-", Check: "config", Target: "gw.toml", Status: check.OK, Detail: "valid"},
		{Site: "img", Check: "bucket", Target: "bkt", Status: check.Fail, Detail: "line one\nline two"},
		{Site: "img", Check: "tls", Target: "img.test", Status: check.Warn, Detail: "soon"},
	}
	for _, r := range rows {
		p.Row(r)
	}
	p.Summary(check.Report{Rows: rows})
	want := "" +
		"SITE  CHECK        TARGET                            STATUS  DETAIL\n" +
		"-     config       gw.toml                           ok      valid\n" +
		"img   bucket       bkt                               FAIL    line one line two\n" +
		"img   tls          img.test                          WARN    soon\n" +
		"3 checks: 1 ok, 1 warnings, 1 failures\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
