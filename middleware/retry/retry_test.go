package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
)

const message = "From: sender@example.org\r\nSubject: hello\r\n\r\nbody line\r\n"

var (
	busy     = reply(450, [3]int{4, 2, 0}, "mailbox busy")
	noUser   = reply(550, [3]int{5, 1, 1}, "no such user")
	shutdown = reply(421, [3]int{4, 3, 2}, "closing")
)

// outcomes returns "addr=outcome/attempts" for each recipient.
func outcomes(res *transport.Result) []string {
	var out []string
	for _, rr := range res.Rcpts {
		out = append(out, fmt.Sprintf("%s=%s/%d", rr.Addr, rr.Outcome, rr.Attempts))
	}
	return out
}

func TestRetriesOnlyTransientRecipients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["b@example.org"] = []*transport.ReplyError{busy, busy}
		var waits []time.Duration
		tr := retry.New(retry.WithNotify(func(attempt int, err error, wait time.Duration) {
			if !errors.Is(err, transport.ErrTransient) {
				t.Errorf("notify(%d) err = %v, want transient", attempt, err)
			}
			waits = append(waits, wait)
		}))(s)

		e := env("a@example.org", "b@example.org", "c@example.org")
		res, err := tr.Send(t.Context(), e, strings.NewReader(message))
		if err != nil {
			t.Fatalf("Send err = %v, want nil", err)
		}
		want := []string{"a@example.org=accepted/1", "b@example.org=accepted/3", "c@example.org=accepted/1"}
		if got := outcomes(res); !slices.Equal(got, want) {
			t.Errorf("outcomes = %v, want %v", got, want)
		}
		wantCalls := [][]string{{"a@example.org", "b@example.org", "c@example.org"}, {"b@example.org"}, {"b@example.org"}}
		if !reflect.DeepEqual(s.calls, wantCalls) {
			t.Errorf("calls = %v, want %v", s.calls, wantCalls)
		}
		for addr, n := range s.delivered {
			if n != 1 {
				t.Errorf("%s received %d copies, want 1", addr, n)
			}
		}
		if len(s.delivered) != 3 {
			t.Errorf("delivered to %d recipients, want 3", len(s.delivered))
		}
		for i, b := range s.bodies {
			if b != message {
				t.Errorf("body of call %d = %q, want the whole message", i, b)
			}
		}
		if len(waits) != 2 {
			t.Errorf("waited %d times, want 2", len(waits))
		}
		if res.Reply == nil || res.Reply.Code != 250 {
			t.Errorf("Reply = %v, want the last 250", res.Reply)
		}
	})
}

func TestSubsetEnvelopeKeepsParameters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []*envelope.Envelope
		s := newFakeServer()
		s.rcpt["b@example.org"] = []*transport.ReplyError{busy}
		rec := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			c := *e
			c.To = slices.Clone(e.To)
			got = append(got, &c)
			return s.Send(ctx, e, msg)
		})
		e := env("a@example.org", "b@example.org")
		before := deepCopy(e)
		if _, err := retry.New()(rec).Send(t.Context(), e, strings.NewReader(message)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, before) {
			t.Errorf("envelope modified: got %+v, want %+v", e, before)
		}
		if len(got) != 2 {
			t.Fatalf("%d calls, want 2", len(got))
		}
		want := deepCopy(e)
		want.To = want.To[1:]
		if !reflect.DeepEqual(got[1], want) {
			t.Errorf("retry envelope = %+v, want %+v", got[1], want)
		}
	})
}

func deepCopy(e *envelope.Envelope) *envelope.Envelope {
	c := *e
	c.To = nil
	for _, r := range e.To {
		r.Notify = slices.Clone(r.Notify)
		c.To = append(c.To, r)
	}
	return &c
}

func TestSeekerRewoundToStartingOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.dataErr = []error{reply(451, [3]int{4, 3, 0}, "try later")}
		s.partial = 10 // the failed attempt stops mid-body
		r := strings.NewReader("JUNK" + message)
		r.Seek(4, io.SeekStart) // the caller's message starts here
		res, err := retry.New()(s).Send(t.Context(), env("a@example.org"), r)
		if err != nil {
			t.Fatalf("Send err = %v", err)
		}
		if want := []string{message[:10], message}; !slices.Equal(s.bodies, want) {
			t.Errorf("bodies = %q, want %q", s.bodies, want)
		}
		if got := res.Rcpts[0].Attempts; got != 2 {
			t.Errorf("Attempts = %d, want 2", got)
		}
	})
}

