package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// Config is a parsed configuration file: named profiles, each a transport
// and the middleware around it. Parse and Load check the file's structure
// and every transport kind and middleware name; [Config.Transport] decodes
// one profile's parameters, reads its secrets and files, and builds it.
//
// A Config is safe for concurrent use. It prints without any secret: with
// fmt (every verb) and log/slog it shows only the file name, the default
// profile and the profile names.
type Config struct {
	file     string
	dir      string
	def      string
	profiles map[string]*profileSpec
}

// fileSpec is the top level of a configuration file.
type fileSpec struct {
	Default  string                  `yaml:"default"`
	Profiles map[string]*profileSpec `yaml:"profiles"`
}

// profileSpec is one profile: a transport and its middleware.
type profileSpec struct {
	Transport  *Params           `yaml:"transport"`
	Middleware []*middlewareSpec `yaml:"middleware"`
}

// middlewareSpec is one entry of a profile's middleware list.
type middlewareSpec struct {
	Name string  `yaml:"name"`
	With *Params `yaml:"with"`

	at loc // the entry
}

func (f *fileSpec) check(p *Params) error {
	if len(f.Profiles) == 0 {
		return p.Errorf("profiles", "required: a mapping of profile names to profiles")
	}
	for name, ps := range f.Profiles {
		if name == "" {
			return p.Errorf("profiles", "a profile name must not be empty")
		}
		if ps == nil {
			// An empty entry may be a line pasted at the wrong
			// indentation: its name is not shown.
			return &Error{File: p.d.file, Line: p.profileLine(name), Key: join(p.key, "profiles"),
				Err: errors.New("empty profile: it needs a transport (its name is not shown: it may be a secret)")}
		}
	}
	// After the entries: only the names of real profiles are listed.
	if f.Default != "" {
		if _, ok := f.Profiles[f.Default]; !ok {
			return p.Errorf("default", "no profile %q (the file has %s)", f.Default, strings.Join(sortedKeys(f.Profiles), ", "))
		}
	}
	return nil
}

// profileLine returns the line of the profile name in the file whose top
// level is p, or the line of the profiles key if it is not found.
func (p *Params) profileLine(name string) int {
	line, _ := p.find("profiles")
	if top := resolve(p.node); top != nil && top.Kind == yaml.MappingNode {
		tps, _ := p.d.pairs(top, "")
		for _, t := range tps {
			if t.k.Value != "profiles" {
				continue
			}
			if ps := resolve(t.v); ps != nil && ps.Kind == yaml.MappingNode {
				pps, _ := p.d.pairs(ps, "")
				for _, kv := range pps {
					if kv.k.Value == name {
						return kv.k.Line
					}
				}
			}
		}
	}
	return line
}

func (ps *profileSpec) check(p *Params) error {
	if ps.Transport == nil || isNull(ps.Transport.node) {
		return p.Errorf("transport", "required")
	}
	for i, m := range ps.Middleware {
		if m == nil {
			return p.Errorf(fmt.Sprintf("middleware[%d]", i), "empty entry: it needs a name")
		}
	}
	_, _, err := ps.Transport.kind()
	return err
}

func (m *middlewareSpec) check(p *Params) error {
	m.at = loc{p.key, p.line}
	if m.Name == "" {
		return p.Errorf("name", "required")
	}
	if _, err := lookupMiddleware(m.Name); err != nil {
		return p.wrap("name", err)
	}
	if m.With != nil && !isNull(m.With.node) && m.With.node.Kind != yaml.MappingNode {
		return p.d.typeErr(m.With.node, m.With.key, "a mapping")
	}
	return nil
}

// kind returns the transport kind p names (smtp if none), and its
// TransportFunc; the error names the kind's key.
func (p *Params) kind() (string, TransportFunc, error) {
	kind, line := "smtp", p.line
	n := resolve(p.node)
	if n != nil && !isNull(n) {
		if n.Kind != yaml.MappingNode {
			return "", nil, p.d.typeErr(n, p.key, "a mapping")
		}
		ps, err := p.d.pairs(n, p.key)
		if err != nil {
			return "", nil, err
		}
		// Only kind is read here; the kind's own decoding reports the
		// other keys, unknown or duplicate, knowing which may be shown.
		for _, kv := range ps {
			if kv.k.Value == "kind" {
				if kv.first > 0 {
					return "", nil, p.d.dupErr(kv, p.key)
				}
				if err := p.d.decodeValue(kv.v, loc{join(p.key, "kind"), kv.k.Line}, reflectOf(&kind)); err != nil {
					return "", nil, err
				}
				line = kv.k.Line
			}
		}
	}
	f, err := lookupTransport(kind)
	if err != nil {
		return "", nil, &Error{File: p.d.file, Line: line, Key: join(p.key, "kind"), Err: err}
	}
	return kind, f, nil
}

