package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// The tests in this file use mailwire as a user does: TestMain builds the
// binary once, and each test runs it as a subprocess against an smtptest
// server the test starts.

var (
	binDir     string // holds mailwire and a "sendmail" symlink to it
	mailwire   string
	sendmailLn string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mailwire-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	mailwire = filepath.Join(dir, "mailwire")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", mailwire, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building mailwire: %v\n", err)
		return 1
	}
	sendmailLn = filepath.Join(dir, "sendmail")
	if err := os.Symlink(mailwire, sendmailLn); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// cmdTimeout bounds each run of the binary.
const cmdTimeout = 60 * time.Second

// result is what a run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runOpts configure a run.
type runOpts struct {
	stdin string
	env   []string // KEY=value added to a clean environment
	bin   string   // default: mailwire
}

// cleanEnv is the test process's environment without MAILWIRE_ variables.
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAILWIRE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func runWith(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	bin := o.bin
	if bin == "" {
		bin = mailwire
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv(o.env)
	cmd.Stdin = strings.NewReader(o.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running %s %q: %v", bin, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q timed out\n%s", bin, args, r)
	}
	return r
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return runWith(t, runOpts{}, args...)
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\n%s", r.code, code, r)
	}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

// startServer starts an smtptest server configured by setup and closes it
// when the test ends.
func startServer(t *testing.T, setup func(s *smtptest.Server)) *smtptest.Server {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	if setup != nil {
		setup(s)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// caFile writes the server's test CA to a file for --ca.
func caFile(t *testing.T, s *smtptest.Server) string {
	t.Helper()
	return writePEM(t, "ca.pem", s.Certificate().Raw)
}

func writePEM(t *testing.T, name string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// refuseNobody refuses nobody@ permanently and later@ temporarily.
func refuseNobody(to string, _ smtptest.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "nobody@"):
		return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}
	case strings.HasPrefix(to, "later@"):
		return &transport.ReplyError{Code: 450, EnhancedCode: transport.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
	case strings.HasPrefix(to, "policy@"):
		return &transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 7, 1}, Message: "relay denied"}
	}
	return nil
}

const simpleMsg = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nBcc: carol@example.org\r\nSubject: test\r\nMessage-ID: <one@test>\r\n\r\nHello.\r\n.leading dot\r\n"

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestSendFile(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	f := writeFile(t, t.TempDir(), "m.eml", simpleMsg, 0o644)
	r := runCLI(t, "send", s.URL(), f)
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "sent: 2/2 recipients accepted", "250 2.0.0 OK: queued")
	if r.stderr != "" {
		t.Errorf("stderr not empty:\n%s", r.stderr)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "alice@example.org" || strings.Join(m.To, ",") != "bob@example.org,carol@example.org" {
		t.Errorf("envelope %s -> %v", m.From, m.To)
	}
	want := strings.Replace(simpleMsg, "Bcc: carol@example.org\r\n", "", 1)
	if string(m.Data) != want {
		t.Errorf("data:\n got %q\nwant %q", m.Data, want)
	}
	if m.MailOptions.Size != int64(len(simpleMsg)) {
		t.Errorf("SIZE= %d, want the file size %d", m.MailOptions.Size, len(simpleMsg))
	}
}

func TestSendStdinWithOverrides(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	// No From and no recipients in the header: --from and --to supply them,
	// and flags may come after the URL.
	msg := "Subject: no addresses\nBcc: hidden@example.org\n\nbody\n"
	r := runWith(t, runOpts{stdin: msg}, "send", s.URL(), "--from", "sender@example.org", "--to", "x@example.org", "--to", "y@example.org")
	wantCode(t, r, exitOK)
	m := s.Messages()[0]
	if m.From != "sender@example.org" || strings.Join(m.To, ",") != "x@example.org,y@example.org" {
		t.Errorf("envelope %s -> %v", m.From, m.To)
	}
	if string(m.Data) != crlf("Subject: no addresses\n\nbody\n") {
		t.Errorf("data %q", m.Data)
	}

	// Only --from: the recipients still come from the header.
	s.Reset()
	r = runWith(t, runOpts{stdin: "To: a@example.org\nCc: b@example.org\n\nx\n"}, "send", "--from", "", s.URL(), "-")
	wantCode(t, r, exitOK)
	m = s.Messages()[0]
	if m.From != "" || strings.Join(m.To, ",") != "a@example.org,b@example.org" {
		t.Errorf("envelope %q -> %v", m.From, m.To)
	}
}

func TestSendMessageErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, tt := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"no recipients", "From: a@example.org\n\nx\n", nil, exitDataErr, "no recipients"},
		{"no sender", "To: a@example.org\n\nx\n", nil, exitDataErr, "no sender"},
		{"bad --to", simpleMsg, []string{"--to", "not an address"}, exitDataErr, "malformed"},
		{"missing file", "", []string{"/nonexistent/m.eml"}, exitNoInput, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"send", s.URL()}, tt.args...)
			r := runWith(t, runOpts{stdin: tt.stdin}, args...)
			wantCode(t, r, tt.code)
			wantContains(t, "stderr", r.stderr, tt.msg)
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
				t.Errorf("want a one-line error, got:\n%s", r.stderr)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestSendPartialRefusal(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) { s.Rcpt = refuseNobody })
	msg := "From: a@example.org\nTo: bob@example.org, nobody@example.org, later@example.org\n\nx\n"
	r := runWith(t, runOpts{stdin: msg}, "send", s.URL())
	// A permanent refusal outranks a temporary one; not every permanent
	// refusal is 5.1.x, so: EX_UNAVAILABLE... here the only permanent one
	// is 5.1.1, so EX_NOUSER.
	wantCode(t, r, exitNoUser)
	wantContains(t, "stdout", r.stdout, "sent: 1/3 recipients accepted")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one stderr line per refused recipient:\n%s", r.stderr)
	}
	wantContains(t, "stderr", lines[0], "refused <nobody@example.org> (perm-failed)", "550 5.1.1 no such user")
	wantContains(t, "stderr", lines[1], "refused <later@example.org> (temp-failed)", "450 4.2.1 mailbox busy")

	// Only a temporary refusal: EX_TEMPFAIL.
	r = runWith(t, runOpts{stdin: "From: a@example.org\nTo: bob@example.org, later@example.org\n\nx\n"}, "send", s.URL())
	wantCode(t, r, exitTempFail)

	// A policy refusal: EX_UNAVAILABLE.
	r = runWith(t, runOpts{stdin: "From: a@example.org\nTo: bob@example.org, policy@example.org\n\nx\n"}, "send", s.URL())
	wantCode(t, r, exitUnavailable)

	// All refused: one line, nothing sent.
	s.Reset()
	r = runWith(t, runOpts{stdin: "From: a@example.org\nTo: nobody@example.org\n\nx\n"}, "send", s.URL())
	wantCode(t, r, exitNoUser)
	wantContains(t, "stderr", r.stderr, "not sent:", "no such user")
	if r.stdout != "" || len(s.Messages()) != 0 {
		t.Errorf("stdout %q, %d messages", r.stdout, len(s.Messages()))
	}

	// --require-all: nothing is sent when one recipient is refused.
	r = runWith(t, runOpts{stdin: msg}, "send", "--require-all", s.URL())
	if r.code == exitOK || len(s.Messages()) != 0 {
		t.Errorf("--require-all sent something:\n%s", r)
	}
}

func TestSendAuth(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pa55"
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.Users = map[string]string{"alice": secret}
		s.RequireAuth = true
	})
	ca := caFile(t, s)
	url := "smtp://" + s.Addr // STARTTLS required, the default

	r := runWith(t, runOpts{stdin: simpleMsg, env: []string{"MW_PW=" + secret}},
		"send", "--ca", ca, "--user", "alice", "--password-env", "MW_PW", "--debug", url)
	wantCode(t, r, exitOK)
	if m := s.Messages(); len(m) != 1 || m[0].AuthUser != "alice" || !m[0].TLS {
		t.Fatalf("server messages %+v", m)
	}
	// The transcript is on stderr, with the credentials redacted.
	wantContains(t, "transcript", r.stderr, "C: STARTTLS", "C: AUTH ", "[redacted]")
	for _, leak := range []string{secret, base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + secret)), base64.StdEncoding.EncodeToString([]byte(secret))} {
		if strings.Contains(r.stderr+r.stdout, leak) {
			t.Errorf("output leaks the credential %q", leak)
		}
	}

	// From a file, with a mechanism named.
	pw := writeFile(t, t.TempDir(), "pw", secret+"\n", 0o600)
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--ca", ca, "--user", "alice", "--auth", "login", "--password-file", pw, url)
	wantCode(t, r, exitOK)

	// A wrong password: EX_NOPERM.
	r = runWith(t, runOpts{stdin: simpleMsg, env: []string{"MW_PW=wrong"}}, "send", "--ca", ca, "--user", "alice", "--password-env", "MW_PW", url)
	wantCode(t, r, exitNoPerm)
	wantContains(t, "stderr", r.stderr, "535")

	// No password source and no terminal: a usage error, nothing sent.
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--ca", ca, "--user", "alice", url)
	wantCode(t, r, exitUsage)
	wantContains(t, "stderr", r.stderr, "--password-file")

	// An unset variable, an unknown mechanism.
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--ca", ca, "--user", "alice", "--password-env", "MW_UNSET", url)
	wantCode(t, r, exitConfig)
	r = runWith(t, runOpts{stdin: simpleMsg, env: []string{"MW_PW=x"}}, "send", "--ca", ca, "--user", "alice", "--auth", "NOPE", "--password-env", "MW_PW", url)
	wantCode(t, r, exitUsage)
	wantContains(t, "stderr", r.stderr, "unknown mechanism", "PLAIN")

	// There is no --password flag.
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--password", secret, url)
	wantCode(t, r, exitUsage)

	// Without --ca the certificate does not verify: EX_PROTOCOL.
	r = runWith(t, runOpts{stdin: simpleMsg, env: []string{"MW_PW=" + secret}}, "send", "--user", "alice", "--password-env", "MW_PW", url)
	wantCode(t, r, exitProtocol)
	wantContains(t, "stderr", r.stderr, "certificate")

	// --insecure-skip-verify works, loudly.
	r = runWith(t, runOpts{stdin: simpleMsg, env: []string{"MW_PW=" + secret}}, "send", "--insecure-skip-verify", "--user", "alice", "--password-env", "MW_PW", url)
	wantCode(t, r, exitOK)
	wantContains(t, "stderr", r.stderr, "WARNING", "NOT verified")
}

