package config_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// A profile with STARTTLS, a CA file, AUTH with a password file and a
// middleware chain sends through a real server.
func TestTransportSendsThroughServer(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.Security = transport.StartTLS
	s.Users = map[string]string{"alice": "correct horse"}
	s.RequireAuth = true
	s.Start()
	defer s.Close()

	dir := t.TempDir()
	writeCA(t, dir, s)
	writeFile(t, dir, "password", "correct horse\n")
	path := writeFile(t, dir, "mail.yaml", fmt.Sprintf(`
default: work
profiles:
  work:
    transport:
      kind: smtp
      address: %s
      security: starttls
      local_name: client.example.org
      tls: {ca_file: ca.pem, min_version: "1.2"}   # relative to this file
      dialer: {timeout: 5s}
      auth:
        mechanism: PLAIN
        username: alice
        password_file: password
      pool: {max_idle: 0}
    middleware:
      - name: tracing
      - name: logging
        with: {level: error}
      - name: retry
        with: {max_attempts: 2, base: 10ms, max: 20ms}
      - name: ratelimit
        with: {per_second: 100, burst: 5, concurrency: 2}
      - name: timeout
        with: {duration: 30s}
  other:
    transport: {kind: lmtp, address: /nonexistent/lmtp}
`, s.Addr))

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Profiles(), []string{"other", "work"}; !slices.Equal(got, want) {
		t.Errorf("Profiles() = %v, want %v", got, want)
	}
	var transcript bytes.Buffer
	tr, err := cfg.Transport("", config.WithDebug(&transcript))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := send(t, tr, "bob@example.org"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].AuthUser != "alice" || !msgs[0].TLS || msgs[0].Hello != "client.example.org" {
		t.Fatalf("server got %+v, want one message over TLS from alice, EHLO client.example.org", msgs)
	}
	if !strings.Contains(transcript.String(), "C: EHLO client.example.org") {
		t.Errorf("transcript lacks the EHLO:\n%s", transcript.String())
	}
	if strings.Contains(transcript.String(), "correct horse") {
		t.Errorf("transcript shows the password")
	}
}

func TestLMTPOverUnixSocket(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	s.LMTP = true
	s.Network = "unix"
	s.LMTPData = func(_ *smtptest.Message, rcpt string) error {
		if rcpt == "full@example.org" {
			return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}
	s.Start()
	defer s.Close()
	cfg, err := config.Parse("lmtp.yaml", fmt.Appendf(nil, "profiles:\n  local:\n    transport: {kind: lmtp, address: %q}\n", s.Addr))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.Transport("")
	if err != nil {
		t.Fatal(err)
	}
	res, err := send(t, tr, "bob@example.org", "full@example.org")
	if err == nil {
		t.Fatal("Send succeeded, want full@example.org refused")
	}
	if got := res.Accepted(); !slices.Equal(got, []string{"bob@example.org"}) {
		t.Errorf("accepted %v, want [bob@example.org]", got)
	}
}

func TestFailoverMovesToSecondMember(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	closed := smtptest.NewServer()
	deadAddr := closed.Addr
	closed.Close()

	cfg, err := config.Parse("failover.yaml", fmt.Appendf(nil, `
profiles:
  relay:
    transport:
      kind: failover
      members:
        - {kind: smtp, address: %q, security: none}
        - {kind: smtp, address: %q, security: none}
`, deadAddr, s.Addr))
	if err != nil {
		t.Fatal(err)
	}
	var members []transport.Transport
	tr, err := cfg.Transport("relay", config.WithAdjust(func(t transport.Transport) { members = append(members, t) }))
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Errorf("WithAdjust saw %d transports, want 3 (two members, then the failover)", len(members))
	}
	if _, err := send(t, tr, "bob@example.org"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("second member got %d messages, want 1", n)
	}
}