// closeCounter is a body reader that counts Close calls.
type closeCounter struct {
	io.Reader
	closed *atomic.Int32
}

func (c closeCounter) Close() error { c.closed.Add(1); return nil }

func TestReopenFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.dataErr = []error{reply(451, [3]int{4, 3, 0}, "try later"), reply(451, [3]int{4, 3, 0}, "try later")}
		var opened, closed atomic.Int32
		body := retry.ReopenFunc(func() (io.Reader, error) {
			opened.Add(1)
			return closeCounter{strings.NewReader(message), &closed}, nil
		})
		res, err := retry.New()(s).Send(t.Context(), env("a@example.org"), body)
		if err != nil {
			t.Fatalf("Send err = %v", err)
		}
		if want := []string{message, message, message}; !slices.Equal(s.bodies, want) {
			t.Errorf("bodies = %q, want %q", s.bodies, want)
		}
		if got := opened.Load(); got != 3 {
			t.Errorf("opened %d times, want 3", got)
		}
		// The two reopened readers are the middleware's to close; the first
		// is the caller's.
		if got := closed.Load(); got != 2 {
			t.Errorf("middleware closed %d readers, want 2", got)
		}
		body.Close()
		if got := closed.Load(); got != 3 {
			t.Errorf("after body.Close, %d readers closed, want 3", got)
		}
		if got := res.Rcpts[0].Attempts; got != 3 {
			t.Errorf("Attempts = %d, want 3", got)
		}
	})
}

// reopener is a non-seekable body with a Reopen method.
type reopener struct {
	io.Reader
	n int
}

func (r *reopener) Reopen() (io.Reader, error) {
	r.n++
	if r.n > 1 {
		return nil, errBoom
	}
	return onlyReader{strings.NewReader(message)}, nil
}

func TestReopenerFailureStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		d := reply(451, [3]int{4, 3, 0}, "try later")
		s.dataErr = []error{d, d, d}
		body := &reopener{Reader: onlyReader{strings.NewReader(message)}}
		res, err := retry.New(retry.WithMaxAttempts(5))(s).Send(t.Context(), env("a@example.org"), body)
		if len(s.calls) != 2 {
			t.Errorf("%d calls, want 2 (the second Reopen fails)", len(s.calls))
		}
		if !errors.Is(err, retry.ErrNotRewindable) || !errors.Is(err, errBoom) || !errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v, want ErrNotRewindable wrapping the reopen error, still transient", err)
		}
		if got := res.Rcpts[0]; got.Outcome != transport.TempFailed || !errors.Is(got.Err, retry.ErrNotRewindable) {
			t.Errorf("recipient = %+v, want TempFailed with ErrNotRewindable", got)
		}
	})
}

func TestNonRewindableBody(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newFakeServer()
			s.dataErr = []error{reply(451, [3]int{4, 3, 0}, "try later")}
			res, err := retry.New()(s).Send(t.Context(), env("a@example.org"), onlyReader{strings.NewReader(message)})
			if len(s.calls) != 1 {
				t.Errorf("%d calls, want 1: the body was read and cannot be rewound", len(s.calls))
			}
			if !errors.Is(err, retry.ErrNotRewindable) || !errors.Is(err, transport.ErrTransient) {
				t.Errorf("err = %v, want ErrNotRewindable and transient", err)
			}
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpData {
				t.Errorf("err = %v, want an *OpError at data inside", err)
			}
			if got := res.Rcpts[0]; got.Outcome != transport.TempFailed || got.Attempts != 1 {
				t.Errorf("recipient = %+v, want TempFailed after 1 attempt", got)
			}
		})
	})
	t.Run("not read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newFakeServer()
			s.mailErr = []error{shutdown}
			res, err := retry.New()(s).Send(t.Context(), env("a@example.org", "b@example.org"), onlyReader{strings.NewReader(message)})
			if err != nil {
				t.Fatalf("Send err = %v, want nil: the 421 came before the body was read", err)
			}
			if len(s.calls) != 2 {
				t.Errorf("%d calls, want 2", len(s.calls))
			}
			if want := []string{"a@example.org=accepted/2", "b@example.org=accepted/2"}; !slices.Equal(outcomes(res), want) {
				t.Errorf("outcomes = %v, want %v", outcomes(res), want)
			}
			if !slices.Equal(s.bodies, []string{message}) {
				t.Errorf("bodies = %q, want one whole message", s.bodies)
			}
		})
	})
}

