package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"

	"github.com/oss-gateway/gateway/cname"
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
)

// `gateway cname token|bind|list|unbind`: flags and printing around package
// cname, which does the work through the official SDK.

const cnameUsageText = `usage: gateway cname token|bind|list|unbind -config F -site NAME [-domain D]

  token  -domain D              get or create the ownership token for D and print the TXT record to add
  bind   -domain D [-cert FILE -key FILE]
                                bind D to the site's bucket (PutCname), optionally with a certificate
  list   [-domain D]            list the domains bound to the site's bucket
  unbind -domain D              unbind D from the site's bucket (DeleteCname)

D must be one of the site's domains for token and bind.
`

// cnameTimeout bounds one `gateway cname` run (the SDK retries inside it).
const cnameTimeout = 2 * time.Minute

// cnameFlags are the flags of `gateway cname ACTION`.
type cnameFlags struct {
	*flagSet
	path, site, domain, cert, key *string
}

func newCnameFlags(action string, stdout, stderr io.Writer) *cnameFlags {
	synopsis := "cname " + action + " -config F -site NAME -domain D"
	switch action {
	case "bind":
		synopsis += " [-cert FILE -key FILE]"
	case "list":
		synopsis = "cname list -config F -site NAME [-domain D]"
	case "ACTION":
		synopsis = "cname token|bind|list|unbind -config F -site NAME [-domain D]"
	}
	f := &cnameFlags{flagSet: newFlagSet("cname "+action, synopsis, strings.TrimPrefix(cnameUsageText[strings.Index(cnameUsageText, "\n"):], "\n\n"), stdout, stderr)}
	f.path = f.String("config", "gateway.toml", "config file")
	f.site = f.String("site", "", "name of the [[site]] whose bucket the domain is bound to")
	f.domain = f.String("domain", "", "custom domain (one of the site's domains)")
	f.cert = f.String("cert", "", "bind: PEM certificate chain to attach to the domain")
	f.key = f.String("key", "", "bind: PEM private key of -cert")
	return f
}

func cmdCname(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cnameUsageText)
		return exitUsage
	}
	action := args[0]
	switch action {
	case "token", "bind", "list", "unbind":
	case "help", "-h", "-help", "--help":
		newCnameFlags("ACTION", stdout, stderr).usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "gateway cname: unknown action %q\n", action)
		fmt.Fprint(stderr, cnameUsageText)
		return exitUsage
	}
	prefix := "gateway cname " + action + ": "
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, prefix+format+"\n", a...)
		return exitUsage
	}

	fs := newCnameFlags(action, stdout, stderr)
	if code, ok := fs.parse(args[1:]); !ok {
		return code
	}
	path, siteName, domainFlag, certFile, keyFile := fs.path, fs.site, fs.domain, fs.cert, fs.key
	switch {
	case *siteName == "":
		return usageErr("-site is required")
	case action != "bind" && (*certFile != "" || *keyFile != ""):
		return usageErr("-cert and -key apply to bind only")
	case (*certFile == "") != (*keyFile == ""):
		return usageErr("-cert and -key go together")
	}
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(*domainFlag)), ".")
	if domain == "" && action != "list" {
		return usageErr("-domain is required")
	}

	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err) // one line per problem
		return exitUsage
	}
	site := cnameSite(cfg, *siteName)
	if site == nil {
		var names []string
		for _, s := range cfg.Sites {
			names = append(names, s.Name)
		}
		return usageErr("no site named %q in %s (sites: %s)", *siteName, *path, strings.Join(names, ", "))
	}
	if domain != "" {
		if why := cname.ValidDomain(domain); why != "" {
			return usageErr("-domain %q: %s", *domainFlag, why)
		}
		if (action == "token" || action == "bind") && !slices.Contains(site.Domains, domain) {
			return usageErr("-domain %q is not one of site %q's domains (%s)", domain, site.Name, strings.Join(site.Domains, ", "))
		}
	}
	var cert *cname.Certificate
	if *certFile != "" {
		certPEM, err := os.ReadFile(*certFile)
		if err != nil {
			return usageErr("-cert: %v", err)
		}
		keyPEM, err := os.ReadFile(*keyFile)
		if err != nil {
			return usageErr("-key: %v", err)
		}
		cert = &cname.Certificate{CertPEM: string(certPEM), KeyPEM: string(keyPEM)}
	}

	provider, err := ossclient.NewCredentialsProvider(cfg.Credentials)
	if err != nil {
		return usageErr("%v", err)
	}
	client, err := ossclient.New(ossclient.ForSite(site), provider, ossclient.Options{DialTimeout: cfg.Server.UpstreamDialTimeout.D()})
	if err != nil {
		return usageErr("site %q: %v", site.Name, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cnameTimeout)
	defer cancel()

	w := cnameRun{stdout: stdout, stderr: stderr, prefix: prefix, path: *path, site: site}
	switch action {
	case "token":
		return w.token(ctx, client, domain)
	case "bind":
		return w.bind(ctx, client, domain, cert, *certFile)
	case "list":
		return w.list(ctx, client, domain)
	default:
		return w.unbind(ctx, client, domain)
	}
}

// cnameSite is the site named name, or nil.
func cnameSite(cfg *config.Config, name string) *config.Site {
	for i := range cfg.Sites {
		if cfg.Sites[i].Name == name {
			return &cfg.Sites[i]
		}
	}
	return nil
}

