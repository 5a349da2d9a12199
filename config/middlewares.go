package config

import (
	"context"
	"log/slog"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/time/rate"

	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/middleware/otelsmtp"
	"github.com/mailwire/mailwire/middleware/ratelimit"
	"github.com/mailwire/mailwire/middleware/retry"
)

// The built-in middleware.
func init() {
	RegisterMiddleware("retry", newRetry)
	RegisterMiddleware("ratelimit", newRateLimit)
	RegisterMiddleware("timeout", newTimeout)
	RegisterMiddleware("logging", newLogging)
	RegisterMiddleware("tracing", newTracing)
}

// retryParams are the keys of the retry middleware.
type retryParams struct {
	MaxAttempts  *int           `yaml:"max_attempts"`
	MaxElapsed   *time.Duration `yaml:"max_elapsed"`
	Base         *time.Duration `yaml:"base"`
	Max          *time.Duration `yaml:"max"`
	RetryUnknown bool           `yaml:"retry_unknown"`
}

func newRetry(p *Params) (middleware.Middleware, error) {
	var rp retryParams
	if err := p.Decode(&rp); err != nil {
		return nil, err
	}
	var opts []retry.Option
	if rp.MaxAttempts != nil {
		if *rp.MaxAttempts < 0 {
			return nil, p.Errorf("max_attempts", "must not be negative (0 means no limit)")
		}
		n := *rp.MaxAttempts
		if n == 0 {
			n = -1 // retry.WithMaxAttempts: n < 1 removes the limit
		}
		opts = append(opts, retry.WithMaxAttempts(n))
	}
	if rp.MaxElapsed != nil {
		if *rp.MaxElapsed < 0 {
			return nil, p.Errorf("max_elapsed", "must not be negative (0 means no limit)")
		}
		opts = append(opts, retry.WithMaxElapsed(*rp.MaxElapsed))
	}
	base, limit := retry.DefaultBackoffBase, retry.DefaultBackoffMax
	for _, f := range []struct {
		key string
		v   *time.Duration
		out *time.Duration
	}{{"base", rp.Base, &base}, {"max", rp.Max, &limit}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 {
			return nil, p.Errorf(f.key, "must not be negative")
		}
		*f.out = *f.v
	}
	if base > limit {
		key := "base"
		if rp.Max != nil {
			key = "max"
		}
		return nil, p.Errorf(key, "base (%s) is longer than max (%s)", base, limit)
	}
	if rp.Base != nil || rp.Max != nil {
		opts = append(opts, retry.WithBackoff(retry.Exponential(base, limit)))
	}
	if rp.RetryUnknown {
		opts = append(opts, retry.WithRetryUnknown(true))
	}
	return retry.New(opts...), nil
}

// ratelimitParams are the keys of the ratelimit middleware.
type ratelimitParams struct {
	PerSecond   float64 `yaml:"per_second"`
	Burst       int     `yaml:"burst"`
	Per         string  `yaml:"per"`
	Concurrency int     `yaml:"concurrency"`
	Adaptive    bool    `yaml:"adaptive"`
}

func newRateLimit(p *Params) (middleware.Middleware, error) {
	var rp ratelimitParams
	if err := p.Decode(&rp); err != nil {
		return nil, err
	}
	switch {
	case rp.PerSecond < 0 || math.IsNaN(rp.PerSecond) || math.IsInf(rp.PerSecond, 0):
		return nil, p.Errorf("per_second", "must be a positive number")
	case rp.Burst < 0:
		return nil, p.Errorf("burst", "must not be negative")
	case rp.Concurrency < 0:
		return nil, p.Errorf("concurrency", "must not be negative")
	case rp.PerSecond == 0 && rp.Concurrency == 0:
		return nil, p.Errorf("", "needs per_second, concurrency or both")
	case rp.PerSecond == 0 && (rp.Burst != 0 || rp.Per != "" || rp.Adaptive):
		return nil, p.Errorf("per_second", "required with burst, per and adaptive")
	}
	var mws []middleware.Middleware
	if rp.Concurrency > 0 {
		mws = append(mws, ratelimit.Concurrency(rp.Concurrency))
	}
	if rp.PerSecond > 0 {
		burst := rp.Burst
		if burst == 0 {
			burst = 1
		}
		lim := rate.NewLimiter(rate.Limit(rp.PerSecond), burst)
		switch rp.Per {
		case "", "message":
			mws = append(mws, ratelimit.PerMessage(lim))
		case "recipient":
			mws = append(mws, ratelimit.PerRecipient(lim))
		default:
			return nil, p.Errorf("per", "want message or recipient, not %q", rp.Per)
		}
		if rp.Adaptive {
			mws = append(mws, ratelimit.Adaptive(lim))
		}
	}
	return middleware.Chain(mws...), nil
}

// timeoutParams are the keys of the timeout middleware.
type timeoutParams struct {
	Duration time.Duration `yaml:"duration"`
}

func newTimeout(p *Params) (middleware.Middleware, error) {
	var tp timeoutParams
	if err := p.Decode(&tp); err != nil {
		return nil, err
	}
	if tp.Duration <= 0 {
		return nil, p.Errorf("duration", "required: a positive duration such as 2m")
	}
	return middleware.Timeout(tp.Duration), nil
}

// loggingParams are the keys of the logging middleware.
type loggingParams struct {
	Level     *slog.Level `yaml:"level"`
	Addresses bool        `yaml:"addresses"`
}

func newLogging(p *Params) (middleware.Middleware, error) {
	var lp loggingParams
	if err := p.Decode(&lp); err != nil {
		return nil, err
	}
	var l *slog.Logger // nil: slog.Default() at each Send
	if lp.Level != nil {
		l = slog.New(&minLevel{min: *lp.Level})
	}
	return middleware.Logging(l, middleware.WithAddresses(lp.Addresses)), nil
}

// minLevel passes the records of at least min to inner, or, when inner
// is nil, to the handler of slog.Default() as it is when each record is
// logged.
type minLevel struct {
	min   slog.Level
	inner slog.Handler
}

func (h *minLevel) handler() slog.Handler {
	if h.inner != nil {
		return h.inner
	}
	return slog.Default().Handler()
}

func (h *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.handler().Enabled(ctx, l)
}

func (h *minLevel) Handle(ctx context.Context, r slog.Record) error {
	return h.handler().Handle(ctx, r)
}

func (h *minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevel{min: h.min, inner: h.handler().WithAttrs(attrs)}
}

func (h *minLevel) WithGroup(name string) slog.Handler {
	return &minLevel{min: h.min, inner: h.handler().WithGroup(name)}
}

// tracingParams are the keys of the tracing middleware.
type tracingParams struct {
	Attributes map[string]string `yaml:"attributes"`
}

func newTracing(p *Params) (middleware.Middleware, error) {
	var tp tracingParams
	if err := p.Decode(&tp); err != nil {
		return nil, err
	}
	var kvs []attribute.KeyValue
	for _, k := range sortedKeys(tp.Attributes) {
		if k == "" {
			return nil, p.Errorf("attributes", "an attribute name must not be empty")
		}
		kvs = append(kvs, attribute.String(k, tp.Attributes[k]))
	}
	var opts []otelsmtp.Option
	if len(kvs) > 0 {
		opts = append(opts, otelsmtp.WithAttributes(kvs...))
	}
	return otelsmtp.New(opts...), nil
}
