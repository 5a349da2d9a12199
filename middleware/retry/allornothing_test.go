package retry_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// scriptedServer is an smtptest server whose RCPT replies follow a script:
// per recipient, a queue of refusals popped each time it is sent, after
// which it is accepted. It counts MAIL commands, one per transaction the
// client starts, and RCPT commands per recipient.
type scriptedServer struct {
	*smtptest.Server

	mu    sync.Mutex
	rcpt  map[string][]*transport.ReplyError
	mails int
	rcpts map[string]int
}

func startScripted(t *testing.T, script map[string][]*transport.ReplyError) *scriptedServer {
	t.Helper()
	s := &scriptedServer{Server: smtptest.NewUnstartedServer(), rcpt: script, rcpts: map[string]int{}}
	s.Mail = func(string, smtptest.MailOptions) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.mails++
		return nil
	}
	s.Rcpt = func(to string, _ smtptest.RcptOptions) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.rcpts[to]++
		q := s.rcpt[to]
		if re, ok := pop(&q); ok {
			s.rcpt[to] = q
			return re
		}
		return nil
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// transactions returns the number of transactions the server saw begin.
func (s *scriptedServer) transactions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mails
}

// rcptCount returns the number of RCPT commands the server received for
// addr.
func (s *scriptedServer) rcptCount(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts[addr]
}

// transport returns a transport for the server, all-or-nothing if
// requireAll, closed when the test ends.
func (s *scriptedServer) transport(t *testing.T, requireAll bool) *transport.SMTP {
	tr := s.Transport()
	tr.RequireAllRecipients = requireAll
	t.Cleanup(func() { tr.Close() })
	return tr
}

// delivered returns the recipients of each message the server accepted.
func (s *scriptedServer) delivered() [][]string {
	var out [][]string
	for _, m := range s.Messages() {
		out = append(out, m.Delivered)
	}
	return out
}

// plainEnv returns an envelope without extension parameters, which the
// default smtptest server does not offer.
func plainEnv(addrs ...string) *envelope.Envelope {
	e := &envelope.Envelope{From: "sender@example.org"}
	for _, a := range addrs {
		e.To = append(e.To, envelope.Recipient{Addr: a})
	}
	return e
}

func noWait(int) time.Duration { return 0 }

// isReply reports whether err holds a reply with the given code.
func isReply(err error, code int) bool {
	var re *transport.ReplyError
	return errors.As(err, &re) && re.Code == code
}

// Under all-or-nothing, a transient refusal of one recipient retries the
// whole envelope: one message, to both, and never to b alone.
func TestAllOrNothingRetriedTogether(t *testing.T) {
	for _, tt := range []struct {
		name string
		body func() io.Reader
	}{
		{"seeker", func() io.Reader { return strings.NewReader(message) }},
		// A reset transaction reads none of the body, so a body that
		// cannot be rewound is retried as well.
		{"not rewindable", func() io.Reader { return onlyReader{strings.NewReader(message)} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": {busy}})
			tr := retry.New(retry.WithBackoff(noWait))(s.transport(t, true))

			res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), tt.body())
			if err != nil {
				t.Fatalf("Send err = %v, want nil", err)
			}
			if want := []string{"a@example.org=accepted/2", "b@example.org=accepted/2"}; !slices.Equal(outcomes(res), want) {
				t.Errorf("outcomes = %v, want %v", outcomes(res), want)
			}
			if got, want := s.delivered(), [][]string{{"a@example.org", "b@example.org"}}; !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("messages delivered to %v, want exactly one, to %v", got, want)
			}
			if n := s.transactions(); n != 2 {
				t.Errorf("server saw %d transactions, want 2", n)
			}
			if a, b := s.rcptCount("a@example.org"), s.rcptCount("b@example.org"); a != 2 || b != 2 {
				t.Errorf("RCPT sent for a %d times, b %d times; want both twice", a, b)
			}
			if res.Reply == nil || res.Reply.Code != 250 {
				t.Errorf("Reply = %v, want the 250 of the delivery", res.Reply)
			}
		})
	}
}

