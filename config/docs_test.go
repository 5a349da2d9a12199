package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docSection is where docs/config.md documents the keys of a struct.
var docSections = map[reflect.Type]string{
	reflect.TypeFor[fileSpec]():       "## The file",
	reflect.TypeFor[profileSpec]():    "## Profiles",
	reflect.TypeFor[middlewareSpec](): "## Middleware",
	reflect.TypeFor[TLS]():            "### `tls`",
	reflect.TypeFor[Dialer]():         "### `dialer`",
	reflect.TypeFor[Auth]():           "### `auth`",
	reflect.TypeFor[Pool]():           "### `pool`",
	reflect.TypeFor[literal]():        "## Secrets",
}

var keyRow = regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")

// sections splits a Markdown document at its headings: heading line to
// the rows of its table.
func sections(doc string) map[string][]string {
	out := make(map[string][]string)
	var cur string
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "#") {
			cur = line
			out[cur] = nil
			continue
		}
		if m := keyRow.FindStringSubmatch(line); m != nil && cur != "" {
			out[cur] = append(out[cur], m[1])
		}
	}
	return out
}

// TestReferenceDocumentsEveryKey fails if docs/config.md misses a key of
// the file format, of a built-in kind or middleware, or of a block they
// use, or lists a key that does not exist: the reference cannot drift
// from the code.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	secs := sections(string(doc))
	check := func(heading string, want []string) {
		t.Helper()
		got, ok := secs[heading]
		if !ok {
			t.Errorf("docs/config.md has no section %q", heading)
			return
		}
		for _, k := range want {
			if !slices.Contains(got, k) {
				t.Errorf("docs/config.md, %s: key %s is not documented", heading, k)
			}
		}
		for _, k := range got {
			if !slices.Contains(want, k) {
				t.Errorf("docs/config.md, %s: documents %s, which is not a key", heading, k)
			}
		}
	}

	// Every built-in is registered and has a section; the structs they
	// reach have theirs too.
	seen := make(map[reflect.Type]bool)
	var walk func(reflect.Type)
	walk = func(t0 reflect.Type) {
		for _, f := range reflect.VisibleFields(t0) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map {
				ft = ft.Elem()
			}
			if !f.IsExported() || ft.Kind() != reflect.Struct || ft == durationType || ft == paramsType.Elem() || ft.PkgPath() != t0.PkgPath() {
				continue
			}
			if ft == secretType {
				ft = reflect.TypeFor[literal]()
			}
			if seen[ft] {
				continue
			}
			seen[ft] = true
			h, ok := docSections[ft]
			if !ok {
				t.Errorf("struct %s is part of the file format but docs_test.go maps it to no section", ft)
				continue
			}
			check(h, keysOf(ft))
			walk(ft)
		}
	}
	walk(reflect.TypeFor[fileSpec]())
	check("## The file", keysOf(reflect.TypeFor[fileSpec]()))
	check("## Transports", []string{"kind"})

	kinds := make(map[string]bool)
	for _, k := range Transports() {
		kinds["transport "+k] = true
	}
	for _, m := range Middlewares() {
		kinds["middleware "+m] = true
	}
	for name, params := range builtinParams {
		if !kinds[name] {
			t.Errorf("builtinParams lists %s, which is not registered", name)
		}
		delete(kinds, name)
		kind, n, _ := strings.Cut(name, " ")
		heading := findHeading(secs, n)
		if heading == "" {
			t.Errorf("docs/config.md has no ### heading naming the %s `%s`", kind, n)
			continue
		}
		pt := reflect.TypeOf(params)
		check(heading, keysOf(pt))
		walk(pt)
	}
	for name := range kinds {
		t.Errorf("%s is registered but has no entry in builtinParams, so its keys are not checked against docs/config.md", name)
	}
}

// findHeading returns the level-3 heading that names `name` in backquotes.
func findHeading(secs map[string][]string, name string) string {
	for h := range secs {
		if !strings.HasPrefix(h, "### ") {
			continue
		}
		for _, part := range strings.Split(strings.TrimPrefix(h, "### "), ",") {
			if strings.TrimSpace(part) == "`"+name+"`" {
				return h
			}
		}
	}
	return ""
}
