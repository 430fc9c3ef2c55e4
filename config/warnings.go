package config

import (
	"fmt"
	"os"
)

// Warnings lists what is legal but probably unwanted in a valid config, one
// line each in the format of Problem.String. The gateway logs them at start
// and `gateway check` prints them; none of them stops the gateway.
func (c *Config) Warnings() []string {
	var out []string
	warn := func(key, format string, args ...any) {
		out = append(out, Problem{File: c.Path, Key: key, Msg: fmt.Sprintf(format, args...)}.String())
	}

	if c.Credentials.Source == "static" && c.Path != "" {
		if fi, err := os.Stat(c.Path); err == nil && fi.Mode().Perm()&0o044 != 0 {
			warn("credentials", "%s is readable by group or others but holds credentials (mode %04o); chmod 600 it",
				c.Path, fi.Mode().Perm())
		}
	}
	if c.Server.ReadHeaderTimeout == 0 {
		warn("server.read_header_timeout", "is 0: a client that never finishes its headers holds a connection forever")
	}
	for i, s := range c.Sites {
		key := indexKey("site", i)
		if s.TLS != "off" && c.Server.HTTPSListen == "" {
			// Not an error: a minimal HTTP-only config should not have to
			// spell out tls = "off" on every site to start.
			warn(key+".tls", `is %q but server.https_listen is "", so the site is served over plain HTTP only`, s.TLS)
		}
		if s.FallbackEndpoint != "" && s.FallbackEndpoint == s.Endpoint {
			warn(key+".fallback_endpoint", "is the same as endpoint, so falling back changes nothing")
		}
	}
	return out
}
