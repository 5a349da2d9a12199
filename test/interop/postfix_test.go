package interop_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

// postfixMode is one way of reaching Postfix.
type postfixMode struct {
	name    string
	addr    func(*interoptest.Config) string
	sec     transport.Security
	auth    bool // AUTH PLAIN as alice
	wantTLS bool
}

var postfixModes = []postfixMode{
	{"plain-2525", func(c *interoptest.Config) string { return c.PostfixSMTP }, transport.Plaintext, false, false},
	{"opportunistic-2525", func(c *interoptest.Config) string { return c.PostfixSMTP }, transport.StartTLSOpportunistic, false, true},
	{"starttls-2525", func(c *interoptest.Config) string { return c.PostfixSMTP }, transport.StartTLS, false, true},
	{"submission-2587", func(c *interoptest.Config) string { return c.PostfixSubmission }, transport.StartTLS, true, true},
	{"smtps-2465", func(c *interoptest.Config) string { return c.PostfixSMTPS }, transport.ImplicitTLS, true, true},
}

// newPostfix returns an SMTP transport for mode, authenticating as alice
// when the mode needs it.
func newPostfix(t *testing.T, cfg *interoptest.Config, m postfixMode, debug io.Writer) *transport.SMTP {
	t.Helper()
	addr := m.addr(cfg)
	tr := &transport.SMTP{
		Addr:      addr,
		Security:  m.sec,
		TLSConfig: cfg.TLSConfig(),
		LocalName: ehloName,
		Debug:     debug,
	}
	if m.auth {
		a, err := auth.New("PLAIN", auth.Credentials{Username: cfg.Alice.Name, Password: cfg.Alice.Password, Host: hostOf(t, addr)})
		if err != nil {
			t.Fatal(err)
		}
		tr.Auth = a
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// plainPostfix returns a transport for Postfix on 2525 in clear.
func plainPostfix(t *testing.T, cfg *interoptest.Config, debug io.Writer) *transport.SMTP {
	return newPostfix(t, cfg, postfixModes[0], debug)
}

// bodyCase is message content that a client must deliver byte-exact.
type bodyCase struct {
	name    string
	subject string
	body    string
}

func bodyCases() []bodyCase {
	var large strings.Builder
	for i := 0; large.Len() < 300<<10; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&large, "line %d of a large body\r\n", i)
		case 1:
			fmt.Fprintf(&large, ".dotted line %d\n", i)
		case 2:
			fmt.Fprintf(&large, "%s\r\n", strings.Repeat("x", 900+i%98))
		default:
			fmt.Fprintf(&large, "bare CR %d\r", i)
		}
	}
	return []bodyCase{
		{"leading-dots", "dots", ".\r\n..\r\n.hidden line\r\n. space\r\n...\r\nplain\r\n.\r\nend\r\n"},
		{"bare-LF", "bare LF", "line one\nline two\n\n.dot after a bare LF\n..two dots\nend\n"},
		{"bare-CR", "bare CR", "alpha\rbeta\r.dot after a bare CR\rgamma\r\n"},
		{"CR-runs", "CR runs", "x\r\r\r\ny\r\r\n\r\r\nz\r\r\r"},
		{"998-octet-lines", "998", strings.Repeat("a", 998) + "\r\n" + "." + strings.Repeat("b", 997) + "\r\n" + strings.Repeat("c", 998) + "\r\n"},
		{"1000-octet-lines", "1000", strings.Repeat("d", 1000) + "\r\n" + strings.Repeat("e", 1000) + "\n"},
		{"8bit", "8-bit", "caf\xe9 na\xefve \xa0\xff\xfe\x80\r\n\xe9.\r\n.\xe9\r\n"},
		{"utf8", "Grüße aus Köln 😀", "Grüße aus Köln — 日本語のテキスト — emoji 😀\r\n.ßtarts with a dot\r\n"},
		{"empty", "empty body", ""},
		{"no-final-CRLF", "no final CRLF", "first line\r\nlast line without a line end"},
		{"ends-with-dot", "ends with a dot", "text\r\n."},
		{"mixed", "mixed endings", "a\r.b\n.c\r\n..d\n\r.e\r\n\r\n.\r\n"},
		{"large", "large", large.String()},
	}
}