// Each built-in kind builds the transport type it names, with the fields
// the file sets.
func TestBuiltinKinds(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TEST_TOKEN", "tok")
	cfg, err := config.Parse(filepath.Join(dir, "kinds.yaml"), []byte(`
profiles:
  smtp:
    transport:
      address: "[::1]:2525"
      security: opportunistic
      require_all_recipients: true
      disable_pipelining: true
      disable_chunking: true
      auth: {mechanisms: [XOAUTH2, OAUTHBEARER], username: a@example.org, token_env: TEST_TOKEN}
      pool: {max_conns: 4, max_idle: 2, idle_timeout: 1m, max_messages_per_conn: 0}
  smtps:
    transport: {kind: smtps, address: "mail.example.org:465"}
  lmtp-tcp:
    transport: {kind: lmtp, address: "127.0.0.1:24", security: starttls}
  sendmail:
    transport: {kind: sendmail, path: bin/sendmail, args: [-C, /etc/postfix-out]}
  sendmail-default:
    transport: {kind: sendmail}
`))
	if err != nil {
		t.Fatal(err)
	}
	build := func(profile string) transport.Transport {
		t.Helper()
		tr, err := cfg.Transport(profile)
		if err != nil {
			t.Fatalf("Transport(%q): %v", profile, err)
		}
		return tr
	}
	s := build("smtp").(*transport.SMTP)
	if s.Network != "tcp" || s.Addr != "[::1]:2525" || s.Security != transport.StartTLSOpportunistic ||
		!s.RequireAllRecipients || !s.DisablePipelining || !s.DisableChunking {
		t.Errorf("smtp = %+v", s)
	}
	if want := (transport.PoolConfig{MaxConns: 4, MaxIdleConns: 2, IdleTimeout: 60e9, MaxMessagesPerConn: -1}); s.Pool != want {
		t.Errorf("smtp pool = %+v, want %+v", s.Pool, want)
	}
	ac, ok := s.Auth.(auth.Config)
	if !ok || ac.Host != "::1" || !slices.Equal(ac.Mechanisms, []string{"XOAUTH2", "OAUTHBEARER"}) || ac.Token == nil {
		t.Errorf("smtp auth = %#v, want XOAUTH2, OAUTHBEARER with a token, bound to ::1", s.Auth)
	}
	if tok, err := ac.Token(context.Background()); tok != "tok" || err != nil {
		t.Errorf("Token() = %q, %v", tok, err)
	}
	if s := build("smtps").(*transport.SMTP); s.Security != transport.ImplicitTLS {
		t.Errorf("smtps security = %v", s.Security)
	}
	if l := build("lmtp-tcp").(*transport.LMTP); l.Network != "tcp" || !l.RequireTLS {
		t.Errorf("lmtp = %+v", l)
	}
	sm := build("sendmail").(*transport.Sendmail)
	if sm.Path != filepath.Join(dir, "bin/sendmail") || !slices.Equal(sm.Args, []string{"-C", "/etc/postfix-out"}) {
		t.Errorf("sendmail = %+v", sm)
	}
	if sm := build("sendmail-default").(*transport.Sendmail); sm.Path != "" {
		t.Errorf("sendmail path = %q, want the default", sm.Path)
	}
}

// A token file is read again for each connection, so that a token
// refreshed by another process is used.
func TestTokenFileIsReread(t *testing.T) {
	dir := t.TempDir()
	tokPath := writeFile(t, dir, "token", "first\n")
	cfg, err := config.Parse(filepath.Join(dir, "c.yaml"), []byte(`
profiles:
  p:
    transport:
      address: smtp.example.org:587
      auth: {mechanism: XOAUTH2, username: a@example.org, token_file: token}
`))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.Transport("p")
	if err != nil {
		t.Fatal(err)
	}
	tok := tr.(*transport.SMTP).Auth.(auth.Config).Token
	if got, _ := tok(context.Background()); got != "first" {
		t.Errorf("token = %q, want first", got)
	}
	writeFile(t, dir, "token", "second\r\n")
	if got, _ := tok(context.Background()); got != "second" {
		t.Errorf("token after refresh = %q, want second", got)
	}
	os.Remove(tokPath)
	if _, err := tok(context.Background()); err == nil {
		t.Error("token of a removed file: no error")
	}
}