// Load reads and parses the configuration file at path; see [Parse]. An
// error reading the file is returned as it is (an *fs.PathError).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a configuration in YAML (or JSON, which YAML 1.2 reads)
// and checks all of it: the keys of the top level, of each profile and of
// each middleware entry, and every profile's transport and middleware
// parameters, decoded strictly by their registered kinds and middleware
// (see [Params.Checking]). Secrets and the files the TLS blocks name are
// read later, when [Config.Transport] builds a profile, so that a profile
// whose secret is missing does not stop another from being used. name is
// the file's name, used in errors and as the base of relative paths in the
// file (relative to its directory).
//
// Errors are *[Error] values naming the file, line and key.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{file: name}
	if name != "" {
		d.dir = filepath.Dir(name)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Err: errors.New("empty configuration")}
		}
		return nil, syntaxError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(name, data, err)
		}
		return nil, &Error{File: name, Line: extra.Line, Err: errors.New("more than one YAML document; a configuration is one")}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: name, Err: errors.New("empty configuration")}
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, &Error{File: name, Line: root.Line, Err: errors.New("empty configuration")}
	}
	var fs fileSpec
	if err := d.decodeStruct(root, loc{"", root.Line}, reflectOf(&fs), nil); err != nil {
		return nil, err
	}
	c := &Config{file: name, dir: d.dir, def: fs.Default, profiles: fs.Profiles}
	// Check every profile as it would be built, without its secrets and
	// files, so that a mistake in a profile that is built later (or never)
	// is reported now.
	for _, pn := range c.Profiles() {
		t, err := c.build(c.profiles[pn], &decoder{file: name, dir: d.dir, check: true})
		if err != nil {
			return nil, err
		}
		if cl, ok := t.(interface{ Close() error }); ok {
			cl.Close()
		}
	}
	return c, nil
}