// TestPostfixModes sends every body case through every Postfix mode and
// checks each arrives once, byte-exact apart from the headers Postfix adds.
func TestPostfixModes(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	for _, m := range postfixModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			var debug syncBuffer
			tr := newPostfix(t, cfg, m, &debug)
			ctx := testCtx(t, 2*time.Minute)

			// The session is what the mode promises.
			c, err := tr.Dial(ctx)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if got := c.TLSConnectionState() != nil; got != m.wantTLS {
				t.Errorf("TLS = %v, want %v", got, m.wantTLS)
			}
			if st := c.TLSConnectionState(); st != nil && st.Version < tls.VersionTLS12 {
				t.Errorf("TLS version %x, want 1.2 or later", st.Version)
			}
			wantMech := ""
			if m.auth {
				wantMech = "PLAIN"
			}
			if got := c.AuthMechanism(); got != wantMech {
				t.Errorf("AuthMechanism() = %q, want %q", got, wantMech)
			}
			if ok, _ := c.Extension("PIPELINING"); !ok {
				t.Error("Postfix did not advertise PIPELINING")
			}
			if ok, _ := c.Extension("CHUNKING"); !ok {
				t.Error("Postfix did not advertise CHUNKING")
			}
			if limit, ok := c.MaxMessageSize(); !ok || limit != cfg.PostfixSizeLimit {
				t.Errorf("MaxMessageSize() = %d, %v; want %d", limit, ok, cfg.PostfixSizeLimit)
			}
			if rep, err := c.Verify(ctx, alice); err != nil || rep == nil || (rep.Code != 250 && rep.Code != 252) {
				t.Errorf("Verify(%s) = %v, %v; want 250 or 252", alice, rep, err)
			}
			rep, err := c.Verify(ctx, cfg.UnknownRcpt)
			var re *transport.ReplyError
			if !errors.As(err, &re) || re.Code != 550 || rep == nil || rep.Code != 550 {
				t.Errorf("Verify(%s) = %v, %v; want 550", cfg.UnknownRcpt, rep, err)
			}
			if err := c.Noop(ctx); err != nil {
				t.Errorf("Noop after a refused VRFY: %v", err)
			}
			c.Close()
			t.Cleanup(func() {
				// After every Send of the mode: content is summarised in the
				// transcript, never written out.
				tr := debug.String()
				for _, s := range []string{"dot after a bare LF", "last line without a line end", "ßtarts with a dot"} {
					if strings.Contains(tr, s) {
						t.Errorf("the transcript holds message content %q", s)
					}
				}
				if !strings.Contains(tr, "<message data: ") {
					t.Errorf("the transcript does not summarise the message data")
				}
			})
			if m.sec == transport.Plaintext && debug.sentVerb("STARTTLS") {
				t.Error("Plaintext mode sent STARTTLS")
			}

			for _, bc := range bodyCases() {
				t.Run(bc.name, func(t *testing.T) {
					t.Parallel()
					id := marker(t)
					msg := message(id, alice, bc.subject, bc.body)
					res, err := tr.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg))
					if err != nil {
						t.Fatalf("Send: %v (%s)", err, rcptSummary(res))
					}
					checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Accepted, code: 250, attempts: 1}})
					if res.Reply == nil || res.Reply.Code != 250 {
						t.Errorf("final reply %v, want 250", res.Reply)
					}
					expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
				})
			}

			// A recipient refused with 5xx and one with 4xx among accepted
			// ones: outcomes exact, the accepted ones get one copy each.
			t.Run("partial-refusal", func(t *testing.T) {
				t.Parallel()
				testPartialRefusal(t, cfg, tr)
			})
		})
	}
}

func testPartialRefusal(t *testing.T, cfg *interoptest.Config, tr transport.Transport) {
	id := marker(t)
	alice, bob := cfg.Alice.Address(cfg.Domain), cfg.Bob.Address(cfg.Domain)
	rcpts := addrsOf(alice, cfg.RejectRcpt, bob, cfg.TempfailRcpt)
	msg := message(id, alice, "partial refusal", "to alice and bob only\r\n.\r\n")
	res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, rcpts...), bytes.NewReader(msg))
	checkResult(t, res, rcpts, []wantRcpt{
		{outcome: transport.Accepted, code: 250, attempts: 1},
		{outcome: transport.PermFailed, code: 550, enhanced: transport.EnhancedCode{5, 7, 1}, attempts: 1},
		{outcome: transport.Accepted, code: 250, attempts: 1},
		{outcome: transport.TempFailed, code: 450, enhanced: transport.EnhancedCode{4, 2, 0}, attempts: 1},
	})
	// The error is the Result's: one *RcptError per refused recipient.
	var merr *multierror.Error
	if !errors.As(err, &merr) || len(merr.Errors) != 2 {
		t.Fatalf("error %v (%T), want a multierror of 2 RcptErrors", err, err)
	}
	for i, want := range []struct {
		addr    string
		outcome transport.Outcome
		class   error
		code    int
	}{
		{cfg.RejectRcpt, transport.PermFailed, transport.ErrPermanent, 550},
		{cfg.TempfailRcpt, transport.TempFailed, transport.ErrTransient, 450},
	} {
		var re *transport.RcptError
		if !errors.As(merr.Errors[i], &re) {
			t.Errorf("error %d is %T, want *RcptError", i, merr.Errors[i])
			continue
		}
		if re.Rcpt != want.addr || re.Outcome != want.outcome || !errors.Is(re, want.class) {
			t.Errorf("error %d: %+v, want %s %v", i, re, want.addr, want.outcome)
		}
		var rep *transport.ReplyError
		if !errors.As(re, &rep) || rep.Code != want.code {
			t.Errorf("error %d: reply %v, want %d", i, rep, want.code)
		}
	}
	if got := res.Accepted(); !slices.Equal(got, []string{alice, bob}) {
		t.Errorf("Accepted() = %v", got)
	}
	expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
	expectDelivered(t, cfg.VirtualMaildir("bob"), id, msg)
	time.Sleep(settleTime)
	expectCount(t, cfg.VirtualMaildir("alice"), id, 1)
	expectCount(t, cfg.VirtualMaildir("bob"), id, 1)
}

