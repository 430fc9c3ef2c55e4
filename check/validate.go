package check

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/proxy"
	gwtls "github.com/oss-gateway/gateway/tls"
)

// Validate applies to a loaded config what `gateway run` checks before it
// opens a listener, beyond config.Load: what proxy.Validate reports (an
// unset url_auth key variable, ...), and with an HTTPS listener, the
// tls = "files" pairs (readable, a certificate and its key, valid now) and
// the ACME setup (tls.acme_ca_root, an oss:// tls.storage). `gateway run`
// and `gateway check` both call it, so a config check accepts is one run
// starts with, and both print the same lines.
//
// It returns nil or a *config.Error whose problems name the file, the key
// and, read from the file again, the line. Nothing here touches the
// network.
func Validate(cfg *config.Config) error {
	return validate(cfg, os.Getenv, time.Now)
}

func validate(cfg *config.Config, getenv func(string) string, now func() time.Time) error {
	ps := proxy.Validate(cfg, getenv)
	if cfg.Server.HTTPSListen != "" {
		ps = append(ps, tlsProblems(cfg, now)...)
	}
	if len(ps) == 0 && cfg.Server.HTTPSListen != "" {
		// The whole TLS setup as run builds it: whatever it still refuses
		// is a problem too.
		creds, _ := ossclient.NewCredentialsProvider(cfg.Credentials)
		m, err := gwtls.New(cfg, gwtls.Options{Credentials: creds, Now: now})
		if err != nil {
			ps = append(ps, config.Problem{File: cfg.Path, Msg: err.Error()})
		} else {
			m.Close()
		}
	}
	if len(ps) == 0 {
		return nil
	}
	data, _ := os.ReadFile(cfg.Path) // unreadable: problems without lines
	for i := range ps {
		if ps[i].Line == 0 && ps[i].Key != "" && data != nil {
			ps[i].Line = config.LineOf(data, ps[i].Key)
		}
	}
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return &config.Error{Problems: ps}
}

// tlsProblems are the TLS pieces run builds when it has an HTTPS listener.
func tlsProblems(cfg *config.Config, now func() time.Time) []config.Problem {
	var ps []config.Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, config.Problem{File: cfg.Path, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	acme := false
	for i := range cfg.Sites {
		s := &cfg.Sites[i]
		key := fmt.Sprintf("site[%d]", i)
		switch s.TLS {
		case "files":
			if _, err := os.Stat(s.CertFile); err != nil {
				add(key+".cert_file", "cannot read %s", fileError(err))
				continue
			}
			if _, err := os.Stat(s.KeyFile); err != nil {
				add(key+".key_file", "cannot read %s", fileError(err))
				continue
			}
			if _, err := gwtls.FilesCertificate(s, gwtls.Options{Now: now}); err != nil {
				add(key+".cert_file", "%s", oneLine(err.Error()))
			}
		case "acme":
			for _, d := range s.Domains {
				acme = acme || net.ParseIP(d) == nil
			}
		}
	}
	if !acme {
		return ps
	}
	if root := cfg.TLS.ACMECARoot; root != "" {
		pem, err := os.ReadFile(root)
		switch {
		case err != nil:
			add("tls.acme_ca_root", "cannot read %s", fileError(err))
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			add("tls.acme_ca_root", "%q: no PEM certificate in the file", root)
		}
	}
	if rest, ok := strings.CutPrefix(cfg.TLS.Storage, "oss://"); ok {
		bucket, _, _ := strings.Cut(rest, "/")
		if _, err := gwtls.StorageTarget(cfg, bucket); err != nil {
			add("tls.storage", "%v", err)
		}
	}
	return ps
}

// fileError is an os error as `"path": reason`.
func fileError(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Sprintf("%q: %v", pe.Path, pe.Err)
	}
	return err.Error()
}
