package check

import (
	"fmt"
	"io"
	"strings"

	"github.com/oss-gateway/gateway/config"
)

// Printer writes the rows of a Run as they come (Options.Progress), in the
// columns of Report.Print: SITE, CHECK, TARGET, STATUS and DETAIL. A table
// printed as it goes cannot measure its rows first, so the columns are
// sized from the config: its site names, buckets, domains and endpoint
// hosts. Longer targets (the config file's path, a list of domains) push
// their row's status and detail right.
type Printer struct {
	w                   io.Writer
	site, check, target int
}

// maxTargetWidth caps the TARGET column of a Printer.
const maxTargetWidth = 48

// NewPrinter returns a Printer for the rows of cfg.
func NewPrinter(w io.Writer, cfg *config.Config) *Printer {
	p := &Printer{w: w, site: len("SITE"), check: len("credentials"), target: len("TARGET")}
	wide := func(n *int, s string, limit int) {
		*n = max(*n, min(len(s), limit))
	}
	wide(&p.target, "source "+cfg.Credentials.Source, maxTargetWidth)
	for i := range cfg.Sites {
		s := &cfg.Sites[i]
		wide(&p.site, s.Name, maxTargetWidth)
		wide(&p.target, s.Bucket, maxTargetWidth)
		for _, d := range s.Domains {
			wide(&p.target, d, maxTargetWidth)
		}
		for _, e := range []string{s.Endpoint, s.FallbackEndpoint} {
			if e == "" {
				continue
			}
			if u, err := upstreamFor(s, e); err == nil {
				wide(&p.target, u.host, maxTargetWidth)
			} else {
				wide(&p.target, e, maxTargetWidth)
			}
		}
	}
	return p
}

// Header prints the column names.
func (p *Printer) Header() {
	p.line("SITE", "CHECK", "TARGET", "STATUS", "DETAIL")
}

// Row prints one row; it suits Options.Progress.
func (p *Printer) Row(r Row) {
	p.line(cell(r.Site), cell(r.Check), cell(r.Target), cell(string(r.Status)), oneLine(r.Detail))
}

// Summary prints the summary line of r.
func (p *Printer) Summary(r Report) {
	r.summary(p.w)
}

func (p *Printer) line(site, check, target, status, detail string) {
	fmt.Fprintf(p.w, "%s%s%s%s%s\n", pad(site, p.site), pad(check, p.check), pad(target, p.target), pad(status, len("STATUS")), detail)
}

// pad left-aligns s in a column of width n and the two spaces after it.
func pad(s string, n int) string {
	return s + strings.Repeat(" ", max(n-len(s), 0)+2)
}