// TestPostfixRequireAllRecipients: with all-or-nothing, one refused
// recipient means nothing is sent to anyone; the accepted recipients share
// the worst refusal's class (permanent if any refusal was).
func TestPostfixRequireAllRecipients(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	for _, chunking := range []bool{false, true} {
		for _, refused := range []struct {
			addr    string
			outcome transport.Outcome
			code    int
		}{
			{cfg.RejectRcpt, transport.PermFailed, 550},
			{cfg.TempfailRcpt, transport.TempFailed, 450},
		} {
			name := fmt.Sprintf("%s/%s", map[bool]string{false: "DATA", true: "BDAT"}[chunking], refused.addr)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var debug syncBuffer
				tr := plainPostfix(t, cfg, &debug)
				tr.RequireAllRecipients = true
				tr.DisableChunking = !chunking
				id := marker(t)
				rcpts := addrsOf(alice, refused.addr)
				msg := message(id, alice, "all or nothing", "never delivered\r\n")
				res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, rcpts...), bytes.NewReader(msg))
				if err == nil {
					t.Fatal("Send succeeded")
				}
				checkResult(t, res, rcpts, []wantRcpt{
					{outcome: refused.outcome},
					{outcome: refused.outcome, code: refused.code},
				})
				if !errors.Is(res.Rcpts[0].Err, transport.ErrNotAllAccepted) {
					t.Errorf("alice's error %v, want ErrNotAllAccepted", res.Rcpts[0].Err)
				}
				if res.Reply != nil {
					t.Errorf("final reply %v for a transaction that sent nothing", res.Reply)
				}
				interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
			})
		}
	}
}

// TestPostfixSenderRefused: a sender refused at MAIL fails the whole
// transaction at OpMail, permanently, for every recipient.
func TestPostfixSenderRefused(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	for _, chunking := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunking=%v", chunking), func(t *testing.T) {
			t.Parallel()
			tr := plainPostfix(t, cfg, nil)
			tr.DisableChunking = !chunking
			id := marker(t)
			alice, bob := cfg.Alice.Address(cfg.Domain), cfg.Bob.Address(cfg.Domain)
			msg := message(id, alice, "bad sender", "refused\r\n")
			res, err := tr.Send(testCtx(t, time.Minute), envelope.New(cfg.BadSender, alice, bob), bytes.NewReader(msg))
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpMail {
				t.Fatalf("error %v (%T), want *OpError at %s", err, err, transport.OpMail)
			}
			var re *transport.ReplyError
			if !errors.As(err, &re) || re.Code != 553 || re.EnhancedCode != (transport.EnhancedCode{5, 7, 1}) {
				t.Errorf("reply %v, want 553 5.7.1", re)
			}
			if !errors.Is(err, transport.ErrPermanent) || errors.Is(err, transport.ErrTransient) {
				t.Errorf("error %v not classified permanent only", err)
			}
			checkResult(t, res, addrsOf(alice, bob), []wantRcpt{{outcome: transport.PermFailed}, {outcome: transport.PermFailed}})
			// The session survives a refused sender: the next message goes.
			id2 := marker(t)
			msg2 := message(id2, alice, "after bad sender", "delivered\r\n")
			if _, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg2)); err != nil {
				t.Errorf("Send after the refused sender: %v", err)
			}
			expectDelivered(t, cfg.VirtualMaildir("alice"), id2, msg2)
			interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
			expectCount(t, cfg.VirtualMaildir("bob"), id, 0)
		})
	}
}