func TestUnknownOutcome(t *testing.T) {
	t.Run("not retried by default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newFakeServer()
			s.lostAtEnd = []bool{true}
			res, err := retry.New()(s).Send(t.Context(), env("a@example.org"), strings.NewReader(message))
			if len(s.calls) != 1 {
				t.Errorf("%d calls, want 1", len(s.calls))
			}
			if !errors.Is(err, transport.ErrUnknownOutcome) {
				t.Errorf("err = %v, want ErrUnknownOutcome", err)
			}
			if res.Rcpts[0].Outcome != transport.Unknown {
				t.Errorf("outcome = %v, want unknown", res.Rcpts[0].Outcome)
			}
		})
	})
	t.Run("opted in", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newFakeServer()
			s.lostAtEnd = []bool{true}
			res, err := retry.New(retry.WithRetryUnknown(true))(s).Send(t.Context(), env("a@example.org"), strings.NewReader(message))
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(s.calls) != 2 || !slices.Equal(s.bodies, []string{message, message}) {
				t.Errorf("calls %v, bodies %q, want two whole sends", s.calls, s.bodies)
			}
			if got := outcomes(res); !slices.Equal(got, []string{"a@example.org=accepted/2"}) {
				t.Errorf("outcomes = %v", got)
			}
		})
	})
}

func TestPermanentNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["b@example.org"] = []*transport.ReplyError{noUser}
		s.rcpt["c@example.org"] = []*transport.ReplyError{busy}
		res, err := retry.New()(s).Send(t.Context(), env("a@example.org", "b@example.org", "c@example.org"), strings.NewReader(message))
		want := []string{"a@example.org=accepted/1", "b@example.org=perm-failed/1", "c@example.org=accepted/2"}
		if got := outcomes(res); !slices.Equal(got, want) {
			t.Errorf("outcomes = %v, want %v", got, want)
		}
		if !errors.Is(err, transport.ErrPermanent) || errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v, want only the permanent refusal", err)
		}
		var re *transport.RcptError
		if !errors.As(err, &re) || re.Rcpt != "b@example.org" {
			t.Errorf("err = %v, want a RcptError for b", err)
		}
		if len(s.calls) != 2 || !slices.Equal(s.calls[1], []string{"c@example.org"}) {
			t.Errorf("calls = %v", s.calls)
		}
	})
}

// When every recipient is refused, a transport returns Result.Err(); the
// merged error then covers the recipients of every attempt.
func TestAllRefusedAggregate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := map[string]int{}
		f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			res := &transport.Result{}
			for _, r := range e.To {
				seen[r.Addr]++
				rr := transport.RcptResult{Addr: r.Addr, Outcome: transport.PermFailed, Reply: noUser.Reply(), Err: noUser, Attempts: 1}
				if r.Addr == "c@example.org" {
					rr.Outcome, rr.Reply, rr.Err = transport.TempFailed, busy.Reply(), busy
				}
				res.Rcpts = append(res.Rcpts, rr)
			}
			return res, res.Err()
		})
		res, err := retry.New(retry.WithMaxAttempts(2))(f).Send(t.Context(), env("b@example.org", "c@example.org"), strings.NewReader(message))
		if seen["b@example.org"] != 1 || seen["c@example.org"] != 2 {
			t.Errorf("sent to %v, want b once and c twice", seen)
		}
		var refused []string
		for _, e := range err.(interface{ WrappedErrors() []error }).WrappedErrors() {
			var re *transport.RcptError
			if errors.As(e, &re) {
				refused = append(refused, re.Rcpt)
			}
		}
		if !slices.Equal(refused, []string{"b@example.org", "c@example.org"}) {
			t.Errorf("err = %v, want RcptErrors for b and c", err)
		}
		if !errors.Is(err, transport.ErrPermanent) || !errors.Is(err, retry.ErrMaxAttempts) {
			t.Errorf("err = %v, want b's permanent refusal and c's ErrMaxAttempts", err)
		}
		if want := []string{"b@example.org=perm-failed/1", "c@example.org=temp-failed/2"}; !slices.Equal(outcomes(res), want) {
			t.Errorf("outcomes = %v, want %v", outcomes(res), want)
		}
	})
}

