package otelsmtp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
)

const (
	subject = "Quarterly figures"
	message = "From: alice@example.org\r\nSubject: " + subject + "\r\n\r\nsecret body text\r\n"
	server  = "mx.example.net:587"
)

// Strings that must never appear in telemetry.
var private = []string{"alice", "bob", "carol", "dave", "example.org", subject, "secret body", "hunter2"}

// fake is a transport that drives the smtptrace hooks the way a real SMTP
// transport does. Recipients whose address starts with "temp" get a 450 on
// their first attempt, "perm" a 550; the others are accepted.
type fake struct {
	seen map[string]int
}

func (f *fake) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	phase := func(p smtptrace.Phase, info smtptrace.PhaseInfo) {
		smtptrace.Start(ctx, p, info.Index)
		smtptrace.Done(ctx, p, info)
	}
	tr := smtptrace.ContextClientTrace(ctx)
	phase(smtptrace.PhaseDial, smtptrace.PhaseInfo{Index: -1})
	tr.ConnOpened("tcp", server)
	phase(smtptrace.PhaseGreeting, smtptrace.PhaseInfo{Index: -1, Code: 220})
	phase(smtptrace.PhaseHello, smtptrace.PhaseInfo{Index: -1, Code: 250, Command: "EHLO"})
	phase(smtptrace.PhaseTLS, smtptrace.PhaseInfo{Index: -1, Code: 220})
	phase(smtptrace.PhaseHello, smtptrace.PhaseInfo{Index: -1, Code: 250, Command: "EHLO"})
	phase(smtptrace.PhaseAuth, smtptrace.PhaseInfo{Index: -1, Code: 235, EnhancedCode: [3]int{2, 7, 0}, Command: "PLAIN"})
	tr.GotConn(smtptrace.ConnInfo{Network: "tcp", Addr: server, Security: "starttls", TLS: &tls.ConnectionState{Version: tls.VersionTLS13}})
	phase(smtptrace.PhaseMail, smtptrace.PhaseInfo{Index: -1, Code: 250})

	res := &transport.Result{Rcpts: make([]transport.RcptResult, len(env.To))}
	var accepted []int
	for i, r := range env.To {
		f.seen[r.Addr]++
		rr := transport.RcptResult{Addr: r.Addr, Attempts: 1}
		var re *transport.ReplyError
		switch {
		case strings.HasPrefix(r.Addr, "temp") && f.seen[r.Addr] == 1:
			re = &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 0}, Message: "<" + r.Addr + "> busy"}
			rr.Outcome = transport.TempFailed
		case strings.HasPrefix(r.Addr, "perm"):
			re = &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "<" + r.Addr + "> unknown"}
			rr.Outcome = transport.PermFailed
		default:
			accepted = append(accepted, i)
		}
		info := smtptrace.PhaseInfo{Index: i, Code: 250, EnhancedCode: [3]int{2, 1, 5}}
		if re != nil {
			rr.Reply, rr.Err = re.Reply(), re
			info = smtptrace.PhaseInfo{Index: i, Code: re.Code, EnhancedCode: re.EnhancedCode, Err: re}
		}
		phase(smtptrace.PhaseRcpt, info)
		res.Rcpts[i] = rr
	}
	if len(accepted) == 0 {
		return res, &transport.OpError{Op: transport.OpRcpt, Addr: server, Err: res.Rcpts[0].Err}
	}
	smtptrace.Start(ctx, smtptrace.PhaseData, -1)
	n, _ := io.Copy(io.Discard, msg)
	smtptrace.Done(ctx, smtptrace.PhaseData, smtptrace.PhaseInfo{Index: -1, Code: 354, Bytes: n, Command: "DATA"})
	reply := &transport.Reply{Code: 250, EnhancedCode: transport.EnhancedCode{2, 0, 0}, Text: "queued as ABC for <" + env.To[accepted[0]].Addr + ">"}
	phase(smtptrace.PhaseEndOfData, smtptrace.PhaseInfo{Index: -1, Code: 250, EnhancedCode: [3]int{2, 0, 0}})
	for _, i := range accepted {
		res.Rcpts[i].Outcome, res.Rcpts[i].Reply = transport.Accepted, reply
	}
	res.Reply = reply
	return res, res.Err()
}