// Anchors, aliases and merge keys share settings between profiles; JSON
// is read too.
func TestAliasesMergeAndJSON(t *testing.T) {
	cfg, err := config.Parse("a.yaml", []byte(`
base: &base
  kind: smtp
  security: none
profiles:
  a:
    transport:
      <<: *base
      address: a.example.org:25
  b:
    transport:
      <<: *base
      address: b.example.org:25
      security: tls
`))
	// "base" is not a key of the format: strictness applies to the top
	// level too. It is not close to a key of the top level, so the error
	// names its line but not the key (it might have been a secret).
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "" || ce.Line != 2 || !strings.HasPrefix(ce.Err.Error(), "unknown key (not shown") {
		t.Fatalf("Parse = %v, want an unknown key error at line 2, the key not shown", err)
	}
	cfg, err = config.Parse("a.yaml", []byte(`
profiles:
  a:
    transport: &a
      security: none
      address: a.example.org:25
  b:
    transport:
      <<: *a
      address: b.example.org:25
      security: tls
`))
	if err != nil {
		t.Fatal(err)
	}
	for profile, want := range map[string]*transport.SMTP{
		"a": {Network: "tcp", Addr: "a.example.org:25", Security: transport.Plaintext},
		"b": {Network: "tcp", Addr: "b.example.org:25", Security: transport.ImplicitTLS},
	} {
		tr, err := cfg.Transport(profile)
		if err != nil {
			t.Fatal(err)
		}
		got := tr.(*transport.SMTP)
		if got.Addr != want.Addr || got.Security != want.Security || got.Network != want.Network {
			t.Errorf("%s: got %s %s, want %s %s", profile, got.Addr, got.Security, want.Addr, want.Security)
		}
	}

	cfg, err = config.Parse("c.json", []byte(`{
  "default": "j",
  "profiles": {
    "j": {"transport": {"kind": "smtp", "address": "j.example.org:587"},
          "middleware": [{"name": "timeout", "with": {"duration": "1m"}}]}
  }
}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Transport(""); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownProfile(t *testing.T) {
	cfg, err := config.Parse("p.yaml", []byte("profiles:\n  a: {transport: {address: a.example.org:25}}\n  b: {transport: {address: b.example.org:25}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.Transport("c")
	if !errors.Is(err, config.ErrUnknownProfile) {
		t.Errorf("Transport(c) = %v, want ErrUnknownProfile", err)
	}
	if want := `p.yaml: profiles: unknown profile "c" (the file has a, b)`; err == nil || err.Error() != want {
		t.Errorf("Transport(c) = %v, want %s", err, want)
	}
	if _, err := cfg.Transport(""); err == nil || !strings.Contains(err.Error(), "no profile named and no default") {
		t.Errorf(`Transport("") with two profiles and no default = %v`, err)
	}
	if got := cfg.Default(); got != "" {
		t.Errorf("Default() = %q, want none", got)
	}
}

// The dialer block builds a dialer with the timeout and source address,
// or a SOCKS5 dialer.
func TestDialerBlock(t *testing.T) {
	t.Setenv("PROXY_PASSWORD", "pw")
	cfg, err := config.Parse("d.yaml", []byte(`
profiles:
  direct:
    transport: {address: smtp.example.org:587, dialer: {timeout: 7s, source_address: 127.0.0.1}}
  proxied:
    transport:
      address: smtp.example.org:587
      dialer: {socks5: "socks5h://127.0.0.1:1080", socks5_username: u, socks5_password_env: PROXY_PASSWORD}
`))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.Transport("direct")
	if err != nil {
		t.Fatal(err)
	}
	nd, ok := tr.(*transport.SMTP).Dialer.(*net.Dialer)
	if !ok {
		t.Fatalf("dialer is %T, want *net.Dialer", tr.(*transport.SMTP).Dialer)
	}
	if la, _ := nd.LocalAddr.(*net.TCPAddr); nd.Timeout != 7*time.Second || la == nil || !la.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("dialer = %+v, want a 7s timeout from 127.0.0.1", nd)
	}
	tr, err = cfg.Transport("proxied")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%+v", tr); strings.Contains(got, ":pw@") {
		t.Errorf("transport prints the proxy password: %s", got)
	}
}

func TestTLSBlock(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "client.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "client.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))

	cfg, err := config.Parse(filepath.Join(dir, "tls.yaml"), []byte(`
profiles:
  full:
    transport:
      address: smtp.example.org:587
      tls:
        ca_file: ca.pem
        cert_file: client.pem
        key_file: client.key
        min_version: 1.3
        server_name: relay.example.org
        insecure_skip_verify: true
  empty:
    transport: {address: smtp.example.org:587, tls: {}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.Transport("full")
	if err != nil {
		t.Fatal(err)
	}
	tc := tr.(*transport.SMTP).TLSConfig
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.MinVersion != tls.VersionTLS13 ||
		tc.ServerName != "relay.example.org" || !tc.InsecureSkipVerify {
		t.Errorf("TLSConfig = %+v", tc)
	}
	tr, err = cfg.Transport("empty")
	if err != nil {
		t.Fatal(err)
	}
	if tc := tr.(*transport.SMTP).TLSConfig; tc != nil {
		t.Errorf("an empty tls block gives %+v, want nil (the transport's defaults)", tc)
	}
}

// The logging middleware logs through slog.Default() as it is at each
// Send, dropping records below its level.
func TestLoggingLevel(t *testing.T) {
	s := smtptest.NewServer()
	defer s.Close()
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, tt := range []struct {
		level string
		want  bool
	}{{"info", true}, {"warn", false}, {"debug", true}} {
		logs.Reset()
		cfg, err := config.Parse("log.yaml", fmt.Appendf(nil, "profiles:\n  p:\n    transport: {address: %q, security: none}\n    middleware: [{name: logging, with: {level: %s}}]\n", s.Addr, tt.level))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := cfg.Transport("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := send(t, tr, "bob@example.org"); err != nil {
			t.Fatal(err)
		}
		transport.CloseIdleConnections(tr)
		if got := strings.Contains(logs.String(), `msg="smtp send"`); got != tt.want {
			t.Errorf("level %s: logged %v, want %v:\n%s", tt.level, got, tt.want, logs.String())
		}
		if strings.Contains(logs.String(), "bob@example.org") {
			t.Errorf("level %s: an address was logged without addresses: true", tt.level)
		}
	}
}

// Parse checks every profile, including those the program never builds:
// a mistake anywhere in the file is reported when the file is loaded.
func TestParseChecksEveryProfile(t *testing.T) {
	head := []string{
		"default: work",
		"profiles:",
		"  work:",
		"    transport: {address: smtp.example.org:25, security: none}",
		"  spare:", // 5
		"    transport:",
	}
	for _, tt := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"unknown transport key", []string{
			"      address: b.example.org:25",
			"      securty: none", // 8
		}, "c.yaml:8: profiles.spare.transport.securty: unknown key; did you mean security?"},
		{"unknown mechanism", []string{
			"      address: b.example.org:587",
			"      auth:",
			"        mechanism: PLAN", // 9
			"        username: u",
			"        password_env: MAILWIRE_UNSET_VARIABLE",
		}, `c.yaml:9: profiles.spare.transport.auth.mechanism: unknown mechanism "PLAN" (forgotten import?)`},
		{"wrong type in a failover member", []string{
			"      kind: failover",
			"      members:",
			"        - {address: b.example.org:25, pool: {max_idle: many}}", // 9
		}, "c.yaml:9: profiles.spare.transport.members[0].pool.max_idle: want an integer, got a string"},
		{"unknown middleware parameter", []string{
			"      address: b.example.org:25",
			"    middleware:",
			"      - name: retry",
			"        with: {max_attempt: 3}", // 10
		}, "c.yaml:10: profiles.spare.middleware[0].with.max_attempt: unknown key; did you mean max_attempts?"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", yamlFile(append(slices.Clone(head), tt.lines...)...))
			var ce *config.Error
			if err == nil || err.Error() != tt.want || !errors.As(err, &ce) {
				t.Errorf("Parse error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// Parse does not read secrets or certificate files: a profile whose
// variable is unset, or whose CA file is missing, fails when it is built,
// and does not stop the others.
func TestParseLeavesSecretsAndFilesToBuild(t *testing.T) {
	cfg, err := config.Parse("c.yaml", yamlFile(
		"default: work",
		"profiles:",
		"  work:",
		"    transport: {address: smtp.example.org:25, security: none}",
		"  spare:",
		"    transport:",
		"      address: b.example.org:587",
		"      auth:",
		"        mechanism: PLAIN",
		"        username: u",
		"        password_env: MAILWIRE_UNSET_VARIABLE", // 11
		"  certs:",
		"    transport:",
		"      address: c.example.org:465",
		"      tls: {ca_file: /nonexistent/mailwire-ca.pem}", // 15
	))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, err := cfg.Transport("work"); err != nil {
		t.Errorf("work: %v", err)
	}
	_, err = cfg.Transport("spare")
	want := "c.yaml:11: profiles.spare.transport.auth.password_env: environment variable MAILWIRE_UNSET_VARIABLE is not set"
	if err == nil || err.Error() != want {
		t.Errorf("spare: %v\nwant %s", err, want)
	}
	_, err = cfg.Transport("certs")
	want = "c.yaml:15: profiles.certs.transport.tls.ca_file: open /nonexistent/mailwire-ca.pem: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("certs: %v\nwant %s", err, want)
	}
	t.Setenv("MAILWIRE_UNSET_VARIABLE", "pw")
	if _, err := cfg.Transport("spare"); err != nil {
		t.Errorf("spare with its variable set: %v", err)
	}
}

// A registered kind is called once per profile by Parse, with Checking
// true, and again when the profile is built, with Checking false.
func TestParamsChecking(t *testing.T) {
	var calls []bool
	config.RegisterTransport("test-checking", func(p *config.Params) (transport.Transport, error) {
		var v struct {
			Address string `yaml:"address"`
		}
		if err := p.Decode(&v); err != nil {
			return nil, err
		}
		calls = append(calls, p.Checking())
		return transport.Func(func(context.Context, *envelope.Envelope, io.Reader) (*transport.Result, error) {
			return nil, nil
		}), nil
	})
	defer config.UnregisterTransport("test-checking")
	cfg, err := config.Parse("c.yaml", yamlFile("profiles: {p: {transport: {kind: test-checking, address: x}}}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Transport("p"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, []bool{true, false}) {
		t.Errorf("Checking in the calls: %v, want [true false]", calls)
	}
}