func TestSendExitCodes(t *testing.T) {
	t.Parallel()
	plain := startServer(t, nil)
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	badSender := startServer(t, func(s *smtptest.Server) {
		s.Mail = func(string, smtptest.MailOptions) error {
			return &transport.ReplyError{Code: 553, EnhancedCode: transport.EnhancedCode{5, 7, 1}, Message: "sender refused"}
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"no arguments", nil, exitUsage},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"no server", []string{"send"}, exitUsage},
		{"bad URL", []string{"send", "ftp://x"}, exitUsage},
		{"credentials in URL", []string{"send", "smtp://u:p@127.0.0.1:1"}, exitUsage},
		{"unknown flag", []string{"send", "--bogus", plain.URL()}, exitUsage},
		{"connection refused", []string{"send", "smtp://" + closed + "?tls=none"}, exitTempFail},
		{"STARTTLS required, not offered", []string{"send", "smtp://" + plain.Addr}, exitUnavailable},
		{"sender refused", []string{"send", badSender.URL()}, exitUnavailable},
		{"missing CA file", []string{"send", "--ca", "/nonexistent.pem", plain.URL()}, exitConfig},
		{"require-all over LMTP", []string{"send", "--require-all", "lmtp:///tmp/x.sock"}, exitUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runWith(t, runOpts{stdin: simpleMsg}, tt.args...)
			wantCode(t, r, tt.code)
			if r.code != exitOK && strings.TrimSpace(r.stderr) == "" {
				t.Errorf("no error message")
			}
		})
	}
}

func TestSendLMTP(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) {
		s.LMTP = true
		s.Network = "unix"
		s.LMTPData = func(m *smtptest.Message, rcpt string) error {
			if strings.HasPrefix(rcpt, "full@") {
				return &transport.ReplyError{Code: 552, EnhancedCode: transport.EnhancedCode{5, 2, 2}, Message: "over quota"}
			}
			return nil
		}
	})
	msg := "From: a@example.org\nTo: bob@example.org, full@example.org\n\nx\n"
	r := runWith(t, runOpts{stdin: msg}, "send", s.URL())
	wantCode(t, r, exitUnavailable)
	wantContains(t, "stdout", r.stdout, "sent: 1/2 recipients accepted")
	wantContains(t, "stderr", r.stderr, "refused <full@example.org>", "552 5.2.2")

	// A batch over one LMTP session.
	s.Reset()
	dir := t.TempDir()
	writeFile(t, dir, "1.eml", msg, 0o644)
	writeFile(t, dir, "2.eml", "From: a@example.org\nTo: carol@example.org\n\ny\n", 0o644)
	r = runCLI(t, "send", s.URL(), dir)
	wantCode(t, r, exitUnavailable)
	wantContains(t, "stdout", r.stdout, "partial "+filepath.Join(dir, "1.eml")+": 1/2 recipients accepted; refused <full@example.org>",
		"ok      "+filepath.Join(dir, "2.eml"), "1 sent, 1 partial, 0 failed (2 messages)")
	if got := len(s.Messages()); got != 2 {
		t.Errorf("server got %d messages", got)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"mailwire send", "mailwire probe", "mailwire sendmail", "smtps://"}},
		{[]string{"help"}, []string{"mailwire demo"}},
		{[]string{"help", "send"}, []string{"--password-file", "--password-env", "--mbox", "--require-all", "--insecure-skip-verify", "Exit status"}},
		{[]string{"send", "--help"}, []string{"--from", "--to", "--config", "--profile", "--auth", "--cert", "--key", "--helo", "--timeout", "--debug"}},
		{[]string{"probe", "-h"}, []string{"before TLS", "--ca", "verif"}},
		{[]string{"help", "sendmail"}, []string{"-t", "-f ADDR", "-oi", "MAILWIRE_URL"}},
		{[]string{"sendmail", "--help"}, []string{"MAILWIRE_CONFIG"}},
		{[]string{"demo", "--help"}, []string{"--quiet"}},
		{[]string{"help", "exit"}, []string{"EX_TEMPFAIL", "EX_NOPERM"}},
		{[]string{"version"}, []string{"mailwire"}},
	} {
		r := runCLI(t, tt.args...)
		if r.code != exitOK {
			t.Errorf("%q: exit %d\n%s", tt.args, r.code, r)
			continue
		}
		wantContains(t, fmt.Sprintf("%q output", tt.args), r.stdout, tt.want...)
		if r.stderr != "" {
			t.Errorf("%q writes to stderr:\n%s", tt.args, r.stderr)
		}
	}
	r := runCLI(t, "send", "--help")
	if strings.Contains(r.stdout, "-password ") || strings.Contains(r.stdout, "-password\n") {
		t.Errorf("send --help offers a --password flag:\n%s", r.stdout)
	}
	r = runCLI(t, "help", "nope")
	wantCode(t, r, exitUsage)
}

