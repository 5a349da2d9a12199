package config

import (
	"encoding"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mailwire/mailwire/transport"
)

// A decoder turns YAML nodes into Go values strictly, reporting every
// problem as an *Error with the file, line and key path.
type decoder struct {
	file  string // name for errors
	dir   string // directory that relative paths are relative to
	opts  buildOptions
	check bool // Parse's check of every profile: secrets and files are not read
}

// Params are the parameters of a transport kind or a middleware: a YAML
// mapping, with its place in the file. A [TransportFunc] or
// [MiddlewareFunc] decodes them with [Params.Decode] into a struct of its
// own and reports further problems with [Params.Errorf], so that every
// error names the file, line and key.
//
// A struct field of type *Params (or []*Params) keeps a mapping of the
// file undecoded, to be decoded later or built with [Params.Transport]:
// that is how the failover kind takes its members.
type Params struct {
	d    *decoder
	node *yaml.Node // the mapping, aliases resolved; nil or null for none
	key  string     // path of the key that holds the mapping
	line int        // line of that key
	skip []string   // keys read by this package (a transport's kind)
}

// Decode decodes the parameters into v, a non-nil pointer to a struct,
// strictly:
//
//   - Each exported field is the key named by its yaml tag (or its name in
//     lower case); a key no field names is an error, as are duplicate keys.
//     The tag option ",inline" embeds a struct's keys; "-" skips a field.
//   - Scalars must have the type of their field: integers for int fields,
//     true or false for bool fields, numbers for floats. A string field
//     takes any scalar but true, false and null (quote them).
//   - time.Duration fields take Go durations such as "30s" or "1h30m";
//     types implementing encoding.TextUnmarshaler (transport.Security,
//     slog.Level, [TLSVersion]) take their text.
//   - Pointer, slice and map fields stay nil when their key is absent or
//     null, so a pointer field tells a key that is absent from a zero value.
//   - A field of type [Secret] named "password" takes one of the keys
//     password_env, password_file or password (a marked literal); see
//     Secret.
//   - Fields of the types [TLS], [Dialer], [Auth] and [Pool] are checked
//     and loaded as they are decoded: files are read and names looked up.
//
// Anchors, aliases and merge keys ("<<") are followed. The errors Decode
// returns are *Error values.
func (p *Params) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Params.Decode needs a non-nil pointer, not %T", v)
	}
	return p.d.decodeStruct(p.node, loc{p.key, p.line}, rv.Elem(), p.skip)
}

// Errorf returns an *Error for the parameter key, which is a key of the
// mapping ("address"), or a path below it ("auth.mechanism",
// "members[1]"), or "" for the mapping as a whole. The error gives the
// line of that key if it is present, or else the line of the mapping. The
// message must not quote a secret.
func (p *Params) Errorf(key string, format string, args ...any) error {
	line, path := p.find(key)
	return &Error{File: p.d.file, Line: line, Key: path, Err: fmt.Errorf(format, args...)}
}

// wrap returns err as an *Error for key, unless it already is one.
func (p *Params) wrap(key string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	line, path := p.find(key)
	return &Error{File: p.d.file, Line: line, Key: path, Err: err}
}

// Checking reports whether the parameters are being decoded by [Parse],
// which checks every profile of a file by calling its kinds and middleware
// once and discarding what they build. Secrets and the files of the TLS
// block are not read then ([Secret.Value] is empty). A kind or middleware
// whose construction has side effects (opening a file, starting a
// goroutine) skips them while Checking is true; decoding and checking its
// parameters is what Parse needs from it.
func (p *Params) Checking() bool { return p.d.check }

// Path returns a path written in the file as the file means it: a
// relative path is relative to the directory of the configuration file.
func (p *Params) Path(path string) string {
	return p.d.path(path)
}

// Transport builds the transport described by the parameters: a mapping
// with a kind key (smtp if absent) and that kind's own keys. It is for
// kinds that hold other transports, such as failover.
func (p *Params) Transport() (transport.Transport, error) {
	kind, f, err := p.kind()
	if err != nil {
		return nil, err
	}
	sub := &Params{d: p.d, node: p.node, key: p.key, line: p.line, skip: []string{"kind"}}
	t, err := f(sub)
	if err != nil {
		return nil, sub.wrap("", err)
	}
	if t == nil {
		return nil, sub.Errorf("", "transport kind %q built no transport", kind)
	}
	p.d.opts.finish(t)
	return t, nil
}

