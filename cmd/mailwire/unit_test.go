package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// Unit tests of the pieces the end-to-end tests in cli_test.go cannot
// reach precisely: the mbox splitter, envelope extraction with overrides,
// sendmail option parsing, queue IDs and exit statuses.

func readAllMbox(t *testing.T, in string) ([]string, []string) {
	t.Helper()
	mr := newMboxReader(strings.NewReader(in))
	var msgs, froms []string
	for {
		r, from, err := mr.Next()
		if err == io.EOF {
			return msgs, froms
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading message %d: %v", len(msgs)+1, err)
		}
		msgs = append(msgs, string(b))
		froms = append(froms, from)
	}
}

func TestMboxSplit(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the reader's buffer
	tests := []struct {
		name  string
		in    string
		want  []string
		froms []string
	}{
		{"empty", "", nil, nil},
		{"one", "From a@b Mon Jan  1 00:00:00 2024\nSubject: 1\n\nbody\n",
			[]string{"Subject: 1\n\nbody\n"}, []string{"From a@b Mon Jan  1 00:00:00 2024"}},
		{"separator blank line dropped", "From a\nS: 1\n\nb1\n\nFrom b\nS: 2\n\nb2\n\n",
			[]string{"S: 1\n\nb1\n", "S: 2\n\nb2\n"}, []string{"From a", "From b"}},
		{"unescape mboxrd", "From a\nS: 1\n\n>From here\n>>From there\n>not from\n",
			[]string{"S: 1\n\nFrom here\n>From there\n>not from\n"}, []string{"From a"}},
		{"From without blank line before is body", "From a\nS: 1\n\nline\nFrom the body\n",
			[]string{"S: 1\n\nline\nFrom the body\n"}, []string{"From a"}},
		{"several blank lines kept but one", "From a\nS: 1\n\nb\n\n\n\nFrom b\nS: 2\n",
			[]string{"S: 1\n\nb\n\n\n", "S: 2\n"}, []string{"From a", "From b"}},
		{"CRLF", "From a\r\nS: 1\r\n\r\nb\r\n\r\nFrom b\r\nS: 2\r\n",
			[]string{"S: 1\r\n\r\nb\r\n", "S: 2\r\n"}, []string{"From a", "From b"}},
		{"no final newline", "From a\nS: 1\n\nb", []string{"S: 1\n\nb"}, []string{"From a"}},
		{"long line", "From a\nS: 1\n\n" + long + "\n\nFrom b\n>From " + long + "\n",
			[]string{"S: 1\n\n" + long + "\n", "From " + long + "\n"}, []string{"From a", "From b"}},
		{"empty message", "From a\n\nFrom b\nS: 2\n", []string{"", "S: 2\n"}, []string{"From a", "From b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, froms := readAllMbox(t, tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("messages:\n got %q\nwant %q", got, tt.want)
			}
			if !slices.Equal(froms, tt.froms) {
				t.Errorf("From lines: got %q, want %q", froms, tt.froms)
			}
			n, err := countMbox(strings.NewReader(tt.in))
			if err != nil || n != len(tt.want) {
				t.Errorf("countMbox = %d, %v; want %d", n, err, len(tt.want))
			}
		})
	}
}

