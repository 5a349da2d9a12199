package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/middleware/ratelimit"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

const message = "From: alice@example.org\r\nSubject: Board minutes\r\n\r\nconfidential body\r\n"

func env(addrs ...string) *envelope.Envelope {
	e := &envelope.Envelope{From: "alice@example.org", Size: 99, UTF8: true, EnvID: "env-1"}
	for _, a := range addrs {
		e.To = append(e.To, envelope.Recipient{Addr: a, Notify: []envelope.DSNNotify{envelope.NotifySuccess}, ORcpt: a})
	}
	return e
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

// script is a transport: recipients starting with "temp" get a 450 on their
// first attempt, "perm" a 550, the others are accepted.
type script struct{ seen map[string]int }

func (s *script) Send(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	io.Copy(io.Discard, msg)
	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(e.To))}
	accepted := 0
	for i, r := range e.To {
		s.seen[r.Addr]++
		rr := transport.RcptResult{Addr: r.Addr, Outcome: transport.Accepted, Attempts: 1}
		switch {
		case strings.HasPrefix(r.Addr, "temp") && s.seen[r.Addr] == 1:
			re := &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 0}, Message: "<" + r.Addr + "> busy"}
			rr.Outcome, rr.Reply, rr.Err = transport.TempFailed, re.Reply(), re
		case strings.HasPrefix(r.Addr, "perm"):
			re := &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "<" + r.Addr + "> unknown"}
			rr.Outcome, rr.Reply, rr.Err = transport.PermFailed, re.Reply(), re
		default:
			accepted++
			rr.Reply = &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "queued"}
		}
		res.Rcpts[i] = rr
	}
	if accepted == 0 {
		return res, &transport.OpError{Op: transport.OpRcpt, Addr: "mx.example.net:25", Err: res.Rcpts[0].Err}
	}
	res.Reply = &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "queued"}
	return res, res.Err()
}

// tag returns a middleware that records its name on the way in and out.
func tag(name string, log *[]string) middleware.Middleware {
	return func(next transport.Transport) transport.Transport {
		return transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			*log = append(*log, name+" in")
			res, err := next.Send(ctx, e, msg)
			*log = append(*log, name+" out")
			return res, err
		})
	}
}

func TestChainOrder(t *testing.T) {
	var log []string
	base := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		log = append(log, "transport")
		return nil, nil
	})
	mws := []middleware.Middleware{tag("a", &log), nil, tag("b", &log), tag("c", &log)}
	chain := middleware.Chain(mws...)
	mws[0] = tag("x", &log) // Chain keeps its own copy
	chain(base).Send(context.Background(), env("bob@example.org"), strings.NewReader(message))
	want := []string{"a in", "b in", "c in", "transport", "c out", "b out", "a out"}
	if !slices.Equal(log, want) {
		t.Errorf("order = %q, want %q", log, want)
	}
}

func TestChainIdentity(t *testing.T) {
	base := &script{}
	if got := middleware.Chain()(base); got != transport.Transport(base) {
		t.Errorf("Chain()(t) = %v, want t itself", got)
	}
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stall := transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			<-ctx.Done()
			err := &transport.OpError{Op: transport.OpGreeting, Err: ctx.Err()}
			return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1}}}, err
		})
		start := time.Now()
		_, err := middleware.Timeout(30*time.Second)(stall).Send(t.Context(), env("bob@example.org"), strings.NewReader(message))
		if got := time.Since(start); got != 30*time.Second {
			t.Errorf("Send returned after %v, want 30s", got)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
		for _, class := range []error{transport.ErrTransient, transport.ErrPermanent, transport.ErrUnknownOutcome} {
			if errors.Is(err, class) {
				t.Errorf("err = %v matches %v; a context error matches no class", err, class)
			}
		}
	})
	base := &script{}
	if got := middleware.Timeout(0)(base); got != transport.Transport(base) {
		t.Error("Timeout(0) wrapped the transport")
	}
}

// decodeOne decodes the single JSON record in buf.
func decodeOne(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d records, want 1:\n%s", len(lines), buf)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLogging(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr := middleware.Chain(
		middleware.Logging(l),
		retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })),
	)(&script{})
	_, err := tr.Send(context.Background(), env("bob@example.org", "temp-carol@example.org", "perm-dave@example.org"), strings.NewReader(message))
	if err == nil {
		t.Fatal("want the permanent refusal")
	}
	raw := buf.String()
	m := decodeOne(t, &buf)
	want := map[string]any{
		"level":         "ERROR",
		"msg":           "smtp send",
		"outcome":       "partial",
		"attempts":      2.0,
		"reply_code":    550.0,
		"enhanced_code": "5.1.1",
		"error_type":    "smtp.5xx",
		"rcpt":          map[string]any{"total": 3.0, "accepted": 2.0, "transient": 0.0, "permanent": 1.0, "unknown": 0.0},
	}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if _, ok := m["duration"].(float64); !ok {
		t.Errorf("duration = %#v, want a number", m["duration"])
	}
	for _, p := range []string{"alice", "bob", "carol", "dave", "example.org", "Board minutes", "confidential", "queued", "busy", "unknown>"} {
		if strings.Contains(raw, p) {
			t.Errorf("record contains %q: %s", p, raw)
		}
	}
}