// cnameRun prints the outcome of one action.
type cnameRun struct {
	stdout, stderr io.Writer
	prefix         string // "gateway cname ACTION: "
	path           string // -config, for the commands it suggests
	site           *config.Site
}

// fail prints err as one line and returns exit status 1.
func (r cnameRun) fail(err error) int {
	fmt.Fprintln(r.stderr, r.prefix+cname.ErrorLine(err))
	return 1
}

// command is the gateway command line for another action on the domain.
func (r cnameRun) command(action, domain string) string {
	return fmt.Sprintf("gateway cname %s -config %s -site %s -domain %s",
		action, cnameShellQuote(r.path), cnameShellQuote(r.site.Name), cnameShellQuote(domain))
}

func (r cnameRun) token(ctx context.Context, c *oss.Client, domain string) int {
	t, err := cname.EnsureToken(ctx, c, r.site.Bucket, domain, time.Now())
	if err != nil {
		return r.fail(err)
	}
	how := "existing token"
	if t.Created {
		how = "new token"
	}
	fmt.Fprintf(r.stdout, "%s for %s on bucket %s (site %s).\n", how, domain, r.site.Bucket, r.site.Name)
	fmt.Fprint(r.stdout, cname.Instruction(t))
	fmt.Fprintf(r.stdout, "Once the record resolves, run:\n  %s\n", r.command("bind", domain))
	return 0
}

func (r cnameRun) bind(ctx context.Context, c *oss.Client, domain string, cert *cname.Certificate, certFile string) int {
	err := cname.Bind(ctx, c, r.site.Bucket, domain, cert)
	var oe *cname.OwnershipError
	switch {
	case err == nil:
		msg := fmt.Sprintf("bound %s to bucket %s (site %s)", domain, r.site.Bucket, r.site.Name)
		if cert != nil {
			msg += " with the certificate in " + certFile
		}
		fmt.Fprintln(r.stdout, msg+".")
		return 0
	case errors.As(err, &oe):
		fmt.Fprintf(r.stderr, "%sOSS has not verified that you own %s: %s\n", r.prefix, domain, cname.ErrorLine(err))
		if oe.Token == nil {
			fmt.Fprintf(r.stderr, "No valid ownership token exists for %s on bucket %s. Create one and print the TXT record to add with:\n  %s\n",
				domain, r.site.Bucket, r.command("token", domain))
			return 1
		}
		fmt.Fprint(r.stderr, cname.Instruction(*oe.Token))
		fmt.Fprintf(r.stderr, "Once the record resolves (DNS changes can take minutes), run this command again.\n")
		return 1
	case cname.Code(err) == cname.CodeCnameAlreadyExists:
		fmt.Fprintf(r.stderr, "%s%s\n%s is bound to another bucket; unbind it there first (gateway cname unbind with that bucket's site, or the OSS console).\n",
			r.prefix, cname.ErrorLine(err), domain)
		return 1
	default:
		return r.fail(err)
	}
}

func (r cnameRun) list(ctx context.Context, c *oss.Client, domain string) int {
	all, err := cname.List(ctx, c, r.site.Bucket)
	if err != nil {
		return r.fail(err)
	}
	var shown []cname.Binding
	for _, b := range all {
		if domain == "" || strings.EqualFold(b.Domain, domain) {
			shown = append(shown, b)
		}
	}
	fmt.Fprintf(r.stdout, "bucket %s (site %s): %d bound domain(s)\n", r.site.Bucket, r.site.Name, len(all))
	if len(shown) > 0 {
		tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tSTATUS\tLAST MODIFIED\tCERT TYPE\tCERT ID\tCERT STATUS\tVALID FROM\tVALID UNTIL\tFINGERPRINT")
		for _, b := range shown {
			cols := []string{b.Domain, cnameDash(b.Status), cnameTime(b.LastModified), "-", "-", "-", "-", "-", "-"}
			if ci := b.Cert; ci != nil {
				cols[3], cols[4], cols[5] = cnameDash(ci.Type), cnameDash(ci.ID), cnameDash(ci.Status)
				cols[6], cols[7], cols[8] = cnameTime(ci.ValidFrom), cnameTime(ci.ValidUntil), cnameDash(ci.Fingerprint)
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
		tw.Flush()
	}
	// The site's own domains that OSS does not bind to the bucket.
	for _, d := range r.site.Domains {
		if (domain != "" && d != domain) || cname.ValidDomain(d) != "" {
			continue
		}
		if !slices.ContainsFunc(all, func(b cname.Binding) bool { return strings.EqualFold(b.Domain, d) }) {
			fmt.Fprintf(r.stdout, "not bound: %s (a domain of site %s)\n", d, r.site.Name)
		}
	}
	return 0
}

func (r cnameRun) unbind(ctx context.Context, c *oss.Client, domain string) int {
	was, err := cname.Unbind(ctx, c, r.site.Bucket, domain)
	if err != nil {
		return r.fail(err)
	}
	if !was {
		fmt.Fprintf(r.stdout, "%s was not bound to bucket %s (site %s); nothing to unbind.\n", domain, r.site.Bucket, r.site.Name)
		return 0
	}
	fmt.Fprintf(r.stdout, "unbound %s from bucket %s (site %s).\n", domain, r.site.Bucket, r.site.Name)
	return 0
}

// cnameDash is s, or "-" when s is empty (a table cell).
func cnameDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cnameTime formats a time for the table, "-" when unknown.
func cnameTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// cnameShellQuote quotes s for a POSIX shell when it needs quoting, so a
// printed command can be pasted.
func cnameShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