// TestPostfixSMTPUTF8 delivers to a recipient with a non-ASCII local part.
func TestPostfixSMTPUTF8(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	var debug syncBuffer
	tr := plainPostfix(t, cfg, &debug)
	id := marker(t)
	to := cfg.UTF8Address
	msg := message(id, to, "SMTPUTF8 für José", "Olá José, ça va? 😀\r\n")
	res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, to), bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkResult(t, res, addrsOf(to), []wantRcpt{{outcome: transport.Accepted, code: 250}})
	mailWithUTF8 := false
	for _, l := range debug.clientLines() {
		if strings.HasPrefix(l, "MAIL FROM:") && strings.Contains(l, " SMTPUTF8") {
			mailWithUTF8 = true
		}
	}
	if !mailWithUTF8 {
		t.Errorf("MAIL without SMTPUTF8; transcript:\n%s", debug.String())
	}
	got := expectDelivered(t, cfg.VirtualMaildir(cfg.UTF8User), id, msg)
	if !bytes.Contains(got, []byte(to)) {
		t.Errorf("delivered copy does not name %s in its added headers", to)
	}
}

// TestPostfixSizeLimit: a message over Postfix's SIZE limit is refused
// before MAIL, whether the size is declared or known from the body, and the
// session stays usable.
func TestPostfixSizeLimit(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	if cfg.PostfixSizeLimit <= 0 {
		t.Fatalf("POSTFIX_SIZE_LIMIT = %d", cfg.PostfixSizeLimit)
	}
	var debug syncBuffer
	tr := plainPostfix(t, cfg, &debug)
	ctx := testCtx(t, time.Minute)
	c, err := tr.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	alice := cfg.Alice.Address(cfg.Domain)
	id := marker(t)
	small := message(id, alice, "declared too large", "small body\r\n")
	big := append(message(id, alice, "too large", ""), bytes.Repeat([]byte("0123456789abcde\n"), int(cfg.PostfixSizeLimit/16)+1)...)
	// Under the limit as a file, over it on the wire: each LF line ending
	// becomes CRLF, and SIZE counts the wire (RFC 1870).
	lf := append(message(id, alice, "too large with CRLF", ""), bytes.Repeat([]byte("0123456789abcde\n"), int(cfg.PostfixSizeLimit/16)-1000)...)
	if int64(len(lf)) > cfg.PostfixSizeLimit {
		t.Fatalf("the LF body is %d bytes, over the limit already", len(lf))
	}
	wireSize := func(b []byte) int64 {
		return int64(len(b) + bytes.Count(b, []byte("\n")) - bytes.Count(b, []byte("\r\n")))
	}
	cases := []struct {
		name string
		env  *envelope.Envelope
		body []byte
		size int64
	}{
		{"declared", &envelope.Envelope{From: sender, To: []envelope.Recipient{{Addr: alice}}, Size: cfg.PostfixSizeLimit + 1}, small, cfg.PostfixSizeLimit + 1},
		{"known-from-body", envelope.New(sender, alice), big, wireSize(big)},
		{"lf-line-endings", envelope.New(sender, alice), lf, wireSize(lf)},
	}
	for _, tc := range cases {
		before := len(debug.clientLines())
		res, err := c.Send(ctx, tc.env, bytes.NewReader(tc.body))
		var se *transport.SizeError
		if !errors.As(err, &se) || se.Size != tc.size || se.Limit != cfg.PostfixSizeLimit {
			t.Errorf("%s: error %v, want a SizeError %d > %d", tc.name, err, tc.size, cfg.PostfixSizeLimit)
		}
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpEnvelope {
			t.Errorf("%s: error %v, want an *OpError at %s", tc.name, err, transport.OpEnvelope)
		}
		if !errors.Is(err, transport.ErrPermanent) {
			t.Errorf("%s: error %v is not permanent", tc.name, err)
		}
		checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.PermFailed}})
		if after := debug.clientLines()[before:]; len(after) != 0 {
			t.Errorf("%s: the client wrote %q after refusing the size", tc.name, after)
		}
	}
	// The session is intact and a message of known size declares it.
	id2 := marker(t)
	msg := message(id2, alice, "fits", "fits\r\n")
	if _, err := c.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg)); err != nil {
		t.Fatalf("Send after the size refusals: %v", err)
	}
	if !strings.Contains(debug.String(), "SIZE="+strconv.Itoa(len(msg))) {
		t.Errorf("MAIL did not declare SIZE=%d:\n%s", len(msg), debug.String())
	}
	expectDelivered(t, cfg.VirtualMaildir("alice"), id2, msg)
	interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
}