func TestLoggingLevels(t *testing.T) {
	tests := []struct {
		addrs   []string
		level   string
		outcome string
	}{
		{[]string{"bob@example.org"}, "INFO", "accepted"},
		{[]string{"bob@example.org", "temp-carol@example.org"}, "WARN", "partial"},
		{[]string{"perm-dave@example.org"}, "ERROR", "failed"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&buf, nil))
		middleware.Logging(l)(&script{}).Send(context.Background(), env(tt.addrs...), strings.NewReader(message))
		m := decodeOne(t, &buf)
		if m["level"] != tt.level || m["outcome"] != tt.outcome {
			t.Errorf("%v: level %v outcome %v, want %s %s", tt.addrs, m["level"], m["outcome"], tt.level, tt.outcome)
		}
	}
}

func TestLoggingWithAddresses(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	middleware.Logging(l, middleware.WithAddresses(true))(&script{}).Send(context.Background(),
		env("bob@example.org", "perm-dave@example.org"), strings.NewReader(message))
	m := decodeOne(t, &buf)
	if m["from"] != "alice@example.org" {
		t.Errorf("from = %v", m["from"])
	}
	if got := m["to"]; !reflect.DeepEqual(got, []any{"bob@example.org", "perm-dave@example.org"}) {
		t.Errorf("to = %v", got)
	}
	if got := m["refused"]; !reflect.DeepEqual(got, []any{"perm-dave@example.org"}) {
		t.Errorf("refused = %v", got)
	}
	if s, _ := m["error"].(string); !strings.Contains(s, "550 5.1.1") {
		t.Errorf("error = %q, want the error text", s)
	}
	if strings.Contains(buf.String(), "Board minutes") || strings.Contains(buf.String(), "confidential") {
		t.Errorf("record holds message content: %s", buf.String())
	}
}

// idle records CloseIdleConnections.
type idle struct {
	script
	closed bool
}

func (i *idle) CloseIdleConnections() { i.closed = true }

// all returns every middleware of the module, in the recommended order.
func all() []middleware.Middleware {
	lim := rate.NewLimiter(rate.Inf, 1)
	return []middleware.Middleware{
		otelsmtp.New(),
		middleware.Logging(slog.New(slog.NewTextHandler(io.Discard, nil))),
		retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })),
		ratelimit.Concurrency(4),
		ratelimit.PerMessage(lim),
		ratelimit.PerRecipient(lim),
		ratelimit.Adaptive(rate.NewLimiter(100, 1)),
		middleware.Timeout(time.Minute),
	}
}

func TestCloseIdleConnectionsThroughChain(t *testing.T) {
	base := &idle{}
	transport.CloseIdleConnections(middleware.Chain(all()...)(base))
	if !base.closed {
		t.Error("CloseIdleConnections did not reach the transport through the chain")
	}
}

// TestContract runs each middleware, and the full chain, over a transport
// with mixed outcomes: the caller's envelope is unchanged and the Result has
// one RcptResult per recipient, in envelope order.
func TestContract(t *testing.T) {
	mws := map[string]middleware.Middleware{"chain": middleware.Chain(all()...)}
	for i, mw := range all() {
		mws[string(rune('a'+i))] = mw
	}
	for name, mw := range mws {
		e := env("bob@example.org", "temp-carol@example.org", "perm-dave@example.org", "bob@example.org")
		before := deepCopy(e)
		res, err := mw(&script{}).Send(context.Background(), e, strings.NewReader(message))
		if !reflect.DeepEqual(e, before) {
			t.Errorf("%s: envelope modified:\n got %+v\nwant %+v", name, e, before)
		}
		if err == nil {
			t.Errorf("%s: err = nil, want the refusal", name)
		}
		if res == nil || len(res.Rcpts) != len(e.To) {
			t.Fatalf("%s: Result %+v, want %d RcptResults", name, res, len(e.To))
		}
		for i, rr := range res.Rcpts {
			if rr.Addr != e.To[i].Addr || rr.Attempts < 1 || rr.Outcome == transport.NotAttempted {
				t.Errorf("%s: Rcpts[%d] = %+v, want %s attempted", name, i, rr, e.To[i].Addr)
			}
		}
	}
}