type fixture struct {
	spans   *tracetest.SpanRecorder
	reader  *sdkmetric.ManualReader
	tp      *sdktrace.TracerProvider
	options []otelsmtp.Option
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	t.Cleanup(func() { f.tp.Shutdown(context.Background()); mp.Shutdown(context.Background()) })
	f.options = []otelsmtp.Option{
		otelsmtp.WithTracerProvider(f.tp),
		otelsmtp.WithMeterProvider(mp),
		otelsmtp.WithAttributes(attribute.String("smtp.transport", "smtp")),
	}
	return f
}

func (f *fixture) metrics(t *testing.T) map[string]metricdata.Metrics {
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelsmtp.ScopeName {
			t.Errorf("scope = %q, want %q", sm.Scope.Name, otelsmtp.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func env(addrs ...string) *envelope.Envelope {
	e := &envelope.Envelope{From: "alice@example.org"}
	for _, a := range addrs {
		e.To = append(e.To, envelope.Recipient{Addr: a})
	}
	return e
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, where string, got []attribute.KeyValue, want map[string]any) {
	t.Helper()
	m := attrMap(got)
	for k, v := range want {
		g, ok := m[k]
		if !ok {
			t.Errorf("%s: no attribute %s, want %v", where, k, v)
			continue
		}
		if fmt.Sprint(g.AsInterface()) != fmt.Sprint(v) {
			t.Errorf("%s: %s = %v, want %v", where, k, g.AsInterface(), v)
		}
	}
}

func TestSpanOnPartialFailure(t *testing.T) {
	f := newFixture(t)
	tr := otelsmtp.New(f.options...)(&fake{})
	_, err := tr.Send(context.Background(), env("bob@example.org", "perm-carol@example.org", "dave@example.org"), strings.NewReader(message))
	if err == nil {
		t.Fatal("Send err = nil, want the refusal")
	}
	spans := f.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "smtp.send" || s.SpanKind() != trace.SpanKindClient {
		t.Errorf("span %q kind %v, want smtp.send client", s.Name(), s.SpanKind())
	}
	wantAttrs(t, "span", s.Attributes(), map[string]any{
		"smtp.transport":           "smtp",
		"smtp.recipients.count":    3,
		"smtp.recipients.refused":  1,
		"smtp.reply.code":          550,
		"smtp.reply.enhanced_code": "5.1.1",
		"error.type":               "smtp.5xx",
		"server.address":           "mx.example.net",
		"server.port":              587,
		"network.transport":        "tcp",
		"smtp.security":            "starttls",
		"tls.protocol.version":     "1.3",
		"smtp.connection.reused":   false,
	})
	if s.Status().Code != codes.Error || s.Status().Description != "smtp.5xx" {
		t.Errorf("status = %+v, want Error smtp.5xx", s.Status())
	}
	var names []string
	for _, e := range s.Events() {
		names = append(names, e.Name)
	}
	want := []string{"smtp.dial", "smtp.greeting", "smtp.hello", "smtp.tls", "smtp.hello", "smtp.auth", "smtp.connection",
		"smtp.mail", "smtp.rcpt", "smtp.rcpt", "smtp.rcpt", "smtp.data", "smtp.end_of_data"}
	if !slices.Equal(names, want) {
		t.Errorf("events = %q, want %q", names, want)
	}
	for _, e := range s.Events() {
		switch e.Name {
		case "smtp.data":
			wantAttrs(t, e.Name, e.Attributes, map[string]any{"smtp.data.bytes": len(message), "smtp.command": "DATA"})
			if d, ok := attrMap(e.Attributes)["smtp.phase.duration"]; !ok || d.AsFloat64() < 0 {
				t.Errorf("smtp.data: smtp.phase.duration = %v, want a duration", d.AsInterface())
			}
		case "smtp.auth":
			wantAttrs(t, e.Name, e.Attributes, map[string]any{"smtp.command": "PLAIN", "smtp.reply.code": 235, "smtp.reply.enhanced_code": "2.7.0"})
		}
	}
	rcpt := s.Events()[9]
	wantAttrs(t, "second rcpt event", rcpt.Attributes, map[string]any{"smtp.rcpt.index": 1, "smtp.reply.code": 550, "error.type": "smtp.5xx"})
}

func TestSpanOnSuccess(t *testing.T) {
	f := newFixture(t)
	tr := otelsmtp.New(f.options...)(&fake{})
	if _, err := tr.Send(context.Background(), env("bob@example.org"), strings.NewReader(message)); err != nil {
		t.Fatal(err)
	}
	s := f.spans.Ended()[0]
	wantAttrs(t, "span", s.Attributes(), map[string]any{
		"smtp.recipients.count":    1,
		"smtp.recipients.refused":  0,
		"smtp.reply.code":          250,
		"smtp.reply.enhanced_code": "2.0.0",
	})
	if _, ok := attrMap(s.Attributes())["error.type"]; ok {
		t.Error("error.type set on success")
	}
	if s.Status().Code != codes.Unset {
		t.Errorf("status = %+v, want unset", s.Status())
	}
}

func TestRetryInsideSpan(t *testing.T) {
	f := newFixture(t)
	tr := middleware.Chain(
		otelsmtp.New(f.options...),
		retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })),
	)(&fake{})
	res, err := tr.Send(context.Background(), env("bob@example.org", "temp-carol@example.org"), strings.NewReader(message))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rcpts[1].Attempts != 2 {
		t.Errorf("Attempts = %d, want 2", res.Rcpts[1].Attempts)
	}
	spans := f.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 for the whole Send", len(spans))
	}
	s := spans[0]
	wantAttrs(t, "span", s.Attributes(), map[string]any{"smtp.attempts": 2, "smtp.recipients.refused": 0})
	var attempts []string
	for _, e := range s.Events() {
		if strings.HasPrefix(e.Name, "smtp.attempt.") {
			m := attrMap(e.Attributes)
			attempts = append(attempts, fmt.Sprint(e.Name, " ", m["smtp.attempt"].AsInt64(), " ", m["error.type"].AsString()))
		}
	}
	want := []string{"smtp.attempt.start 1 ", "smtp.attempt.done 1 smtp.4xx", "smtp.attempt.start 2 ", "smtp.attempt.done 2 "}
	if !slices.Equal(attempts, want) {
		t.Errorf("attempt events = %q, want %q", attempts, want)
	}

	ms := f.metrics(t)
	sum := func(name string, match func(attribute.Set) bool) int64 {
		var n int64
		for _, dp := range ms[name].Data.(metricdata.Sum[int64]).DataPoints {
			if match(dp.Attributes) {
				n += dp.Value
			}
		}
		return n
	}
	outcome := func(o string) func(attribute.Set) bool {
		return func(s attribute.Set) bool { v, _ := s.Value("smtp.outcome"); return v.AsString() == o }
	}
	all := func(attribute.Set) bool { return true }
	if got := sum("smtp.client.recipients", outcome("accepted")); got != 2 {
		t.Errorf("accepted recipients = %d, want 2 (merged over the attempts)", got)
	}
	if got := sum("smtp.client.recipients", outcome("transient")); got != 0 {
		t.Errorf("transient recipients = %d, want 0", got)
	}
	if got := sum("smtp.client.connection.opened", all); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
	if got := sum("smtp.client.data.sent", all); got != 2*int64(len(message)) {
		t.Errorf("bytes = %d, want %d", got, 2*len(message))
	}
	h := ms["smtp.client.send.duration"]
	if h.Unit != "s" {
		t.Errorf("duration unit = %q, want s", h.Unit)
	}
	if dps := h.Data.(metricdata.Histogram[float64]).DataPoints; len(dps) != 1 || dps[0].Count != 1 {
		t.Errorf("duration points = %+v, want one with count 1", dps)
	}
}

