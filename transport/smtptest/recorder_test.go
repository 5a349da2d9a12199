package smtptest_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func testEnvelope() *envelope.Envelope {
	return &envelope.Envelope{
		From: "a@example.org",
		To: []envelope.Recipient{
			{Addr: "b@example.org", Notify: []envelope.DSNNotify{envelope.NotifyFailure}, ORcpt: "b@example.net"},
			{Addr: "c@example.org"},
		},
		Size:       42,
		Body:       envelope.Body8BitMIME,
		UTF8:       true,
		RequireTLS: true,
		Return:     envelope.ReturnHeaders,
		EnvID:      "env-1",
	}
}

func TestRecorderAcceptsAll(t *testing.T) {
	var r smtptest.Recorder
	env := testEnvelope()
	const msg = "Subject: hi\n\nbare LF kept\n"
	res, err := r.Send(t.Context(), env, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res == nil || len(res.Rcpts) != len(env.To) {
		t.Fatalf("Result = %+v, want one RcptResult per recipient", res)
	}
	for i, rr := range res.Rcpts {
		if rr.Addr != env.To[i].Addr || rr.Outcome != transport.Accepted || rr.Attempts != 1 || rr.Err != nil || rr.Reply == nil || rr.Reply.Code != 250 {
			t.Errorf("Rcpts[%d] = %+v, want %s accepted with a 250 reply and 1 attempt", i, rr, env.To[i].Addr)
		}
	}
	if res.Reply == nil || res.Reply.String() != "250 2.0.0 OK: recorded" {
		t.Errorf("Reply = %v, want 250 2.0.0 OK: recorded", res.Reply)
	}
	if res.Err() != nil {
		t.Errorf("Result.Err() = %v, want nil", res.Err())
	}

	// The recorded envelope is a copy: changing the caller's does not
	// change it.
	env.To[0].Notify[0] = envelope.NotifyNever
	env.To[1].Addr = "changed@example.org"
	msgs := r.Messages()
	if len(msgs) != 1 {
		t.Fatalf("recorded %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if string(m.Data) != msg {
		t.Errorf("Data = %q, want %q unchanged", m.Data, msg)
	}
	if got := m.Envelope(); !reflect.DeepEqual(got, testEnvelope()) {
		t.Errorf("recorded envelope = %+v, want %+v", got, testEnvelope())
	}
	if !slices.Equal(m.Delivered, []string{"b@example.org", "c@example.org"}) {
		t.Errorf("Delivered = %q", m.Delivered)
	}

	r.Reset()
	if n := len(r.Messages()); n != 0 {
		t.Errorf("after Reset, %d messages", n)
	}
}

func TestRecorderResultFunc(t *testing.T) {
	refused := &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
	r := &smtptest.Recorder{
		Result: func(env *envelope.Envelope) (*transport.Result, error) {
			env.To[0].Addr = "mutated@example.org" // a copy: must not reach the caller
			res := &transport.Result{Rcpts: []transport.RcptResult{
				{Addr: "b@example.org", Outcome: transport.Accepted, Attempts: 1},
				{Addr: "c@example.org", Outcome: transport.PermFailed, Err: refused, Attempts: 1},
			}}
			return res, res.Err()
		},
	}
	env := testEnvelope()
	res, err := r.Send(t.Context(), env, strings.NewReader("x"))
	if env.To[0].Addr != "b@example.org" {
		t.Error("Result func modified the caller's envelope")
	}
	var re *transport.RcptError
	if !errors.As(err, &re) || re.Rcpt != "c@example.org" || !errors.Is(err, transport.ErrPermanent) {
		t.Fatalf("err = %v, want the Result's aggregate with c@example.org refused", err)
	}
	if got := res.Accepted(); !slices.Equal(got, []string{"b@example.org"}) {
		t.Errorf("Accepted() = %q", got)
	}
	if msgs := r.Messages(); len(msgs) != 1 || !slices.Equal(msgs[0].Delivered, []string{"b@example.org"}) {
		t.Errorf("messages = %+v, want one delivered to b only", msgs)
	}
}

func TestRecorderFailures(t *testing.T) {
	t.Run("cancelled", func(t *testing.T) {
		var r smtptest.Recorder
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res, err := r.Send(ctx, testEnvelope(), iotest.ErrReader(errors.New("must not be read")))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		var oe *transport.OpError
		if !errors.As(err, &oe) {
			t.Errorf("err = %T, want *transport.OpError", err)
		}
		if errors.Is(err, transport.ErrTransient) {
			t.Error("the caller's cancellation matches ErrTransient")
		}
		if res == nil || res.Count(transport.TempFailed) != 2 {
			t.Errorf("Result = %+v, want both recipients TempFailed", res)
		}
		if n := len(r.Messages()); n != 0 {
			t.Errorf("recorded %d messages", n)
		}
	})
	t.Run("read-error", func(t *testing.T) {
		var r smtptest.Recorder
		readErr := errors.New("disk error")
		res, err := r.Send(t.Context(), testEnvelope(), iotest.ErrReader(readErr))
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpData || !errors.Is(err, readErr) {
			t.Fatalf("err = %v, want an OpError at %s wrapping the read error", err, transport.OpData)
		}
		if res == nil || res.Count(transport.TempFailed) != 2 {
			t.Errorf("Result = %+v, want both recipients TempFailed", res)
		}
		if n := len(r.Messages()); n != 0 {
			t.Errorf("recorded %d messages", n)
		}
	})
	t.Run("invalid-envelope", func(t *testing.T) {
		var r smtptest.Recorder
		for _, env := range []*envelope.Envelope{nil, {From: "a@example.org"}} {
			_, err := r.Send(t.Context(), env, strings.NewReader("x"))
			if !errors.Is(err, envelope.ErrNoRecipients) || !errors.Is(err, transport.ErrPermanent) {
				t.Errorf("Send(%+v) err = %v, want ErrNoRecipients, permanent", env, err)
			}
		}
	})
}

func TestRecorderConcurrent(t *testing.T) {
	var r smtptest.Recorder
	var wg sync.WaitGroup
	const n = 50
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := &envelope.Envelope{From: "a@example.org", To: []envelope.Recipient{{Addr: fmt.Sprintf("r%d@example.org", i)}}}
			if _, err := r.Send(context.Background(), env, strings.NewReader("x")); err != nil {
				t.Error(err)
			}
			r.Messages()
		}()
	}
	wg.Wait()
	if got := len(r.Messages()); got != n {
		t.Errorf("recorded %d messages, want %d", got, n)
	}
}