// TestPostfixDataAndBDAT sends the same bodies with DATA and with BDAT
// (Postfix offers CHUNKING): both arrive byte-identical.
func TestPostfixDataAndBDAT(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	for _, chunking := range []bool{false, true} {
		t.Run(map[bool]string{false: "DATA", true: "BDAT"}[chunking], func(t *testing.T) {
			t.Parallel()
			var debug syncBuffer
			tr := newPostfix(t, cfg, postfixModes[2], &debug) // STARTTLS
			tr.DisableChunking = !chunking
			ctx := testCtx(t, 2*time.Minute)
			msgs := make(map[string][]byte)
			var ids []string
			for _, bc := range bodyCases() {
				id := marker(t) + "-" + bc.name
				msg := message(id, alice, bc.subject, bc.body)
				if _, err := tr.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg)); err != nil {
					t.Fatalf("%s: Send: %v", bc.name, err)
				}
				msgs[id] = msg
				ids = append(ids, id)
			}
			if got, want := debug.sentVerb("BDAT"), chunking; got != want {
				t.Errorf("BDAT sent = %v, want %v", got, want)
			}
			if got, want := debug.sentVerb("DATA"), !chunking; got != want {
				t.Errorf("DATA sent = %v, want %v", got, want)
			}
			got := waitMaildirAll(t, cfg.VirtualMaildir("alice"), ids, deliveryTimeout)
			for _, id := range ids {
				if err := interoptest.CompareDelivered(got[id], normalize(msgs[id])); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}
		})
	}
}

// TestPostfixSmuggling sends every SMTP smuggling variant in message bodies:
// each message arrives whole, as one message, and the message hidden in it
// never arrives on its own.
func TestPostfixSmuggling(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice, bob := cfg.Alice.Address(cfg.Domain), cfg.Bob.Address(cfg.Domain)
	ends := []string{"\n.\n", "\n.\r\n", "\r.\r", "\r.\r\n", "\r\n.\n", "\r\n.\r", "\n.\r", "\r\n.\r\r\n", "\r\n\r.\r\n", ".\r\n"}
	for _, chunking := range []bool{false, true} {
		t.Run(map[bool]string{false: "DATA", true: "BDAT"}[chunking], func(t *testing.T) {
			t.Parallel()
			tr := plainPostfix(t, cfg, nil)
			tr.DisableChunking = !chunking
			ctx := testCtx(t, 2*time.Minute)
			msgs := make(map[string][]byte)
			var ids []string
			for i, end := range ends {
				id := fmt.Sprintf("%s-v%02d", marker(t), i)
				smuggled := "MAIL FROM:<smuggler@mailwire.test>\r\n" +
					"RCPT TO:<" + bob + ">\r\n" +
					"DATA\r\n" +
					"From: <smuggler@mailwire.test>\r\n" +
					"X-Smuggled: " + id + "\r\n" +
					"\r\nsmuggled body\r\n.\r\n"
				body := "first part of the message" + end + smuggled + "tail of the real message\r\n"
				msg := message(id, alice, "smuggling "+strconv.Quote(end), body)
				res, err := tr.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg))
				if err != nil {
					t.Fatalf("variant %q: Send: %v", end, err)
				}
				if res.Count(transport.Accepted) != 1 {
					t.Errorf("variant %q: %s", end, rcptSummary(res))
				}
				msgs[id] = msg
				ids = append(ids, id)
			}
			got := waitMaildirAll(t, cfg.VirtualMaildir("alice"), ids, deliveryTimeout)
			for i, id := range ids {
				if err := interoptest.CompareDelivered(got[id], normalize(msgs[id])); err != nil {
					t.Errorf("variant %q: %v", ends[i], err)
				}
			}
			time.Sleep(settleTime)
			for i, id := range ids {
				// One message holds the marker in alice's maildir (the whole
				// one), and none in bob's (where the smuggled one would go).
				expectCount(t, cfg.VirtualMaildir("alice"), "X-Test-ID: "+id+"\n", 1)
				if n := interoptest.MaildirCount(cfg.VirtualMaildir("bob"), "X-Smuggled: "+id); n != 0 {
					t.Errorf("variant %q: %d smuggled messages reached bob", ends[i], n)
				}
			}
		})
	}
}

