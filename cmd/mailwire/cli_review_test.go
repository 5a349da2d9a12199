package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// dropServer is an SMTP server in clear, without PIPELINING, that closes
// the connection instead of replying to the end of the data of the
// messages drop chooses by their content: the client cannot know whether
// the message was delivered.
type dropServer struct {
	addr string
	drop func(data string) bool
}

func startDropServer(t *testing.T, drop func(data string) bool) *dropServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dropServer{addr: ln.Addr().String(), drop: drop}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *dropServer) url() string { return "smtp://" + s.addr + "?tls=none" }

func (s *dropServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	reply := func(text string) { fmt.Fprintf(c, "%s\r\n", text) }
	reply("220 drop.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			reply("250-drop.test\r\n250 8BITMIME")
		case "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		case "DATA":
			reply("354 go ahead")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			if s.drop(data.String()) {
				return // the connection is lost after the final dot
			}
			reply("250 2.0.0 Ok: queued as 4C80F984091")
		default:
			reply("502 5.5.2 not implemented")
		}
	}
}

// A message whose outcome is unknown is reported as such in a batch, with
// the warning a single send prints, and counted apart in the summary.
func TestBatchUnknownOutcome(t *testing.T) {
	t.Parallel()
	s := startDropServer(t, func(data string) bool { return strings.Contains(data, "Subject: 2\r\n") })
	dir := t.TempDir()
	for i := 1; i <= 3; i++ {
		writeFile(t, dir, fmt.Sprintf("m%d.eml", i), fmt.Sprintf("From: a@example.org\nTo: b@example.org\nSubject: %d\n\nbody\n", i), 0o644)
	}
	r := runCLI(t, "send", s.url(), dir)
	wantCode(t, r, exitTempFail)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 3 message lines and a summary:\n%s", r)
	}
	wantContains(t, "line 1", lines[0], "ok      "+filepath.Join(dir, "m1.eml"))
	wantContains(t, "line 2", lines[1], "unknown "+filepath.Join(dir, "m2.eml")+": transport: end-of-data",
		"the connection was lost after the message was sent: it may have been delivered; check before sending it again")
	wantContains(t, "line 3", lines[2], "ok      "+filepath.Join(dir, "m3.eml"))
	wantContains(t, "summary", lines[3], "2 sent, 0 partial, 0 failed, 1 unknown (3 messages) in ", "msgs/s")
	wantContains(t, "stderr", r.stderr, "warning: the connection was lost after 1 message was sent (outcome unknown): it may have been delivered; check before sending it again")

	// --quiet keeps the line: it is a problem.
	r = runCLI(t, "send", "--quiet", s.url(), filepath.Join(dir, "m1.eml"), filepath.Join(dir, "m2.eml"))
	wantContains(t, "--quiet stdout", r.stdout, "unknown "+filepath.Join(dir, "m2.eml"))

	// The same message alone: the single send's warning.
	r = runCLI(t, "send", s.url(), filepath.Join(dir, "m2.eml"))
	wantCode(t, r, exitTempFail)
	wantContains(t, "stderr", r.stderr, "not sent: transport: end-of-data",
		"warning: the connection was lost after the message was sent: it may have been delivered; check before sending it again")
}

