package config_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// The secrets of TestNoSecretLeaks, one per source.
const (
	envSecret     = "env-S3cret-1"
	fileSecret    = "file-S3cret-2"
	literalSecret = "literal-S3cret-3"
	tokenSecret   = "token-S3cret-4"
	proxySecret   = "proxy-S3cret-5"
)

var allSecrets = []string{envSecret, fileSecret, literalSecret, tokenSecret, proxySecret}

// checkNoSecret fails if s holds a secret or its base64 form.
func checkNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range allSecrets {
		for _, form := range []string{sec, base64.StdEncoding.EncodeToString([]byte(sec))} {
			if strings.Contains(s, form) {
				t.Errorf("%s shows a secret (%q):\n%s", what, sec, s)
			}
		}
	}
}

// Formatting a Config, its Secrets and the transports it builds, logging
// them, and every error of a build or a send never show a secret.
func TestNoSecretLeaks(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Security = transport.StartTLS
	s.Users = map[string]string{"alice": "another password"} // so that AUTH fails
	s.Start()
	defer s.Close()

	dir := t.TempDir()
	writeCA(t, dir, s)
	writeFile(t, dir, "password", fileSecret+"\n")
	writeFile(t, dir, "token", tokenSecret+"\n")
	t.Setenv("LEAK_PASSWORD", envSecret)
	t.Setenv("LEAK_PROXY", proxySecret)
	path := writeFile(t, dir, "leak.yaml", fmt.Sprintf(`
default: env
profiles:
  env:
    transport:
      address: %[1]s
      tls: {ca_file: ca.pem}
      auth: {mechanism: PLAIN, username: alice, password_env: LEAK_PASSWORD}
    middleware: [{name: logging, with: {level: debug, addresses: true}}, {name: retry}]
  file:
    transport:
      address: %[1]s
      tls: {ca_file: ca.pem}
      auth: {mechanisms: [LOGIN, PLAIN], username: alice, password_file: password}
  literal:
    transport:
      address: %[1]s
      tls: {ca_file: ca.pem}
      auth: {mechanism: PLAIN, username: alice, password: {value: %[2]s, insecure_literal: true}}
  token:
    transport:
      address: %[1]s
      tls: {ca_file: ca.pem}
      auth: {mechanism: XOAUTH2, username: alice, token_file: token}
  proxied:
    transport:
      address: smtp.example.org:587
      dialer: {socks5: "socks5://127.0.0.1:1", socks5_username: u, socks5_password_env: LEAK_PROXY}
      auth: {username: alice, password_env: LEAK_PASSWORD}
`, s.Addr, literalSecret))

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(logger)

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		checkNoSecret(t, "Config "+verb, fmt.Sprintf(verb, cfg))
		checkNoSecret(t, "*Config "+verb, fmt.Sprintf(verb, *cfg))
	}
	logger.Info("config", "cfg", cfg)

	for _, profile := range cfg.Profiles() {
		var built []transport.Transport
		var transcript bytes.Buffer
		tr, err := cfg.Transport(profile, config.WithDebug(&transcript),
			config.WithAdjust(func(t transport.Transport) { built = append(built, t) }))
		if err != nil {
			t.Fatalf("%s: %v", profile, err)
		}
		for _, b := range append(built, tr) {
			for _, verb := range []string{"%v", "%+v", "%#v"} {
				checkNoSecret(t, profile+": transport "+verb, fmt.Sprintf(verb, b))
			}
			logger.Info("transport", "t", b)
		}
		res, err := send(t, tr, "bob@example.org")
		if err == nil {
			t.Errorf("%s: send succeeded with a wrong password", profile)
			continue
		}
		checkNoSecret(t, profile+": send error", err.Error())
		checkNoSecret(t, profile+": send error %+v", fmt.Sprintf("%+v", err))
		if res != nil {
			checkNoSecret(t, profile+": result", fmt.Sprintf("%+v", res))
		}
		checkNoSecret(t, profile+": transcript", transcript.String())
	}
	checkNoSecret(t, "logs", logs.String())
	if !strings.Contains(logs.String(), "smtp send") {
		t.Errorf("the logging middleware logged nothing:\n%s", logs.String())
	}
}

// A Secret decoded by another package's kind prints redacted.
func TestSecretFormatting(t *testing.T) {
	type params struct {
		Key config.Secret `yaml:"key"`
		Opt config.Secret `yaml:"opt"`
	}
	var got params
	config.RegisterTransport("test-secret", func(p *config.Params) (transport.Transport, error) {
		if err := p.Decode(&got); err != nil {
			return nil, err
		}
		return &smtptest.Recorder{}, nil
	})
	defer config.UnregisterTransport("test-secret")
	dir := t.TempDir()
	writeFile(t, dir, "key", fileSecret+"\r\n")
	cfg, err := config.Parse(filepath.Join(dir, "s.yaml"), []byte("profiles: {p: {transport: {kind: test-secret, key_file: key}}}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Transport("p"); err != nil {
		t.Fatal(err)
	}
	if got.Key.Value() != fileSecret {
		t.Errorf("Value() = %q, want the file's content less its CRLF", got.Key.Value())
	}
	if !got.Key.IsSet() || got.Opt.IsSet() {
		t.Errorf("IsSet: key %v, opt %v", got.Key.IsSet(), got.Opt.IsSet())
	}
	if want := "file " + filepath.Join(dir, "key"); got.Key.Source() != want {
		t.Errorf("Source() = %q, want %q", got.Key.Source(), want)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		checkNoSecret(t, "Secret "+verb, fmt.Sprintf(verb, got.Key))
		checkNoSecret(t, "params "+verb, fmt.Sprintf(verb, got))
	}
	if s := fmt.Sprint(got.Key); s != "[redacted]" {
		t.Errorf("Sprint(Secret) = %q", s)
	}
	if s := fmt.Sprint(got.Opt); s != "" {
		t.Errorf("Sprint(unset Secret) = %q", s)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", got.Key, "params", got)
	checkNoSecret(t, "slog", logs.String())
	// The error of a missing secret names the variable, never a value.
	var ce *config.Error
	cfg, _ = config.Parse("s.yaml", []byte("profiles: {p: {transport: {kind: test-secret, key_env: NOT_SET_ANYWHERE}}}"))
	if _, err := cfg.Transport("p"); !errors.As(err, &ce) || !errors.Is(err, config.ErrMissingSecret) {
		t.Errorf("error = %v, want a *config.Error matching ErrMissingSecret", err)
	}
}