// newCert issues a certificate with template tmpl signed by parent (self-
// signed when parent is nil).
func newCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func TestProbeStartTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.Users = map[string]string{"alice": "pw"}
		s.MaxMessageBytes = 1 << 20
		s.Domain = "mx.test.example"
	})
	ca := caFile(t, s)
	r := runCLI(t, "probe", "--ca", ca, "smtp://"+s.Addr)
	wantCode(t, r, exitOK)
	out := r.stdout
	wantContains(t, "probe", out,
		"security: STARTTLS required",
		"greeting: 220 mx.test.example",
		"EHLO capabilities before TLS:",
		"STARTTLS: offered",
		"TLS: TLS 1.3, cipher suite TLS_",
		"subject:  CN=localhost,O=mailwire smtptest",
		"issuer:   CN=smtptest CA,O=mailwire smtptest",
		"SANs:     DNS:localhost, IP:127.0.0.1, IP:::1",
		"validity: 1999-01-01 00:00:00 UTC to 2099-01-01 00:00:00 UTC",
		`verification: ok for "127.0.0.1" against the --ca roots`,
		"EHLO capabilities after TLS:",
		"AUTH: LOGIN PLAIN",
		"mailwire would choose: PLAIN",
		"SIZE: 1048576 bytes (1.0 MiB)",
	)
	// AUTH only after TLS, STARTTLS only before.
	before := out[strings.Index(out, "before TLS:"):strings.Index(out, "STARTTLS: offered")]
	after := out[strings.Index(out, "after TLS:"):strings.Index(out, "AUTH:")]
	if strings.Contains(before, "AUTH") || !strings.Contains(before, "  STARTTLS") {
		t.Errorf("capabilities before TLS:\n%s", before)
	}
	if !strings.Contains(after, "  AUTH LOGIN PLAIN") || strings.Contains(after, "STARTTLS") {
		t.Errorf("capabilities after TLS:\n%s", after)
	}

	// With --user, the probe authenticates.
	r = runWith(t, runOpts{env: []string{"PW=pw"}}, "probe", "--ca", ca, "--user", "alice", "--password-env", "PW", "smtp://"+s.Addr)
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "authentication: ok with PLAIN")
	r = runWith(t, runOpts{env: []string{"PW=bad"}}, "probe", "--ca", ca, "--user", "alice", "--password-env", "PW", "smtp://"+s.Addr)
	wantCode(t, r, exitNoPerm)
	wantContains(t, "probe", r.stdout, "authentication: FAILED", "535")
}

func TestProbeImplicitTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) { s.Security = transport.ImplicitTLS })
	ca := caFile(t, s)
	r := runCLI(t, "probe", "--ca", ca, s.URL())
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "security: implicit TLS", "greeting: 220 localhost", "TLS: TLS 1.3", "verification: ok", "EHLO capabilities after TLS:")
	if strings.Contains(r.stdout, "before TLS") {
		t.Errorf("implicit TLS has no capabilities before TLS:\n%s", r.stdout)
	}

	// Against the system roots the test CA is unknown: the chain is shown
	// all the same, and verification FAILED.
	r = runCLI(t, "probe", s.URL())
	wantCode(t, r, exitProtocol)
	wantContains(t, "probe", r.stdout,
		"certificate verification FAILED",
		"subject:  CN=localhost,O=mailwire smtptest",
		"verification: FAILED for \"127.0.0.1\" against the system roots",
		"unknown authority",
		"EHLO capabilities after TLS:")
}