// A retry middleware in a profile can send a message from a file, a
// directory or an mbox again to the recipients that failed transiently
// after the data was read: the body is read again from the file.
func TestRetryRereadsMessageFiles(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	tries := map[string]int{}
	s := startServer(t, func(s *smtptest.Server) {
		// flaky@ is refused once for each message (by the address's tag),
		// then accepted: only a retry with the body read again delivers.
		s.Rcpt = func(to string, _ smtptest.RcptOptions) error {
			if !strings.HasPrefix(to, "flaky") {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			tries[to]++
			if tries[to] == 1 {
				return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "try again"}
			}
			return nil
		}
	})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "mw.yaml", fmt.Sprintf(`default: relay
profiles:
  relay:
    transport:
      kind: smtp
      address: %s
      security: none
    middleware:
      - name: retry
        with: {max_attempts: 3, base: 1ms, max: 5ms}
`, s.Addr), 0o644)
	msg := func(tag string) string {
		return "From: a@example.org\r\nTo: bob@example.org, flaky+" + tag + "@example.org\r\nBcc: hidden@example.org\r\n" +
			"Subject: " + tag + "\r\n\r\n" + strings.Repeat("a line of the body of "+tag+"\r\n", 2000)
	}
	sent := func(tag string) string { return strings.Replace(msg(tag), "Bcc: hidden@example.org\r\n", "", 1) }
	// check verifies that the server got each tagged message twice: to
	// the recipients accepted first, then to flaky+tag alone, the same
	// data both times.
	check := func(t *testing.T, tags ...string) {
		t.Helper()
		got := map[string][][]string{}
		for _, m := range s.Messages() {
			tag := strings.SplitN(string(m.Data), "Subject: ", 2)[1][:2]
			if want := sent(tag); string(m.Data) != want {
				t.Errorf("message %s: data differs from the file less its Bcc (%d bytes, want %d)", tag, len(m.Data), len(want))
			}
			got[tag] = append(got[tag], m.To)
		}
		for _, tag := range tags {
			want := fmt.Sprintf("[[bob@example.org hidden@example.org] [flaky+%s@example.org]]", tag)
			if fmt.Sprint(got[tag]) != want {
				t.Errorf("message %s went to %v, want %s", tag, got[tag], want)
			}
		}
		s.Reset()
	}

	// One message from a file.
	f := writeFile(t, dir, "one.eml", msg("f1"), 0o644)
	r := runCLI(t, "send", "--config", cfg, f)
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "sent: 3/3 recipients accepted")
	check(t, "f1")

	// A directory.
	batch := filepath.Join(dir, "batch")
	if err := os.Mkdir(batch, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, batch, "1.eml", msg("d1"), 0o644)
	writeFile(t, batch, "2.eml", msg("d2"), 0o644)
	r = runCLI(t, "send", "--config", cfg, batch)
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "2 sent, 0 partial, 0 failed (2 messages)")
	check(t, "d1", "d2")

	// An mbox, with an escaped "From " line and messages after the one
	// retried.
	mbox := "From x Mon Jan  1 00:00:00 2024\n" + strings.ReplaceAll(msg("m1"), "\r\n", "\n") + "\n" +
		"From x Mon Jan  1 00:00:01 2024\n" + strings.ReplaceAll(msg("m2"), "\r\n", "\n") + "\n"
	r = runCLI(t, "send", "--config", cfg, "--mbox", writeFile(t, dir, "in.mbox", mbox, 0o644))
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "2 sent, 0 partial, 0 failed (2 messages)")
	check(t, "m1", "m2")

	// Standard input cannot be read twice: flaky+s1 stays refused.
	r = runWith(t, runOpts{stdin: msg("s1")}, "send", "--config", cfg)
	wantCode(t, r, exitTempFail)
	wantContains(t, "stdout", r.stdout, "sent: 2/3 recipients accepted")
	wantContains(t, "stderr", r.stderr, "refused <flaky+s1@example.org> (temp-failed)", "cannot be rewound")
}

// A permanent refusal outranks a temporary one whether or not a
// recipient was accepted, and whatever the order of the recipients.
func TestExitStatusRefusedRecipients(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) { s.Rcpt = refuseNobody })
	for _, tt := range []struct {
		to   string
		code int
	}{
		{"later@example.org, nobody@example.org", exitNoUser},
		{"nobody@example.org, later@example.org", exitNoUser},
		{"bob@example.org, later@example.org, nobody@example.org", exitNoUser},
		{"later@example.org, policy@example.org", exitUnavailable},
		{"policy@example.org, later@example.org", exitUnavailable},
		{"bob@example.org, later@example.org, policy@example.org", exitUnavailable},
		{"later@example.org, nobody@example.org, policy@example.org", exitUnavailable},
		{"later@example.org", exitTempFail},
		{"bob@example.org, later@example.org", exitTempFail},
	} {
		t.Run(tt.to, func(t *testing.T) {
			r := runWith(t, runOpts{stdin: "From: a@example.org\nTo: " + tt.to + "\n\nx\n"}, "send", s.URL())
			wantCode(t, r, tt.code)
		})
	}
	// --require-all: the refusal decides, not the recipients abandoned
	// because of it.
	r := runWith(t, runOpts{stdin: "From: a@example.org\nTo: bob@example.org, nobody@example.org\n\nx\n"}, "send", "--require-all", s.URL())
	wantCode(t, r, exitNoUser)
}

