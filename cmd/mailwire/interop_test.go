package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/internal/interoptest"
)

// Interop tests: the built binary against the Postfix and Dovecot that
// scripts/interop/start.sh runs. interoptest.Env skips them when the
// servers are not running, and fails them when MAILWIRE_INTEROP=1 (as
// .ci/run sets it).

const deliveryWait = 20 * time.Second

func interopMessage(cfg *interoptest.Config, marker, to string) string {
	return fmt.Sprintf("From: Alice <%s>\r\nTo: %s\r\nBcc: %s\r\nSubject: mailwire CLI interop\r\nMessage-ID: <%s@mailwire.test>\r\nX-Test-ID: %s\r\n\r\nSent by the mailwire command line.\r\n.a line with a leading dot\r\n",
		cfg.Alice.Address(cfg.Domain), to, cfg.Carol.Address(cfg.Domain), marker, marker)
}

// TestInteropSendSubmission sends through Postfix's submission port,
// STARTTLS and AUTH required, and finds the message in the maildirs: the
// To recipient's and the Bcc recipient's, without the Bcc field.
func TestInteropSendSubmission(t *testing.T) {
	cfg := interoptest.Env(t)
	marker := interoptest.Marker(t)
	msg := interopMessage(cfg, marker, cfg.Bob.Address(cfg.Domain))
	file := writeFile(t, t.TempDir(), "m.eml", msg, 0o644)
	r := runWith(t, runOpts{env: []string{"MW_INTEROP_PW=" + cfg.Alice.Password}},
		"send", "--ca", cfg.CAFile, "--user", cfg.Alice.Name, "--password-env", "MW_INTEROP_PW",
		"smtp://"+cfg.PostfixSubmission, file)
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "sent: 2/2 recipients accepted, queue id ")
	original := []byte(strings.Replace(msg, "Bcc: "+cfg.Carol.Address(cfg.Domain)+"\r\n", "", 1))
	for _, user := range []string{cfg.Bob.Name, cfg.Carol.Name} {
		got := interoptest.WaitMaildir(t, cfg.VirtualMaildir(user), marker, deliveryWait)
		if err := interoptest.CompareDelivered(got, original); err != nil {
			t.Errorf("%s's copy: %v", user, err)
		}
	}
}

// TestInteropSendImplicitTLSPartial sends over implicit TLS with a
// password file and the mechanism named, to an accepted and a refused
// recipient: a partial success with the refused one on stderr.
func TestInteropSendImplicitTLSPartial(t *testing.T) {
	cfg := interoptest.Env(t)
	marker := interoptest.Marker(t)
	msg := interopMessage(cfg, marker, cfg.Bob.Address(cfg.Domain)+", "+cfg.UnknownRcpt)
	pw := writeFile(t, t.TempDir(), "pw", cfg.Alice.Password+"\n", 0o600)
	r := runWith(t, runOpts{stdin: msg},
		"send", "--ca", cfg.CAFile, "--user", cfg.Alice.Name, "--auth", "PLAIN", "--password-file", pw,
		"smtps://"+cfg.PostfixSMTPS)
	wantCode(t, r, exitNoUser)
	wantContains(t, "stdout", r.stdout, "sent: 2/3 recipients accepted")
	wantContains(t, "stderr", r.stderr, "refused <"+cfg.UnknownRcpt+"> (perm-failed): 550 5.1.1")
	interoptest.WaitMaildir(t, cfg.VirtualMaildir(cfg.Bob.Name), marker, deliveryWait)

	// A wrong password: EX_NOPERM.
	bad := writeFile(t, t.TempDir(), "bad", "not-the-password\n", 0o600)
	r = runWith(t, runOpts{stdin: msg}, "send", "--ca", cfg.CAFile, "--user", cfg.Alice.Name, "--password-file", bad, "smtps://"+cfg.PostfixSMTPS)
	wantCode(t, r, exitNoPerm)
}