// Under all-or-nothing, a permanent refusal of one recipient ends the Send
// at once: nothing is delivered and nothing retried.
func TestAllOrNothingPermanentNotRetried(t *testing.T) {
	s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": {noUser, noUser, noUser}})
	tr := retry.New(retry.WithBackoff(noWait))(s.transport(t, true))

	res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), strings.NewReader(message))
	if err == nil {
		t.Fatal("Send err = nil, want the refusal")
	}
	if !errors.Is(err, transport.ErrPermanent) {
		t.Errorf("err = %v, want permanent", err)
	}
	if n := s.transactions(); n != 1 {
		t.Errorf("server saw %d transactions, want 1: nothing retried", n)
	}
	if got := s.delivered(); len(got) != 0 {
		t.Errorf("messages delivered to %v, want none", got)
	}
	a, b := res.Rcpts[0], res.Rcpts[1]
	if !errors.Is(a.Err, transport.ErrNotAllAccepted) || a.Outcome == transport.Accepted || a.Attempts != 1 {
		t.Errorf("a = %+v, want not accepted after 1 attempt, with ErrNotAllAccepted", a)
	}
	if !isReply(b.Err, 550) || b.Outcome != transport.PermFailed || b.Attempts != 1 {
		t.Errorf("b = %+v, want PermFailed by the 550 after 1 attempt", b)
	}
	if res.Reply != nil {
		t.Errorf("Reply = %v, want none: nothing was sent", res.Reply)
	}
}

// A transient refusal, retried with the whole envelope, that turns
// permanent: the second transaction also sends nothing, and retrying stops.
func TestAllOrNothingTransientThenPermanent(t *testing.T) {
	s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": {busy, noUser}})
	tr := retry.New(retry.WithBackoff(noWait), retry.WithMaxAttempts(5))(s.transport(t, true))

	res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), strings.NewReader(message))
	if err == nil || !errors.Is(err, transport.ErrPermanent) {
		t.Errorf("err = %v, want the permanent refusal", err)
	}
	if n := s.transactions(); n != 2 {
		t.Errorf("server saw %d transactions, want 2", n)
	}
	if a := s.rcptCount("a@example.org"); a != 2 {
		t.Errorf("RCPT sent for a %d times, want 2: with b each time", a)
	}
	if got := s.delivered(); len(got) != 0 {
		t.Errorf("messages delivered to %v, want none", got)
	}
	if want := []string{"a@example.org=perm-failed/2", "b@example.org=perm-failed/2"}; !slices.Equal(outcomes(res), want) {
		t.Errorf("outcomes = %v, want %v", outcomes(res), want)
	}
	if !errors.Is(res.Rcpts[0].Err, transport.ErrNotAllAccepted) || !isReply(res.Rcpts[1].Err, 550) {
		t.Errorf("errors = %v, %v; want ErrNotAllAccepted and the 550", res.Rcpts[0].Err, res.Rcpts[1].Err)
	}
}

// One transient and one permanent refusal in the same all-or-nothing
// transaction: the transient one is not retried on its own.
func TestAllOrNothingMixedRefusals(t *testing.T) {
	s := startScripted(t, map[string][]*transport.ReplyError{
		"b@example.org": {busy},
		"c@example.org": {noUser},
	})
	tr := retry.New(retry.WithBackoff(noWait))(s.transport(t, true))

	res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org", "c@example.org"), strings.NewReader(message))
	if err == nil {
		t.Fatal("Send err = nil, want the refusals")
	}
	if n := s.transactions(); n != 1 {
		t.Errorf("server saw %d transactions, want 1", n)
	}
	if got := s.delivered(); len(got) != 0 {
		t.Errorf("messages delivered to %v, want none", got)
	}
	a, b, c := res.Rcpts[0], res.Rcpts[1], res.Rcpts[2]
	if !errors.Is(a.Err, transport.ErrNotAllAccepted) || a.Outcome == transport.Accepted {
		t.Errorf("a = %+v, want ErrNotAllAccepted", a)
	}
	if !isReply(b.Err, 450) || b.Outcome != transport.TempFailed || b.Attempts != 1 {
		t.Errorf("b = %+v, want its 450 after 1 attempt", b)
	}
	if !isReply(c.Err, 550) || c.Outcome != transport.PermFailed {
		t.Errorf("c = %+v, want its 550", c)
	}
}

