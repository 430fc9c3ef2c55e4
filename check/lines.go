package check

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps the key paths written in a TOML document to their lines,
// in config.Problem's path syntax ("site[1].url_auth.key_env",
// "credentials.source"; array-of-tables elements numbered from 0 in
// document order), so that Validate's problems carry a line as
// config.Load's do. A document that stops parsing gives the lines found
// so far.
func keyLines(data []byte) map[string]int {
	ix := lineIndex{lines: map[string]int{}, arrays: map[string]int{}, starts: []int{0}}
	for i, c := range data {
		if c == '\n' {
			ix.starts = append(ix.starts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = ix.header(e)
		case unstable.KeyValue:
			ix.keyValue(table, e)
		}
	}
	return ix.lines
}

type lineIndex struct {
	lines  map[string]int
	arrays map[string]int // array-of-tables path -> elements seen so far
	starts []int          // offset of the first byte of each line
}

func (ix *lineIndex) lineOf(n *unstable.Node) int {
	if n.Raw.Offset == 0 && n.Raw.Length == 0 {
		return 0
	}
	off := int(n.Raw.Offset)
	return sort.Search(len(ix.starts), func(i int) bool { return ix.starts[i] > off })
}

// set keeps the first line a path was seen on.
func (ix *lineIndex) set(path string, line int) {
	if _, ok := ix.lines[path]; !ok && line > 0 {
		ix.lines[path] = line
	}
}

func (ix *lineIndex) header(e *unstable.Node) string {
	path := ""
	it := e.Key()
	for it.Next() {
		k := it.Node()
		path = childKey(path, string(k.Data))
		if it.IsLast() && e.Kind == unstable.ArrayTable {
			ix.set(path, ix.lineOf(k))
			n := ix.arrays[path]
			ix.arrays[path] = n + 1
			path += "[" + strconv.Itoa(n) + "]"
		} else if n := ix.arrays[path]; n > 0 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
		ix.set(path, ix.lineOf(k))
	}
	return path
}

func (ix *lineIndex) keyValue(table string, e *unstable.Node) {
	path, line := table, 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		path = childKey(path, string(k.Data))
		line = ix.lineOf(k)
		ix.set(path, line)
	}
	v := e.Value()
	switch v.Kind {
	case unstable.Array:
		i := 0
		for el := v.Children(); el.Next(); {
			if el.Node().Kind == unstable.Comment {
				continue
			}
			l := ix.lineOf(el.Node())
			if l == 0 {
				l = line
			}
			ix.set(path+"["+strconv.Itoa(i)+"]", l)
			i++
		}
	case unstable.InlineTable:
		for kv := v.Children(); kv.Next(); {
			if kv.Node().Kind == unstable.KeyValue {
				ix.keyValue(path, kv.Node())
			}
		}
	}
}

// childKey appends a key part, quoted unless it is a bare TOML key, as
// config writes its key paths.
func childKey(path, part string) string {
	bare := part != ""
	for i := 0; i < len(part) && bare; i++ {
		c := part[i]
		bare = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !bare {
		part = strconv.Quote(part)
	}
	if path == "" {
		return part
	}
	return path + "." + part
}

// lineFor is the line of key or, when key was left to its default, of the
// nearest enclosing table written (a [[site]] header); 0 when unknown.
func lineFor(lines map[string]int, key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := lines[k]; ok {
			return l
		}
	}
	return 0
}

// parentKey strips the last part of a key path: "site[1].url_auth.ttl" ->
// "site[1].url_auth" -> "site[1]" -> "site" -> "".
func parentKey(key string) string {
	if strings.HasSuffix(key, "]") {
		if i := strings.LastIndexByte(key, '['); i >= 0 {
			return key[:i]
		}
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}