func TestProbeFailingChain(t *testing.T) {
	t.Parallel()
	// A chain that does not verify although its CA is trusted: the server
	// certificate expired, and it names another host.
	ca, caKey := newCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "probe test CA"}, NotBefore: time.Now().Add(-48 * time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	leaf, leafKey := newCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "expired.example"}, DNSNames: []string{"expired.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, caKey)
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: leafKey, Leaf: leaf}}}
	})
	r := runCLI(t, "probe", "--ca", writePEM(t, "ca.pem", ca.Raw), "smtp://"+s.Addr)
	wantCode(t, r, exitProtocol)
	wantContains(t, "probe", r.stdout,
		"EHLO capabilities before TLS:",
		"TLS handshake: certificate verification FAILED",
		"0 subject:  CN=expired.example",
		"1 subject:  CN=probe test CA",
		"(EXPIRED)",
		"verification: FAILED",
	)
	if strings.Contains(r.stdout, "verification: ok") {
		t.Errorf("a failing chain reported ok:\n%s", r.stdout)
	}
}

func TestProbeNoSTARTTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	r := runCLI(t, "probe", "smtp://"+s.Addr)
	wantCode(t, r, exitUnavailable)
	wantContains(t, "probe", r.stdout, "EHLO capabilities before TLS:", "STARTTLS: NOT offered")
	r = runCLI(t, "probe", "smtp://"+s.Addr+"?tls=opportunistic")
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "STARTTLS: not offered; the session stays in clear", "TLS: none")
}

func TestProbeLMTP(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) {
		s.LMTP = true
		s.Network = "unix"
	})
	r := runCLI(t, "probe", s.URL())
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "security: LMTP in clear", "LHLO capabilities (no TLS):", "PIPELINING", "TLS: none", "AUTH: not offered", "SIZE:")
}

// countingDebug counts EHLO commands the server receives, which is the
// number of connections (go-smtp's debug stream is raw protocol text).
type countingDebug struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *countingDebug) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *countingDebug) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Count(c.buf.String(), s)
}

// batchDir writes n messages, the second to a refused recipient, and a
// file that is not .eml.
func batchDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := 1; i <= n; i++ {
		to := "bob@example.org"
		if i == 2 {
			to += ", nobody@example.org"
		}
		writeFile(t, dir, fmt.Sprintf("m%02d.eml", i), fmt.Sprintf("From: a@example.org\nTo: %s\nSubject: %d\n\nbody %d\n", to, i, i), 0o644)
	}
	writeFile(t, dir, "README.txt", "not a message", 0o644)
	return dir
}

func TestBatchDirectoryPlain(t *testing.T) {
	t.Parallel()
	dbg := &countingDebug{}
	s := startServer(t, func(s *smtptest.Server) {
		s.Rcpt = refuseNobody
		s.Debug = dbg
	})
	dir := batchDir(t, 4)
	r := runCLI(t, "send", s.URL(), dir)
	wantCode(t, r, exitNoUser)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 4 message lines and a summary:\n%s", r)
	}
	wantContains(t, "line 1", lines[0], "ok", "m01.eml: 1/1 recipients accepted")
	wantContains(t, "line 2", lines[1], "partial", "m02.eml: 1/2 recipients accepted; refused <nobody@example.org>")
	wantContains(t, "summary", lines[4], "3 sent, 1 partial, 0 failed (4 messages) in ", "msgs/s")
	if strings.Contains(r.stdout+r.stderr, "\r") {
		t.Errorf("progress output without a terminal:\n%q", r.stderr)
	}
	if got := len(s.Messages()); got != 4 {
		t.Errorf("server got %d messages", got)
	}
	if n := dbg.count("EHLO "); n != 1 {
		t.Errorf("%d connections for the batch, want 1", n)
	}

	// --quiet prints only the problems and the summary; several files.
	r = runCLI(t, "send", "--quiet", s.URL(), filepath.Join(dir, "m01.eml"), filepath.Join(dir, "m02.eml"))
	if got := strings.Count(r.stdout, "\n"); got != 2 || !strings.HasPrefix(r.stdout, "partial ") {
		t.Errorf("--quiet output:\n%s", r)
	}
}

