package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// `gateway reload` and `gateway healthcheck`: clients of the running
// gateway's admin listener, for systemd's ExecReload= and Docker's
// HEALTHCHECK (the image has no curl).

// defaultAdmin is where the admin listener is when neither -admin nor the
// config file says otherwise (config's default admin.listen).
const defaultAdmin = "127.0.0.1:9090"

// adminFlags are the flags reload and healthcheck share.
type adminFlags struct {
	fs      *flagSet
	admin   *string
	config  *string
	timeout *time.Duration
}

func newAdminFlags(fs *flagSet, timeout time.Duration) *adminFlags {
	return &adminFlags{
		fs:      fs,
		admin:   fs.String("admin", "", "admin listener address (default: admin.listen of -config if the file names one, else "+defaultAdmin+")"),
		config:  fs.String("config", "gateway.toml", "config file to take the admin address from (only admin.listen is read)"),
		timeout: fs.Duration("timeout", timeout, "how long to wait for the answer"),
	}
}

// addr is the host:port to dial. A missing default gateway.toml means the
// default address; a -config that was named but cannot be read is an error.
func (f *adminFlags) addr() (string, error) {
	listen := *f.admin
	from := "-admin"
	if listen == "" {
		named := false
		f.fs.Visit(func(fl *flag.Flag) { named = named || fl.Name == "config" })
		l, ok, err := adminListen(*f.config)
		switch {
		case err != nil && (named || !errors.Is(err, fs.ErrNotExist)):
			return "", fmt.Errorf("-config %s: %v", *f.config, err)
		case err != nil || !ok:
			listen, from = defaultAdmin, "the default admin address"
		case l == "":
			return "", fmt.Errorf(`%s sets admin.listen = "": the gateway has no admin listener to ask (pass -admin, or send it SIGHUP)`, *f.config)
		default:
			listen, from = l, "admin.listen in "+*f.config
		}
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%s %q is not host:port", from, listen)
	}
	if port == "0" {
		return "", fmt.Errorf("%s %q has port 0, chosen when the gateway started: pass -admin with the port it bound", from, listen)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every address: loopback is one of them
	}
	return net.JoinHostPort(host, port), nil
}

// adminLine matches `listen = "..."` in an [admin] table, for a file that
// is not valid TOML (reload is run right after the file was edited).
var adminLine = regexp.MustCompile(`^\s*listen\s*=\s*"([^"]*)"`)

// adminListen reads admin.listen from the config file at path, and only
// that: the rest of the file may be as broken as it likes (reload's whole
// point is to hear from the gateway what is wrong with it). ok is false
// when the file does not set it.
func adminListen(path string) (listen string, ok bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", false, err
	}
	var doc struct {
		Admin struct {
			Listen *string `toml:"listen"`
		} `toml:"admin"`
	}
	if toml.Unmarshal(data, &doc) == nil {
		if doc.Admin.Listen == nil {
			return "", false, nil
		}
		return *doc.Admin.Listen, true, nil
	}
	section := ""
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "[") {
			section = strings.Trim(strings.SplitN(t, "#", 2)[0], "[] \t")
			continue
		}
		if m := adminLine.FindStringSubmatch(l); m != nil && section == "admin" {
			return m[1], true, nil
		}
	}
	return "", false, nil
}

// adminRequest sends one request to the admin listener at addr and
// returns the status and the body, or an error that reads well on one line.
func adminRequest(method, addr, path string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return 0, "", fmt.Errorf("the admin listener at %s did not answer within %v", addr, timeout)
		case errors.As(err, &op):
			return 0, "", fmt.Errorf("cannot reach the admin listener at %s: %v", addr, op.Err)
		}
		return 0, "", fmt.Errorf("cannot reach the admin listener at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("the admin listener at %s: reading the answer: %v", addr, err)
	}
	return resp.StatusCode, string(body), nil
}

// adminRefusal explains an answer that is not the endpoint's own.
func adminRefusal(addr, path string, status int, body string) string {
	switch status {
	case http.StatusForbidden:
		return fmt.Sprintf("the admin listener at %s answered 403: this host's address is not in admin.allow", addr)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Sprintf("%s answered %d to %s: not a gateway admin listener, or a gateway too old for this command", addr, status, path)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(body), "\n")
	return fmt.Sprintf("%s answered %d to %s: %s", addr, status, path, first)
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reload", "reload [-admin ADDR] [-config gateway.toml] [-timeout 2m]",
		`Ask the running gateway to reload its config file (the one it was started
with) through its admin listener, and wait for the verdict: exit 0 when the
new config is live; exit 1 with the problems when the gateway refused it and
keeps serving the running config, or when it cannot be reached. For
systemd's ExecReload=, so that systemctl reload fails on a refused config.`, stdout, stderr)
	af := newAdminFlags(fs, 2*time.Minute)
	if code, ok := fs.parse(args); !ok {
		return code
	}
	addr, err := af.addr()
	if err != nil {
		fmt.Fprintf(stderr, "gateway reload: %v\n", err)
		return exitUsage
	}
	status, body, err := adminRequest(http.MethodPost, addr, "/-/reload", *af.timeout)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "gateway reload: %v\n", err)
		return 1
	case status == http.StatusOK:
		fmt.Fprintf(stdout, "gateway reload: the new config is live (gateway at %s)\n", addr)
		return 0
	case status == http.StatusBadRequest:
		fmt.Fprintf(stderr, "gateway reload: refused; the gateway at %s keeps serving its running config:\n%s\n", addr, strings.TrimRight(body, "\n"))
		return 1
	}
	fmt.Fprintf(stderr, "gateway reload: %s\n", adminRefusal(addr, "POST /-/reload", status, body))
	return 1
}

func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck", "healthcheck [-admin ADDR] [-config gateway.toml] [-timeout 5s]",
		`Exit 0 when the running gateway's /readyz answers 200, else 1 with the
reason. For Docker's HEALTHCHECK (the image has no curl) and other probes
that run a command.`, stdout, stderr)
	af := newAdminFlags(fs, 5*time.Second)
	if code, ok := fs.parse(args); !ok {
		return code
	}
	addr, err := af.addr()
	if err != nil {
		fmt.Fprintf(stderr, "gateway healthcheck: %v\n", err)
		return exitUsage
	}
	status, body, err := adminRequest(http.MethodGet, addr, "/readyz", *af.timeout)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "gateway healthcheck: %v\n", err)
		return 1
	case status == http.StatusOK:
		fmt.Fprintf(stdout, "gateway healthcheck: %s\n", strings.TrimSpace(body))
		return 0
	case status == http.StatusServiceUnavailable:
		fmt.Fprintf(stderr, "gateway healthcheck: %s\n", strings.TrimSpace(body))
		return 1
	}
	fmt.Fprintf(stderr, "gateway healthcheck: %s\n", adminRefusal(addr, "GET /readyz", status, body))
	return 1
}
