package deploy

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// There is no Docker engine here, so the Dockerfile is checked statically,
// and its build line is proved by running it: the same go build, with the
// same environment and flags, must give a static binary that reports the
// version passed in.

type instruction struct {
	cmd, args string
	line      int
}

type stage struct {
	image, name string
	instrs      []instruction
}

type dockerfile struct {
	globalArgs map[string]string
	stages     []*stage
}

func parseDockerfile(text string) (*dockerfile, error) {
	df := &dockerfile{globalArgs: map[string]string{}}
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue // comments inside a continued instruction are dropped
			}
			l = strings.TrimSuffix(l, `\`) + " " + next
		}
		cmd, args, _ := strings.Cut(l, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			s := &stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			df.stages = append(df.stages, s)
		case len(df.stages) == 0:
			if in.cmd != "ARG" {
				return nil, fmt.Errorf("line %d: %s before the first FROM", start, in.cmd)
			}
			k, v, _ := strings.Cut(in.args, "=")
			df.globalArgs[k] = v
		default:
			s := df.stages[len(df.stages)-1]
			s.instrs = append(s.instrs, in)
		}
	}
	for _, s := range df.stages {
		s.image = os.Expand(s.image, func(k string) string { return df.globalArgs[k] })
	}
	return df, nil
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s *stage) last(cmd string) string {
	all := s.all(cmd)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1].args
}

// shellWords splits a RUN line as sh would, expanding $VAR and ${VAR} from
// vars (outside single quotes); &&, ||, ; and | come out as their own words.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	expand := func(i int) (int, error) { // s[i] == '$'
		name, j := "", i+1
		if j < len(s) && s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				return 0, fmt.Errorf("unclosed ${ in %q", s)
			}
			name, j = s[j+1:j+end], j+end+1
		} else {
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name = s[i+1 : j]
		}
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("$%s is not an ARG or ENV of the stage", name)
		}
		cur.WriteString(v)
		inWord = true
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for i < len(s) && s[i] != '"' {
				switch {
				case s[i] == '\\' && i+1 < len(s):
					cur.WriteByte(s[i+1])
					i += 2
				case s[i] == '$':
					j, err := expand(i)
					if err != nil {
						return nil, err
					}
					i = j
				default:
					cur.WriteByte(s[i])
					i++
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf(`unclosed " in %q`, s)
			}
			i++
		case c == '$':
			j, err := expand(i)
			if err != nil {
				return nil, err
			}
			i = j
		case strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||"):
			flush()
			words = append(words, s[i:i+2])
			i += 2
		case c == ';' || c == '|':
			flush()
			words = append(words, string(c))
			i++
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words, nil
}

// goBuild is the go build command of a RUN line.
type goBuild struct {
	env  []string // VAR=value: the stage's ENV, then the RUN line's own
	args []string // after "go"
	out  string   // the -o value
}