// find returns the line and the full path of key below p.
func (p *Params) find(key string) (int, string) {
	line, path, n := p.line, p.key, p.node
	for _, seg := range splitPath(key) {
		if seg.index >= 0 {
			path += "[" + strconv.Itoa(seg.index) + "]"
		} else {
			path = join(path, seg.key)
		}
		n = resolve(n)
		if n == nil {
			continue
		}
		var next *yaml.Node
		switch {
		case seg.index >= 0 && n.Kind == yaml.SequenceNode:
			if seg.index < len(n.Content) {
				next = n.Content[seg.index]
				line = next.Line
			}
		case seg.index < 0 && n.Kind == yaml.MappingNode:
			if ps, err := p.d.pairs(n, ""); err == nil {
				for _, kv := range ps {
					if kv.k.Value == seg.key {
						next = kv.v
						line = kv.k.Line
						break
					}
				}
			}
		}
		n = next
	}
	return line, path
}

type pathSeg struct {
	key   string
	index int // -1 for a key
}

func splitPath(s string) []pathSeg {
	var segs []pathSeg
	for s != "" {
		switch {
		case s[0] == '.':
			s = s[1:]
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return append(segs, pathSeg{key: s, index: -1})
			}
			i, err := strconv.Atoi(s[1:end])
			if err != nil {
				i = 0
			}
			segs = append(segs, pathSeg{index: i})
			s = s[end+1:]
		default:
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			segs = append(segs, pathSeg{key: s[:end], index: -1})
			s = s[end:]
		}
	}
	return segs
}

// loc is where a value is: the path of its key and the key's line.
type loc struct {
	path string
	line int
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) path(p string) string {
	if p == "" || filepath.IsAbs(p) || d.dir == "" {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) errorf(line int, path, format string, args ...any) *Error {
	return &Error{File: d.file, Line: line, Key: path, Err: fmt.Errorf(format, args...)}
}

// typeErr reports that n is not what the key takes. It never quotes n's
// value, which may be a secret written in the wrong place.
func (d *decoder) typeErr(n *yaml.Node, path, want string) *Error {
	return d.errorf(n.Line, path, "want %s, got %s", want, describe(n))
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "no value"
		}
		if strings.HasPrefix(n.Tag, "!!") {
			return "a value tagged " + n.Tag
		}
		// A local tag (!name) is text of the file: a password that
		// starts with "!" is read as one.
		return "a value with a local tag"
	}
	return "something else"
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// A pair is a key and its value. first is the line where the key first
// appears if this pair repeats it, or 0.
type pair struct {
	k, v  *yaml.Node
	first int
}

// pairs returns the key-value pairs of the mapping n, with merge keys
// expanded (explicit keys win over merged ones), refusing keys that are
// not scalars. A duplicate key is kept, marked with the line of its first
// occurrence: the caller reports it, as only the caller knows whether the
// key may be shown (see decodeStruct).
func (d *decoder) pairs(n *yaml.Node, path string) ([]pair, error) {
	return d.mergePairs(n, path, 0)
}

func (d *decoder) mergePairs(n *yaml.Node, path string, depth int) ([]pair, error) {
	if depth > 20 {
		return nil, d.errorf(n.Line, path, "merge keys nested too deeply")
	}
	var (
		out    []pair
		merged []pair
		seen   = make(map[string]int)
	)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, d.errorf(k.Line, path, "a key must be a string, not %s", describe(k))
		}
		if k.Tag == "!!merge" {
			srcs := []*yaml.Node{resolve(v)}
			if srcs[0].Kind == yaml.SequenceNode {
				srcs = srcs[0].Content
			}
			for _, src := range srcs {
				src = resolve(src)
				if src.Kind != yaml.MappingNode {
					return nil, d.errorf(k.Line, path, "a merge key (<<) takes a mapping or a list of mappings")
				}
				ps, err := d.mergePairs(src, path, depth+1)
				if err != nil {
					return nil, err
				}
				merged = append(merged, ps...)
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			out = append(out, pair{k, v, first})
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k: k, v: v})
	}
	for _, kv := range merged {
		if kv.first == 0 {
			if _, ok := seen[kv.k.Value]; ok {
				continue
			}
			seen[kv.k.Value] = kv.k.Line
		}
		out = append(out, kv)
	}
	return out, nil
}

// dupErr is the error for a key that repeats an earlier one. Only a key
// that may be shown (a known key, or a name the file defines) is reported
// so; decodeStruct reports an unknown key first, whether or not it repeats.
func (d *decoder) dupErr(kv pair, path string) *Error {
	return d.errorf(kv.k.Line, join(path, kv.k.Value), "duplicate key (first at line %d)", kv.first)
}

