package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse: whatever the bytes, Parse does not panic, and returns either a
// config or an *Error with at least one problem, each of one line.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(minimal))
	f.Add([]byte(""))
	f.Add([]byte("[server]\nhttp_listen = \n"))
	f.Add([]byte("[[site]]\nname = \"a\"\n[[site.cors]]\nallowed_origins = [\"*\"]\n[site.cors]\n"))
	f.Add([]byte("site = [{ name = \"a\", cors = [{ allowed_origins = [[1], {x = 2}] }] }]\n"))
	f.Add([]byte("[[site]]\ndomains = [\"*.A.com.\", \"[::1]\", \"1.2.3.4:80\"]\n\"quoted.key\" = 1979-05-27\n"))
	f.Add([]byte("a.b.c = 1\n[a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("gateway.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("nil config and nil error")
			}
			_ = c.Warnings()
			return
		}
		if c != nil {
			t.Fatal("config returned along with an error")
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) == 0 {
			t.Fatalf("error %T %v is not an *Error with problems", err, err)
		}
		for _, p := range e.Problems {
			if s := p.String(); strings.ContainsAny(s, "\n\r") {
				t.Fatalf("problem is not one line: %q", s)
			}
		}
	})
}
