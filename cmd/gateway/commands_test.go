package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// allCommands are the subcommands `gateway -h` lists, in order.
var allCommands = []string{"run", "demo", "check", "sign", "cname", "reload", "healthcheck", "config", "version", "help"}

// TestHelpAndVersion: -h, help and --version answer on stdout with exit 0;
// the list names every command on a line of its own; a bare unknown
// command is a one-line usage error.
func TestHelpAndVersion(t *testing.T) {
	version := regexp.MustCompile(`^gateway \S+ commit \S+ go1\.\d+\S* *\n$`)
	cases := []struct {
		args    []string
		code    int
		stdout  *regexp.Regexp // nil: stdout must be empty
		stderr  string         // must contain; "" = stderr must be empty
		oneLine bool           // stderr is one line
	}{
		{args: []string{"-h"}, stdout: regexp.MustCompile(`(?s)^usage: gateway `)},
		{args: []string{"-help"}, stdout: regexp.MustCompile(`(?s)^usage: gateway `)},
		{args: []string{"--help"}, stdout: regexp.MustCompile(`(?s)^usage: gateway `)},
		{args: []string{"help"}, stdout: regexp.MustCompile(`(?s)^usage: gateway `)},
		{args: []string{"help", "check"}, stdout: regexp.MustCompile(`(?s)^usage: gateway check .*-offline`)},
		{args: []string{"help", "cname"}, stdout: regexp.MustCompile(`(?s)^usage: gateway cname .*-site`)},
		{args: []string{"version"}, stdout: version},
		{args: []string{"-version"}, stdout: version},
		{args: []string{"--version"}, stdout: version},
		{args: []string{"help", "nope"}, code: 2, stderr: `unknown command "nope"`, oneLine: true},
		{args: []string{"nope"}, code: 2, stderr: `gateway: unknown command "nope" (gateway -h lists the commands)`, oneLine: true},
		{args: []string{"version", "extra"}, code: 2, stderr: `unexpected argument "extra"`, oneLine: true},
		{args: []string{"run", "-nosuchflag"}, code: 2, stderr: "gateway run: flag provided but not defined: -nosuchflag", oneLine: true},
		{args: []string{"-nosuchflag"}, code: 2, stderr: "gateway run: flag provided but not defined: -nosuchflag", oneLine: true},
		{args: []string{"check", "-timeout", "soon"}, code: 2, stderr: `gateway check: invalid value "soon" for flag -timeout`, oneLine: true},
		{args: []string{"check", "-timeout", "0s"}, code: 2, stderr: "gateway check: -timeout 0s: must be positive", oneLine: true},
		{args: []string{"config", "stray"}, code: 2, stderr: `gateway config: unexpected argument "stray"`, oneLine: true},
		{args: []string{"reload", "-admin"}, code: 2, stderr: "gateway reload: flag needs an argument: -admin", oneLine: true},
		{args: []string{"healthcheck", "-admin", "no-port"}, code: 2, stderr: `gateway healthcheck: -admin "no-port" is not host:port`, oneLine: true},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := runBin(t, t.TempDir(), nil, tc.args...)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d", res.code, tc.code)
			}
			if tc.stdout == nil && res.stdout != "" {
				t.Errorf("stdout %q, want none", res.stdout)
			}
			if tc.stdout != nil && !tc.stdout.MatchString(res.stdout) {
				t.Errorf("stdout does not match %v", tc.stdout)
			}
			if tc.stderr == "" && res.stderr != "" {
				t.Errorf("stderr %q, want none", res.stderr)
			}
			if !strings.Contains(res.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q", tc.stderr)
			}
			if tc.oneLine && strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("stderr is %d lines, want one", strings.Count(res.stderr, "\n"))
			}
		})
	}

	// The list: one line per command, in order, each with what it does.
	res := runBin(t, "", nil, "-h")
	var listed []string
	for _, l := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(l, "  ") && strings.HasPrefix(l, "  "+f[0]+" ") {
			listed = append(listed, f[0])
		}
	}
	if strings.Join(listed, " ") != strings.Join(allCommands, " ") {
		t.Errorf("gateway -h lists %q, want %q", listed, allCommands)
	}
	if help := runBin(t, "", nil, "help"); help.stdout != res.stdout {
		t.Error("gateway help and gateway -h differ")
	}
}

// TestSubcommandHelp: `gateway SUB -h` (and -help, --help) prints SUB's
// usage and every flag it takes on stdout, and exits 0 without doing
// anything (no config is read, nothing listens).
func TestSubcommandHelp(t *testing.T) {
	cases := []struct {
		args  []string
		flags []string
	}{
		{[]string{"run"}, []string{"-config"}},
		{[]string{"demo"}, []string{"-listen", "-admin"}},
		{[]string{"check"}, []string{"-config", "-offline", "-timeout"}},
		{[]string{"sign"}, []string{"-config", "-url"}},
		{[]string{"cname"}, []string{"-config", "-site", "-domain", "-cert", "-key"}},
		{[]string{"cname", "token"}, []string{"-config", "-site", "-domain"}},
		{[]string{"cname", "bind"}, []string{"-config", "-site", "-domain", "-cert", "-key"}},
		{[]string{"cname", "list"}, []string{"-config", "-site", "-domain"}},
		{[]string{"cname", "unbind"}, []string{"-config", "-site", "-domain"}},
		{[]string{"reload"}, []string{"-admin", "-config", "-timeout"}},
		{[]string{"healthcheck"}, []string{"-admin", "-config", "-timeout"}},
		{[]string{"config"}, []string{"-config"}},
		{[]string{"version"}, nil},
		{[]string{"help"}, nil},
	}
	for _, tc := range cases {
		for _, h := range []string{"-h", "-help", "--help"} {
			args := append(append([]string{}, tc.args...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				dir := t.TempDir()
				res := runBin(t, dir, nil, args...)
				if res.code != 0 {
					t.Errorf("exit %d, want 0", res.code)
				}
				if res.stderr != "" {
					t.Errorf("stderr %q, want none", res.stderr)
				}
				if want := "usage: gateway " + strings.Join(tc.args, " "); tc.args[0] != "help" && !strings.HasPrefix(res.stdout, want) {
					t.Errorf("stdout does not start with %q", want)
				}
				for _, f := range tc.flags {
					if !regexp.MustCompile(`(?m)^  ` + f + `\b`).MatchString(res.stdout) {
						t.Errorf("the help does not list %s", f)
					}
				}
				if entries, _ := os.ReadDir(dir); len(entries) > 0 {
					t.Errorf("-h left files behind: %v", entries)
				}
			})
		}
	}
}

// writeConfig writes cfg as name in a new directory and returns its path.
func writeConfig(t *testing.T, name, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