func TestBatchRedialsBrokenConnection(t *testing.T) {
	t.Parallel()
	dbg := &countingDebug{}
	var mu sync.Mutex
	n := 0
	s := startServer(t, func(s *smtptest.Server) {
		s.Debug = dbg
		s.Data = func(m *smtptest.Message) error {
			mu.Lock()
			defer mu.Unlock()
			n++
			if n == 2 {
				return &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 3, 2}, Message: "shutting down"}
			}
			return nil
		}
	})
	// More messages than the transport keeps in flight on one connection,
	// so that some are left for a new connection after the 421.
	const total = transport.BatchWindow + 20
	dir := t.TempDir()
	for i := 1; i <= total; i++ {
		writeFile(t, dir, fmt.Sprintf("%03d.eml", i), fmt.Sprintf("From: a@example.org\nTo: b@example.org\nMessage-ID: <%d@test>\n\nx\n", i), 0o644)
	}
	r := runCLI(t, "send", s.URL(), dir)
	wantCode(t, r, exitTempFail)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != total+1 {
		t.Fatalf("want %d message lines and a summary:\n%s", total, r)
	}
	wantContains(t, "first", lines[0], "ok      ")
	wantContains(t, "second", lines[1], "failed  ", "421 4.3.2 shutting down")
	wantContains(t, "last", lines[total-1], "ok      ")
	var sent, failed int
	if _, err := fmt.Sscanf(lines[total], "%d sent, 0 partial, %d failed", &sent, &failed); err != nil || sent+failed != total {
		t.Errorf("summary %q", lines[total])
	}
	// Messages cut by the 421 are reported failed and not sent again; the
	// rest went over a second connection.
	if got := len(s.Messages()); got != sent {
		t.Errorf("server accepted %d messages, the summary says %d sent", got, sent)
	}
	if got := dbg.count("EHLO "); got != 2 {
		t.Errorf("%d connections, want 2 (a new one after the 421)", got)
	}
}

func TestBatchStopsWhenUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := runCLI(t, "send", "smtp://"+addr+"?tls=none", batchDir(t, 3))
	wantCode(t, r, exitTempFail)
	wantContains(t, "output", r.stdout+r.stderr, "cannot connect", "0 sent, 0 partial, 1 failed, 2 not attempted (3 messages)")
}

const testMbox = "From alice@example.org Mon Jan  1 00:00:00 2024\n" +
	"From: a@example.org\nTo: bob@example.org\nSubject: one\n\n>From the escaped line\nplain\n\n" +
	"From alice@example.org Mon Jan  1 00:00:01 2024\n" +
	"From: a@example.org\nTo: bob@example.org, nobody@example.org\nSubject: two\n\nbody two\n\n" +
	"From alice@example.org Mon Jan  1 00:00:02 2024\n" +
	"From: a@example.org\nSubject: three has no recipient\n\nbody three\n\n" +
	"From alice@example.org Mon Jan  1 00:00:03 2024\n" +
	"From: a@example.org\nTo: carol@example.org\nSubject: four\n\nbody four\n"

func TestBatchMboxPlain(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) { s.Rcpt = refuseNobody })
	mbox := writeFile(t, t.TempDir(), "in.mbox", testMbox, 0o644)
	r := runCLI(t, "send", "--mbox", mbox, s.URL())
	// Message 3 has no recipient (EX_DATAERR), message 2 one unknown
	// (EX_NOUSER): the same rank, the first stays.
	if r.code != exitNoUser && r.code != exitDataErr {
		t.Fatalf("exit %d\n%s", r.code, r)
	}
	wantContains(t, "stdout", r.stdout,
		"ok      "+mbox+"#1:", "partial "+mbox+"#2:", "failed  "+mbox+"#3: envelope: To: no recipients", "ok      "+mbox+"#4:",
		"2 sent, 1 partial, 1 failed (4 messages)")
	msgs := s.Messages()
	if len(msgs) != 3 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	if want := crlf("From: a@example.org\nTo: bob@example.org\nSubject: one\n\nFrom the escaped line\nplain\n"); string(msgs[0].Data) != want {
		t.Errorf("message 1:\n got %q\nwant %q", msgs[0].Data, want)
	}
	if want := crlf("From: a@example.org\nTo: carol@example.org\nSubject: four\n\nbody four\n"); string(msgs[2].Data) != want {
		t.Errorf("message 4:\n got %q\nwant %q", msgs[2].Data, want)
	}

	// From stdin, with the count unknown.
	s.Reset()
	r = runWith(t, runOpts{stdin: testMbox}, "send", "--mbox", "-", s.URL())
	wantContains(t, "stdout", r.stdout, "stdin#4", "2 sent, 1 partial, 1 failed (4 messages)")
	if len(s.Messages()) != 3 {
		t.Errorf("server got %d messages", len(s.Messages()))
	}

	// Not an mbox.
	r = runCLI(t, "send", "--mbox", writeFile(t, t.TempDir(), "x", "Subject: x\n\nbody\n", 0o644), s.URL())
	wantCode(t, r, exitDataErr)
	wantContains(t, "stderr", r.stderr, "not an mbox")
}