func findGoBuild(s *stage, vars map[string]string) (*goBuild, error) {
	env := map[string]string{}
	var order []string
	setEnv := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, in := range s.instrs {
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			if _, ok := vars[k]; !ok {
				vars[k] = v
			}
		case "ENV":
			k, v, ok := strings.Cut(in.args, "=")
			if !ok {
				k, v, _ = strings.Cut(in.args, " ")
			}
			setEnv(strings.TrimSpace(k), strings.TrimSpace(v))
			vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
		case "RUN":
			if !strings.Contains(in.args, "go build") {
				continue
			}
			line := in.args
			for strings.HasPrefix(line, "--") { // --mount=... and other RUN flags
				_, line, _ = strings.Cut(line, " ")
				line = strings.TrimSpace(line)
			}
			words, err := shellWords(line, vars)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", in.line, err)
			}
			// The segment holding "go build": leading VAR=value words, then go.
			for len(words) > 0 {
				seg := words
				if k := slices.IndexFunc(words, func(w string) bool { return w == "&&" || w == ";" || w == "||" || w == "|" }); k >= 0 {
					seg, words = words[:k], words[k+1:]
				} else {
					words = nil
				}
				i := 0
				for i < len(seg) && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(seg[i]) {
					i++
				}
				if i+1 < len(seg) && seg[i] == "go" && seg[i+1] == "build" {
					for _, a := range seg[:i] {
						k, v, _ := strings.Cut(a, "=")
						setEnv(k, v)
					}
					gb := &goBuild{args: seg[i+1:]}
					for _, k := range order {
						gb.env = append(gb.env, k+"="+env[k])
					}
					for j, a := range gb.args {
						if a == "-o" && j+1 < len(gb.args) {
							gb.out = gb.args[j+1]
						}
					}
					return gb, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no RUN with go build in stage %q", s.name)
}

func (g *goBuild) flag(name string) (string, bool) {
	for i, a := range g.args {
		if a == name && i+1 < len(g.args) {
			return g.args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (g *goBuild) envValue(k string) string {
	v := ""
	for _, e := range g.env {
		if kk, vv, _ := strings.Cut(e, "="); kk == k {
			v = vv
		}
	}
	return v
}

func loadDockerfile(t testing.TB) *dockerfile {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return df
}

// The values the test passes as --build-arg.
var testBuildArgs = map[string]string{"VERSION": "v0.0.0-deploytest", "COMMIT": "0123abcd"}

func builder(t testing.TB, df *dockerfile) (*stage, *goBuild) {
	t.Helper()
	for _, s := range df.stages {
		vars := map[string]string{}
		for k, v := range testBuildArgs {
			vars[k] = v
		}
		if gb, err := findGoBuild(s, vars); err == nil {
			return s, gb
		} else if strings.Contains(err.Error(), "line") {
			t.Fatalf("Dockerfile: %v", err)
		}
	}
	t.Fatal("Dockerfile: no stage runs go build")
	return nil, nil
}

func jsonArray(s string) ([]string, bool) {
	var out []string
	if json.Unmarshal([]byte(s), &out) != nil {
		return nil, false
	}
	return out, true
}

// TestDockerfile checks the image statically: a Go builder on the go.mod
// toolchain, a static CGO-free build, and a final distroless (or scratch)
// stage running as 65532 with the ports, volume, entrypoint and command the
// systemd unit and ECS.md use.
func TestDockerfile(t *testing.T) {
	df := loadDockerfile(t)
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a build stage and a final one", len(df.stages))
	}
	build, gb := builder(t, df)
	final := df.stages[len(df.stages)-1]
	if build == final {
		t.Fatal("the final stage builds the binary: the image would carry the toolchain")
	}

	// Builder: golang image on the go.mod toolchain line.
	m := regexp.MustCompile(`^golang:(\d+)\.(\d+)(?:\.(\d+))?-`).FindStringSubmatch(build.image)
	if m == nil {
		t.Errorf("build stage FROM %s, want golang:<version>-<debian>", build.image)
	} else {
		goMod, err := os.ReadFile(filepath.Join("..", "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		gm := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?$`).FindStringSubmatch(string(goMod))
		if gm == nil {
			t.Fatal("go.mod has no go line")
		}
		if m[1] != gm[1] || m[2] != gm[2] {
			t.Errorf("build stage uses Go %s.%s, go.mod says %s.%s", m[1], m[2], gm[1], gm[2])
		}
		if m[3] != "" && gm[3] != "" {
			if a, b := atoi(m[3]), atoi(gm[3]); a < b {
				t.Errorf("build stage pins Go %s.%s.%s, older than go.mod's %s", m[1], m[2], m[3], gm[0])
			}
		}
	}
	if build.name == "" {
		t.Error("the build stage has no name (FROM ... AS build) for COPY --from")
	}

	// The build line.
	if gb.envValue("CGO_ENABLED") != "0" {
		t.Errorf("go build runs with CGO_ENABLED=%q, want 0 (a static binary for distroless/scratch)", gb.envValue("CGO_ENABLED"))
	}
	if !slices.Contains(gb.args, "-trimpath") {
		t.Error("go build lacks -trimpath")
	}
	ld, _ := gb.flag("-ldflags")
	for _, want := range []string{"-s", "-w", "-X"} {
		if !slices.Contains(strings.Fields(ld), want) {
			t.Errorf("-ldflags %q lacks %s", ld, want)
		}
	}
	if !strings.Contains(ld, "main.version="+testBuildArgs["VERSION"]) {
		t.Errorf("-ldflags %q does not set main.version from the VERSION build arg", ld)
	}
	if gb.args[len(gb.args)-1] != "./cmd/gateway" {
		t.Errorf("go build builds %s, want ./cmd/gateway", gb.args[len(gb.args)-1])
	}
	if gb.out == "" {
		t.Fatal("go build has no -o")
	}

	// Final stage.
	if !regexp.MustCompile(`^(gcr\.io/distroless/static(-debian\d+)?:nonroot|scratch)$`).MatchString(final.image) {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot or scratch", final.image)
	}
	if len(final.all("RUN")) > 0 {
		t.Error("the final stage has RUN: distroless and scratch have no shell")
	}
	if u := final.last("USER"); u != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532", u)
	}
	var copiedBinary, copiedCA bool
	for _, c := range final.all("COPY") {
		f := strings.Fields(c.args)
		if !slices.Contains(f, "--from="+build.name) {
			continue
		}
		src, dst := f[len(f)-2], f[len(f)-1]
		if src == gb.out && dst == "/gateway" {
			copiedBinary = true
		}
		if strings.HasSuffix(dst, "ca-certificates.crt") {
			copiedCA = true
		}
	}
	if !copiedBinary {
		t.Errorf("the final stage does not COPY --from=%s %s /gateway", build.name, gb.out)
	}
	if !copiedCA && final.image == "scratch" {
		t.Error("scratch has no CA roots: COPY /etc/ssl/certs/ca-certificates.crt from the build stage")
	}
	exposed := map[string]bool{}
	for _, e := range final.all("EXPOSE") {
		for _, p := range strings.Fields(e.args) {
			exposed[strings.TrimSuffix(p, "/tcp")] = true
		}
	}
	_, adminPort, _ := net.SplitHostPort(fleetConfig(t).Admin.Listen)
	for _, p := range []string{"80", "443", adminPort} {
		if !exposed[p] {
			t.Errorf("EXPOSE lacks %s", p)
		}
	}
	vol := final.last("VOLUME")
	if vs, ok := jsonArray(vol); !(ok && slices.Contains(vs, "/var/lib/gateway")) && !slices.Contains(strings.Fields(vol), "/var/lib/gateway") {
		t.Errorf("VOLUME %q does not hold /var/lib/gateway (the default tls.storage)", vol)
	}
	if ep, ok := jsonArray(final.last("ENTRYPOINT")); !ok || !slices.Equal(ep, []string{"/gateway"}) {
		t.Errorf(`ENTRYPOINT %s, want the exec form ["/gateway"]`, final.last("ENTRYPOINT"))
	}
	u, _ := loadUnit(t)
	unitArgs := strings.Fields(u.get("Service", "ExecStart"))[1:]
	if cmd, ok := jsonArray(final.last("CMD")); !ok || !slices.Equal(cmd, unitArgs) {
		t.Errorf("CMD %s, want the exec form of the unit's arguments %q", final.last("CMD"), unitArgs)
	}

	// HEALTHCHECK: the image's own binary (no shell, no curl) asks /readyz
	// of the admin listener that the config CMD runs names.
	hc, ok := healthcheck(final.last("HEALTHCHECK"))
	cfgPath := flagValues(unitArgs, "-config")
	switch {
	case !ok:
		t.Errorf(`HEALTHCHECK %q, want [options] CMD ["/gateway", "healthcheck", ...] (the exec form: distroless has no shell)`, final.last("HEALTHCHECK"))
	case len(hc) < 2 || hc[0] != "/gateway" || hc[1] != "healthcheck":
		t.Errorf("HEALTHCHECK runs %q, want /gateway healthcheck", hc)
	case !slices.Equal(flagValues(hc[2:], "-config"), cfgPath):
		t.Errorf("HEALTHCHECK %q does not read the config CMD runs (-config %s): it would not find admin.listen", hc, cfgPath)
	case len(flagValues(hc[2:], "-admin")) > 0:
		t.Errorf("HEALTHCHECK %q names -admin: take it from the config, which may change", hc)
	}
	// The container's config: the admin listener must listen beyond the
	// container's loopback (for the SLB and Prometheus), and let the
	// healthcheck in from 127.0.0.1, where it asks.
	fleet := fleetConfig(t)
	host, _, _ := net.SplitHostPort(fleet.Admin.Listen)
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		t.Errorf("the ECS.md config's admin.listen %q is not reachable from outside a container", fleet.Admin.Listen)
	}
	loopback := false
	for _, p := range fleet.Admin.AllowNets {
		loopback = loopback || p.Contains(netip.MustParseAddr("127.0.0.1"))
	}
	if !loopback {
		t.Errorf("the ECS.md config's admin.allow %q lacks 127.0.0.1: the HEALTHCHECK (and gateway reload) would get 403", fleet.Admin.Allow)
	}
}

// healthcheck is the command of a HEALTHCHECK instruction in exec form,
// after its --options.
func healthcheck(args string) ([]string, bool) {
	for strings.HasPrefix(args, "--") {
		_, args, _ = strings.Cut(args, " ")
		args = strings.TrimSpace(args)
	}
	rest, ok := strings.CutPrefix(args, "CMD ")
	if !ok {
		return nil, false
	}
	return jsonArray(strings.TrimSpace(rest))
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestDockerfileBuildIsStatic runs the Dockerfile's go build line on this
// checkout and inspects the result: no ELF interpreter, no dynamic section,
// stripped, and the version from the build arg in `gateway version`.
func TestDockerfileBuildIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway binary")
	}
	df := loadDockerfile(t)
	_, gb := builder(t, df)
	bin := filepath.Join(t.TempDir(), "gateway")
	args := slices.Clone(gb.args)
	for i := range args {
		if args[i] == "-o" {
			args[i+1] = bin
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(append(os.Environ(), "GOTOOLCHAIN=local"), gb.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
		t.Error("the binary has .dynamic or .interp")
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary keeps its symbol table: -ldflags -s did not apply")
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("gateway version: %v\n%s", err, out)
	}
	want := "gateway " + testBuildArgs["VERSION"] + " commit " + testBuildArgs["COMMIT"]
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("gateway version printed %q, want it to start with %q (-X main.version/main.commit)", out, want)
	}
}

// TestShellWords pins the small shell parser the build test relies on.
func TestShellWords(t *testing.T) {
	got, err := shellWords(`A=1 go build -ldflags "-X main.version=${V} -s" -o '/out/$x' ./cmd && echo $V;ls`, map[string]string{"V": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "go", "build", "-ldflags", "-X main.version=v1 -s", "-o", "/out/$x", "./cmd", "&&", "echo", "v1", ";", "ls"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := shellWords(`go build -ldflags "-X main.version=${NOPE}"`, nil); err == nil {
		t.Error("an undefined variable was accepted")
	}
}
