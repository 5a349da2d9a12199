package interoptest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// These tests run against the interop servers (scripts/interop/start.sh) and
// skip without them, unless MAILWIRE_INTEROP=1.

// greeting connects to addr over network and returns the first reply line.
func greeting(t *testing.T, network, addr string, tlsConfig *tls.Config) string {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer conn.Close()
	if tlsConfig != nil {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		conn = tc
	}
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting from %s: %v", addr, err)
	}
	return strings.TrimRight(line, "\r\n")
}

func TestServersGreet(t *testing.T) {
	cfg := Env(t)
	cases := []struct {
		name, network, addr string
		tls                 bool
	}{
		{"PostfixSMTP", "tcp", cfg.PostfixSMTP, false},
		{"PostfixSubmission", "tcp", cfg.PostfixSubmission, false},
		{"PostfixSMTPS", "tcp", cfg.PostfixSMTPS, true},
		{"PostfixUntrustedCertSMTP", "tcp", cfg.PostfixUntrustedCertSMTP, false},
		{"PostfixExpiredCertSMTP", "tcp", cfg.PostfixExpiredCertSMTP, false},
		{"PostfixWrongHostCertSMTP", "tcp", cfg.PostfixWrongHostCertSMTP, false},
		{"PostfixOldTLSSMTP", "tcp", cfg.PostfixOldTLSSMTP, false},
		{"DovecotLMTPSocket", "unix", cfg.DovecotLMTPSocket, false},
		{"DovecotLMTPTCP", "tcp", cfg.DovecotLMTPTCP, false},
		{"DovecotSubmission", "tcp", cfg.DovecotSubmission, false},
		{"LedgerSMTP", "tcp", cfg.LedgerSMTP, false},
		{"SinkSMTP", "tcp", cfg.SinkSMTP, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.addr == "" {
				t.Skipf("%s not started", c.name)
			}
			var tc *tls.Config
			if c.tls {
				tc = cfg.TLSConfig()
			}
			if g := greeting(t, c.network, c.addr, tc); !strings.HasPrefix(g, "220 ") {
				t.Errorf("greeting %q, want 220", g)
			}
		})
	}
}

// TestHelpersAgainstPostfix sends one message with net/smtp in plaintext and
// checks it with WaitMaildir and CompareDelivered.
func TestHelpersAgainstPostfix(t *testing.T) {
	cfg := Env(t)
	marker := Marker(t)
	msg := []byte("From: <sender@example.test>\r\nTo: <alice@interop.test>\r\n" +
		"Message-ID: <" + marker + "@mailwire.test>\r\nSubject: interoptest\r\n\r\n" +
		".a leading dot\r\nline two\r\n")
	c, err := smtp.Dial(cfg.PostfixSMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Hello("interoptest.mailwire.test"))
	must(c.Mail("sender@example.test"))
	must(c.Rcpt(cfg.Alice.Address(cfg.Domain)))
	w, err := c.Data()
	must(err)
	_, err = w.Write(msg)
	must(err)
	must(w.Close())
	must(c.Quit())

	got := WaitMaildir(t, cfg.VirtualMaildir("alice"), marker, 15*time.Second)
	if err := CompareDelivered(got, msg); err != nil {
		t.Error(err)
	}
	if !strings.HasPrefix(string(got), "Return-Path: <sender@example.test>\n") {
		t.Errorf("delivered copy starts %q", got[:min(len(got), 60)])
	}
}

// TestHelpersAgainstLedger checks LedgerEntries, LedgerCount and the
// flaky451 trigger.
func TestHelpersAgainstLedger(t *testing.T) {
	cfg := Env(t)
	marker := Marker(t)
	flaky := fmt.Sprintf("flaky451-1-%s@example.test", marker)
	msg := []byte("Message-ID: <" + marker + "@mailwire.test>\r\nX-Test-ID: " + marker + "\r\n\r\nhello\r\n")

	c, err := smtp.Dial(cfg.LedgerSMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("interoptest.mailwire.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("PIPELINING"); ok {
		t.Error("ledger offers PIPELINING")
	}
	if err := c.Mail("sender@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(flaky); err == nil || !strings.HasPrefix(err.Error(), "451") {
		t.Fatalf("first RCPT %s: %v, want 451", flaky, err)
	}
	if err := c.Rcpt(flaky); err != nil {
		t.Fatalf("second RCPT %s: %v", flaky, err)
	}
	if err := c.Rcpt("ok@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	entries := WaitLedger(t, cfg, marker, 5*time.Second)
	if len(entries) != 1 {
		t.Fatalf("%d ledger entries for %s, want 1", len(entries), marker)
	}
	all := LedgerEntries(t, cfg)
	if n := LedgerCount(all, marker, flaky); n != 1 {
		t.Errorf("LedgerCount(%s) = %d, want 1", flaky, n)
	}
	if n := LedgerCount(all, marker, "ok@example.test"); n != 1 {
		t.Errorf("LedgerCount(ok) = %d, want 1", n)
	}
	if got := LedgerMessage(t, cfg, entries[0]); string(got) != string(msg) {
		t.Errorf("ledger stored %q, want %q", got, msg)
	}
}