// Without -t, the recipients are the arguments: To and Cc fields that
// cannot be parsed do not matter, and the sender still comes from the
// header.
func TestSendmailModeBadRecipientFields(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	env := []string{"MAILWIRE_URL=" + s.URL(), "MAILWIRE_DOMAIN=host.example"}
	for _, tt := range []struct {
		name, header, from string
	}{
		{"bare To", "From: Alice <alice@example.org>\nTo: x\n", "alice@example.org"},
		{"bad Cc", "From: alice@example.org\nTo: b@example.org\nCc: bad address here\n", "alice@example.org"},
		{"Sender first", "From: alice@example.org\nSender: list@example.org\nTo: x\n", "list@example.org"},
		{"Resent block", "From: alice@example.org\nTo: x\nResent-From: resender@example.org\nResent-To: y\n", "resender@example.org"},
		{"bad From too: login name", "From: not an address\nTo: x\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.Reset()
			msg := tt.header + "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <x@y>\nSubject: s\n\nbody\n"
			r := runWith(t, runOpts{stdin: msg, env: env, bin: sendmailLn}, "-i", "rcpt@example.org")
			wantCode(t, r, exitOK)
			m := s.Messages()[0]
			switch {
			case tt.from == "" && !strings.HasSuffix(m.From, "@host.example"):
				t.Errorf("sender %q, want the login name", m.From)
			case tt.from != "" && m.From != tt.from:
				t.Errorf("sender %q, want %q", m.From, tt.from)
			}
			if strings.Join(m.To, ",") != "rcpt@example.org" {
				t.Errorf("recipients %v", m.To)
			}
			if want := crlf(msg); string(m.Data) != want {
				t.Errorf("data %q, want the message as it is", m.Data)
			}
		})
	}
	// With -t the header's recipients are needed: an error.
	r := runWith(t, runOpts{stdin: "From: alice@example.org\nTo: x\n\nbody\n", env: env, bin: sendmailLn}, "-t")
	wantCode(t, r, exitDataErr)
	wantContains(t, "stderr", r.stderr, "To", "malformed")
	r = runWith(t, runOpts{stdin: "From: alice@example.org\nTo: b@example.org\nCc: bad address here\n\nbody\n", env: env, bin: sendmailLn}, "-t", "extra@example.org")
	wantCode(t, r, exitDataErr)
	wantContains(t, "stderr", r.stderr, "Cc", "malformed")
}

// The summary counts every message of the batch, and the rate only those
// delivered.
func TestBatchSummaryCounts(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	a := writeFile(t, dir, "a.eml", "From: a@example.org\nTo: b@example.org\n\nx\n", 0o644)
	b := writeFile(t, dir, "b.eml", "From: a@example.org\nTo: b@example.org\n\ny\n", 0o644)
	r := runCLI(t, "send", "smtp://"+addr+"?tls=none", a, b)
	wantCode(t, r, exitTempFail)
	wantContains(t, "stdout", r.stdout, "0 sent, 0 partial, 1 failed, 1 not attempted (2 messages) in ", "; stopped: cannot connect")
	if strings.Contains(r.stdout, "msgs/s") {
		t.Errorf("a rate with nothing delivered:\n%s", r.stdout)
	}

	// Failures do not count in the rate, and one message is "1 message".
	s := startServer(t, nil)
	r = runCLI(t, "send", s.URL(), a)
	wantCode(t, r, exitOK)
	r = runCLI(t, "send", s.URL(), a, writeFile(t, dir, "c.eml", "Subject: no addresses\n\nz\n", 0o644))
	wantCode(t, r, exitDataErr)
	wantContains(t, "stdout", r.stdout, "1 sent, 0 partial, 1 failed (2 messages) in ", "msgs/s")
	r = runWith(t, runOpts{stdin: "From x Mon Jan  1 00:00:00 2024\nFrom: a@example.org\nTo: b@example.org\n\nx\n"}, "send", "--mbox", "-", s.URL())
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "1 sent, 0 partial, 0 failed (1 message) in ")
}

