package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/config"
)

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(text string) (unitFile, error) {
	u := unitFile{}
	section := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[' && l[len(l)-1] == ']':
			section = l[1 : len(l)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is neither a section nor key=value", i+1, l)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, nil
}

func (u unitFile) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// unitRequirements: the directives gateway.service must carry, with their
// values. Each is there for a reason given in the unit's comments or ECS.md.
var unitRequirements = []struct{ section, key, want string }{
	{"Unit", "After", "network-online.target"},
	{"Unit", "Wants", "network-online.target"},
	{"Unit", "StartLimitIntervalSec", ""},
	{"Unit", "StartLimitBurst", ""},
	{"Service", "User", "gateway"},
	{"Service", "Group", "gateway"},
	{"Service", "DynamicUser", "no"},
	{"Service", "ExecStart", "/usr/local/bin/gateway run -config /etc/gateway/gateway.toml"},
	{"Service", "ExecReload", "/usr/local/bin/gateway reload -config /etc/gateway/gateway.toml"},
	{"Service", "EnvironmentFile", "-/etc/gateway/env"},
	{"Service", "Restart", "on-failure"},
	{"Service", "RestartSec", ""},
	{"Service", "RestartPreventExitStatus", "2"},
	{"Service", "KillSignal", "SIGTERM"},
	{"Service", "TimeoutStopSec", ""},
	{"Service", "LimitNOFILE", "1048576"},
	{"Service", "StateDirectory", "gateway"},
	{"Service", "CacheDirectory", "gateway"}, // [cache] path = "/var/cache/gateway" under ProtectSystem=strict
	{"Service", "ConfigurationDirectory", "gateway"},
	{"Service", "AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
	{"Service", "CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
	{"Service", "NoNewPrivileges", "yes"},
	{"Service", "ProtectSystem", "strict"},
	{"Service", "ProtectHome", "yes"},
	{"Service", "PrivateTmp", "yes"},
	{"Service", "PrivateDevices", "yes"},
	{"Service", "ProtectKernelTunables", "yes"},
	{"Service", "ProtectKernelModules", "yes"},
	{"Service", "ProtectKernelLogs", "yes"},
	{"Service", "ProtectControlGroups", "yes"},
	{"Service", "RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"},
	{"Service", "RestrictNamespaces", "yes"},
	{"Service", "LockPersonality", "yes"},
	{"Service", "MemoryDenyWriteExecute", "yes"},
	{"Service", "SystemCallArchitectures", "native"},
	{"Install", "WantedBy", "multi-user.target"},
}

// unitForbidden: settings that would break the gateway under this unit.
var unitForbidden = []struct{ section, key, bad, why string }{
	{"Service", "DynamicUser", "yes", "the certificate store in /var/lib/gateway must keep its owner"},
	{"Service", "PrivateUsers", "yes", "capabilities in a user namespace cannot bind :80/:443 of the host"},
	{"Service", "ProcSubset", "pid", "the process collector reads /proc/stat (process_start_time_seconds)"},
	{"Service", "PrivateNetwork", "yes", "the gateway serves the network"},
}

func checkUnit(u unitFile) []string {
	var problems []string
	for _, r := range unitRequirements {
		got := u.get(r.section, r.key)
		switch {
		case got == "":
			problems = append(problems, fmt.Sprintf("[%s] %s is missing", r.section, r.key))
		case r.want != "" && got != r.want:
			problems = append(problems, fmt.Sprintf("[%s] %s=%s, want %s", r.section, r.key, got, r.want))
		}
	}
	for _, f := range unitForbidden {
		if u.get(f.section, f.key) == f.bad {
			problems = append(problems, fmt.Sprintf("[%s] %s=%s: %s", f.section, f.key, f.bad, f.why))
		}
	}
	return problems
}

// parseTimespan reads a systemd time span: "90", "90s", "1min 30s", "2m".
func parseTimespan(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "sec": time.Second,
		"m": time.Minute, "min": time.Minute, "h": time.Hour, "hr": time.Hour}
	var total time.Duration
	parts := regexp.MustCompile(`(\d+)\s*([a-z]+)`).FindAllStringSubmatch(s, -1)
	if len(parts) == 0 {
		return 0, fmt.Errorf("cannot read time span %q", s)
	}
	for _, p := range parts {
		n, _ := strconv.Atoi(p[1])
		u, ok := units[p[2]]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q in %q", p[2], s)
		}
		total += time.Duration(n) * u
	}
	return total, nil
}

func loadUnit(t testing.TB) (unitFile, string) {
	t.Helper()
	b, err := os.ReadFile("gateway.service")
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(b))
	if err != nil {
		t.Fatalf("gateway.service: %v", err)
	}
	return u, string(b)
}

