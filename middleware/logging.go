package middleware

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware/internal/report"
	"github.com/mailwire/mailwire/transport"
)

// A LogOption configures [Logging].
type LogOption interface {
	apply(*logConfig)
}

type logConfig struct {
	addresses bool
}

type logOptionFunc func(*logConfig)

func (f logOptionFunc) apply(c *logConfig) { f(c) }

// WithAddresses makes [Logging] include the envelope's addresses and the
// error's text (which quotes recipients and the server's reply text) in
// each record. They are personal data, so they are left out by default.
func WithAddresses(include bool) LogOption {
	return logOptionFunc(func(c *logConfig) { c.addresses = include })
}

// Logging returns a Middleware that writes one record to l for each Send,
// when it returns. A nil l means slog.Default().
//
// The record's message is "smtp send". Its level is Info if every recipient
// was accepted, Warn if the error is transient ([transport.ErrTransient]),
// and Error otherwise. Its attributes are:
//
//	outcome        "accepted" (every recipient), "partial" (some) or "failed" (none)
//	duration       time the Send took, including what wrapped middleware did
//	rcpt           group: total, accepted, transient, permanent, unknown,
//	               and not_attempted when non-zero
//	attempts       largest number of transactions a recipient was in, when more than 1
//	reply_code     final reply on success, failing reply on failure, when there was one
//	enhanced_code  its RFC 3463 code, when the server sent one
//	error_type     on failure: "smtp.4xx", "smtp.5xx", "smtp.unknown_outcome",
//	               "context.DeadlineExceeded", "context.Canceled" or a Go type name
//
// With [WithAddresses](true) it adds from, to, refused (the recipients not
// accepted) and error (the error's text). The message, its subject and any
// credential are never logged, whatever the options.
func Logging(l *slog.Logger, opts ...LogOption) Middleware {
	var c logConfig
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return func(next transport.Transport) transport.Transport {
		return &logging{next: next, l: l, cfg: c}
	}
}

type logging struct {
	next transport.Transport
	l    *slog.Logger
	cfg  logConfig
}

var _ transport.Transport = (*logging)(nil)

func (t *logging) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	start := time.Now()
	res, err := t.next.Send(ctx, env, msg)
	t.log(ctx, env, res, err, time.Since(start))
	return res, err
}

// Unwrap returns the wrapped transport.
func (t *logging) Unwrap() transport.Transport { return t.next }

func (t *logging) log(ctx context.Context, env *envelope.Envelope, res *transport.Result, err error, d time.Duration) {
	l := t.l
	if l == nil {
		l = slog.Default()
	}
	level := slog.LevelInfo
	switch {
	case err == nil:
	case errors.Is(err, transport.ErrTransient):
		level = slog.LevelWarn
	default:
		level = slog.LevelError
	}
	if !l.Enabled(ctx, level) {
		return
	}
	s := report.Summarize(res, err)
	outcome := "failed"
	switch {
	case err == nil:
		outcome = "accepted"
	case s.Accepted > 0:
		outcome = "partial"
	}
	rcpt := []any{
		slog.Int("total", s.Total),
		slog.Int("accepted", s.Accepted),
		slog.Int("transient", s.Transient),
		slog.Int("permanent", s.Permanent),
		slog.Int("unknown", s.Unknown),
	}
	if s.NotAttempted > 0 {
		rcpt = append(rcpt, slog.Int("not_attempted", s.NotAttempted))
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("outcome", outcome),
		slog.Duration("duration", d),
		slog.Group("rcpt", rcpt...),
	)
	if s.Attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", s.Attempts))
	}
	if s.Code != 0 {
		attrs = append(attrs, slog.Int("reply_code", s.Code))
	}
	if s.EnhancedCode != (transport.EnhancedCode{}) {
		attrs = append(attrs, slog.String("enhanced_code", s.EnhancedCode.String()))
	}
	if s.ErrorType != "" {
		attrs = append(attrs, slog.String("error_type", s.ErrorType))
	}
	if t.cfg.addresses {
		if env != nil {
			to := make([]string, len(env.To))
			for i, r := range env.To {
				to[i] = r.Addr
			}
			attrs = append(attrs, slog.String("from", env.From), slog.Any("to", to))
		}
		if refused := res.Refused(); len(refused) > 0 {
			attrs = append(attrs, slog.Any("refused", refused))
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
	}
	l.LogAttrs(ctx, level, "smtp send", attrs...)
}