// unknownKey is the error for the key k, which the mapping at path does
// not take; known are the keys it takes. A key is quoted only when it is
// close to a known key, as a typing mistake is: anything else may be a
// password typed where a key belongs, so the error names the mapping and
// the line, and lists the keys the mapping takes.
func (d *decoder) unknownKey(k *yaml.Node, path string, known []string) *Error {
	if s := suggest(k.Value, known); s != "" {
		return d.errorf(k.Line, join(path, k.Value), "unknown key; did you mean %s?", s)
	}
	if len(known) == 0 {
		return d.errorf(k.Line, path, "unknown key (not shown: it may be a secret); this mapping takes no keys")
	}
	return d.errorf(k.Line, path, "unknown key (not shown: it may be a secret); valid keys: %s", strings.Join(known, ", "))
}

// A checker is a decoded struct that checks itself, and loads what it
// names (files, registered names), once its keys are decoded. p is the
// struct's own mapping, for errors that name its keys.
type checker interface {
	check(p *Params) error
}

type field struct {
	name   string
	index  []int
	secret bool
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	paramsType   = reflect.TypeFor[*Params]()
	textType     = reflect.TypeFor[encoding.TextUnmarshaler]()
	checkerType  = reflect.TypeFor[checker]()
)

// structFields returns the keys of struct type t.
func structFields(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if opts == "inline" && sf.Type.Kind() == reflect.Struct {
			for _, f := range structFields(sf.Type) {
				f.index = append([]int{i}, f.index...)
				fs = append(fs, f)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		fs = append(fs, field{name: name, index: []int{i}, secret: sf.Type == secretType})
	}
	return fs
}

// Keys returns the keys a struct of type t takes, in field order, with a
// Secret field's three keys. The reference test uses it.
func keysOf(t reflect.Type) []string {
	var keys []string
	for _, f := range structFields(t) {
		if f.secret {
			keys = append(keys, f.name+"_env", f.name+"_file", f.name)
			continue
		}
		keys = append(keys, f.name)
	}
	return keys
}

type secretPart struct {
	variant string // "env", "file" or "" for the marked literal
	k, v    *yaml.Node
}

func (d *decoder) decodeStruct(n *yaml.Node, at loc, v reflect.Value, skip []string) error {
	n = resolve(n)
	var ps []pair
	if n != nil && !isNull(n) {
		if n.Kind != yaml.MappingNode {
			return d.typeErr(n, at.path, "a mapping")
		}
		var err error
		if ps, err = d.pairs(n, at.path); err != nil {
			return err
		}
	}
	fields := structFields(v.Type())
	byKey := make(map[string]int, len(fields))
	for i, f := range fields {
		byKey[f.name] = i
		if f.secret {
			byKey[f.name+"_env"] = i
			byKey[f.name+"_file"] = i
		}
	}
	// The keys first, in order: an unknown key (shown only if it is close
	// to a known one), then a key given twice (a known one, so shown).
	for _, kv := range ps {
		key := kv.k.Value
		if _, ok := byKey[key]; !ok && !contains(skip, key) {
			return d.unknownKey(kv.k, at.path, append(slices.Clone(skip), keysOf(v.Type())...))
		}
		if kv.first > 0 {
			return d.dupErr(kv, at.path)
		}
	}
	secrets := make(map[int][]secretPart)
	for _, kv := range ps {
		key := kv.k.Value
		path := join(at.path, key)
		i, ok := byKey[key]
		if !ok {
			continue // a key of skip
		}
		f := fields[i]
		if f.secret {
			variant := ""
			switch key {
			case f.name + "_env":
				variant = "env"
			case f.name + "_file":
				variant = "file"
			}
			secrets[i] = append(secrets[i], secretPart{variant, kv.k, kv.v})
			continue
		}
		if err := d.decodeValue(kv.v, loc{path, kv.k.Line}, v.FieldByIndex(f.index)); err != nil {
			return err
		}
	}
	for i, parts := range secrets {
		f := fields[i]
		s, err := d.secret(f.name, at.path, parts)
		if err != nil {
			return err
		}
		v.FieldByIndex(f.index).Set(reflect.ValueOf(s))
	}
	if v.CanAddr() && v.Addr().Type().Implements(checkerType) {
		p := &Params{d: d, node: n, key: at.path, line: at.line}
		if err := v.Addr().Interface().(checker).check(p); err != nil {
			return p.wrap("", err)
		}
	}
	return nil
}

func (d *decoder) decodeValue(n *yaml.Node, at loc, v reflect.Value) error {
	n = resolve(n)
	t := v.Type()
	switch {
	case t == paramsType:
		v.Set(reflect.ValueOf(&Params{d: d, node: n, key: at.path, line: at.line}))
		return nil
	case t == secretType:
		return d.errorf(at.line, at.path, "a Secret must be a struct field")
	case t == durationType:
		if isNull(n) {
			return d.errorf(at.line, at.path, "missing value (want a duration such as 30s)")
		}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" && n.Tag != "!!int" {
			return d.typeErr(n, at.path, "a duration such as 30s")
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			return d.errorf(n.Line, at.path, "invalid duration %q (write a number with a unit, such as 30s, 2m or 1h)", n.Value)
		}
		v.SetInt(int64(dur))
		return nil
	case t.Kind() == reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.decodeValue(n, at, v.Elem())
	case reflect.PointerTo(t).Implements(textType) && v.CanAddr():
		if isNull(n) {
			return d.errorf(at.line, at.path, "missing value")
		}
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
			return d.typeErr(n, at.path, "a string")
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return &Error{File: d.file, Line: n.Line, Key: at.path, Err: err}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.decodeStruct(n, at, v, nil)
	case reflect.Slice:
		if isNull(n) {
			v.SetZero()
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return d.typeErr(n, at.path, "a list")
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := d.decodeValue(e, loc{at.path + "[" + strconv.Itoa(i) + "]", e.Line}, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return d.errorf(at.line, at.path, "config: unsupported map key type %s", t.Key())
		}
		if isNull(n) {
			v.SetZero()
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return d.typeErr(n, at.path, "a mapping")
		}
		ps, err := d.pairs(n, at.path)
		if err != nil {
			return err
		}
		// The keys of a map are names the file defines (profile names,
		// attribute names): they are shown, being the paths of what they
		// hold. But an entry that should be a mapping and is not (a line
		// pasted at the wrong indentation) is reported without its name.
		elem := t.Elem()
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		takesMapping := elem.Kind() == reflect.Struct && elem != secretType && elem != paramsType.Elem() &&
			!reflect.PointerTo(elem).Implements(textType)
		for _, kv := range ps {
			if kv.first > 0 {
				return d.dupErr(kv, at.path)
			}
			if e := resolve(kv.v); takesMapping && !isNull(e) && e.Kind != yaml.MappingNode {
				return d.errorf(kv.k.Line, at.path, "an entry is %s, not a mapping (its name is not shown: it may be a secret)", describe(e))
			}
		}
		m := reflect.MakeMapWithSize(t, len(ps))
		for _, kv := range ps {
			e := reflect.New(t.Elem()).Elem()
			if err := d.decodeValue(kv.v, loc{join(at.path, kv.k.Value), kv.k.Line}, e); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(kv.k.Value).Convert(t.Key()), e)
		}
		v.Set(m)
		return nil
	}
	// Scalars.
	if isNull(n) {
		return d.errorf(at.line, at.path, "missing value")
	}
	if n.Kind != yaml.ScalarNode {
		return d.typeErr(n, at.path, scalarWant(t.Kind()))
	}
	switch t.Kind() {
	case reflect.String:
		if n.Tag == "!!bool" {
			return d.errorf(n.Line, at.path, "want a string, got a boolean (quote it)")
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Tag != "!!bool" {
			return d.typeErr(n, at.path, "true or false")
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return d.typeErr(n, at.path, "true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			return d.typeErr(n, at.path, "an integer")
		}
		if v.OverflowInt(i) {
			return d.errorf(n.Line, at.path, "%s is out of range", n.Value)
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var i uint64
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			return d.typeErr(n, at.path, "a non-negative integer")
		}
		if v.OverflowUint(i) {
			return d.errorf(n.Line, at.path, "%s is out of range", n.Value)
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Tag != "!!int" && n.Tag != "!!float" || n.Decode(&f) != nil {
			return d.typeErr(n, at.path, "a number")
		}
		v.SetFloat(f)
	default:
		return d.errorf(at.line, at.path, "config: unsupported field type %s", t)
	}
	return nil
}

func scalarWant(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "an integer"
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to key, if it is close enough to
// be a typing mistake.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
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

// reflectOf returns the value ptr points to, settable.
func reflectOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }
