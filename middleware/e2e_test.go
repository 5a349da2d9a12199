package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/middleware/ratelimit"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// tempFail returns an smtptest Rcpt hook that answers 450 to addr the
// first n times and accepts everything else.
func tempFail(addr string, n int) func(string, smtptest.RcptOptions) error {
	var mu sync.Mutex
	return func(to string, _ smtptest.RcptOptions) error {
		mu.Lock()
		defer mu.Unlock()
		if to == addr && n > 0 {
			n--
			return &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 0}, Message: "mailbox busy, try later"}
		}
		return nil
	}
}

// plainEnv returns an envelope without extension parameters, which the
// default smtptest server does not offer.
func plainEnv(addrs ...string) *envelope.Envelope {
	e := &envelope.Envelope{From: "alice@example.org"}
	for _, a := range addrs {
		e.To = append(e.To, envelope.Recipient{Addr: a})
	}
	return e
}

// copies counts the copies of the message each recipient received.
func copies(msgs []smtptest.Message) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.Delivered {
			n[to]++
		}
	}
	return n
}

func TestEndToEndRetryThroughChain(t *testing.T) {
	srv := smtptest.NewUnstartedServer()
	srv.Security = transport.StartTLS
	srv.Rcpt = tempFail("carol@example.org", 2)
	srv.Start()
	defer srv.Close()

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())

	tr := middleware.Chain(
		otelsmtp.New(otelsmtp.WithTracerProvider(tp), otelsmtp.WithMeterProvider(mp)),
		retry.New(retry.WithBackoff(retry.Exponential(time.Millisecond, 5*time.Millisecond))),
		ratelimit.PerMessage(rate.NewLimiter(1000, 1)),
		middleware.Timeout(30*time.Second),
	)(srv.Transport())

	e := plainEnv("bob@example.org", "carol@example.org", "dave@example.org")
	before := deepCopy(e)
	res, err := tr.Send(context.Background(), e, strings.NewReader(message))
	if err != nil {
		t.Fatalf("Send err = %v", err)
	}
	if fmt.Sprint(e) != fmt.Sprint(before) {
		t.Errorf("envelope modified")
	}
	want := []string{"bob@example.org=accepted/1", "carol@example.org=accepted/3", "dave@example.org=accepted/1"}
	for i, rr := range res.Rcpts {
		if got := fmt.Sprintf("%s=%s/%d", rr.Addr, rr.Outcome, rr.Attempts); got != want[i] {
			t.Errorf("Rcpts[%d] = %s, want %s", i, got, want[i])
		}
	}
	msgs := srv.Messages()
	// Attempt 1 delivers to bob and dave; attempt 2, carol alone, is
	// refused at RCPT and sends no data; attempt 3 delivers to carol.
	if len(msgs) != 2 {
		t.Errorf("server received %d messages, want 2", len(msgs))
	}
	for addr, n := range copies(msgs) {
		if n != 1 {
			t.Errorf("%s received %d copies, want exactly 1", addr, n)
		}
	}
	for _, m := range msgs {
		if got := strings.ReplaceAll(string(m.Data), "\r\n", "\n"); got != strings.ReplaceAll(message, "\r\n", "\n") {
			t.Errorf("message data = %q, want the whole message", m.Data)
		}
	}

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if attrs["smtp.attempts"].AsInt64() != 3 || attrs["smtp.recipients.refused"].AsInt64() != 0 ||
		attrs["server.address"].AsString() != "127.0.0.1" || attrs["tls.protocol.version"].AsString() == "" {
		t.Errorf("span attributes = %v", s.Attributes())
	}
	starts := 0
	for _, ev := range s.Events() {
		if ev.Name == "smtp.attempt.start" {
			starts++
		}
		for _, kv := range ev.Attributes {
			if strings.Contains(kv.Value.Emit(), "example.org") {
				t.Errorf("event %s records %s=%s", ev.Name, kv.Key, kv.Value.Emit())
			}
		}
	}
	if starts != 3 {
		t.Errorf("%d attempt events, want 3", starts)
	}
	for _, kv := range s.Attributes() {
		if strings.Contains(kv.Value.Emit(), "example.org") {
			t.Errorf("span records %s=%s", kv.Key, kv.Value.Emit())
		}
	}

	var rm metricdata.ResourceMetrics
	reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "smtp.client.connection.opened" {
				continue
			}
			var n int64
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				n += dp.Value
			}
			// The pooled transport reuses its connection for every attempt
			// (an RSET starts each transaction after a refused one).
			if n != 1 {
				t.Errorf("connections opened = %d, want 1", n)
			}
		}
	}
}

