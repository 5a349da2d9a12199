package config

import (
	"errors"
	"strconv"
)

// Error is the error of a configuration that cannot be used: it names the
// file, the line and the key, then says what is wrong, in the form
//
//	mail.yaml:9: profiles.work.transport.auth.mechanism: unknown mechanism "PLAN" (forgotten import?)
//
// Key is the path of the key from the top of the file, with dots between
// mapping keys and [i] for the elements of a sequence. Err says what is
// wrong; errors.Is and errors.As see through to it, so for example an
// unknown mechanism matches [auth.ErrUnknownMechanism]. An Error never
// holds a secret: not a password, a token, nor the value of a key whose
// type is wrong, nor an unknown key that is not close to a known one
// (which may be a password typed where a key belongs: Key is then the
// path of the mapping that holds it, and Line the key's line).
type Error struct {
	File string // the file's name as given to Load or Parse; may be empty
	Line int    // 1-based line of the key or value, 0 if unknown
	Key  string // path of the key, such as "profiles.work.transport.address"; empty for the file as a whole
	Err  error  // what is wrong
}

// Error returns "file:line: key: what", leaving out the parts that are
// empty or zero.
func (e *Error) Error() string {
	var b []byte
	if e.File != "" {
		b = append(b, e.File...)
	} else {
		b = append(b, "config"...)
	}
	if e.Line > 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(e.Line), 10)
	}
	b = append(b, ": "...)
	if e.Key != "" {
		b = append(b, e.Key...)
		b = append(b, ": "...)
	}
	if e.Err != nil {
		b = append(b, e.Err.Error()...)
	} else {
		b = append(b, "invalid"...)
	}
	return string(b)
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

var (
	// ErrUnknownTransport is wrapped by the error for a transport kind
	// that no package registered; the usual cause is a missing import.
	ErrUnknownTransport = errors.New("config: unknown transport kind")
	// ErrUnknownMiddleware is wrapped by the error for a middleware name
	// that no package registered; the usual cause is a missing import.
	ErrUnknownMiddleware = errors.New("config: unknown middleware")
	// ErrUnknownProfile is wrapped by the error of [Config.Transport] for
	// a profile the file does not define.
	ErrUnknownProfile = errors.New("config: unknown profile")
	// ErrMissingSecret is wrapped by the error for a secret whose
	// environment variable is not set or empty, or whose file cannot be
	// read or is empty.
	ErrMissingSecret = errors.New("config: missing secret")
)

// unknownNameError is the error for a name missing from a registry. It
// reads `unknown mechanism "PLAN" (forgotten import?)` and matches its
// sentinel through Unwrap.
type unknownNameError struct {
	what     string // "transport kind", "middleware", "mechanism"
	name     string
	sentinel error
	hint     string // "" for "forgotten import?"
}

func (e *unknownNameError) Error() string {
	hint := e.hint
	if hint == "" {
		hint = "forgotten import?"
	}
	return "unknown " + e.what + " " + strconv.Quote(e.name) + " (" + hint + ")"
}

func (e *unknownNameError) Unwrap() error { return e.sentinel }

// secretError is the error for a missing secret: its text says which
// variable or file, and it matches ErrMissingSecret.
type secretError struct{ msg string }

func (e *secretError) Error() string        { return e.msg }
func (e *secretError) Is(target error) bool { return target == ErrMissingSecret }
