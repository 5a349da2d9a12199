package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// A real SMTP server in the test process: the Welcomer talks SMTP to it,
// and the test reads what it received.
func TestWelcomeDelivers(t *testing.T) {
	srv := smtptest.NewServer()
	defer srv.Close()
	w := &Welcomer{Transport: srv.Transport(), From: "welcome@example.org"}

	if err := w.Welcome(context.Background(), "Ann", "ann@example.org"); err != nil {
		t.Fatalf("Welcome: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "welcome@example.org" || len(m.To) != 1 || m.To[0] != "ann@example.org" {
		t.Errorf("envelope: from %s to %v", m.From, m.To)
	}
	if !strings.Contains(string(m.Data), "Subject: Welcome, Ann\r\n") {
		t.Errorf("message:\n%s", m.Data)
	}
}

// Hooks make the server refuse with the exact reply a test needs; the
// Welcomer's error keeps the transport's classification.
func TestWelcomeFailures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply *transport.ReplyError
		class error
	}{
		{"no such user", &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}, transport.ErrPermanent},
		{"greylisted", &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 7, 1}, Message: "try again later"}, transport.ErrTransient},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.NewUnstartedServer()
			srv.Rcpt = func(string, smtptest.RcptOptions) error { return tt.reply }
			srv.Start()
			defer srv.Close()
			w := &Welcomer{Transport: srv.Transport(), From: "welcome@example.org"}

			err := w.Welcome(context.Background(), "Ann", "ann@example.org")
			if !errors.Is(err, tt.class) {
				t.Errorf("Welcome = %v, want an error matching %v", err, tt.class)
			}
			var re *transport.ReplyError
			if !errors.As(err, &re) || re.Code != tt.reply.Code || re.EnhancedCode != tt.reply.EnhancedCode {
				t.Errorf("Welcome = %v, want the server's %d reply in it", err, tt.reply.Code)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server received %d messages", n)
			}
		})
	}
}

// A Recorder stands in for the transport when the test is about the
// message, not the protocol: no network, and the message as given.
func TestWelcomeMessage(t *testing.T) {
	var rec smtptest.Recorder
	w := &Welcomer{Transport: &rec, From: "welcome@example.org"}
	if err := w.Welcome(context.Background(), "Zoë", "zoe@example.org"); err != nil {
		t.Fatal(err)
	}
	got := string(rec.Messages()[0].Data)
	for _, want := range []string{"To: Zoë <zoe@example.org>\r\n", "Hello Zoë, and welcome.\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("message lacks %q:\n%s", want, got)
		}
	}
}

// Input that would inject header fields is refused before anything is
// sent.
func TestWelcomeRefusesInjection(t *testing.T) {
	var rec smtptest.Recorder
	w := &Welcomer{Transport: &rec, From: "welcome@example.org"}
	err := w.Welcome(context.Background(), "Ann\r\nBcc: everyone@example.org", "ann@example.org")
	if !errors.Is(err, ErrBadName) {
		t.Errorf("Welcome = %v, want ErrBadName", err)
	}
	if err := w.Welcome(context.Background(), "Ann", "ann@example.org\r\nRCPT TO:<x@example.org>"); err == nil {
		t.Error("Welcome accepted an address with CRLF")
	}
	if n := len(rec.Messages()); n != 0 {
		t.Errorf("%d messages sent", n)
	}
}
