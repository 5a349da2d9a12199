package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want %q", want)
			return
		}
		if got, _ := r.(string); got != want {
			t.Errorf("panic %q, want %q", r, want)
		}
	}()
	f()
}

func TestRegistryPanics(t *testing.T) {
	tf := func(*config.Params) (transport.Transport, error) { return &smtptest.Recorder{}, nil }
	mf := func(*config.Params) (middleware.Middleware, error) { return nil, nil }

	config.RegisterTransport("test-kind", tf)
	t.Cleanup(func() { config.UnregisterTransport("test-kind") })
	mustPanic(t, "config: RegisterTransport called twice for kind test-kind", func() { config.RegisterTransport("test-kind", tf) })
	mustPanic(t, "config: RegisterTransport called twice for kind smtp", func() { config.RegisterTransport("smtp", tf) })
	mustPanic(t, "config: RegisterTransport of nil TransportFunc for kind test-nil", func() { config.RegisterTransport("test-nil", nil) })

	config.RegisterMiddleware("test-mw", mf)
	t.Cleanup(func() { config.UnregisterMiddleware("test-mw") })
	mustPanic(t, "config: RegisterMiddleware called twice for test-mw", func() { config.RegisterMiddleware("test-mw", mf) })
	mustPanic(t, "config: RegisterMiddleware called twice for retry", func() { config.RegisterMiddleware("retry", mf) })
	mustPanic(t, "config: RegisterMiddleware of nil MiddlewareFunc for test-nil", func() { config.RegisterMiddleware("test-nil", nil) })

	for _, name := range []string{"", "Smtp", "1smtp", "-x", "a b", "a/b", "é", strings.Repeat("a", 65)} {
		mustPanic(t, `config: RegisterTransport: invalid transport kind "`+name+`"`, func() { config.RegisterTransport(name, tf) })
		mustPanic(t, `config: RegisterMiddleware: invalid middleware name "`+name+`"`, func() { config.RegisterMiddleware(name, mf) })
	}
	// Valid names of every shape.
	for _, name := range []string{"a", "x-y_z.1", strings.Repeat("a", 64)} {
		config.RegisterTransport(name, tf)
		config.UnregisterTransport(name)
	}
}

func TestRegistryListsSorted(t *testing.T) {
	if got, want := config.Transports(), []string{"failover", "lmtp", "sendmail", "smtp", "smtps"}; !slices.Equal(got, want) {
		t.Errorf("Transports() = %v, want %v", got, want)
	}
	if got, want := config.Middlewares(), []string{"logging", "ratelimit", "retry", "timeout", "tracing"}; !slices.Equal(got, want) {
		t.Errorf("Middlewares() = %v, want %v", got, want)
	}
	config.RegisterTransport("aaa-test", func(*config.Params) (transport.Transport, error) { return nil, nil })
	defer config.UnregisterTransport("aaa-test")
	if got := config.Transports(); got[0] != "aaa-test" || !slices.IsSorted(got) {
		t.Errorf("Transports() = %v, want sorted with aaa-test first", got)
	}
}

// A kind registered by another package extends the vocabulary: its
// parameters decode strictly, with the shared blocks, and its own checks
// name the file, line and key.
func TestRegisteredKindAndMiddleware(t *testing.T) {
	type recorderParams struct {
		Reply  string     `yaml:"reply"`
		TLS    config.TLS `yaml:"tls"`
		Weight int        `yaml:"weight"`
	}
	var got recorderParams
	config.RegisterTransport("test-recorder", func(p *config.Params) (transport.Transport, error) {
		got = recorderParams{}
		if err := p.Decode(&got); err != nil {
			return nil, err
		}
		if got.Weight > 10 {
			return nil, p.Errorf("weight", "%d is more than 10", got.Weight)
		}
		if got.Reply == "fail" {
			return nil, errors.New("plain failure")
		}
		return &smtptest.Recorder{}, nil
	})
	defer config.UnregisterTransport("test-recorder")
	type stampParams struct {
		Header string `yaml:"header"`
	}
	var stamped []string
	config.RegisterMiddleware("test-stamp", func(p *config.Params) (middleware.Middleware, error) {
		var sp stampParams
		if err := p.Decode(&sp); err != nil {
			return nil, err
		}
		return func(next transport.Transport) transport.Transport {
			stamped = append(stamped, sp.Header)
			return next
		}, nil
	})
	defer config.UnregisterMiddleware("test-stamp")

	build := func(yaml string) error {
		cfg, err := config.Parse("ext.yaml", []byte(yaml))
		if err != nil {
			return err
		}
		_, err = cfg.Transport("")
		return err
	}
	if err := build(`
profiles:
  p:
    transport: {kind: test-recorder, reply: ok, weight: 3, tls: {server_name: relay.example.org}}
    middleware: [{name: test-stamp, with: {header: X-Test}}]
`); err != nil {
		t.Fatal(err)
	}
	if got.Reply != "ok" || got.Weight != 3 || got.TLS.ServerName != "relay.example.org" {
		t.Errorf("decoded %+v", got)
	}
	if c, err := got.TLS.Config(); err != nil || c.ServerName != "relay.example.org" {
		t.Errorf("TLS.Config() = %v, %v", c, err)
	}
	// Once by Parse, which checks every profile, once by Transport.
	if !slices.Equal(stamped, []string{"X-Test", "X-Test"}) {
		t.Errorf("middleware built with %v", stamped)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"profiles:\n  p:\n    transport:\n      kind: test-recorder\n      weight: 11\n",
			"ext.yaml:5: profiles.p.transport.weight: 11 is more than 10"},
		{"profiles:\n  p:\n    transport:\n      kind: test-recorder\n      wieght: 1\n",
			"ext.yaml:5: profiles.p.transport.wieght: unknown key; did you mean weight?"},
		{"profiles:\n  p:\n    transport:\n      kind: test-recorder\n      reply: fail\n",
			"ext.yaml:3: profiles.p.transport: plain failure"},
		{"profiles:\n  p:\n    transport: {kind: test-recorder}\n    middleware:\n      - name: test-stamp\n        with:\n          header: [x]\n",
			"ext.yaml:7: profiles.p.middleware[0].with.header: want a string, got a list"},
	} {
		if err := build(tt.yaml); err == nil || err.Error() != tt.want {
			t.Errorf("error = %v, want %s", err, tt.want)
		}
	}
}

func TestParamsDecodeNeedsPointer(t *testing.T) {
	config.RegisterTransport("test-decode", func(p *config.Params) (transport.Transport, error) {
		var v struct{}
		return nil, p.Decode(v)
	})
	defer config.UnregisterTransport("test-decode")
	_, err := config.Parse("d.yaml", []byte("profiles: {p: {transport: {kind: test-decode}}}"))
	if err == nil || !strings.Contains(err.Error(), "Params.Decode needs a non-nil pointer") {
		t.Errorf("error = %v", err)
	}
}
