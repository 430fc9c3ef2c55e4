// Command gateway serves Alibaba Cloud OSS buckets behind custom domains.
// It only parses flags and wires packages together; see README.md for the
// command line it implements.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/demo"
	"github.com/oss-gateway/gateway/proxy"
	"github.com/oss-gateway/gateway/server"
)

// version and commit are set at build time with -ldflags "-X main.version=...".
var (
	version = "dev"
	commit  = ""
)

// exitUsage is the exit status for bad flags or a bad config.
const exitUsage = 2

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stdout, stderr)
	case "demo":
		return cmdDemo(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "sign":
		return cmdSign(args, stdout, stderr)
	case "cname":
		return cmdCname(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "gateway %s commit %s %s\n", version, buildCommit(), runtime.Version())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "gateway: unknown command %q\n", cmd)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: gateway [command] [flags]

commands:
  run -config gateway.toml   serve (the default command)
  demo                       serve in front of a built-in OSS emulator on 127.0.0.1
  check -config F            check endpoints, credentials, buckets, certificates, CNAMEs
  sign -config F -url URL    print URL with a CDN type A auth_key (sites with url_auth)
  cname token|bind|list|unbind -config F -site NAME [-domain D]
                             the OSS CNAME lifecycle for a site's bucket (gateway cname help)
  version                    print version, commit and Go version
`)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "gateway.toml", "config file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = server.Run(ctx, cfg, server.Options{
		ConfigPath: *path,
		Version:    version,
		Stdout:     stdout,
		Stderr:     stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 1
	}
	return 0
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway address")
	admin := fs.String("admin", "127.0.0.1:9090", "admin (metrics, health) address")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := demo.Run(ctx, demo.Options{Listen: *listen, Admin: *admin, Version: version, Stdout: stdout, Stderr: stderr})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "gateway demo: %v\n", err)
		return 1
	}
	return 0
}

// buildCommit is the -ldflags commit, else the VCS revision Go stamped.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func cmdSign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "gateway.toml", "config file")
	rawURL := fs.String("url", "", "URL to sign, e.g. https://img.example.com/a.jpg")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *rawURL == "" {
		fmt.Fprintln(stderr, "gateway sign: -url is required")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" {
		fmt.Fprintf(stderr, "gateway sign: -url %q is not an absolute URL\n", *rawURL)
		return exitUsage
	}
	site := cfg.SiteForHost(u.Hostname())
	if site == nil {
		fmt.Fprintf(stderr, "gateway sign: no site in %s serves %q\n", *path, u.Hostname())
		return 1
	}
	if !site.URLAuth.Enabled {
		fmt.Fprintf(stderr, "gateway sign: site %q does not have url_auth enabled\n", site.Name)
		return 1
	}
	key := os.Getenv(site.URLAuth.KeyEnv)
	if key == "" {
		fmt.Fprintf(stderr, "gateway sign: site %q: environment variable %s (url_auth.key_env) is empty\n", site.Name, site.URLAuth.KeyEnv)
		return 1
	}
	signed, err := proxy.SignURL(*rawURL, key, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "gateway sign: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, signed)
	return 0
}