func TestMboxSkipsUnreadMessage(t *testing.T) {
	mr := newMboxReader(strings.NewReader("From a\nS: 1\n\nbody one\n\nFrom b\nS: 2\n"))
	r, _, err := mr.Next()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := r.Read(buf); err != nil { // read a little of message 1
		t.Fatal(err)
	}
	r, from, err := mr.Next()
	if err != nil || from != "From b" {
		t.Fatalf("Next = %q, %v", from, err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "S: 2\n" {
		t.Errorf("message 2 = %q", b)
	}
}

func TestMboxNotMbox(t *testing.T) {
	mr := newMboxReader(strings.NewReader("Subject: not an mbox\n\nbody\n"))
	_, _, err := mr.Next()
	if statusOf(err) != exitDataErr {
		t.Fatalf("Next on a non-mbox: %v (status %d), want EX_DATAERR", err, statusOf(err))
	}
}

func TestPrepareMessage(t *testing.T) {
	tests := []struct {
		name     string
		msg      string
		spec     envSpec
		wantFrom string
		wantTo   []string
		wantBody string // "" means the message less its Bcc lines
		wantErr  error
	}{
		{
			name:     "header",
			msg:      "From: a@x.org\nTo: b@x.org\nCc: c@x.org\nBcc: d@x.org\n\nhi\n",
			wantFrom: "a@x.org", wantTo: []string{"b@x.org", "c@x.org", "d@x.org"},
			wantBody: "From: a@x.org\nTo: b@x.org\nCc: c@x.org\n\nhi\n",
		},
		{
			name:    "no sender, no flag",
			msg:     "To: b@x.org\n\nhi\n",
			wantErr: envelope.ErrNoSender,
		},
		{
			name:     "no sender, --from",
			msg:      "To: b@x.org\nBcc: c@x.org\n\nhi\n",
			spec:     envSpec{from: "f@x.org", fromSet: true},
			wantFrom: "f@x.org", wantTo: []string{"b@x.org", "c@x.org"},
			wantBody: "To: b@x.org\n\nhi\n",
		},
		{
			name:    "no recipients, no flag",
			msg:     "From: a@x.org\n\nhi\n",
			wantErr: envelope.ErrNoRecipients,
		},
		{
			name:     "no recipients, --to",
			msg:      "From: a@x.org\nTo: undisclosed-recipients:;\n\nhi\n",
			spec:     envSpec{to: []string{"t@x.org"}},
			wantFrom: "a@x.org", wantTo: []string{"t@x.org"},
			wantBody: "From: a@x.org\nTo: undisclosed-recipients:;\n\nhi\n",
		},
		{
			name:     "neither, both flags",
			msg:      "Subject: s\nBcc: hidden@x.org\n\nhi\n",
			spec:     envSpec{from: "f@x.org", fromSet: true, to: []string{"t@x.org"}},
			wantFrom: "f@x.org", wantTo: []string{"t@x.org"},
			wantBody: "Subject: s\n\nhi\n",
		},
		{
			name:     "null sender flag",
			msg:      "To: b@x.org\n\nhi\n",
			spec:     envSpec{from: "", fromSet: true},
			wantFrom: "", wantTo: []string{"b@x.org"},
		},
		{
			name:    "malformed To, only --from",
			msg:     "From: a@x.org\nTo: root\n\nhi\n",
			spec:    envSpec{from: "f@x.org", fromSet: true},
			wantErr: envelope.ErrMalformed,
		},
		{
			name:     "malformed To, both flags: header not needed",
			msg:      "From: a@x.org\nTo: root\nBcc: x,\n y\nSubject: s\n\nhi\n",
			spec:     envSpec{from: "f@x.org", fromSet: true, to: []string{"t@x.org"}},
			wantFrom: "f@x.org", wantTo: []string{"t@x.org"},
			wantBody: "From: a@x.org\nTo: root\nSubject: s\n\nhi\n",
		},
		{
			name:     "malformed To, --to: sender from the header",
			msg:      "From: A <a@x.org>\nTo: root\nBcc: x\nSubject: s\n\nhi\n",
			spec:     envSpec{to: []string{"t@x.org"}},
			wantFrom: "a@x.org", wantTo: []string{"t@x.org"},
			wantBody: "From: A <a@x.org>\nTo: root\nSubject: s\n\nhi\n",
		},
		{
			name:     "malformed Cc, sendmail without -t: Sender from the header",
			msg:      "From: a@x.org\nSender: s@x.org\nTo: b@x.org\nCc: bad address here\n\nhi\n",
			spec:     envSpec{to: []string{"t@x.org"}, fallbackFrom: "me@host.example", hasFallback: true},
			wantFrom: "s@x.org", wantTo: []string{"t@x.org"},
		},
		{
			name:     "malformed Resent-To, --to: Resent-From",
			msg:      "From: a@x.org\nTo: b@x.org\nResent-Date: today\nResent-From: r@x.org\nResent-To: nobody\n\nhi\n",
			spec:     envSpec{to: []string{"t@x.org"}},
			wantFrom: "r@x.org", wantTo: []string{"t@x.org"},
		},
		{
			name:     "malformed To and From, sendmail without -t: the fallback",
			msg:      "From: not an address\nTo: root\n\nhi\n",
			spec:     envSpec{to: []string{"t@x.org"}, fallbackFrom: "me@host.example", hasFallback: true},
			wantFrom: "me@host.example", wantTo: []string{"t@x.org"},
		},
		{
			name:    "malformed From, only --to",
			msg:     "From: not an address\nTo: b@x.org\n\nhi\n",
			spec:    envSpec{to: []string{"t@x.org"}},
			wantErr: envelope.ErrMalformed,
		},
		{
			name:    "malformed To, no sender, only --to",
			msg:     "To: root\n\nhi\n",
			spec:    envSpec{to: []string{"t@x.org"}},
			wantErr: envelope.ErrNoSender,
		},
		{
			name:    "malformed To, sendmail -t",
			msg:     "From: a@x.org\nTo: root\n\nhi\n",
			spec:    envSpec{addTo: []string{"t@x.org"}, fallbackFrom: "me@host.example", hasFallback: true},
			wantErr: envelope.ErrMalformed,
		},
		{
			name:     "fallback sender",
			msg:      "To: b@x.org\n\nhi\n",
			spec:     envSpec{fallbackFrom: "me@host.example", hasFallback: true},
			wantFrom: "me@host.example", wantTo: []string{"b@x.org"},
		},
		{
			name:     "header sender wins over fallback",
			msg:      "From: a@x.org\nTo: b@x.org\n\nhi\n",
			spec:     envSpec{fallbackFrom: "me@host.example", hasFallback: true},
			wantFrom: "a@x.org", wantTo: []string{"b@x.org"},
		},
		{
			name:     "sendmail -t adds arguments",
			msg:      "From: a@x.org\nTo: b@x.org\n\nhi\n",
			spec:     envSpec{addTo: []string{"c@x.org", "B@x.org"}},
			wantFrom: "a@x.org", wantTo: []string{"b@x.org", "c@x.org"},
		},
		{
			name:     "Resent block without sender, --from",
			msg:      "From: a@x.org\nTo: b@x.org\nResent-To: r@x.org\nResent-Date: today\n\nhi\n",
			spec:     envSpec{from: "f@x.org", fromSet: true},
			wantFrom: "f@x.org", wantTo: []string{"r@x.org"},
		},
		{
			name:    "bare CR in header is never tolerated",
			msg:     "From: a@x.org\nTo: b@x.org\rBcc: c@x.org\n\nhi\n",
			spec:    envSpec{from: "f@x.org", fromSet: true, to: []string{"t@x.org"}},
			wantErr: envelope.ErrControlChar,
		},
		{
			name:    "bad flag address",
			msg:     "From: a@x.org\nTo: b@x.org\n\nhi\n",
			spec:    envSpec{to: []string{"not an address"}},
			wantErr: envelope.ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := prepareMessage(strings.NewReader(tt.msg), tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("prepareMessage: %v", err)
			}
			if m.env.From != tt.wantFrom {
				t.Errorf("From = %q, want %q", m.env.From, tt.wantFrom)
			}
			var to []string
			for _, r := range m.env.To {
				to = append(to, r.Addr)
			}
			if !slices.Equal(to, tt.wantTo) {
				t.Errorf("To = %q, want %q", to, tt.wantTo)
			}
			body, _ := io.ReadAll(m.body)
			want := tt.wantBody
			if want == "" {
				want = tt.msg
			}
			if string(body) != want {
				t.Errorf("body:\n got %q\nwant %q", body, want)
			}
		})
	}
}

func TestPrepareMessageLargeBodyNotBuffered(t *testing.T) {
	// The recorder keeps the header only: a large body passes through.
	body := strings.Repeat("0123456789abcdef\n", 1<<16) // 1 MiB
	msg := "Subject: s\n\n" + body
	m, err := prepareMessage(strings.NewReader(msg), envSpec{from: "f@x.org", fromSet: true, to: []string{"t@x.org"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(m.body)
	if string(got) != msg {
		t.Fatalf("body differs (%d bytes, want %d)", len(got), len(msg))
	}
	if len(m.header) != len("Subject: s\n\n") {
		t.Errorf("header = %q", m.header)
	}
}

func TestStripBccAndFields(t *testing.T) {
	h := []byte("From: a\r\nBCC: x,\r\n\ty\r\nSubject: s\r\nResent-Bcc: z\r\n\r\n")
	if got := string(stripBcc(h)); got != "From: a\r\nSubject: s\r\n\r\n" {
		t.Errorf("stripBcc = %q", got)
	}
	if !hasField(h, "subject") || hasField(h, "Date") || hasField(h, "y") {
		t.Error("hasField wrong")
	}
	if bt := bodyType([]byte("Content-Transfer-Encoding: 8bit\n\n")); bt != envelope.Body8BitMIME {
		t.Errorf("bodyType(8bit) = %q", bt)
	}
	if bt := bodyType([]byte("Subject: caf\xc3\xa9\n\n")); bt != envelope.Body8BitMIME {
		t.Errorf("bodyType(8-bit header) = %q", bt)
	}
	if bt := bodyType([]byte("Subject: x\n\n")); bt != "" {
		t.Errorf("bodyType(ascii) = %q", bt)
	}
}

func TestParseSendmailArgs(t *testing.T) {
	var warnings []string
	warn := func(f string, a ...any) { warnings = append(warnings, f) }
	o, err := parseSendmailArgs([]string{"-ti", "-oi", "-oem", "-odb", "-fme@x.org", "-F", "Full Name",
		"-N", "failure,delay", "-R", "hdrs", "-V", "env1", "-B8BITMIME", "-oQ/spool", "-bm", "-U",
		"--config=/etc/mw.yaml", "--", "a@x.org, <b@x.org>", "-c@x.org"}, warn)
	if err != nil {
		t.Fatal(err)
	}
	if !o.extract || o.from != "me@x.org" || !o.fromSet || o.fullName != "Full Name" ||
		o.ret != envelope.ReturnHeaders || o.envID != "env1" || o.body != envelope.Body8BitMIME ||
		o.config != "/etc/mw.yaml" || !slices.Equal(o.notify, []envelope.DSNNotify{envelope.NotifyFailure, envelope.NotifyDelay}) {
		t.Errorf("parsed %+v", o)
	}
	if !slices.Equal(o.rcpts, []string{"a@x.org", "b@x.org", "-c@x.org"}) {
		t.Errorf("rcpts = %q", o.rcpts)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings = %q, want one for -oQ", warnings)
	}
	o, err = parseSendmailArgs([]string{"-f", "<>", "x@y.org"}, warn)
	if err != nil || !o.fromSet || o.from != "" {
		t.Errorf("-f '<>': %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-bp"}, {"-q1h"}, {"-Z"}, {"-f"}, {"-N", "sometimes"}, {"--nope"}} {
		if _, err := parseSendmailArgs(bad, warn); statusOf(err) != exitUsage {
			t.Errorf("%q: err = %v, want a usage error", bad, err)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	to := new(stringList)
	fs.Var(to, "to", "")
	pos, err := parseInterspersed(fs, []string{"smtp://h", "--to", "a@b", "file", "--debug", "--", "--odd"})
	if err != nil {
		t.Fatal(err)
	}
	if !*debug || !slices.Equal(*to, []string{"a@b"}) || !slices.Equal(pos, []string{"smtp://h", "file", "--odd"}) {
		t.Errorf("debug %v, to %q, pos %q", *debug, *to, pos)
	}
}

func TestQueueID(t *testing.T) {
	for text, want := range map[string]string{
		"2.0.0 Ok: queued as 4C80F984091":                                      "4C80F984091",
		"OK id=1rABCd-0001xY-2Z":                                               "1rABCd-0001xY-2Z",
		"4AHCnQ8M012345 Message accepted for delivery":                         "4AHCnQ8M012345",
		"<a@b> [InternalId=1234567, Hostname=X.prod] Queued mail for delivery": "1234567",
		"Ok 0100018b2c3d4e5f-12345678-abcd-ef01-2345-6789abcdef01-000000":      "0100018b2c3d4e5f-12345678-abcd-ef01-2345-6789abcdef01-000000",
		"OK: queued":     "",
		"2.0.0 OK gsmtp": "",
	} {
		if got := queueID(text); got != want {
			t.Errorf("queueID(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestRcptStatus(t *testing.T) {
	rr := func(o transport.Outcome, code int, enh transport.EnhancedCode) transport.RcptResult {
		r := transport.RcptResult{Addr: "x@y", Outcome: o}
		if o != transport.Accepted {
			r.Err = &transport.ReplyError{Code: code, EnhancedCode: enh}
		}
		return r
	}
	for _, tt := range []struct {
		rcpts []transport.RcptResult
		want  int
	}{
		{[]transport.RcptResult{rr(transport.Accepted, 250, transport.EnhancedCode{}), rr(transport.PermFailed, 550, transport.EnhancedCode{5, 1, 1})}, exitNoUser},
		{[]transport.RcptResult{rr(transport.PermFailed, 550, transport.EnhancedCode{5, 7, 1}), rr(transport.PermFailed, 550, transport.EnhancedCode{5, 1, 1})}, exitUnavailable},
		{[]transport.RcptResult{rr(transport.TempFailed, 450, transport.EnhancedCode{4, 2, 0})}, exitTempFail},
		{[]transport.RcptResult{rr(transport.TempFailed, 450, transport.EnhancedCode{}), rr(transport.PermFailed, 554, transport.EnhancedCode{})}, exitUnavailable},
	} {
		if got := rcptStatus(&transport.Result{Rcpts: tt.rcpts}); got != tt.want {
			t.Errorf("rcptStatus(%v) = %d, want %d", tt.rcpts, got, tt.want)
		}
	}
	if worse(exitTempFail, exitUnavailable) != exitUnavailable || worse(exitNoPerm, exitTempFail) != exitNoPerm || worse(exitOK, exitTempFail) != exitTempFail {
		t.Error("worse() ordering")
	}
}

func TestExitCodeAllRecipientsRefused(t *testing.T) {
	rr := func(addr string, o transport.Outcome, code int, enh transport.EnhancedCode) transport.RcptResult {
		return transport.RcptResult{Addr: addr, Outcome: o, Err: &transport.ReplyError{Code: code, EnhancedCode: enh}}
	}
	temp := rr("later@x", transport.TempFailed, 450, transport.EnhancedCode{4, 2, 1})
	nouser := rr("nobody@x", transport.PermFailed, 550, transport.EnhancedCode{5, 1, 1})
	policy := rr("policy@x", transport.PermFailed, 550, transport.EnhancedCode{5, 7, 1})
	authReq := rr("auth@x", transport.PermFailed, 530, transport.EnhancedCode{5, 7, 0})
	for _, tt := range []struct {
		rcpts []transport.RcptResult
		want  int
	}{
		{[]transport.RcptResult{temp, nouser}, exitNoUser},
		{[]transport.RcptResult{nouser, temp}, exitNoUser},
		{[]transport.RcptResult{temp, policy}, exitUnavailable},
		{[]transport.RcptResult{temp}, exitTempFail},
		{[]transport.RcptResult{temp, authReq}, exitNoPerm},
	} {
		res := &transport.Result{Rcpts: tt.rcpts}
		// Every recipient refused: an *OpError at RCPT, as the SMTP
		// transport returns it.
		err := &transport.OpError{Op: transport.OpRcpt, Addr: "h:25", Err: res.Err()}
		if got := exitCode(res, err); got != tt.want {
			t.Errorf("all refused %v: exitCode = %d, want %d", tt.rcpts, got, tt.want)
		}
		// The same refusals beside an accepted recipient: Result.Err.
		res = &transport.Result{Rcpts: append([]transport.RcptResult{{Addr: "bob@x", Outcome: transport.Accepted}}, tt.rcpts...)}
		if got := exitCode(res, res.Err()); got != tt.want {
			t.Errorf("partly refused %v: exitCode = %d, want %d", tt.rcpts, got, tt.want)
		}
	}
	// A refused sender is not a refused recipient: 5.1.8 (bad sender
	// domain) is not EX_NOUSER.
	res := &transport.Result{Rcpts: []transport.RcptResult{{Addr: "b@x", Outcome: transport.PermFailed}}}
	mailErr := &transport.OpError{Op: transport.OpMail, Err: &transport.ReplyError{Code: 553, EnhancedCode: transport.EnhancedCode{5, 1, 8}}}
	res.Rcpts[0].Err = mailErr
	if got := exitCode(res, mailErr); got != exitUnavailable {
		t.Errorf("sender refused: exitCode = %d, want %d", got, exitUnavailable)
	}
}

// Each message of an mbox file can be read again from its place in the
// file, as the retry middleware needs it, and reads the same.
func TestMboxReopen(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than the reader's buffer
	in := "From a Mon Jan  1 00:00:00 2024\nSubject: 1\n\n>From escaped\n\nFrom not a separator\n\n\n" +
		"From b Mon Jan  1 00:00:01 2024 " + long + "\nSubject: 2\n\n" + long + "\n\n" +
		"From c Mon Jan  1 00:00:02 2024\r\nSubject: 3\r\n\r\nlast, no final newline"
	path := filepath.Join(t.TempDir(), "in.mbox")
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := openMbox(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want, _ := readAllMbox(t, in)
	for i := 0; ; i++ {
		sm, err := src.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d messages, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		first, err := io.ReadAll(sm.r)
		if err != nil || string(first) != want[i] {
			t.Fatalf("message %d: %q, %v", i+1, first, err)
		}
		for range 2 {
			rc, err := sm.reopen()
			if err != nil {
				t.Fatalf("message %d: reopen: %v", i+1, err)
			}
			again, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(again) != want[i] {
				t.Errorf("message %d read again:\n got %.200q, %v\nwant %.200q", i+1, again, err, want[i])
			}
		}
	}
	// A changed file is not read again.
	src2, _ := openMbox(path, nil)
	defer src2.Close()
	sm, _ := src2.Next()
	if err := os.WriteFile(path, []byte(in+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sm.reopen(); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("reopen of a changed mbox: %v", err)
	}
	// Standard input cannot be read again.
	src3, err := openMbox("-", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if sm, _ := src3.Next(); sm.reopen != nil {
		t.Error("a message of standard input has an opener")
	}
}

// Reading a message file again streams it: memory does not grow with its
// size, and Bcc fields are removed again.
func TestReopenableBodyStreams(t *testing.T) {
	const size = 32 << 20
	hdr := "From: a@x.org\nTo: b@x.org\nBcc: hidden@x.org\nSubject: big\n\n"
	path := filepath.Join(t.TempDir(), "big.eml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(hdr)
	line := strings.Repeat("0123456789abcdef", 4) + "\n"
	for n := len(hdr); n < size; n += len(line) {
		f.WriteString(line)
	}
	f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	spec := envSpec{}
	m, err := prepareMessage(in, spec)
	if err != nil {
		t.Fatal(err)
	}
	body := reopenable(m.body, fileOpener(path, fi), spec)
	ro, ok := body.(interface{ Reopen() (io.Reader, error) })
	if !ok {
		t.Fatal("the body of a file is not a retry.Reopener")
	}
	n1, err := io.Copy(io.Discard, body)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := ro.Reopen()
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	n2, err := io.Copy(io.Discard, r)
	n2 += int64(len(head))
	if err != nil {
		t.Fatal(err)
	}
	r.(io.Closer).Close()
	runtime.ReadMemStats(&after)
	if n1 != n2 || n1 != fi.Size()-int64(len("Bcc: hidden@x.org\n")) {
		t.Errorf("read %d bytes, then %d; want the file less its Bcc, %d", n1, n2, fi.Size()-int64(len("Bcc: hidden@x.org\n")))
	}
	if strings.Contains(string(head), "hidden") {
		t.Errorf("the Bcc field is sent again: %q", head)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a %d MiB message again allocated %d bytes", size>>20, alloc)
	}
	// Standard input has no opener: the body is the prepared one.
	if b := reopenable(m.body, fileOpener("-", nil), spec); b != m.body {
		t.Error("a body without an opener was wrapped")
	}
}