// TestPostfixPooledReuse sends several messages through one SMTP value:
// one connection carries them all, pipelined, and each arrives once,
// byte-identical.
func TestPostfixPooledReuse(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice, bob := cfg.Alice.Address(cfg.Domain), cfg.Bob.Address(cfg.Domain)
	for _, chunking := range []bool{false, true} {
		t.Run(map[bool]string{false: "DATA", true: "BDAT"}[chunking], func(t *testing.T) {
			t.Parallel()
			var cc connCounter
			var debug syncBuffer
			tr := newPostfix(t, cfg, postfixModes[2], &debug) // STARTTLS
			tr.Dialer = cc.dialer()
			tr.DisableChunking = !chunking
			ctx := testCtx(t, 2*time.Minute)
			cases := bodyCases()
			msgs := make(map[string][]byte)
			var ids []string
			for i, bc := range cases {
				id := marker(t) + "-" + bc.name
				msg := message(id, alice, bc.subject, bc.body)
				rcpts := []string{alice}
				if i%3 == 0 {
					rcpts = append(rcpts, bob)
				}
				res, err := tr.Send(ctx, envelope.New(sender, rcpts...), bytes.NewReader(msg))
				if err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
				if res.Count(transport.Accepted) != len(rcpts) {
					t.Errorf("Send %d: %s", i, rcptSummary(res))
				}
				msgs[id] = msg
				ids = append(ids, id)
			}
			if n := cc.Opened(); n != 1 {
				t.Errorf("%d connections for %d sequential Sends, want 1", n, len(cases))
			}
			if n := strings.Count(debug.String(), "C: RSET"); n != 0 {
				t.Errorf("%d RSETs between successful transactions", n)
			}
			got := waitMaildirAll(t, cfg.VirtualMaildir("alice"), ids, deliveryTimeout)
			var bobIDs []string
			for i, id := range ids {
				if err := interoptest.CompareDelivered(got[id], normalize(msgs[id])); err != nil {
					t.Errorf("%s: %v", id, err)
				}
				if i%3 == 0 {
					bobIDs = append(bobIDs, id)
				}
			}
			gotBob := waitMaildirAll(t, cfg.VirtualMaildir("bob"), bobIDs, deliveryTimeout)
			for _, id := range bobIDs {
				if err := interoptest.CompareDelivered(gotBob[id], normalize(msgs[id])); err != nil {
					t.Errorf("bob %s: %v", id, err)
				}
			}
			tr.CloseIdleConnections()
			if n := cc.Open(); n != 0 {
				t.Errorf("%d connections open after CloseIdleConnections", n)
			}
			time.Sleep(settleTime)
			idx := maildirIndex(t, cfg.VirtualMaildir("alice"), ids)
			for _, id := range ids {
				if n := len(idx[id]); n != 1 {
					t.Errorf("%s: %d copies after settling", id, n)
				}
			}
		})
	}
}

// TestPostfixSendBatch sends 50 messages with SMTP.SendBatch (pooled and
// pipelined across transactions): done reports each once, in order, with
// exact outcomes, and each accepted message arrives once.
func TestPostfixSendBatch(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	for _, chunking := range []bool{false, true} {
		t.Run(map[bool]string{false: "DATA", true: "BDAT"}[chunking], func(t *testing.T) {
			t.Parallel()
			var cc connCounter
			tr := newPostfix(t, cfg, postfixModes[2], nil)
			tr.Dialer = cc.dialer()
			tr.DisableChunking = !chunking
			testBatch(t, cfg, 50, func(ctx context.Context, msgs iter.Seq[transport.Message], done func(int, *transport.Result, error)) error {
				return tr.SendBatch(ctx, msgs, done)
			})
			if n := cc.Opened(); n != 1 {
				t.Errorf("SendBatch used %d connections, want 1", n)
			}
		})
	}
	t.Run("Conn", func(t *testing.T) {
		t.Parallel()
		tr := newPostfix(t, cfg, postfixModes[0], nil)
		ctx := testCtx(t, 2*time.Minute)
		c, err := tr.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		testBatch(t, cfg, 30, c.SendBatch)
		if err := c.Noop(ctx); err != nil {
			t.Errorf("Noop after the batch: %v", err)
		}
	})
}

