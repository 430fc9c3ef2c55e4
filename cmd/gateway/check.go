package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/oss-gateway/gateway/check"
	"github.com/oss-gateway/gateway/config"
)

// cmdCheck is `gateway check -config F`: exit 2 on bad flags or a bad
// config (one line per problem), else print the check table and exit 1 when
// any check failed, 0 otherwise. Package check does the work.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "gateway.toml", "config file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway check: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err) // one line per problem
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	report := check.Run(ctx, cfg, check.Options{})
	report.Print(stdout)
	if report.Failed() {
		return 1
	}
	return 0
}