func TestSendmailMode(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) { s.Rcpt = refuseNobody })
	env := []string{"MAILWIRE_URL=" + s.URL(), "MAILWIRE_DOMAIN=host.example"}

	// As a symlink named sendmail: -t, -f, -i, recipients as arguments too.
	msg := "To: bob@example.org\nCc: Carol <carol@example.org>\nBcc: dave@example.org\nSubject: via sendmail\n\nline\n.\nafter a lone dot\n"
	r := runWith(t, runOpts{stdin: msg, env: env, bin: sendmailLn}, "-t", "-i", "-f", "sender@example.org", "-oem", "extra@example.org")
	wantCode(t, r, exitOK)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("sendmail is silent on success:\n%s", r)
	}
	m := s.Messages()[0]
	if m.From != "sender@example.org" || strings.Join(m.To, ",") != "bob@example.org,carol@example.org,dave@example.org,extra@example.org" {
		t.Errorf("envelope %s -> %v", m.From, m.To)
	}
	data := string(m.Data)
	if strings.Contains(data, "dave@") {
		t.Errorf("Bcc transmitted:\n%s", data)
	}
	wantContains(t, "data", data, "From: <sender@example.org>\r\n", "\r\nDate: ", "\r\nMessage-ID: <", "@example.org>\r\n", "line\r\n.\r\nafter a lone dot\r\n")

	// Without -t: only the arguments; -F names the From added; bare names
	// are qualified; "mailwire sendmail" is the same mode.
	s.Reset()
	r = runWith(t, runOpts{stdin: "Subject: cron\nTo: ignored@example.org\n\nout\n", env: env}, "sendmail", "-FCron Daemon", "-oi", "root")
	wantCode(t, r, exitOK)
	m = s.Messages()[0]
	if strings.Join(m.To, ",") != "root@host.example" || !strings.HasSuffix(m.From, "@host.example") {
		t.Errorf("envelope %s -> %v", m.From, m.To)
	}
	wantContains(t, "data", string(m.Data), "From: \"Cron Daemon\" <"+m.From+">\r\n")

	// A message with From, Date and Message-ID is sent unchanged.
	s.Reset()
	full := "From: a@example.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
	r = runWith(t, runOpts{stdin: full, env: env, bin: sendmailLn}, "b@example.org")
	wantCode(t, r, exitOK)
	if m := s.Messages()[0]; string(m.Data) != full || m.From != "a@example.org" {
		t.Errorf("sent %q from %q", m.Data, m.From)
	}

	// An unknown -o option is a warning.
	r = runWith(t, runOpts{stdin: full, env: env, bin: sendmailLn}, "-oZweird", "b@example.org")
	wantCode(t, r, exitOK)
	wantContains(t, "stderr", r.stderr, "sendmail: warning: ignoring option -oZweird")

	// Exit codes as sendmail's.
	for _, tt := range []struct {
		name  string
		stdin string
		env   []string
		args  []string
		code  int
	}{
		{"no recipients", full, env, nil, exitUsage},
		{"-t without recipients", full, env, []string{"-t"}, exitUsage},
		{"unknown recipient", full, env, []string{"nobody@example.org"}, exitNoUser},
		{"temporary refusal", full, env, []string{"later@example.org"}, exitTempFail},
		{"queue listing", "", env, []string{"-bp"}, exitUsage},
		{"no server configured", full, nil, []string{"b@example.org"}, exitUsage},
		{"missing config file", full, []string{"MAILWIRE_CONFIG=/nonexistent/mailwire.yaml"}, []string{"b@example.org"}, exitConfig},
		{"user without password", full, append([]string{"MAILWIRE_USER=alice"}, env...), []string{"b@example.org"}, exitConfig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runWith(t, runOpts{stdin: tt.stdin, env: tt.env, bin: sendmailLn}, tt.args...)
			wantCode(t, r, tt.code)
			wantContains(t, "stderr", r.stderr, "sendmail: ")
		})
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "demo")
	wantCode(t, r, exitOK)
	wantContains(t, "demo", r.stdout, "plain SMTP", "STARTTLS", "implicit TLS", "LMTP over a Unix socket", "partial success: 2 of 3 accepted", "transcript:")
	if regexp.MustCompile(`(?i)unexpected`).MatchString(r.stdout) {
		t.Errorf("demo reports a problem:\n%s", r.stdout)
	}
}