func testBatch(t *testing.T, cfg *interoptest.Config, n int, send func(context.Context, iter.Seq[transport.Message], func(int, *transport.Result, error)) error) {
	t.Helper()
	alice := cfg.Alice.Address(cfg.Domain)
	base := marker(t)
	type item struct {
		id    string
		msg   []byte
		rcpts []string
		want  []wantRcpt
	}
	items := make([]item, n)
	for i := range items {
		id := fmt.Sprintf("%s-%03d", base, i)
		it := item{id: id, rcpts: []string{alice}, want: []wantRcpt{{outcome: transport.Accepted, code: 250}}}
		switch {
		case i%10 == 3:
			it.rcpts = append(it.rcpts, cfg.RejectRcpt)
			it.want = append(it.want, wantRcpt{outcome: transport.PermFailed, code: 550})
		case i%10 == 7:
			it.rcpts = []string{cfg.TempfailRcpt, alice}
			it.want = []wantRcpt{{outcome: transport.TempFailed, code: 450}, {outcome: transport.Accepted, code: 250}}
		case i%17 == 5:
			// Every recipient refused: nothing is sent for this message.
			it.rcpts = []string{cfg.RejectRcpt}
			it.want = []wantRcpt{{outcome: transport.PermFailed, code: 550}}
		}
		it.msg = message(id, alice, fmt.Sprintf("batch %d", i), fmt.Sprintf("batch message %d\r\n.line %d\r\n", i, i))
		items[i] = it
	}
	seq := func(yield func(transport.Message) bool) {
		for _, it := range items {
			if !yield(transport.Message{Envelope: envelope.New(sender, it.rcpts...), Body: bytes.NewReader(it.msg)}) {
				return
			}
		}
	}
	var calls []int
	var mu sync.Mutex
	err := send(testCtx(t, 2*time.Minute), seq, func(i int, res *transport.Result, err error) {
		mu.Lock()
		calls = append(calls, i)
		mu.Unlock()
		if i < 0 || i >= n {
			t.Errorf("done(%d)", i)
			return
		}
		it := items[i]
		checkResult(t, res, it.rcpts, it.want)
		if accepted := res != nil && res.Count(transport.Accepted) == len(it.rcpts); accepted != (err == nil) {
			t.Errorf("message %d: error %v with %s", i, err, rcptSummary(res))
		}
	})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(calls) != n {
		t.Fatalf("done called %d times, want %d", len(calls), n)
	}
	for i, c := range calls {
		if c != i {
			t.Fatalf("done called with indices %v, want 0..%d in order", calls, n-1)
		}
	}
	var ids, none []string
	for _, it := range items {
		if slices.Contains(it.rcpts, alice) {
			ids = append(ids, it.id)
		} else {
			none = append(none, it.id)
		}
	}
	got := waitMaildirAll(t, cfg.VirtualMaildir("alice"), ids, deliveryTimeout)
	for _, it := range items {
		if m, ok := got[it.id]; ok {
			if err := interoptest.CompareDelivered(m, normalize(it.msg)); err != nil {
				t.Errorf("%s: %v", it.id, err)
			}
		}
	}
	time.Sleep(settleTime)
	idx := maildirIndex(t, cfg.VirtualMaildir("alice"), append(ids, none...))
	for _, id := range ids {
		if len(idx[id]) != 1 {
			t.Errorf("%s: %d copies, want 1", id, len(idx[id]))
		}
	}
	for _, id := range none {
		if len(idx[id]) != 0 {
			t.Errorf("%s: delivered although every recipient was refused", id)
		}
	}
}

// TestPostfixBadCertificates: each listener with a bad certificate or old
// TLS is refused with a TLS error before anything of the message is sent;
// the failure is neither transient nor permanent, so the retry middleware
// does not try again.
func TestPostfixBadCertificates(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	cases := []struct {
		name  string
		addr  string
		check func(error) bool
	}{
		{"untrusted", cfg.PostfixUntrustedCertSMTP, func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
		{"expired", cfg.PostfixExpiredCertSMTP, func(err error) bool {
			var ci x509.CertificateInvalidError
			return errors.As(err, &ci) && ci.Reason == x509.Expired
		}},
		{"wrong-host", cfg.PostfixWrongHostCertSMTP, func(err error) bool {
			var he x509.HostnameError
			return errors.As(err, &he)
		}},
		{"old-tls", cfg.PostfixOldTLSSMTP, func(err error) bool {
			return strings.Contains(err.Error(), "protocol version")
		}},
	}
	alice := cfg.Alice.Address(cfg.Domain)
	for _, tc := range cases {
		for _, sec := range []transport.Security{transport.StartTLS, transport.StartTLSOpportunistic} {
			t.Run(tc.name+"/"+sec.String(), func(t *testing.T) {
				t.Parallel()
				if tc.addr == "" {
					t.Fatalf("no address for the %s listener", tc.name)
				}
				var debug syncBuffer
				var cc connCounter
				tr := &transport.SMTP{Addr: tc.addr, Security: sec, TLSConfig: cfg.TLSConfig(), LocalName: ehloName, Debug: &debug, Dialer: cc.dialer()}
				t.Cleanup(func() { tr.Close() })
				rt := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(func(int) time.Duration { return 10 * time.Millisecond }))(tr)
				id := marker(t)
				msg := message(id, alice, "bad certificate", "must not be delivered\r\n")
				res, err := rt.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg))
				if err == nil {
					t.Fatal("Send succeeded")
				}
				var oe *transport.OpError
				if !errors.As(err, &oe) || oe.Op != transport.OpStartTLS {
					t.Errorf("error %v (%T), want an *OpError at %s", err, err, transport.OpStartTLS)
				}
				if !tc.check(err) {
					t.Errorf("error %v is not the expected TLS failure", err)
				}
				for _, class := range []error{transport.ErrTransient, transport.ErrPermanent, transport.ErrUnknownOutcome} {
					if errors.Is(err, class) {
						t.Errorf("TLS failure %v matches %v; a TLS failure must match no class", err, class)
					}
				}
				if n := cc.Opened(); n != 1 {
					t.Errorf("%d connections: the TLS failure was retried", n)
				}
				if res == nil || len(res.Rcpts) != 1 || res.Rcpts[0].Outcome == transport.Accepted || res.Rcpts[0].Outcome == transport.NotAttempted {
					t.Errorf("Result: %s", rcptSummary(res))
				}
				for _, verb := range []string{"MAIL", "RCPT", "DATA", "BDAT", "AUTH"} {
					if debug.sentVerb(verb) {
						t.Errorf("%s sent after the TLS failure:\n%s", verb, debug.String())
					}
				}
				interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
			})
		}
	}
}

