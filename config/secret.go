package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// redacted is what prints in place of a secret.
const redacted = "[redacted]"

// A Secret is a password or token that a configuration file names rather
// than holds. A struct field of type Secret whose key is NAME (say,
// password) takes exactly one of three keys:
//
//	NAME_env: VAR                 the value of the environment variable VAR
//	NAME_file: /run/secrets/x     the content of the file, less one trailing newline
//	NAME: {value: "...", insecure_literal: true}
//
// The third form writes the secret in the file itself, where anyone who can
// read the file, its backups or its history can read it too; the
// insecure_literal mark is required so that this is never done by accident.
// A plain "NAME: text" is refused.
//
// The variable must be set and not empty, and the file readable and not
// empty, when the profile is built: otherwise decoding fails with an
// [*Error] that names the variable or the file, and wraps
// [ErrMissingSecret]. A relative file name is relative to the directory of
// the configuration file.
//
// A Secret never prints its value: fmt (every verb) and log/slog show
// "[redacted]", or nothing for an unset Secret. Call [Secret.Value] to use
// it.
type Secret struct {
	variant string // "env", "file", "literal"; "" if unset
	name    string // the variable or the file
	value   string
}

// Value returns the secret.
func (s Secret) Value() string { return s.value }

// IsSet reports whether the file gave a value for the secret.
func (s Secret) IsSet() bool { return s.variant != "" }

// Source describes where the secret came from, without the secret:
// "env SMTP_PASSWORD", "file /run/secrets/smtp", "literal", or "" if it is
// not set.
func (s Secret) Source() string {
	switch s.variant {
	case "env", "file":
		return s.variant + " " + s.name
	}
	return s.variant
}

// String returns "[redacted]", or "" for an unset Secret.
func (s Secret) String() string {
	if !s.IsSet() {
		return ""
	}
	return redacted
}

// GoString returns a Go-syntax description without the secret.
func (s Secret) GoString() string {
	return fmt.Sprintf("config.Secret{Source: %q}", s.Source())
}

// Format implements fmt.Formatter so that no verb prints the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, s.GoString())
		return
	}
	io.WriteString(f, s.String())
}

// LogValue implements slog.LogValuer: the secret is logged as
// "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// key returns the key that gave the Secret field name its value.
func (s Secret) key(name string) string {
	if s.variant == "env" || s.variant == "file" {
		return name + "_" + s.variant
	}
	return name
}

// reread returns the secret's current value: a file secret is read again,
// so that a token refreshed by another process is picked up.
func (s Secret) reread() (string, error) {
	if s.variant != "file" {
		return s.value, nil
	}
	return readSecretFile(s.name)
}

// literal is the marked form of a secret written in the file.
type literal struct {
	Value           string `yaml:"value"`
	InsecureLiteral bool   `yaml:"insecure_literal"`
}

// secret decodes the keys given for the Secret field name of the mapping
// at path. It never puts the secret in an error.
func (d *decoder) secret(name, path string, parts []secretPart) (Secret, error) {
	keyOf := func(p secretPart) string {
		if p.variant == "" {
			return name
		}
		return name + "_" + p.variant
	}
	if len(parts) > 1 {
		return Secret{}, d.errorf(parts[1].k.Line, join(path, keyOf(parts[1])),
			"%s and %s are both given; use one", keyOf(parts[0]), keyOf(parts[1]))
	}
	p := parts[0]
	key := join(path, keyOf(p))
	v := resolve(p.v)
	switch p.variant {
	case "env", "file":
		var ref string
		if err := d.decodeValue(v, loc{key, p.k.Line}, reflectOf(&ref)); err != nil {
			return Secret{}, err
		}
		if ref == "" {
			return Secret{}, d.errorf(p.k.Line, key, "empty")
		}
		s := Secret{variant: p.variant, name: ref}
		var err error
		switch {
		case d.check:
			// Parse checks the file; the secret is read when the profile is built.
			if p.variant == "file" {
				s.name = d.path(ref)
			}
		case p.variant == "env":
			val, ok := os.LookupEnv(ref)
			switch {
			case !ok:
				err = &secretError{envMessage(ref, "is not set")}
			case val == "":
				err = &secretError{envMessage(ref, "is empty")}
			}
			s.value = val
		default:
			s.name = d.path(ref)
			s.value, err = readSecretFile(s.name)
		}
		if err != nil {
			return Secret{}, &Error{File: d.file, Line: p.k.Line, Key: key, Err: err}
		}
		return s, nil
	}
	if v.Kind != yaml.MappingNode {
		return Secret{}, d.errorf(p.k.Line, key,
			"a secret written in the file must be marked: use %s_env or %s_file, or %s: {value: \"...\", insecure_literal: true}",
			name, name, name)
	}
	var lit literal
	if err := d.decodeStruct(v, loc{key, p.k.Line}, reflectOf(&lit), nil); err != nil {
		return Secret{}, err
	}
	switch {
	case !lit.InsecureLiteral:
		return Secret{}, d.errorf(p.k.Line, key, "a secret written in the file needs insecure_literal: true")
	case lit.Value == "":
		return Secret{}, d.errorf(p.k.Line, key, "value is empty")
	}
	return Secret{variant: "literal", value: lit.Value}, nil
}

// envMessage says what is wrong with the environment variable name. The
// name is quoted only if it is a usual variable name (letters, digits and
// _, not starting with a digit): anything else may be the secret itself,
// written where its variable's name belongs.
func envMessage(name, what string) string {
	if envName(name) {
		return "environment variable " + name + " " + what
	}
	return "environment variable " + what + " (its name is not shown: it is not a usual variable name, and may be the secret itself)"
}

func envName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// readSecretFile reads a secret from a file and removes one trailing
// newline (LF or CRLF), which editors and "echo" add.
func readSecretFile(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		// The *PathError names the file and the reason; it holds no content.
		return "", &secretError{err.Error()}
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", &secretError{fmt.Sprintf("file %s is empty", name)}
	}
	return s, nil
}