func TestSendWithConfig(t *testing.T) {
	t.Parallel()
	const secret = "cfg-Pa55"
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.Users = map[string]string{"alice": secret}
		s.RequireAuth = true
	})
	plain := startServer(t, func(s *smtptest.Server) { s.Rcpt = refuseNobody })
	dir := t.TempDir()
	ca := caFile(t, s)
	cfgFile := writeFile(t, dir, "mail.yaml", fmt.Sprintf(`default: submit
profiles:
  submit:
    transport:
      kind: smtp
      address: %s
      tls:
        ca_file: %s
      auth:
        username: alice
        password_env: MW_TEST_PW
  relay:
    transport:
      kind: smtp
      address: %s
      security: none
    middleware:
      - name: retry
        with: {max_attempts: 2}
  noauth:
    transport:
      kind: smtp
      address: %s
      tls:
        ca_file: %s
`, s.Addr, ca, plain.Addr, s.Addr, ca), 0o644)
	pwEnv := []string{"MW_TEST_PW=" + secret}

	// The default profile: STARTTLS and AUTH from the file.
	r := runWith(t, runOpts{stdin: simpleMsg, env: pwEnv}, "send", "--config", cfgFile)
	wantCode(t, r, exitOK)
	if m := s.Messages(); len(m) != 1 || m[0].AuthUser != "alice" || !m[0].TLS {
		t.Fatalf("server messages %+v", m)
	}

	// $MAILWIRE_CONFIG and $MAILWIRE_PROFILE, a batch through middleware.
	batch := batchDir(t, 3)
	r = runWith(t, runOpts{env: []string{"MAILWIRE_CONFIG=" + cfgFile, "MAILWIRE_PROFILE=relay"}}, "send", batch)
	wantCode(t, r, exitNoUser)
	wantContains(t, "stdout", r.stdout, "2 sent, 1 partial, 0 failed (3 messages)")

	// Command-line flags override the profile: --user and a password on a
	// profile without auth.
	r = runWith(t, runOpts{stdin: simpleMsg, env: []string{"PW2=" + secret}}, "send", "--config", cfgFile, "--profile", "noauth", "--user", "alice", "--password-env", "PW2")
	wantCode(t, r, exitOK)
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--config", cfgFile, "--profile", "noauth")
	wantCode(t, r, exitNoPerm) // the server requires AUTH: MAIL refused 530
	_ = r

	// probe finds the SMTP transport inside the middleware.
	r = runCLI(t, "probe", "--config", cfgFile, "--profile", "relay")
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "probing "+cfgFile+":relay", "EHLO capabilities (no TLS):")

	// Errors: a URL and --config; an unknown profile; a missing secret; a
	// malformed file names its line.
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--config", cfgFile, s.URL())
	wantCode(t, r, exitUsage)
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--config", cfgFile, "--profile", "nope")
	wantCode(t, r, exitConfig)
	wantContains(t, "stderr", r.stderr, `unknown profile "nope"`)
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--config", cfgFile)
	wantCode(t, r, exitConfig)
	wantContains(t, "stderr", r.stderr, "MW_TEST_PW")
	bad := writeFile(t, dir, "bad.yaml", "profiles:\n  x:\n    transport:\n      kind: smtp\n      adress: h:25\n", 0o644)
	r = runWith(t, runOpts{stdin: simpleMsg}, "send", "--config", bad)
	wantCode(t, r, exitConfig)
	wantContains(t, "stderr", r.stderr, "bad.yaml:5:", "adress")

	// The sendmail mode reads $MAILWIRE_CONFIG too, and -C.
	s.Reset()
	r = runWith(t, runOpts{stdin: simpleMsg, env: append([]string{"MAILWIRE_CONFIG=" + cfgFile}, pwEnv...), bin: sendmailLn}, "-t")
	wantCode(t, r, exitOK)
	r = runWith(t, runOpts{stdin: simpleMsg, env: pwEnv, bin: sendmailLn}, "-C", cfgFile, "-t")
	wantCode(t, r, exitOK)
	if n := len(s.Messages()); n != 2 {
		t.Errorf("server got %d messages through the sendmail mode", n)
	}
}

func TestSendmailModeAuthFromEnvironment(t *testing.T) {
	t.Parallel()
	const secret = "env-Pa55"
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.Users = map[string]string{"alice": secret}
		s.RequireAuth = true
	})
	pw := writeFile(t, t.TempDir(), "pw", secret+"\n", 0o600)
	env := []string{"MAILWIRE_URL=smtp://" + s.Addr, "MAILWIRE_CA=" + caFile(t, s), "MAILWIRE_USER=alice",
		"MAILWIRE_PASSWORD_FILE=" + pw, "MAILWIRE_AUTH=PLAIN", "MAILWIRE_HELO=client.example"}
	r := runWith(t, runOpts{stdin: simpleMsg, env: env, bin: sendmailLn}, "-t", "-v")
	wantCode(t, r, exitOK)
	wantContains(t, "-v output", r.stdout, "sent: 2/2 recipients accepted")
	wantContains(t, "-v transcript", r.stderr, "C: EHLO client.example", "C: AUTH PLAIN [redacted]")
	if strings.Contains(r.stderr, secret) {
		t.Error("the transcript leaks the password")
	}
	if m := s.Messages(); len(m) != 1 || m[0].AuthUser != "alice" || m[0].Hello != "client.example" {
		t.Errorf("server messages %+v", m)
	}
	// A wrong password: EX_NOPERM, as sendmail's callers expect.
	bad := writeFile(t, t.TempDir(), "bad", "nope\n", 0o600)
	r = runWith(t, runOpts{stdin: simpleMsg, env: append(env, "MAILWIRE_PASSWORD_FILE="+bad), bin: sendmailLn}, "-t")
	wantCode(t, r, exitNoPerm)
}