func TestMetricsByOutcome(t *testing.T) {
	f := newFixture(t)
	tr := otelsmtp.New(f.options...)(&fake{})
	tr.Send(context.Background(), env("bob@example.org", "perm-carol@example.org", "temp-dave@example.org"), strings.NewReader(message))
	ms := f.metrics(t)
	got := map[string]int64{}
	for _, dp := range ms["smtp.client.recipients"].Data.(metricdata.Sum[int64]).DataPoints {
		v, _ := dp.Attributes.Value("smtp.outcome")
		got[v.AsString()] += dp.Value
		if v, _ := dp.Attributes.Value("smtp.transport"); v.AsString() != "smtp" {
			t.Errorf("data point %v lacks the WithAttributes attribute", dp.Attributes)
		}
		if v, _ := dp.Attributes.Value("server.address"); v.AsString() != "mx.example.net" {
			t.Errorf("data point %v lacks server.address", dp.Attributes)
		}
	}
	if want := map[string]int64{"accepted": 1, "permanent": 1, "transient": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recipients by outcome = %v, want %v", got, want)
	}
	for _, dp := range ms["smtp.client.send.duration"].Data.(metricdata.Histogram[float64]).DataPoints {
		if v, _ := dp.Attributes.Value("error.type"); v.AsString() != "smtp.5xx" {
			t.Errorf("duration error.type = %q, want smtp.5xx (the first refusal)", v.AsString())
		}
	}
}

