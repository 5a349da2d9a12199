package stamp_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/examples/custom-middleware/stamp"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// With a retry middleware inside it, a message refused after its data is
// sent again from its start, stamped once, and the caller's envelope is
// unchanged.
func TestStampRewindsForRetry(t *testing.T) {
	srv := smtptest.NewUnstartedServer()
	var failed atomic.Bool
	srv.Data = func(*smtptest.Message) error {
		if failed.CompareAndSwap(false, true) {
			return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "try again"}
		}
		return nil
	}
	srv.Start()
	defer srv.Close()

	mw, err := stamp.New("X-Sent-By", "billing-service")
	if err != nil {
		t.Fatal(err)
	}
	tr := middleware.Chain(mw, retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })))(srv.Transport())
	msg := "Subject: hi\r\n\r\nHello.\r\n"
	env := envelope.New("alice@example.org", "bob@example.org")
	env.Size = int64(len(msg))
	res, err := tr.Send(context.Background(), env, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Rcpts[0].Attempts != 2 {
		t.Errorf("attempts = %d, want 2", res.Rcpts[0].Attempts)
	}
	if env.Size != int64(len(msg)) {
		t.Errorf("the caller's envelope changed: Size %d", env.Size)
	}
	ms := srv.Messages()
	if len(ms) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(ms))
	}
	want := "X-Sent-By: billing-service\r\n" + msg
	if got := string(ms[0].Data); got != want {
		t.Errorf("delivered %q, want %q", got, want)
	}
	if ms[0].MailOptions.Size != int64(len(want)) {
		t.Errorf("SIZE=%d, want %d", ms[0].MailOptions.Size, len(want))
	}
}

func TestNewRefusesBadFields(t *testing.T) {
	for _, tt := range []struct{ field, value string }{
		{"", "v"}, {"X Bad", "v"}, {"X:Bad", "v"}, {"X-Ok", "line\r\nBcc: evil@example.org"},
		// Field names: RFC 5322 ftext, printable ASCII but the colon.
		{"X-Caf\u00e9", "v"}, {"X-Tab\t", "v"}, {"X\x00", "v"}, {"X\x7f", "v"},
		{"X-\u2028", "v"}, {"X-\x85", "v"}, {":", "v"}, {strings.Repeat("X", 77), "v"},
		// Values: no control character but the tab, no Unicode line or
		// paragraph separator, nothing but UTF-8.
		{"X-Ok", "line\rx"}, {"X-Ok", "line\nx"}, {"X-Ok", "nul\x00x"}, {"X-Ok", "esc\x1b[2Jx"},
		{"X-Ok", "del\x7fx"}, {"X-Ok", "nel\u0085x"}, {"X-Ok", "c1\u009bx"},
		{"X-Ok", "ok\u2028x"}, {"X-Ok", "ok\u2029x"}, {"X-Ok", "raw\x85x"}, {"X-Ok", "bad\xe2\x80"},
	} {
		if _, err := stamp.New(tt.field, tt.value); err == nil {
			t.Errorf("New(%q, %q) succeeded", tt.field, tt.value)
		}
	}
	for _, v := range []string{"tab\tok", "caf\u00e9 \u4e2d\u6587", "replacement \ufffd char", ""} {
		if _, err := stamp.New("X-Ok", v); err != nil {
			t.Errorf("New(%q): %v", v, err)
		}
	}
	if _, err := stamp.New("X-Sent-By!#$%&'*+.^_`|~0", "v"); err != nil {
		t.Errorf("New with ftext punctuation: %v", err)
	}
}

// A body from envelope.FromMessage can be reopened, not sought; the stamped
// body can then be reopened too, so a retry inside the stamp sends the
// message again, stamped once.
func TestStampReopensAFromMessageBody(t *testing.T) {
	const msg = "From: a@example.org\r\nTo: b@example.org\r\n\r\nHello.\r\n"
	_, body, err := envelope.FromMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	inner := transport.Func(func(_ context.Context, env *envelope.Envelope, r io.Reader) (*transport.Result, error) {
		ro, ok := r.(interface{ Reopen() (io.Reader, error) })
		if !ok {
			t.Fatal("the stamped body cannot be reopened")
		}
		io.Copy(io.Discard, r) // a first attempt reads it
		again, err := ro.Reopen()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(again)
		got = append(got, string(b))
		return &transport.Result{Rcpts: []transport.RcptResult{{Addr: env.To[0].Addr, Outcome: transport.Accepted, Attempts: 1}}}, nil
	})
	mw, err := stamp.New("X-Sent-By", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mw(inner).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), body); err != nil {
		t.Fatal(err)
	}
	if want := "X-Sent-By: test\r\n" + msg; len(got) != 1 || got[0] != want {
		t.Errorf("reopened %q, want %q", got, want)
	}
}
