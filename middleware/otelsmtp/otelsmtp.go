package otelsmtp

import (
	"context"
	"io"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/smtptrace"
	"github.com/mailwire/mailwire/transport"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/mailwire/mailwire/middleware/otelsmtp"

// SpanName is the name of the span of each Send.
const SpanName = "smtp.send"

// An Option configures [New].
type Option interface {
	apply(*config)
}

type config struct {
	tp    trace.TracerProvider
	mp    metric.MeterProvider
	attrs []attribute.KeyValue
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider sets the provider of the tracer. A nil tp is ignored.
// By default the middleware uses the provider of the span in the Send's
// context, if there is one, and otherwise the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	})
}

// WithMeterProvider sets the provider of the meter. A nil mp is ignored. By
// default the middleware uses the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	})
}

// WithAttributes adds attributes to every span and every measurement: what
// the middleware cannot learn by itself, such as the kind of transport
// (smtp.transport = "smtp" or "lmtp") or a name for the destination. Keep
// them of low cardinality; never put an address in them. Repeated calls
// add up.
func WithAttributes(kv ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, kv...) })
}

// New returns a Middleware that traces and measures each Send, as the
// package documentation describes. The instruments are created once, here.
func New(opts ...Option) middleware.Middleware {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	mp := c.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	in := newInstruments(mp.Meter(ScopeName))
	var tracer trace.Tracer
	if c.tp != nil {
		tracer = c.tp.Tracer(ScopeName)
	}
	attrs := append([]attribute.KeyValue(nil), c.attrs...)
	return func(next transport.Transport) transport.Transport {
		return &tracing{next: next, tracer: tracer, in: in, attrs: attrs}
	}
}

type instruments struct {
	duration    metric.Float64Histogram
	recipients  metric.Int64Counter
	bytes       metric.Int64Counter
	connections metric.Int64Counter
}

func newInstruments(m metric.Meter) *instruments {
	nm := noop.Meter{}
	var in instruments
	var err error
	in.duration, err = m.Float64Histogram("smtp.client.send.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of SMTP and LMTP sends, retries included."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
	if err != nil {
		otel.Handle(err)
		in.duration, _ = nm.Float64Histogram("")
	}
	in.recipients, err = m.Int64Counter("smtp.client.recipients",
		metric.WithUnit("{recipient}"),
		metric.WithDescription("Recipients of sends, by outcome."))
	if err != nil {
		otel.Handle(err)
		in.recipients, _ = nm.Int64Counter("")
	}
	in.bytes, err = m.Int64Counter("smtp.client.data.sent",
		metric.WithUnit("By"),
		metric.WithDescription("Message bytes written in DATA or BDAT."))
	if err != nil {
		otel.Handle(err)
		in.bytes, _ = nm.Int64Counter("")
	}
	in.connections, err = m.Int64Counter("smtp.client.connection.opened",
		metric.WithUnit("{connection}"),
		metric.WithDescription("Connections dialed."))
	if err != nil {
		otel.Handle(err)
		in.connections, _ = nm.Int64Counter("")
	}
	return &in
}

type tracing struct {
	next   transport.Transport
	tracer trace.Tracer // nil: from the span in ctx, or global
	in     *instruments
	attrs  []attribute.KeyValue
}

var _ transport.Transport = (*tracing)(nil)

// Unwrap returns the wrapped transport.
func (t *tracing) Unwrap() transport.Transport { return t.next }

func (t *tracing) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (res *transport.Result, err error) {
	start := time.Now()
	tracer := t.tracer
	if tracer == nil {
		if s := trace.SpanFromContext(ctx); s.SpanContext().IsValid() {
			tracer = s.TracerProvider().Tracer(ScopeName)
		} else {
			tracer = otel.GetTracerProvider().Tracer(ScopeName)
		}
	}
	n := 0
	if env != nil {
		n = len(env.To)
	}
	attrs := make([]attribute.KeyValue, 0, len(t.attrs)+1)
	attrs = append(attrs, t.attrs...)
	attrs = append(attrs, keyRcptCount.Int(n))
	ctx, span := tracer.Start(ctx, SpanName,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...))
	s := &sendState{ctx: ctx, span: span, t: t}
	ctx = smtptrace.WithClientTrace(ctx, s.hooks())
	defer func() { s.end(n, res, err, time.Since(start)) }()
	return t.next.Send(ctx, env, msg)
}
