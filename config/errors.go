package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// errNegativeDuration is returned by Duration.UnmarshalText: every duration in
// the file is a timeout, a delay or a TTL, and none of them means anything
// below zero.
var errNegativeDuration = errors.New("must not be negative")

// Problem is one thing wrong with a config file. Operators fix files by line,
// so each problem names the file, the line (when known) and the dotted key.
type Problem struct {
	File string
	Line int    // 1-based; 0 = unknown
	Key  string // dotted path such as "site[1].limits.allow_ips[0]"; "" for syntax errors
	Msg  string
}

// String renders the problem as the single line an operator sees:
// `gateway.toml:12: site[1].bucket: "My_Bucket" is not a valid ...`.
func (p Problem) String() string {
	var b strings.Builder
	if p.File == "" {
		b.WriteString("config")
	} else {
		b.WriteString(p.File)
	}
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in one config file. Load and Parse report all
// of them at once, so that an operator fixes a file in one round trip rather
// than one error per restart.
type Error struct {
	Problems []Problem

	cause error // the I/O error when the file could not be read
}

// Error joins the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the I/O error of an unreadable file, so callers can test it
// with errors.Is(err, fs.ErrNotExist).
func (e *Error) Unwrap() error { return e.cause }

// problems collects Problems while a file is decoded and validated.
type problems struct {
	file  string
	lines map[string]int // key path -> line, from the document's syntax tree
	list  []Problem
	// bad holds keys whose value could not be decoded. Validation skips them
	// and their children: a wrongly typed `bucket = 5` is one problem, not a
	// second "bucket is required" as well.
	bad map[string]bool
}

func newProblems(file string, lines map[string]int) *problems {
	return &problems{file: file, lines: lines, bad: map[string]bool{}}
}

// decodeErr records a problem found while decoding key and marks key bad.
func (p *problems) decodeErr(key, format string, args ...any) {
	p.bad[key] = true
	p.list = append(p.list, Problem{File: p.file, Line: p.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// add records a validation problem for key, unless key (or a table holding
// it) already failed to decode.
func (p *problems) add(key, format string, args ...any) {
	for k := key; k != ""; k = parentKey(k) {
		if p.bad[k] {
			return
		}
	}
	p.list = append(p.list, Problem{File: p.file, Line: p.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// addNear is add for a key required or forbidden by another key: when key
// itself is not written, the problem points at the line of near (such as
// `tls = "files"` for a missing cert_file) rather than at the table header.
func (p *problems) addNear(key, near, format string, args ...any) {
	n := len(p.list)
	p.add(key, format, args...)
	if len(p.list) > n {
		if _, written := p.lines[key]; !written {
			if l, ok := p.lines[near]; ok {
				p.list[n].Line = l
			}
		}
	}
}

// line is the line where key was written or, for a key left to its default,
// the line of the nearest table that was written (such as the [[site]]
// header of a site that lacks a required key).
func (p *problems) line(key string) int { return linesLookup(p.lines, key) }

// err returns the collected problems as an *Error sorted by line (problems
// without a line last), or nil when there are none.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := append([]Problem(nil), p.list...)
	sort.SliceStable(list, func(i, j int) bool {
		li, lj := list[i].Line, list[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return &Error{Problems: list}
}

// parentKey strips the last component from a key path:
// "site[1].cors[0]" -> "site[1].cors" -> "site[1]" -> "site" -> "".
func parentKey(key string) string {
	if strings.HasSuffix(key, "]") {
		if i := strings.LastIndexByte(key, '['); i >= 0 {
			return key[:i]
		}
	}
	if strings.HasSuffix(key, `"`) {
		// A quoted part: `a."b.c"`. Find its opening quote.
		if i := strings.LastIndex(key[:len(key)-1], `."`); i >= 0 {
			return key[:i]
		}
		if strings.HasPrefix(key, `"`) {
			return ""
		}
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// childKey appends one key part to a path, quoting parts that are not bare
// TOML keys so that a path stays readable and unambiguous.
func childKey(path, part string) string {
	if !isBareKey(part) {
		part = strconv.Quote(part)
	}
	if path == "" {
		return part
	}
	return path + "." + part
}

// indexKey appends an array index to a path.
func indexKey(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