func TestNotRetried(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
	}{
		{"tls", context.Background(), &transport.OpError{Op: transport.OpStartTLS, Err: fmt.Errorf("%w: handshake failure", transport.ErrTLS)}},
		{"insecure auth", context.Background(), &transport.OpError{Op: transport.OpAuth, Err: transport.ErrInsecureAuth}},
		{"caller canceled", canceled, &transport.OpError{Op: transport.OpRcpt, Err: context.Canceled}},
		{"unclassified", context.Background(), errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
					calls++
					return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.TempFailed, Err: tt.err, Attempts: 1}}}, tt.err
				})
				_, err := retry.New()(f).Send(tt.ctx, env("a@example.org"), strings.NewReader(message))
				if calls != 1 {
					t.Errorf("%d calls, want 1", calls)
				}
				if tt.ctx.Err() == nil && err != tt.err {
					t.Errorf("err = %v, want the transport's error unchanged", err)
				}
			})
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	tests := []struct {
		name    string
		ctx     context.Context
		outcome transport.Outcome
		err     error
		want    bool
	}{
		{"450 at RCPT", live, transport.TempFailed, busy, true},
		{"421 at MAIL", live, transport.TempFailed, &transport.OpError{Op: transport.OpMail, Err: shutdown}, true},
		{"bare EOF mid-data", live, transport.TempFailed, io.ErrUnexpectedEOF, true},
		{"bare net error", live, transport.TempFailed, netErr, true},
		{"bare protocol error", live, transport.TempFailed, &transport.ProtocolError{Reason: "bad reply"}, true},
		{"attempt deadline", live, transport.TempFailed, context.DeadlineExceeded, true},
		{"attempt deadline in OpError", live, transport.TempFailed, &transport.OpError{Op: transport.OpRcpt, Err: context.DeadlineExceeded}, true},
		{"caller deadline", done, transport.TempFailed, context.DeadlineExceeded, false},
		{"caller canceled", live, transport.TempFailed, context.Canceled, false},
		{"bare TLS error", live, transport.TempFailed, fmt.Errorf("%w: bad record", transport.ErrTLS), false},
		{"TLS OpError", live, transport.TempFailed, &transport.OpError{Op: transport.OpStartTLS, Err: transport.ErrTLS}, false},
		{"insecure auth", live, transport.TempFailed, transport.ErrInsecureAuth, false},
		{"body read error", live, transport.TempFailed, errBoom, false},
		{"550", live, transport.PermFailed, noUser, false},
		{"450 but PermFailed", live, transport.PermFailed, busy, false},
		{"no error", live, transport.TempFailed, nil, false},
		{"not attempted", live, transport.NotAttempted, context.Canceled, false},
	}
	for _, tt := range tests {
		r := transport.RcptResult{Addr: "a@example.org", Outcome: tt.outcome, Err: tt.err}
		if got := retry.DefaultPolicy(tt.ctx, r); got != tt.want {
			t.Errorf("%s: DefaultPolicy = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWholeTransactionWithoutResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			calls++
			if calls == 1 {
				return nil, &transport.OpError{Op: transport.OpMail, Err: shutdown} // breaks the contract
			}
			return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.Accepted, Attempts: 1}}}, nil
		})
		res, err := retry.New()(f).Send(t.Context(), env("a@example.org"), strings.NewReader(message))
		if err != nil || calls != 2 {
			t.Fatalf("err = %v after %d calls, want nil after 2", err, calls)
		}
		if got := outcomes(res); !slices.Equal(got, []string{"a@example.org=accepted/2"}) {
			t.Errorf("outcomes = %v", got)
		}
	})
}

func TestMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["b@example.org"] = slices.Repeat([]*transport.ReplyError{busy}, 10)
		res, err := retry.New(retry.WithMaxAttempts(4))(s).Send(t.Context(), env("a@example.org", "b@example.org"), strings.NewReader(message))
		if len(s.calls) != 4 {
			t.Errorf("%d calls, want 4", len(s.calls))
		}
		want := []string{"a@example.org=accepted/1", "b@example.org=temp-failed/4"}
		if got := outcomes(res); !slices.Equal(got, want) {
			t.Errorf("outcomes = %v, want %v", got, want)
		}
		if !errors.Is(err, retry.ErrMaxAttempts) || !errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v, want ErrMaxAttempts, still transient", err)
		}
		if got := res.Rcpts[1].Reply; got == nil || got.Code != 450 {
			t.Errorf("b's Reply = %v, want the 450", got)
		}
	})
}

func TestMaxElapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["a@example.org"] = slices.Repeat([]*transport.ReplyError{busy}, 10)
		start := time.Now()
		tr := retry.New(
			retry.WithMaxAttempts(0),
			retry.WithMaxElapsed(150*time.Second),
			retry.WithBackoff(func(int) time.Duration { return time.Minute }),
		)(s)
		_, err := tr.Send(t.Context(), env("a@example.org"), strings.NewReader(message))
		// Attempts at 0, 60 s and 120 s; the next, at 180 s, is past 150 s.
		if len(s.calls) != 3 {
			t.Errorf("%d calls, want 3", len(s.calls))
		}
		if got := time.Since(start); got != 2*time.Minute {
			t.Errorf("took %v, want 2m0s: no wait past the limit", got)
		}
		if !errors.Is(err, retry.ErrMaxElapsed) {
			t.Errorf("err = %v, want ErrMaxElapsed", err)
		}
	})
}

func TestContextDeadlineStopsEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["a@example.org"] = slices.Repeat([]*transport.ReplyError{busy}, 10)
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		tr := retry.New(retry.WithMaxAttempts(0), retry.WithBackoff(func(int) time.Duration { return time.Minute }))(s)
		start := time.Now()
		_, err := tr.Send(ctx, env("a@example.org"), strings.NewReader(message))
		if len(s.calls) != 2 || time.Since(start) != time.Minute {
			t.Errorf("%d calls in %v, want 2 in 1m0s", len(s.calls), time.Since(start))
		}
		if !errors.Is(err, retry.ErrMaxElapsed) || !errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v, want ErrMaxElapsed, transient", err)
		}
	})
}

func TestCancelDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["b@example.org"] = []*transport.ReplyError{busy}
		ctx, cancel := context.WithCancelCause(t.Context())
		cause := errors.New("shutting down")
		tr := retry.New(retry.WithMaxElapsed(0), retry.WithBackoff(func(int) time.Duration { return time.Hour }))(s)
		start := time.Now()
		var (
			res *transport.Result
			err error
		)
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err = tr.Send(ctx, env("a@example.org", "b@example.org"), strings.NewReader(message))
		}()
		synctest.Wait() // Send is waiting out the backoff
		cancel(cause)
		<-done
		if got := time.Since(start); got != 0 {
			t.Errorf("returned after %v, want at once", got)
		}
		if !errors.Is(err, cause) {
			t.Errorf("err = %v, want the cause", err)
		}
		want := []string{"a@example.org=accepted/1", "b@example.org=temp-failed/1"}
		if got := outcomes(res); !slices.Equal(got, want) {
			t.Errorf("outcomes = %v, want %v", got, want)
		}
	})
}

func TestAttemptTimeoutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			calls++
			if calls == 1 {
				<-ctx.Done() // the server stalls
				err := &transport.OpError{Op: transport.OpRcpt, Err: ctx.Err()}
				return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1}}}, err
			}
			io.Copy(io.Discard, msg)
			return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.Accepted, Attempts: 1}}}, nil
		})
		tr := middleware.Chain(retry.New(), middleware.Timeout(30*time.Second))(f)
		res, err := tr.Send(t.Context(), env("a@example.org"), strings.NewReader(message))
		if err != nil || calls != 2 {
			t.Fatalf("err = %v after %d calls, want nil after 2", err, calls)
		}
		if res.Rcpts[0].Attempts != 2 {
			t.Errorf("Attempts = %d, want 2", res.Rcpts[0].Attempts)
		}
	})
}

func TestCustomPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		tooMany := reply(552, [3]int{5, 5, 3}, "too many recipients")
		s.rcpt["b@example.org"] = []*transport.ReplyError{tooMany}
		// RFC 5321 section 4.5.3.1.10: a 552 to RCPT means "too many
		// recipients" and is to be treated as temporary.
		p := func(ctx context.Context, r transport.RcptResult) bool {
			var re *transport.ReplyError
			if errors.As(r.Err, &re) && re.Code == 552 {
				return true
			}
			return retry.DefaultPolicy(ctx, r)
		}
		res, err := retry.New(retry.WithPolicy(p))(s).Send(t.Context(), env("a@example.org", "b@example.org"), strings.NewReader(message))
		if err != nil {
			t.Fatalf("err = %v", err)
		}
		if want := []string{"a@example.org=accepted/1", "b@example.org=accepted/2"}; !slices.Equal(outcomes(res), want) {
			t.Errorf("outcomes = %v, want %v", outcomes(res), want)
		}
	})
}

func TestAttemptHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeServer()
		s.rcpt["a@example.org"] = []*transport.ReplyError{busy}
		var events []string
		ctx := smtptrace.WithClientTrace(t.Context(), &smtptrace.ClientTrace{
			AttemptStart: func(n int) { events = append(events, fmt.Sprint("start ", n)) },
			AttemptDone: func(n int, err error) {
				events = append(events, fmt.Sprint("done ", n, " ", err != nil))
			},
		})
		if _, err := retry.New()(s).Send(ctx, env("a@example.org"), strings.NewReader(message)); err != nil {
			t.Fatal(err)
		}
		if want := []string{"start 1", "done 1 true", "start 2", "done 2 false"}; !slices.Equal(events, want) {
			t.Errorf("events = %q, want %q", events, want)
		}
	})
}

func TestPassThroughWithoutRetry(t *testing.T) {
	wantErr := &transport.OpError{Op: transport.OpMail, Err: noUser}
	wantRes := &transport.Result{Rcpts: []transport.RcptResult{{Addr: "a@example.org", Outcome: transport.PermFailed, Err: wantErr, Attempts: 1}}}
	f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		return wantRes, wantErr
	})
	res, err := retry.New()(f).Send(t.Context(), env("a@example.org"), strings.NewReader(message))
	if res != wantRes || err != wantErr {
		t.Errorf("Send = %v, %v; want the transport's own values", res, err)
	}
}

func TestLateReadRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var kept io.Reader
		calls := 0
		f := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			calls++
			if calls == 1 {
				kept = msg // misbehaves: keeps the body
				err := &transport.OpError{Op: transport.OpMail, Err: shutdown}
				return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1}}}, err
			}
			if _, err := kept.Read(make([]byte, 4)); err == nil {
				t.Error("a previous attempt's reader still reads the body")
			}
			b, _ := io.ReadAll(msg)
			if string(b) != message {
				t.Errorf("body = %q, want the whole message", b)
			}
			return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.Accepted, Attempts: 1}}}, nil
		})
		if _, err := retry.New()(f).Send(t.Context(), env("a@example.org"), onlyReader{strings.NewReader(message)}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestExponentialBounds(t *testing.T) {
	b := retry.Exponential(time.Second, 10*time.Second)
	for attempt := 1; attempt <= 8; attempt++ {
		ceiling := min(10*time.Second, time.Second<<(attempt-1))
		var top time.Duration
		for range 2000 {
			d := b(attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("Exponential(1s, 10s)(%d) = %v, want within [0, %v]", attempt, d, ceiling)
			}
			top = max(top, d)
		}
		if top < ceiling/2 {
			t.Errorf("Exponential(1s, 10s)(%d): largest of 2000 draws %v, want the range up to %v used", attempt, top, ceiling)
		}
	}
	huge := retry.Exponential(time.Duration(1<<62), time.Duration(1<<63-1))
	for _, n := range []int{1, 2, 3, 64, 1000} {
		if d := huge(n); d < 0 {
			t.Errorf("huge(%d) = %v, want non-negative (no overflow)", n, d)
		}
	}
	if d := retry.Exponential(0, time.Second)(3); d != 0 {
		t.Errorf("Exponential(0, 1s)(3) = %v, want 0", d)
	}
}

func TestUnwrap(t *testing.T) {
	s := newFakeServer()
	tr := retry.New()(s)
	u, ok := tr.(interface{ Unwrap() transport.Transport })
	if !ok || u.Unwrap() != transport.Transport(s) {
		t.Errorf("Unwrap did not return the wrapped transport")
	}
}