var (
	yamlLine   = regexp.MustCompile(`^yaml: line (\d+): `)
	yamlAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// aliasLine returns the line of the first alias *name in data, or 0.
func aliasLine(data []byte, name string) int {
	alias := []byte("*" + name)
	for off := 0; ; {
		i := bytes.Index(data[off:], alias)
		if i < 0 || name == "" {
			return 0
		}
		i += off
		end := i + len(alias)
		before := i == 0 || bytes.IndexByte([]byte(" \t\n\r[{,:-?"), data[i-1]) >= 0
		after := end == len(data) || bytes.IndexByte([]byte(" \t\n\r]},"), data[end]) >= 0
		if before && after {
			return 1 + bytes.Count(data[:i], []byte("\n"))
		}
		off = i + 1
	}
}

// syntaxError turns an error of the YAML parser into an *Error. The
// parser reports the line only in its message.
func syntaxError(file string, data []byte, err error) error {
	msg := err.Error()
	e := &Error{File: file}
	if m := yamlAnchor.FindStringSubmatch(msg); m != nil {
		// The name of an alias is text of the file: a password that
		// starts with "*" is read as one. Name the line, not the alias.
		e.Line = aliasLine(data, m[1])
		e.Err = errors.New("invalid YAML: an alias (*name) refers to no anchor; quote a value that starts with * (the name is not shown: it may be a secret)")
		return e
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		// yaml.v3 counts lines from 1 in the errors of its scanner but
		// from 0 in those of its parser, all of which start so.
		if strings.HasPrefix(msg, "did not find expected") {
			e.Line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e.Err = errors.New("invalid YAML: " + msg)
	return e
}

// Profiles returns the names of the profiles, sorted.
func (c *Config) Profiles() []string { return sortedKeys(c.profiles) }

// Default returns the profile that Transport("") builds: the file's
// default key, or the only profile of a file that has one and no default;
// "" if there is none.
func (c *Config) Default() string {
	if c.def == "" && len(c.profiles) == 1 {
		for name := range c.profiles {
			return name
		}
	}
	return c.def
}

// Transport builds the transport of the named profile ("" for the default
// one, see [Config.Default]): its transport, wrapped in its middleware, the
// first of the list being the outermost as with [middleware.Chain].
//
// Building decodes the profile's parameters strictly, reads its secrets
// (from the environment or from files) and the files it names (CA and
// client certificates), and calls the registered kinds and middleware.
// Each call builds a new transport with its own connections and its own
// rate limits: build a profile once and share it. A profile whose secrets
// are missing does not prevent building another.
//
// Errors in the file are *[Error] values naming the file, line and key; an
// unknown profile is an error wrapping [ErrUnknownProfile].
func (c *Config) Transport(profile string, opts ...Option) (transport.Transport, error) {
	name := profile
	if name == "" {
		name = c.Default()
		if name == "" {
			return nil, &Error{File: c.file, Key: "default", Err: fmt.Errorf("no profile named and no default (the file has %s)", strings.Join(c.Profiles(), ", "))}
		}
	}
	ps, ok := c.profiles[name]
	if !ok {
		return nil, &Error{File: c.file, Key: "profiles", Err: &unknownNameError{
			what: "profile", name: name, sentinel: ErrUnknownProfile,
			hint: "the file has " + strings.Join(c.Profiles(), ", "),
		}}
	}
	d := &decoder{file: c.file, dir: c.dir}
	for _, o := range opts {
		if o != nil {
			o.apply(&d.opts)
		}
	}
	return c.build(ps, d)
}

// build builds the profile ps with the decoder d.
func (c *Config) build(ps *profileSpec, d *decoder) (transport.Transport, error) {
	tp := &Params{d: d, node: ps.Transport.node, key: ps.Transport.key, line: ps.Transport.line}
	t, err := tp.Transport()
	if err != nil {
		return nil, err
	}
	mws := make([]middleware.Middleware, 0, len(ps.Middleware))
	for _, m := range ps.Middleware {
		f, err := lookupMiddleware(m.Name)
		if err != nil {
			return nil, &Error{File: c.file, Line: m.at.line, Key: join(m.at.path, "name"), Err: err}
		}
		wp := &Params{d: d, key: join(m.at.path, "with"), line: m.at.line}
		if m.With != nil {
			wp.node, wp.line = m.With.node, m.With.line
		}
		mw, err := f(wp)
		if err != nil {
			return nil, wp.wrap("", err)
		}
		mws = append(mws, mw)
	}
	return middleware.Chain(mws...)(t), nil
}

// String returns a description of c without any secret:
// `config.Config{File: "mail.yaml", Default: "work", Profiles: [personal work]}`.
func (c Config) String() string {
	return fmt.Sprintf("config.Config{File: %q, Default: %q, Profiles: %v}", c.file, c.Default(), c.Profiles())
}

// GoString returns the same as String.
func (c Config) GoString() string { return c.String() }

// Format implements fmt.Formatter so that every verb prints String, never
// the parsed content.
func (c Config) Format(f fmt.State, verb rune) { io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("file", c.file),
		slog.String("default", c.Default()),
		slog.Any("profiles", c.Profiles()),
	)
}

// An Option changes how [Config.Transport] builds a profile.
type Option interface {
	apply(*buildOptions)
}

type buildOptions struct {
	debug   io.Writer
	adjusts []func(transport.Transport)
}

type optionFunc func(*buildOptions)

func (f optionFunc) apply(o *buildOptions) { f(o) }

// WithDebug sets w as the Debug writer of every *transport.SMTP and
// *transport.LMTP the profile builds (the members of a failover included),
// so that w receives the transcript of each session, credentials redacted.
// A nil w is ignored.
func WithDebug(w io.Writer) Option {
	return optionFunc(func(o *buildOptions) {
		if w != nil {
			o.debug = w
		}
	})
}

// WithAdjust calls f with each transport a transport kind builds for the
// profile, before the middleware wrap it: the profile's transport, and the
// members of a failover before the failover itself. f may change the
// transport's fields, for example to apply command-line flags to an
// *transport.SMTP, or to point its Dialer at a test server. Options are
// applied in order; a nil f is ignored.
func WithAdjust(f func(t transport.Transport)) Option {
	return optionFunc(func(o *buildOptions) {
		if f != nil {
			o.adjusts = append(o.adjusts, f)
		}
	})
}

// finish applies the options to a transport a kind built.
func (o *buildOptions) finish(t transport.Transport) {
	if o.debug != nil {
		switch t := t.(type) {
		case *transport.SMTP:
			t.Debug = o.debug
		case *transport.LMTP:
			t.Debug = o.debug
		}
	}
	for _, f := range o.adjusts {
		f(t)
	}
}
