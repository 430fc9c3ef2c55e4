package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Load reads and parses the config file at path. It exists so that `gateway
// run`, `gateway check` and the SIGHUP reload read a file the same way; every
// error it returns is an *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error() // the path is already in front of the line
		}
		return nil, &Error{
			Problems: []Problem{{File: path, Msg: "cannot read the file: " + msg}},
			cause:    err,
		}
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates a config document; path names the
// file in problems only. It returns either a Config that the rest of the
// gateway uses without re-checking, or an *Error listing every problem found
// (never both), so nothing starts listening on a bad file.
func Parse(path string, data []byte) (*Config, error) {
	// Some Windows editors start UTF-8 files with a byte order mark.
	data = bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))

	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Problems: []Problem{syntaxProblem(path, err)}}
	}

	p := newProblems(path, keyLines(data))
	cfg := defaultConfig()
	(&decoder{p: p}).value(reflect.ValueOf(&cfg).Elem(), doc, "")
	cfg.Path = path
	cfg.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// syntaxProblem turns a go-toml error for a document that is not valid TOML
// into one Problem carrying its line, and its column in the message.
func syntaxProblem(path string, err error) Problem {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return Problem{
			File: path,
			Line: line,
			Msg:  oneLine("invalid TOML at column " + strconv.Itoa(col) + ": " + strings.TrimPrefix(de.Error(), "toml: ")),
		}
	}
	return Problem{File: path, Msg: oneLine("invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: "))}
}

// oneLine keeps a message to one line whatever a library put in it.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
