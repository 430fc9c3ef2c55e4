package main

import (
	"fmt"
	"io"

	"github.com/pelletier/go-toml/v2"

	"github.com/oss-gateway/gateway/config"
)

// redacted replaces a credential that is set in what `gateway config`
// prints.
const redacted = "<redacted>"

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("config", "config [-config gateway.toml]",
		`Print the effective config as TOML: every key, with the defaults filled in
and values as the gateway normalised them. credentials.access_key_id,
access_key_secret and security_token print as "`+redacted+`" when set. The
output loads as a config itself.`, stdout, stderr)
	path := fs.String("config", "gateway.toml", "config file")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err) // one line per problem
		return exitUsage
	}
	out, err := effectiveConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "gateway config: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# The effective config of %s: defaults filled in, credentials redacted.\n\n", *path)
	_, _ = stdout.Write(out)
	return 0
}

// effectiveConfig renders cfg as TOML with its credentials redacted.
func effectiveConfig(cfg *config.Config) ([]byte, error) {
	c := *cfg
	for _, s := range []*string{&c.Credentials.AccessKeyID, &c.Credentials.AccessKeySecret, &c.Credentials.SecurityToken} {
		if *s != "" {
			*s = redacted
		}
	}
	return toml.Marshal(c)
}