// When retrying stops with the envelope still refused, every recipient says
// why, and the ErrNotAllAccepted ones still match it.
func TestAllOrNothingAttemptsExhausted(t *testing.T) {
	s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": slices.Repeat([]*transport.ReplyError{busy}, 10)})
	tr := retry.New(retry.WithBackoff(noWait), retry.WithMaxAttempts(3))(s.transport(t, true))

	res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), strings.NewReader(message))
	if !errors.Is(err, retry.ErrMaxAttempts) || !errors.Is(err, transport.ErrTransient) {
		t.Errorf("err = %v, want ErrMaxAttempts, transient", err)
	}
	if n := s.transactions(); n != 3 {
		t.Errorf("server saw %d transactions, want 3", n)
	}
	if a, b := s.rcptCount("a@example.org"), s.rcptCount("b@example.org"); a != 3 || b != 3 {
		t.Errorf("RCPT sent for a %d times, b %d times; want both 3 times", a, b)
	}
	if got := s.delivered(); len(got) != 0 {
		t.Errorf("messages delivered to %v, want none", got)
	}
	if want := []string{"a@example.org=temp-failed/3", "b@example.org=temp-failed/3"}; !slices.Equal(outcomes(res), want) {
		t.Errorf("outcomes = %v, want %v", outcomes(res), want)
	}
	a, b := res.Rcpts[0], res.Rcpts[1]
	if !errors.Is(a.Err, transport.ErrNotAllAccepted) || !errors.Is(a.Err, retry.ErrMaxAttempts) {
		t.Errorf("a's error = %v, want ErrNotAllAccepted and ErrMaxAttempts", a.Err)
	}
	if !isReply(b.Err, 450) || !errors.Is(b.Err, retry.ErrMaxAttempts) {
		t.Errorf("b's error = %v, want the 450 and ErrMaxAttempts", b.Err)
	}
	if res.Reply != nil {
		t.Errorf("Reply = %v, want none: nothing was sent", res.Reply)
	}
}

// The Policy decides on the refused recipients only; the envelope follows.
func TestAllOrNothingPolicy(t *testing.T) {
	t.Run("asked about the refused recipient only", func(t *testing.T) {
		s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": {busy}})
		var (
			mu    sync.Mutex
			asked []string
		)
		p := func(ctx context.Context, r transport.RcptResult) bool {
			mu.Lock()
			asked = append(asked, r.Addr)
			mu.Unlock()
			return retry.DefaultPolicy(ctx, r)
		}
		tr := retry.New(retry.WithBackoff(noWait), retry.WithPolicy(p))(s.transport(t, true))
		if _, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), strings.NewReader(message)); err != nil {
			t.Fatalf("Send err = %v", err)
		}
		if !slices.Equal(asked, []string{"b@example.org"}) {
			t.Errorf("policy asked about %v, want b only", asked)
		}
	})
	t.Run("refusing the refused recipient", func(t *testing.T) {
		s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": {busy}})
		never := func(context.Context, transport.RcptResult) bool { return false }
		tr := retry.New(retry.WithBackoff(noWait), retry.WithPolicy(never))(s.transport(t, true))
		res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), strings.NewReader(message))
		if err == nil {
			t.Fatal("Send err = nil")
		}
		if n := s.transactions(); n != 1 {
			t.Errorf("server saw %d transactions, want 1", n)
		}
		if !errors.Is(res.Rcpts[0].Err, transport.ErrNotAllAccepted) || !isReply(res.Rcpts[1].Err, 450) {
			t.Errorf("errors = %v, %v; want ErrNotAllAccepted and the 450", res.Rcpts[0].Err, res.Rcpts[1].Err)
		}
	})
}

// Without RequireAllRecipients, the accepted recipients get the message at
// once and the refused one alone on the retry.
func TestPerRecipientWithoutAllOrNothing(t *testing.T) {
	s := startScripted(t, map[string][]*transport.ReplyError{"b@example.org": {busy}})
	tr := retry.New(retry.WithBackoff(noWait))(s.transport(t, false))

	res, err := tr.Send(t.Context(), plainEnv("a@example.org", "b@example.org"), strings.NewReader(message))
	if err != nil {
		t.Fatalf("Send err = %v, want nil", err)
	}
	if want := []string{"a@example.org=accepted/1", "b@example.org=accepted/2"}; !slices.Equal(outcomes(res), want) {
		t.Errorf("outcomes = %v, want %v", outcomes(res), want)
	}
	if got, want := s.delivered(), [][]string{{"a@example.org"}, {"b@example.org"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("messages delivered to %v, want %v", got, want)
	}
	if a := s.rcptCount("a@example.org"); a != 1 {
		t.Errorf("RCPT sent for a %d times, want 1", a)
	}
}
