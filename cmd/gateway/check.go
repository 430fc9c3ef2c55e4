package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/oss-gateway/gateway/check"
)

// cmdCheck is `gateway check -config F`: exit 2 on bad flags or a config
// run would refuse (one line per problem), else print the check table, a
// row as each probe finishes, and exit 1 when any check failed, 0
// otherwise. Package check does the work.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "check [-config gateway.toml] [-offline] [-timeout 30s]",
		`Validate the config exactly as run does: exit 2 with one line per problem
when run would refuse it. Then, unless -offline, probe in parallel: resolve
every endpoint, prove the credentials can read each bucket, report each
domain's certificate and CNAME binding. Each row is printed as its probe
finishes; every probe shares one -timeout. Exit 1 when any row is FAIL.`, stdout, stderr)
	path := fs.String("config", "gateway.toml", "config file")
	offline := fs.Bool("offline", false, "validate the config only: no network")
	timeout := fs.Duration("timeout", check.DefaultTimeout, "bound for all the probes together")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	if *timeout <= 0 {
		return fs.fail("-timeout %v: must be positive", *timeout)
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitUsage
	}
	p := check.NewPrinter(stdout, cfg)
	p.Header()
	if *offline {
		rows := check.ConfigRows(cfg)
		rows[0].Detail += "; -offline: nothing probed"
		for _, r := range rows {
			p.Row(r)
		}
		p.Summary(check.Report{Rows: rows})
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	report := check.Run(ctx, cfg, check.Options{Timeout: *timeout, Progress: p.Row})
	p.Summary(report)
	if report.Failed() {
		return 1
	}
	return 0
}
