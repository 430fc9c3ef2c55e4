// Command gateway serves Alibaba Cloud OSS buckets behind custom domains.
// It only parses flags and wires packages together; see README.md for the
// command line it implements.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/oss-gateway/gateway/check"
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

// command is one subcommand: its name, the line `gateway -h` shows for it,
// and what runs it.
type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

// commands in the order `gateway -h` lists them.
var commands []command

func init() {
	commands = []command{
		{"run", "serve the config's sites (the default command: gateway -config F is gateway run -config F)", cmdRun},
		{"demo", "serve in front of a built-in OSS emulator on 127.0.0.1, and print what to try", cmdDemo},
		{"check", "validate the config as run does, then probe endpoints, credentials, buckets, certificates, CNAMEs", cmdCheck},
		{"sign", "print a URL with a CDN type A auth_key (sites with url_auth)", cmdSign},
		{"cname", "the OSS CNAME lifecycle of a site's bucket: token, bind, list, unbind", cmdCname},
		{"reload", "make the running gateway reload its config and wait: exit 0 when live, 1 when refused", cmdReload},
		{"healthcheck", "exit 0 when the running gateway is ready (its /readyz answers 200)", cmdHealthcheck},
		{"config", "print the effective config as TOML: defaults filled in, credentials redacted", cmdConfig},
		{"version", "print the version, the commit and the Go version", cmdVersion},
		{"help", "list the commands; gateway help COMMAND (or gateway COMMAND -h) shows its flags", cmdHelp},
	}
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			usage(stdout)
			return 0
		case "-version", "--version":
			return cmdVersion(nil, stdout, stderr)
		}
	}
	name := "run" // a bare `gateway` or `gateway -config F`
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "gateway: unknown command %q (gateway -h lists the commands)\n", name)
		return exitUsage
	}
	return c.run(args, stdout, stderr)
}

// usage is what `gateway -h` and `gateway help` print.
func usage(w io.Writer) {
	fmt.Fprint(w, `usage: gateway [command] [flags]

With no command, gateway runs "gateway run" (-config defaults to gateway.toml).

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
gateway COMMAND -h shows the flags of a command. Exit status 2 means bad
flags or a bad config (one line per problem: file, line, key, what is wrong).
`)
}

func cmdHelp(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0 || len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		usage(stdout)
		return 0
	case len(args) > 1:
		fmt.Fprintf(stderr, "gateway help: one command at a time, not %q (gateway -h lists the commands)\n", args)
		return exitUsage
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "gateway help: unknown command %q (gateway -h lists the commands)\n", args[0])
		return exitUsage
	}
	if c.name == "help" {
		usage(stdout)
		return 0
	}
	return c.run([]string{"-h"}, stdout, stderr)
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version", "Print the version, the VCS revision the binary was built from and the Go version.", stdout, stderr)
	if code, ok := fs.parse(args); !ok {
		return code
	}
	fmt.Fprintf(stdout, "gateway %s commit %s %s\n", version, buildCommit(), runtime.Version())
	return 0
}

// buildCommit is the -ldflags commit, else the VCS revision Go stamped.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	return server.Revision()
}

// loadConfig loads path and applies every check `gateway run` makes before
// it listens; on a problem it prints one line each and returns false.
func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path)
	if err == nil {
		err = check.Validate(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, err) // one line per problem
		return nil, false
	}
	return cfg, true
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "run [-config gateway.toml]", `Serve the sites of the config file until SIGTERM or SIGINT, then drain.
SIGHUP or gateway reload reloads the file while serving. This is the default
command: gateway -config F means gateway run -config F.
A bad config, an unset url_auth key variable, unusable certificate files or
ACME setup stop the start with exit status 2 (one line per problem) before
anything listens.`, stdout, stderr)
	path := fs.String("config", "gateway.toml", "config file")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := server.Run(ctx, cfg, server.Options{
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
	fs := newFlagSet("demo", "demo [-listen 127.0.0.1:8080] [-admin 127.0.0.1:9090]",
		`Serve a public and a private site in front of a built-in OSS emulator on
loopback, and print curl lines and a Go SDK program to try them with.`, stdout, stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway address")
	admin := fs.String("admin", "127.0.0.1:9090", "admin (metrics, health) address")
	if code, ok := fs.parse(args); !ok {
		return code
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

func cmdSign(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sign", "sign [-config gateway.toml] -url URL",
		`Print URL with a CDN type A auth_key for the site serving its host, signed
with the key in that site's url_auth.key_env environment variable.`, stdout, stderr)
	path := fs.String("config", "gateway.toml", "config file")
	rawURL := fs.String("url", "", "URL to sign, e.g. https://img.example.com/a.jpg (required)")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	if *rawURL == "" {
		return fs.fail("-url is required")
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
