package recipe

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a recipe problem tied to a place in the file.
type Error struct {
	File string
	Line int
	Key  string // dotted path of the offending key, e.g. "output.shards"
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// keyError is returned by validate methods; decodeStrict attaches the line
// of the key it names.
type keyError struct {
	key string
	msg string
}

func (e *keyError) Error() string { return e.key + ": " + e.msg }

func keyErr(key, format string, args ...any) error {
	return &keyError{key: key, msg: fmt.Sprintf(format, args...)}
}

// validator is implemented by recipe structs that check their own values
// after decoding.
type validator interface{ validate() error }

// decodeStrict decodes a YAML node into out (a pointer), rejecting keys
// the Go structs do not declare, and reporting every problem with the line
// and dotted key path where it happened.
func decodeStrict(file string, n *yaml.Node, out any, path string) error {
	d := &strictDecoder{file: file, keyLines: map[string]int{}}
	return d.decodeValue(n, reflect.ValueOf(out).Elem(), path)
}

type strictDecoder struct {
	file string
	// keyLines remembers the line of every key path decoded, so that
	// errors found after decoding (duplicates across list items, say)
	// point at the right line.
	keyLines map[string]int
}

// lineOf finds the line of path or of its nearest recorded parent.
func (d *strictDecoder) lineOf(path string, fallback int) int {
	for p := path; p != ""; {
		if l, ok := d.keyLines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return fallback
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *strictDecoder) decodeValue(n *yaml.Node, v reflect.Value, path string) error {
	file := d.file
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if u, ok := v.Addr().Interface().(interface {
		decodeYAML(file string, n *yaml.Node, path string) error
	}); ok {
		return u.decodeYAML(file, n, path)
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			return wrapErr(file, n.Line, path, err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &Error{File: file, Line: n.Line, Key: path, Msg: fmt.Sprintf("want a mapping, got %s", kindName(n))}
		}
		fields := structFields(v.Type())
		lines := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			if !ok {
				return &Error{File: file, Line: k.Line, Key: join(path, k.Value), Msg: "unknown key (known: " + knownKeys(fields) + ")"}
			}
			if _, dup := lines[k.Value]; dup {
				return &Error{File: file, Line: k.Line, Key: join(path, k.Value), Msg: "key given twice"}
			}
			lines[k.Value] = k.Line
			d.keyLines[join(path, k.Value)] = k.Line
			if err := d.decodeValue(val, v.FieldByIndex(idx), join(path, k.Value)); err != nil {
				return err
			}
		}
		if val, ok := v.Addr().Interface().(validator); ok {
			if err := val.validate(); err != nil {
				var ke *keyError
				if errors.As(err, &ke) {
					full := join(path, ke.key)
					return &Error{File: file, Line: d.lineOf(full, n.Line), Key: full, Msg: ke.msg}
				}
				var re *Error
				if errors.As(err, &re) {
					return re
				}
				return &Error{File: file, Line: n.Line, Key: path, Msg: err.Error()}
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if v.Type().Elem().Kind() != reflect.Struct {
			break
		}
		if n.Kind != yaml.SequenceNode {
			return &Error{File: file, Line: n.Line, Key: path, Msg: fmt.Sprintf("want a list, got %s", kindName(n))}
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.keyLines[fmt.Sprintf("%s[%d]", path, i)] = item.Line
			if err := d.decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		p := reflect.New(v.Type().Elem())
		if err := d.decodeValue(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return wrapErr(file, n.Line, path, err)
	}
	return nil
}

func wrapErr(file string, line int, path string, err error) error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
		// yaml's own messages start with "line N: "; we print the line.
		if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
			msg = msg[i+2:]
		}
	}
	return &Error{File: file, Line: line, Key: path, Msg: msg}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// structFields maps yaml keys to field index paths; the keys of an
// embedded struct tagged `yaml:",inline"` are the outer struct's.
func structFields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		parts := strings.Split(f.Tag.Get("yaml"), ",")
		tag := parts[0]
		if tag == "-" {
			continue
		}
		if slices.Contains(parts[1:], "inline") && f.Type.Kind() == reflect.Struct {
			for k, idx := range structFields(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		m[tag] = []int{i}
	}
	return m
}

func knownKeys(fields map[string][]int) string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