func TestErrorTypes(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&transport.OpError{Op: transport.OpRcpt, Err: context.DeadlineExceeded}, "context.DeadlineExceeded"},
		{&transport.OpError{Op: transport.OpEndOfData, Err: io.ErrUnexpectedEOF}, "smtp.unknown_outcome"},
		{&transport.OpError{Op: transport.OpMail, Err: &transport.ReplyError{Code: 421}}, "smtp.4xx"},
		{&transport.OpError{Op: transport.OpHello, Err: &transport.NotSupportedError{Extension: "STARTTLS"}}, "*transport.NotSupportedError"},
		{fmt.Errorf("wrapped: %w", &transport.ProtocolError{Reason: "bad"}), "*transport.ProtocolError"},
		{io.EOF, "_OTHER"},
	}
	for _, tt := range tests {
		f := newFixture(t)
		tr := otelsmtp.New(f.options...)(transport.Func(func(ctx context.Context, e *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			return &transport.Result{Rcpts: []transport.RcptResult{{Addr: e.To[0].Addr, Outcome: transport.TempFailed, Err: tt.err}}}, tt.err
		}))
		tr.Send(context.Background(), env("bob@example.org"), strings.NewReader(message))
		s := f.spans.Ended()[0]
		if got := attrMap(s.Attributes())["error.type"].AsString(); got != tt.want {
			t.Errorf("error.type for %v = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestTracerFromContextSpan(t *testing.T) {
	parentRec := tracetest.NewSpanRecorder()
	parentTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(parentRec))
	defer parentTP.Shutdown(context.Background())
	ctx, parent := parentTP.Tracer("app").Start(context.Background(), "request")
	tr := otelsmtp.New()(&fake{}) // no provider: take the one of the span in ctx
	tr.Send(ctx, env("bob@example.org"), strings.NewReader(message))
	parent.End()
	spans := parentRec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want smtp.send and its parent", len(spans))
	}
	if spans[0].Name() != "smtp.send" || spans[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q with parent %v, want smtp.send under the request span", spans[0].Name(), spans[0].Parent().SpanID())
	}
	if spans[0].InstrumentationScope().Name != otelsmtp.ScopeName {
		t.Errorf("scope = %q", spans[0].InstrumentationScope().Name)
	}
}

// TestNothingPrivateRecorded scans every recorded value for the addresses,
// the subject, the body and a credential.
func TestNothingPrivateRecorded(t *testing.T) {
	f := newFixture(t)
	tr := middleware.Chain(
		otelsmtp.New(f.options...),
		retry.New(retry.WithBackoff(func(int) time.Duration { return 0 })),
	)(&fake{})
	tr.Send(context.Background(), env("bob@example.org", "temp-carol@example.org", "perm-dave@example.org"), strings.NewReader(message))
	tr.Send(context.Background(), env("perm-bob@example.org"), strings.NewReader(message))

	var values []string
	add := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			values = append(values, fmt.Sprintf("%s %s=%s", where, kv.Key, kv.Value.Emit()))
		}
	}
	for _, s := range f.spans.Ended() {
		values = append(values, "span name "+s.Name(), "status "+s.Status().Description)
		add("span", s.Attributes())
		for _, e := range s.Events() {
			values = append(values, "event "+e.Name)
			add("event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links() {
			add("link", l.Attributes)
		}
	}
	var rm metricdata.ResourceMetrics
	f.reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			values = append(values, "metric "+m.Name+" "+m.Description)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					add("metric "+m.Name, dp.Attributes.ToSlice())
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add("metric "+m.Name, dp.Attributes.ToSlice())
				}
			default:
				t.Errorf("unexpected data type %T for %s", d, m.Name)
			}
		}
	}
	if len(values) < 50 {
		t.Fatalf("only %d values recorded; the scan would prove nothing", len(values))
	}
	for _, v := range values {
		for _, p := range private {
			if strings.Contains(strings.ToLower(v), strings.ToLower(p)) {
				t.Errorf("recorded %q, which contains %q", v, p)
			}
		}
	}
}

func TestUnwrap(t *testing.T) {
	base := &fake{}
	u, ok := otelsmtp.New()(base).(interface{ Unwrap() transport.Transport })
	if !ok || u.Unwrap() != transport.Transport(base) {
		t.Error("Unwrap did not return the wrapped transport")
	}
}