// TestSinkStartTLSRequired: smtp-sink offers no STARTTLS, so a transport
// that requires it stops with a NotSupportedError before MAIL; an
// opportunistic one continues in clear.
func TestSinkStartTLSRequired(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	cfg.Require(t, "SINK_SMTP")
	alice := cfg.Alice.Address(cfg.Domain)
	msg := message(marker(t), alice, "sink", "to the sink\r\n")

	var debug syncBuffer
	tr := &transport.SMTP{Addr: cfg.SinkSMTP, Security: transport.StartTLS, TLSConfig: cfg.TLSConfig(), LocalName: ehloName, Debug: &debug}
	t.Cleanup(func() { tr.Close() })
	res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg))
	var ns *transport.NotSupportedError
	if !errors.As(err, &ns) || ns.Extension != "STARTTLS" {
		t.Fatalf("error %v (%T), want a NotSupportedError for STARTTLS", err, err)
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpStartTLS {
		t.Errorf("error %v, want an *OpError at %s", err, transport.OpStartTLS)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("error %v does not match errors.ErrUnsupported", err)
	}
	checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.PermFailed}})
	for _, verb := range []string{"STARTTLS", "MAIL", "RCPT", "DATA", "BDAT"} {
		if debug.sentVerb(verb) {
			t.Errorf("%s sent to a server without STARTTLS:\n%s", verb, debug.String())
		}
	}

	var debug2 syncBuffer
	opp := &transport.SMTP{Addr: cfg.SinkSMTP, Security: transport.StartTLSOpportunistic, TLSConfig: cfg.TLSConfig(), LocalName: ehloName, Debug: &debug2}
	t.Cleanup(func() { opp.Close() })
	res, err = opp.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("opportunistic Send to the sink: %v", err)
	}
	checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Accepted, code: 250}})
	if !debug2.sentVerb("DATA") || debug2.sentVerb("STARTTLS") {
		t.Errorf("opportunistic transcript:\n%s", debug2.String())
	}
}

// TestPostfixFromMessage derives the envelope from the header as smtplib's
// send_message does: To and Cc and Bcc receive it, and the Bcc field is not
// transmitted.
func TestPostfixFromMessage(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	tr := plainPostfix(t, cfg, nil)
	id := marker(t)
	alice, bob, carol := cfg.Alice.Address(cfg.Domain), cfg.Bob.Address(cfg.Domain), cfg.Carol.Address(cfg.Domain)
	head := "From: Interop Sender <" + sender + ">\r\n" +
		"To: Alice <" + alice + ">\r\n" +
		"Cc: " + bob + "\r\n" +
		"Bcc: Carol <" + carol + ">\r\n" +
		"Subject: from message\r\n" +
		"Message-ID: <" + id + "@mailwire.test>\r\n" +
		"X-Test-ID: " + id + "\r\n\r\n"
	body := "body with\r\n.a dot\r\n"
	env, stripped, err := envelope.FromMessage(strings.NewReader(head + body))
	if err != nil {
		t.Fatal(err)
	}
	if env.From != sender || len(env.To) != 3 {
		t.Fatalf("envelope %+v", env)
	}
	res, err := tr.Send(testCtx(t, time.Minute), env, stripped)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkResult(t, res, addrsOf(alice, bob, carol), []wantRcpt{{outcome: transport.Accepted}, {outcome: transport.Accepted}, {outcome: transport.Accepted}})
	want := []byte(strings.Replace(head, "Bcc: Carol <"+carol+">\r\n", "", 1) + body)
	for _, u := range []string{"alice", "bob", "carol"} {
		got := expectDelivered(t, cfg.VirtualMaildir(u), id, want)
		if bytes.Contains(got, []byte("Bcc:")) {
			t.Errorf("%s received the Bcc field", u)
		}
	}
}
