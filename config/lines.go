package config

import (
	"bytes"
	"sort"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps every key path written in a TOML document to the line it was
// written on, using the same path syntax as Problem.Key ("site[1].cors[0]",
// "server.http_listen"). Array-of-tables elements are numbered from 0 in
// document order, and their path maps to the line of their header. It is
// called only on documents that have already decoded cleanly; should the
// parser still stop early, the lines found so far are returned.
func keyLines(data []byte) map[string]int {
	ix := lineIndex{
		lines:  map[string]int{},
		arrays: map[string]int{},
		starts: lineStarts(data),
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

// LineOf returns the line of key in a TOML document, or, when key was
// left to its default, of the nearest enclosing table written (a [[site]]
// header); 0 when unknown. It lets checks made after Load (what the
// gateway itself refuses in an accepted file) point at a line as Load's
// own problems do.
func LineOf(data []byte, key string) int {
	return linesLookup(keyLines(data), key)
}

// linesLookup is LineOf on an index already built.
func linesLookup(lines map[string]int, key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := lines[k]; ok {
			return l
		}
	}
	return 0
}

type lineIndex struct {
	lines  map[string]int
	arrays map[string]int // array-of-tables path -> elements seen so far
	starts []int          // offset of the first byte of each line
}

// lineStarts returns the offset at which each line of data begins.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i := 0; ; {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			return starts
		}
		i += j + 1
		starts = append(starts, i)
	}
}

// lineOf returns the 1-based line of n, or 0 when the parser recorded no
// position for it (arrays have none).
func (ix *lineIndex) lineOf(n *unstable.Node) int {
	if n.Raw.Offset == 0 && n.Raw.Length == 0 {
		return 0
	}
	off := int(n.Raw.Offset)
	return sort.Search(len(ix.starts), func(i int) bool { return ix.starts[i] > off })
}

// set records the line of path unless an earlier line is already known (a
// table named implicitly by an earlier header keeps that first line).
func (ix *lineIndex) set(path string, line int) {
	if _, ok := ix.lines[path]; !ok && line > 0 {
		ix.lines[path] = line
	}
}

// header handles a [table] or [[array.of.tables]] header and returns the path
// of the table it opens.
func (ix *lineIndex) header(e *unstable.Node) string {
	path := ""
	it := e.Key()
	for it.Next() {
		k := it.Node()
		path = childKey(path, string(k.Data))
		if it.IsLast() && e.Kind == unstable.ArrayTable {
			ix.set(path, ix.lineOf(k)) // the array itself: its first element
			n := ix.arrays[path]
			ix.arrays[path] = n + 1
			path = indexKey(path, n)
		} else if n, ok := ix.arrays[path]; ok && n > 0 {
			path = indexKey(path, n-1)
		}
		ix.set(path, ix.lineOf(k))
	}
	return path
}

// keyValue handles `a.b = value` inside the table at path table.
func (ix *lineIndex) keyValue(table string, e *unstable.Node) {
	path := table
	line := 0
	it := e.Key()
	for it.Next() {
		k := it.Node()
		path = childKey(path, string(k.Data))
		line = ix.lineOf(k)
		ix.set(path, line)
	}
	ix.value(path, e.Value(), line)
}

// value records the lines inside an array or inline table value; line is the
// line of the enclosing key, used for elements without a position.
func (ix *lineIndex) value(path string, v *unstable.Node, line int) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			el := it.Node()
			if el.Kind == unstable.Comment {
				continue
			}
			p := indexKey(path, i)
			l := ix.firstLine(el)
			if l == 0 {
				l = line
			}
			ix.set(p, l)
			ix.value(p, el, l)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				ix.keyValue(path, kv)
			}
		}
	}
}

// firstLine is the line of n, or of its first positioned descendant for an
// array (which has no position of its own).
func (ix *lineIndex) firstLine(n *unstable.Node) int {
	if l := ix.lineOf(n); l > 0 {
		return l
	}
	it := n.Children()
	for it.Next() {
		if l := ix.firstLine(it.Node()); l > 0 {
			return l
		}
	}
	return 0
}