// An mbox without messages is refused as a directory without .eml files
// is, before connecting.
func TestEmptyMbox(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	empty := writeFile(t, t.TempDir(), "empty.mbox", "", 0o644)
	r := runCLI(t, "send", "--mbox", empty, s.URL())
	wantCode(t, r, exitNoInput)
	wantContains(t, "stderr", r.stderr, empty+": empty mbox: no messages to send")
	r = runWith(t, runOpts{stdin: ""}, "send", "--mbox", "-", s.URL())
	wantCode(t, r, exitNoInput)
	wantContains(t, "stderr", r.stderr, "stdin: empty mbox: no messages to send")
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}
	r = runWith(t, runOpts{stdin: "Subject: x\n\nbody\n"}, "send", "--mbox", "-", s.URL())
	wantCode(t, r, exitDataErr)
	wantContains(t, "stderr", r.stderr, "stdin: not an mbox")
	if n := len(s.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

// The sendmail mode names what it accepts when no server is configured.
func TestSendmailModeNoServer(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{sendmailLn, mailwire} {
		args := []string{"root"}
		if bin == mailwire {
			args = []string{"sendmail", "root"}
		}
		r := runWith(t, runOpts{stdin: "Subject: x\n\nx\n", bin: bin}, args...)
		wantCode(t, r, exitUsage)
		wantContains(t, "stderr", r.stderr, "no server", "$MAILWIRE_URL", "$MAILWIRE_CONFIG", "-C FILE", "sendmail --help")
		if strings.Contains(r.stderr, "give a URL") || strings.Contains(r.stderr, " help)") {
			t.Errorf("stderr offers what the sendmail mode does not take:\n%s", r.stderr)
		}
	}
}

// With --auth, probe says which mechanism was requested, not what
// negotiation would choose.
func TestProbeAuthRequested(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(s *smtptest.Server) {
		s.Security = transport.StartTLS
		s.Users = map[string]string{"alice": "pw"}
	})
	ca := caFile(t, s)
	env := runOpts{env: []string{"PW=pw"}}
	r := runWith(t, env, "probe", "--ca", ca, "--user", "alice", "--password-env", "PW", "--auth", "LOGIN", "smtp://"+s.Addr)
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "AUTH: LOGIN PLAIN", "  requested with --auth: LOGIN (offered, usable on this session)", "authentication: ok with LOGIN")
	if strings.Contains(r.stdout, "would choose") {
		t.Errorf("probe --auth tells what negotiation would choose:\n%s", r.stdout)
	}

	r = runWith(t, env, "probe", "--ca", ca, "--user", "alice", "--password-env", "PW", "--auth", "CRAM-MD5", "smtp://"+s.Addr)
	wantCode(t, r, exitNoPerm)
	wantContains(t, "probe", r.stdout, "  requested with --auth: CRAM-MD5, which cannot be used on this session: ", "authentication: FAILED")

	// Without --auth: negotiation.
	r = runWith(t, env, "probe", "--ca", ca, "--user", "alice", "--password-env", "PW", "smtp://"+s.Addr)
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "  mailwire would choose: PLAIN (for a user name and password)", "authentication: ok with PLAIN")

	// A profile that lists mechanisms.
	cfg := writeFile(t, t.TempDir(), "mw.yaml", fmt.Sprintf(`profiles:
  p:
    transport:
      kind: smtp
      address: %s
      tls: {ca_file: %s}
      auth: {username: alice, password_env: PW, mechanisms: [CRAM-MD5, LOGIN]}
`, s.Addr, ca), 0o644)
	r = runWith(t, env, "probe", "--config", cfg, "--profile", "p")
	wantCode(t, r, exitOK)
	wantContains(t, "probe", r.stdout, "  allowed by the profile: CRAM-MD5 LOGIN; mailwire would choose: LOGIN", "authentication: ok with LOGIN")
}
