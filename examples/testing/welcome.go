package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// Welcomer sends the welcome message of a sign-up service. It takes a
// transport.Transport rather than a server address, so that the program
// gives it a real transport (built from a configuration file, say) and the
// tests give it an smtptest server or an smtptest.Recorder.
type Welcomer struct {
	Transport transport.Transport
	From      string // the sender, such as "welcome@example.org"
}

// ErrBadName reports a name that cannot go in a header.
var ErrBadName = errors.New("welcome: name holds a control character")

// Welcome sends the welcome message to a new user. The error wraps the
// transport's, so the caller can tell, with errors.Is, a failure worth
// retrying later (transport.ErrTransient) from an address that will never
// work (transport.ErrPermanent).
func (w *Welcomer) Welcome(ctx context.Context, name, addr string) error {
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return ErrBadName // a CR or LF would add header fields
	}
	env := envelope.New(w.From, addr)
	if err := env.Validate(); err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	msg := "From: Example <" + w.From + ">\r\n" +
		"To: " + name + " <" + addr + ">\r\n" +
		"Subject: Welcome, " + name + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello " + name + ", and welcome.\r\n"
	if _, err := w.Transport.Send(ctx, env, strings.NewReader(msg)); err != nil {
		return fmt.Errorf("welcome: sending to %s: %w", addr, err)
	}
	return nil
}