func TestEndToEndBodyRewind(t *testing.T) {
	t.Run("seeker, 451 after the data", func(t *testing.T) {
		srv := smtptest.NewUnstartedServer()
		var mu sync.Mutex
		refuse := 1
		srv.Data = func(m *smtptest.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if refuse > 0 {
				refuse--
				return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "local error"}
			}
			return nil
		}
		srv.Start()
		defer srv.Close()
		tr := retry.New(retry.WithBackoff(func(int) time.Duration { return 0 }))(srv.Transport())
		res, err := tr.Send(context.Background(), plainEnv("bob@example.org", "carol@example.org"), strings.NewReader(message))
		if err != nil {
			t.Fatalf("Send err = %v", err)
		}
		for _, rr := range res.Rcpts {
			if rr.Attempts != 2 {
				t.Errorf("%s: Attempts = %d, want 2", rr.Addr, rr.Attempts)
			}
		}
		for addr, n := range copies(srv.Messages()) {
			if n != 1 {
				t.Errorf("%s received %d copies, want 1", addr, n)
			}
		}
	})
	t.Run("not rewindable", func(t *testing.T) {
		srv := smtptest.NewUnstartedServer()
		srv.Rcpt = tempFail("carol@example.org", 1)
		srv.Start()
		defer srv.Close()
		tr := retry.New(retry.WithBackoff(func(int) time.Duration { return 0 }))(srv.Transport())
		body := struct{ io.Reader }{strings.NewReader(message)} // hides Seek
		res, err := tr.Send(context.Background(), plainEnv("bob@example.org", "carol@example.org"), body)
		if !errors.Is(err, retry.ErrNotRewindable) || !errors.Is(err, transport.ErrTransient) {
			t.Errorf("err = %v, want ErrNotRewindable, transient", err)
		}
		if res.Rcpts[0].Outcome != transport.Accepted || res.Rcpts[1].Outcome != transport.TempFailed {
			t.Errorf("outcomes = %v, %v; want accepted, temp-failed", res.Rcpts[0].Outcome, res.Rcpts[1].Outcome)
		}
		if n := copies(srv.Messages()); n["bob@example.org"] != 1 || n["carol@example.org"] != 0 {
			t.Errorf("copies = %v, want bob 1, carol 0", n)
		}
	})
}

// The envelope's DSN parameters survive into the retry's cloned envelope.
func TestEndToEndRetryKeepsParameters(t *testing.T) {
	srv := smtptest.NewUnstartedServer()
	srv.EnableDSN = true
	srv.Rcpt = tempFail("carol@example.org", 1)
	srv.Start()
	defer srv.Close()
	tr := retry.New(retry.WithBackoff(func(int) time.Duration { return 0 }))(srv.Transport())
	e := &envelope.Envelope{From: "alice@example.org", EnvID: "env-42", Return: envelope.ReturnHeaders, To: []envelope.Recipient{
		{Addr: "bob@example.org"},
		{Addr: "carol@example.org", Notify: []envelope.DSNNotify{envelope.NotifyFailure}, ORcpt: "carol@old.example.org"},
	}}
	if _, err := tr.Send(context.Background(), e, strings.NewReader(message)); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	last := msgs[1]
	if len(last.To) != 1 || last.To[0] != "carol@example.org" {
		t.Fatalf("retry went to %v, want carol alone", last.To)
	}
	if o := last.RcptOptions[0]; o.ORcpt != "carol@old.example.org" || len(o.Notify) != 1 || o.Notify[0] != envelope.NotifyFailure {
		t.Errorf("retry RCPT options = %+v, want carol's NOTIFY and ORCPT", o)
	}
}

// Over LMTP each recipient has its own reply after the data: a 452 for one
// of them retries that one only, with the body rewound.
func TestEndToEndLMTPPerRecipient(t *testing.T) {
	srv := smtptest.NewUnstartedServer()
	srv.LMTP = true
	srv.Network = "unix"
	var mu sync.Mutex
	full := 1
	srv.LMTPData = func(m *smtptest.Message, rcpt string) error {
		mu.Lock()
		defer mu.Unlock()
		if rcpt == "carol@example.org" && full > 0 {
			full--
			return &transport.ReplyError{Code: 452, EnhancedCode: transport.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}
	srv.Start()
	defer srv.Close()

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr := middleware.Chain(
		otelsmtp.New(otelsmtp.WithTracerProvider(tp), otelsmtp.WithAttributes(attribute.String("smtp.transport", "lmtp"))),
		retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })),
	)(srv.LMTPTransport())

	res, err := tr.Send(context.Background(), plainEnv("bob@example.org", "carol@example.org"), strings.NewReader(message))
	if err != nil {
		t.Fatalf("Send err = %v", err)
	}
	if res.Rcpts[0].Attempts != 1 || res.Rcpts[1].Attempts != 2 {
		t.Errorf("Attempts = %d, %d; want 1, 2", res.Rcpts[0].Attempts, res.Rcpts[1].Attempts)
	}
	for addr, n := range copies(srv.Messages()) {
		if n != 1 {
			t.Errorf("%s received %d copies, want 1", addr, n)
		}
	}
	s := rec.Ended()[0]
	var eod []string
	for _, ev := range s.Events() {
		if ev.Name != "smtp.end_of_data" {
			continue
		}
		m := map[attribute.Key]attribute.Value{}
		for _, kv := range ev.Attributes {
			m[kv.Key] = kv.Value
		}
		_, timed := m["smtp.phase.duration"]
		eod = append(eod, fmt.Sprintf("%d:%d:%v", m["smtp.rcpt.index"].AsInt64(), m["smtp.reply.code"].AsInt64(), timed))
	}
	if want := []string{"0:250:true", "1:452:true", "0:250:true"}; fmt.Sprint(eod) != fmt.Sprint(want) {
		t.Errorf("end-of-data events (index:code:timed) = %v, want %v", eod, want)
	}
}