// TestInteropBatchLMTP delivers an mbox to Dovecot over its LMTP socket.
func TestInteropBatchLMTP(t *testing.T) {
	cfg := interoptest.Env(t)
	marker := interoptest.Marker(t)
	var mbox strings.Builder
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&mbox, "From alice Mon Jan  1 00:00:0%d 2024\nFrom: %s\nTo: %s\nMessage-ID: <%s-%d@mailwire.test>\nSubject: batch %d\n\nbody %d\n>From escaped\n\n",
			i, cfg.Alice.Address(cfg.Domain), cfg.Bob.Address(cfg.LMTPDomain), marker, i, i, i)
	}
	file := writeFile(t, t.TempDir(), "in.mbox", mbox.String(), 0o644)
	r := runCLI(t, "send", "--mbox", file, "lmtp://"+cfg.DovecotLMTPSocket)
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "3 sent, 0 partial, 0 failed (3 messages)")
	dir := cfg.DovecotMaildir(cfg.LMTPDomain, cfg.Bob.Name)
	for i := 1; i <= 3; i++ {
		got := interoptest.WaitMaildir(t, dir, fmt.Sprintf("%s-%d@", marker, i), deliveryWait)
		if !strings.Contains(string(got), "\nFrom escaped\n") {
			t.Errorf("message %d not un-escaped:\n%s", i, got)
		}
	}
}

// TestInteropProbe probes Postfix: submission with STARTTLS, implicit TLS,
// and a listener whose certificate comes from an untrusted CA.
func TestInteropProbe(t *testing.T) {
	cfg := interoptest.Env(t)
	r := runCLI(t, "probe", "--ca", cfg.CAFile, "smtp://"+cfg.PostfixSubmission)
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout,
		"greeting: 220 "+cfg.PostfixHostname,
		"EHLO capabilities before TLS:", "  STARTTLS",
		"STARTTLS: offered",
		"TLS: TLS 1.3",
		"verification: ok",
		"EHLO capabilities after TLS:", "  AUTH ",
		fmt.Sprintf("SIZE: %d bytes", cfg.PostfixSizeLimit))
	before := r.stdout[strings.Index(r.stdout, "before TLS:"):strings.Index(r.stdout, "STARTTLS: offered")]
	if strings.Contains(before, "AUTH") {
		t.Errorf("Postfix submission offers AUTH before TLS:\n%s", before)
	}

	r = runWith(t, runOpts{env: []string{"PW=" + cfg.Alice.Password}}, "probe", "--ca", cfg.CAFile, "--user", cfg.Alice.Name, "--password-env", "PW", "smtps://"+cfg.PostfixSMTPS)
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "security: implicit TLS", "verification: ok", "authentication: ok with ")

	r = runCLI(t, "probe", "--ca", cfg.CAFile, "smtp://"+cfg.PostfixUntrustedCertSMTP)
	wantCode(t, r, exitProtocol)
	wantContains(t, "probe", r.stdout, "certificate verification FAILED", "verification: FAILED", "subject:")

	r = runCLI(t, "probe", "--ca", cfg.CAFile, "smtp://"+cfg.PostfixExpiredCertSMTP)
	wantCode(t, r, exitProtocol)
	wantContains(t, "probe", r.stdout, "(EXPIRED)", "verification: FAILED")
}

// TestInteropSendmailMode uses the sendmail symlink with a configuration
// file for Postfix submission, as a cron job or a PHP application would.
func TestInteropSendmailMode(t *testing.T) {
	cfg := interoptest.Env(t)
	marker := interoptest.Marker(t)
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", cfg.Alice.Password+"\n", 0o600)
	cfgFile := writeFile(t, dir, "mailwire.yaml", fmt.Sprintf(`profiles:
  submission:
    transport:
      kind: smtp
      address: %s
      tls: {ca_file: %s}
      auth: {username: %s, password_file: %s}
`, cfg.PostfixSubmission, cfg.CAFile, cfg.Alice.Name, pw), 0o644)
	msg := fmt.Sprintf("Subject: cron output\nMessage-ID: <%s@mailwire.test>\n\nall good\n", marker)
	r := runWith(t, runOpts{stdin: msg, env: []string{"MAILWIRE_CONFIG=" + cfgFile}, bin: sendmailLn},
		"-i", "-f", cfg.Alice.Address(cfg.Domain), "-F", "Cron Daemon", cfg.Bob.Address(cfg.Domain))
	wantCode(t, r, exitOK)
	got := interoptest.WaitMaildir(t, cfg.VirtualMaildir(cfg.Bob.Name), marker, deliveryWait)
	wantContains(t, "delivered", string(got), "From: \"Cron Daemon\" <"+cfg.Alice.Address(cfg.Domain)+">", "\nDate: ", "all good")
}
