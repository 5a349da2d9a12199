// Package stamp provides a middleware that adds a header field to every
// message, such as "X-Sent-By: billing-service", and registers it with
// package config as "header-stamp", so that a configuration file selects it
// by name once a program imports this package:
//
//	import _ "github.com/mailwire/mailwire/examples/custom-middleware/stamp"
//
//	middleware:
//	  - name: header-stamp
//	    with: {field: X-Sent-By, value: billing-service}
//
// It follows the rules of docs/middleware.md: it never modifies the
// caller's envelope (it sends a copy when it must change the declared
// size), never reads the message ahead or buffers it, keeps the message
// rewindable for a retry middleware inside it, and has an Unwrap method.
package stamp

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
)

// Name is the name the middleware is registered under.
const Name = "header-stamp"

func init() { config.RegisterMiddleware(Name, fromConfig) }

// params are the keys under with.
type params struct {
	Field string `yaml:"field"`
	Value string `yaml:"value"`
}

// fromConfig is the config.MiddlewareFunc of header-stamp.
func fromConfig(p *config.Params) (middleware.Middleware, error) {
	var sp params
	if err := p.Decode(&sp); err != nil { // strict: unknown keys and wrong types name their line
		return nil, err
	}
	if err := checkField(sp.Field); err != nil {
		return nil, p.Errorf("field", "%v", err) // names the file, line and key
	}
	if err := checkValue(sp.Value); err != nil {
		return nil, p.Errorf("value", "%v", err)
	}
	return New(sp.Field, sp.Value)
}

// New returns a Middleware that puts the header field "field: value" at
// the top of each message. It fails if field is not a valid field name
// (RFC 5322 ftext: printable ASCII but ":"), or if value is not UTF-8 or
// holds a control character other than the tab (CR, LF, NUL, DEL, the C1
// controls such as NEL) or a Unicode line or paragraph separator (U+2028,
// U+2029).
func New(field, value string) (middleware.Middleware, error) {
	if err := checkField(field); err != nil {
		return nil, err
	}
	if err := checkValue(value); err != nil {
		return nil, err
	}
	line := field + ": " + value + "\r\n"
	return func(next transport.Transport) transport.Transport {
		return &stamp{next: next, line: line}
	}, nil
}

func checkField(f string) error {
	switch {
	case f == "":
		return fmt.Errorf("required: a header field name such as X-Sent-By")
	case len(f) > 76:
		return fmt.Errorf("field name longer than 76 characters")
	}
	for _, c := range []byte(f) {
		if c < 33 || c > 126 || c == ':' {
			return fmt.Errorf("%q is not a header field name (printable ASCII without spaces or colons)", f)
		}
	}
	return nil
}

// checkValue refuses anything a reader of the message could take for the
// end of the line, or that would let the value hide or forge text: control
// characters (C0, DEL and C1, such as NEL U+0085) but the tab, the Unicode
// line and paragraph separators U+2028 and U+2029, and bytes that are not
// UTF-8 (a lone 0x85 is NEL to a Latin-1 reader).
func checkValue(v string) error {
	for i, r := range v {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(v[i:], "\uFFFD"):
			return fmt.Errorf("value is not valid UTF-8")
		case r == '\t':
		case unicode.IsControl(r):
			return fmt.Errorf("value holds a control character (%U)", r)
		case r == '\u2028' || r == '\u2029':
			return fmt.Errorf("value holds a line or paragraph separator (%U)", r)
		}
	}
	return nil
}

type stamp struct {
	next transport.Transport
	line string // "Field: value\r\n"
}

var _ transport.Transport = (*stamp)(nil)

// Unwrap lets transport.CloseIdleConnections reach the wrapped transport.
func (s *stamp) Unwrap() transport.Transport { return s.next }

func (s *stamp) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if env != nil && env.Size > 0 {
		// The declared size grows by the new line; the caller's envelope
		// must not change, so the copy does.
		env = env.Clone()
		env.Size += int64(len(s.line))
	}
	return s.next.Send(ctx, env, s.body(msg))
}

// body returns the stamped message: the new line, then msg, read as the
// transport reads it. If msg can be reopened or can seek, the result can
// be read again from its start through Reopen, the method by which a retry
// middleware inside this one rewinds a body (retry.Reopener).
func (s *stamp) body(msg io.Reader) io.Reader {
	r := io.MultiReader(strings.NewReader(s.line), msg)
	if ro, ok := msg.(interface{ Reopen() (io.Reader, error) }); ok {
		// A body that reopens (envelope.FromMessage's, retry.ReopenFunc)
		// is preferred to seeking, as the retry middleware does.
		return &reopener{Reader: r, line: s.line, msg: ro}
	}
	if sk, ok := msg.(io.ReadSeeker); ok {
		if start, err := sk.Seek(0, io.SeekCurrent); err == nil {
			return &reopenable{Reader: r, line: s.line, msg: sk, start: start}
		}
	}
	return r
}

type reopenable struct {
	io.Reader
	line  string
	msg   io.ReadSeeker
	start int64
}

// Reopen returns the stamped message from its start again.
func (r *reopenable) Reopen() (io.Reader, error) {
	if _, err := r.msg.Seek(r.start, io.SeekStart); err != nil {
		return nil, err
	}
	return io.MultiReader(strings.NewReader(r.line), r.msg), nil
}

type reopener struct {
	io.Reader
	line string
	msg  interface{ Reopen() (io.Reader, error) }
}

// Reopen returns the stamped message from its start again.
func (r *reopener) Reopen() (io.Reader, error) {
	m, err := r.msg.Reopen()
	if err != nil {
		return nil, err
	}
	stamped := io.MultiReader(strings.NewReader(r.line), m)
	if c, ok := m.(io.Closer); ok {
		// The retry middleware closes what Reopen returns when it is done.
		return struct {
			io.Reader
			io.Closer
		}{stamped, c}, nil
	}
	return stamped, nil
}
