package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagSet is the flags of one subcommand, with the gateway's help and
// errors: `gateway SUB -h` prints the synopsis, what the command does and
// its flags to stdout and exits 0; a bad flag is one line on stderr and
// exit status 2.
type flagSet struct {
	*flag.FlagSet
	name     string // "check", "cname bind"
	synopsis string // after "usage: gateway "
	about    string // what the command does, a few lines
	stdout   io.Writer
	stderr   io.Writer
}

func newFlagSet(name, synopsis, about string, stdout, stderr io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself, in one line
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, name: name, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr}
}

// parse parses args and reports whether the command should go on; when
// not, code is the exit status (0 after -h).
func (f *flagSet) parse(args []string) (code int, ok bool) {
	err := f.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		f.usage(f.stdout)
		return 0, false
	case err != nil:
		return f.fail("%v", err), false
	case f.NArg() > 0:
		return f.fail("unexpected argument %q", f.Arg(0)), false
	}
	return 0, true
}

// fail prints one usage error line and returns exit status 2.
func (f *flagSet) fail(format string, args ...any) int {
	fmt.Fprintf(f.stderr, "gateway %s: %s (gateway %s -h lists the flags)\n", f.name, fmt.Sprintf(format, args...), f.name)
	return exitUsage
}

// usage writes the synopsis, the description and the flags.
func (f *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: gateway %s\n\n%s\n", f.synopsis, strings.TrimRight(f.about, "\n"))
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}
