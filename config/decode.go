package config

import (
	"errors"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// decoder copies a generic TOML document (as decoded by go-toml into
// map[string]any) onto a typed value that already holds the defaults.
//
// go-toml's own struct decoding stops at the first wrongly typed value and
// reports unknown keys only when nothing else is wrong; walking the generic
// document instead reports every unknown key and every type mismatch of the
// file in one pass, and tells written keys from absent ones for free.
type decoder struct {
	p *problems
}

// value stores raw into v; path is v's key path for problems.
func (d *decoder) value(v reflect.Value, raw any, path string) {
	if v.Type() == reflect.TypeFor[Duration]() {
		d.duration(v, raw, path)
		return
	}
	if v.Type() == reflect.TypeFor[Size]() {
		d.size(v, raw, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.table(v, raw, path)
	case reflect.Slice:
		d.array(v, raw, path)
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			d.mismatch(path, "a string", raw)
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.mismatch(path, "true or false", raw)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, ok := raw.(int64)
		if !ok {
			d.mismatch(path, "an integer", raw)
			return
		}
		if v.OverflowInt(n) {
			d.p.decodeErr(path, "%d is out of range", n)
			return
		}
		v.SetInt(n)
	case reflect.Float64:
		var f float64
		switch x := raw.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		default:
			d.mismatch(path, "a number", raw)
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.p.decodeErr(path, "must be a finite number, not %v", f)
			return
		}
		v.SetFloat(f)
	default:
		// Unreachable for the types of this package; a new field type
		// must be added above.
		d.p.decodeErr(path, "cannot decode into %s", v.Type())
	}
}

// table stores a TOML table into struct v, field by field through the toml
// tags. Keys without a field are reported as unknown.
func (d *decoder) table(v reflect.Value, raw any, path string) {
	m, ok := raw.(map[string]any)
	if !ok {
		d.mismatch(path, "a table", raw)
		return
	}
	fields := tomlFields(v.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := childKey(path, k)
		i, ok := fields[k]
		if !ok {
			d.unknown(key, k, fields)
			continue
		}
		d.value(v.Field(i), m[k], key)
	}
}

// array stores a TOML array into slice v, each element starting from its
// defaults (see newElem). A written array replaces the default one whole.
func (d *decoder) array(v reflect.Value, raw any, path string) {
	list, ok := raw.([]any)
	if !ok {
		if v.Type().Elem().Kind() == reflect.Struct {
			d.p.decodeErr(path, "must be an array of tables, written [[%s]], not %s", tableName(path), tomlType(raw))
			return
		}
		d.mismatch(path, "an array", raw)
		return
	}
	out := reflect.MakeSlice(v.Type(), len(list), len(list))
	for i, el := range list {
		e := newElem(v.Type().Elem())
		d.value(e, el, indexKey(path, i))
		out.Index(i).Set(e)
	}
	v.Set(out)
}

// duration parses a Go duration string such as "30s" into v.
func (d *decoder) duration(v reflect.Value, raw any, path string) {
	s, ok := raw.(string)
	if !ok {
		d.mismatch(path, `a duration string such as "30s"`, raw)
		return
	}
	var dur Duration
	if err := dur.UnmarshalText([]byte(s)); err != nil {
		if errors.Is(err, errNegativeDuration) {
			d.p.decodeErr(path, "%q: %v", s, err)
		} else {
			d.p.decodeErr(path, `%q is not a duration (write it like "30s", "1m30s" or "250ms")`, s)
		}
		return
	}
	v.Set(reflect.ValueOf(dur))
}

// size parses a byte size such as "256MiB" into v.
func (d *decoder) size(v reflect.Value, raw any, path string) {
	s, ok := raw.(string)
	if !ok {
		d.mismatch(path, `a size string such as "256MiB"`, raw)
		return
	}
	var sz Size
	if err := sz.UnmarshalText([]byte(s)); err != nil {
		d.p.decodeErr(path, `%q is not a size (write it like "10GiB", "256MiB" or "512KiB")`, s)
		return
	}
	v.Set(reflect.ValueOf(sz))
}

func (d *decoder) mismatch(path, want string, raw any) {
	d.p.decodeErr(path, "must be %s, not %s", want, tomlType(raw))
}

// unknown reports a key that has no field, suggesting the nearest known key
// when the name looks like a typo of one.
func (d *decoder) unknown(key, name string, fields map[string]int) {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	best, bestDist := "", 3 // suggest only within two edits
	for _, f := range names {
		if dist := editDistance(strings.ToLower(name), f); dist < bestDist {
			best, bestDist = f, dist
		}
	}
	if best != "" && bestDist < len(name) {
		d.p.decodeErr(key, "unknown key (did you mean %q?)", best)
		return
	}
	d.p.decodeErr(key, "unknown key")
}

// tomlFields maps the toml tag of each field of struct type t to its index;
// fields tagged "-" are parsed forms, not keys.
func tomlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	return fields
}

// tableName turns a key path into the name of its table in a header:
// "site[0].cors" -> "site.cors".
func tableName(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// tomlType names the TOML type of a decoded value, for messages.
func tomlType(raw any) string {
	switch raw.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a date or time"
	default:
		return "an unsupported value"
	}
}

// editDistance is the Levenshtein distance between a and b, for "did you
// mean" hints on unknown keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