// TestSystemdUnit: the unit carries every hardening and lifecycle directive
// with the right value, and stops no sooner than the gateway drains, both
// with the config defaults and with the ECS.md fleet config.
func TestSystemdUnit(t *testing.T) {
	u, _ := loadUnit(t)
	for _, p := range checkUnit(u) {
		t.Error(p)
	}

	stop, err := parseTimespan(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := config.Parse("defaults", []byte(minimalSite))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*config.Config{"the defaults": defaults, "the ECS.md config": fleetConfig(t)} {
		drain := cfg.Server.ShutdownDelay.D() + cfg.Server.ShutdownGrace.D()
		if stop <= drain+5*time.Second {
			t.Errorf("TimeoutStopSec=%v: with %s the gateway drains for %v (shutdown_delay + shutdown_grace); systemd would SIGKILL it", stop, name, drain)
		}
	}

	// The unit, the Dockerfile and ECS.md run the same config file.
	argv := strings.Fields(u.get("Service", "ExecStart"))
	cfgPath := argv[len(argv)-1]
	if !strings.HasPrefix(cfgPath, "/etc/gateway/") || u.get("Service", "ConfigurationDirectory") != "gateway" {
		t.Errorf("ExecStart reads %s, outside ConfigurationDirectory /etc/gateway", cfgPath)
	}
	// systemctl reload goes through gateway reload, the same binary on the
	// same file (whose admin.listen it asks), so that a refused config
	// fails the reload rather than only logging.
	reload := strings.Fields(u.get("Service", "ExecReload"))
	if len(reload) < 2 || reload[0] != argv[0] || reload[1] != "reload" || !slices.Equal(flagValues(reload[2:], "-config"), []string{cfgPath}) {
		t.Errorf("ExecReload=%s, want %s reload -config %s", u.get("Service", "ExecReload"), argv[0], cfgPath)
	}
	text, _ := markdownBlocks(t, "ECS.md")
	if !strings.Contains(text, "gateway check -config "+cfgPath) {
		t.Errorf("ECS.md does not check the file the unit runs (%s)", cfgPath)
	}
}

// TestSystemdUnitCanFail: the checks catch a weakened unit.
func TestSystemdUnitCanFail(t *testing.T) {
	_, text := loadUnit(t)
	for _, edit := range [][2]string{
		{"ProtectSystem=strict", "ProtectSystem=full"},
		{"DynamicUser=no", "DynamicUser=yes"},
		{"\nNoNewPrivileges=yes", "\n#NoNewPrivileges=yes"},
		{"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SYS_ADMIN"},
	} {
		if !strings.Contains(text, edit[0]) {
			t.Errorf("gateway.service has no %q to weaken; update this test", edit[0])
			continue
		}
		u, err := parseUnit(strings.Replace(text, edit[0], edit[1], 1))
		if err != nil {
			t.Fatal(err)
		}
		if len(checkUnit(u)) == 0 {
			t.Errorf("the unit with %q instead of %q still passes", edit[1], edit[0])
		}
	}
}

// TestSystemdAnalyze runs systemd's own verifier on the unit (unknown keys,
// bad values) and its offline security audit, where systemd-analyze exists.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; the unit was still parsed and checked by TestSystemdUnit")
	}
	_, text := loadUnit(t)
	// verify insists that ExecStart's binary exists: point it at this test
	// binary, an executable that certainly does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "gateway.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, "/usr/local/bin/gateway", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(sa, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run("verify", unit)
	// verify exits 0 on mere warnings ("Unknown key", "Failed to parse"):
	// any line about our unit is a failure.
	var ours []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "gateway.service") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The offline security audit (systemd 250+): exposure must stay under
	// 2.0 ("OK"); it is 1.5 with this unit.
	help, _ := run("security", "--help")
	if !strings.Contains(help, "--offline") {
		t.Log("this systemd-analyze has no offline security audit; skipped")
		return
	}
	out, err = run("security", "--offline=yes", "--threshold=20", unit)
	if err != nil {
		t.Errorf("systemd-analyze security: the unit's exposure is above 2.0 (%v)\n%s", err, lastLines(out, 3))
	} else {
		t.Log(lastLines(out, 1))
	}
	if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool { return strings.Contains(l, "Overall exposure level") }) {
		t.Errorf("systemd-analyze security printed no verdict:\n%s", out)
	}
}

// flagValues are the values given to flag name in args ("-name v" or
// "-name=v"; one or two leading dashes).
func flagValues(args []string, name string) []string {
	var vs []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimPrefix(args[i], "-")
		if !strings.HasPrefix(a, "-") {
			a = "-" + a
		}
		switch {
		case a == name && i+1 < len(args):
			vs = append(vs, args[i+1])
			i++
		case strings.HasPrefix(a, name+"="):
			vs = append(vs, strings.TrimPrefix(a, name+"="))
		}
	}
	return vs
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}
