package transport_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

const foMsg = "From: alice@example.org\r\nSubject: failover\r\n\r\nhello\r\n"

func foEnv() *envelope.Envelope {
	return envelope.New("alice@example.org", "bob@example.org", "carol@example.org")
}

func foCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// foServer starts an smtptest server after setup (which may be nil) has
// set its hooks.
func foServer(t *testing.T, setup func(s *smtptest.Server)) *smtptest.Server {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.ErrorLog = log.New(io.Discard, "", 0)
	if setup != nil {
		setup(s)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// foDeadAddr returns a loopback address nothing listens on.
func foDeadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func foPlain(addr string) *transport.SMTP {
	return &transport.SMTP{Addr: addr, Security: transport.Plaintext, LocalName: "client.example"}
}

func foScript(t *testing.T, steps ...scripted.Step) *scripted.Server {
	t.Helper()
	s, err := scripted.Start(steps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func foReply(code int, enh transport.EnhancedCode, text string) error {
	return &transport.ReplyError{Code: code, EnhancedCode: enh, Message: text}
}

// foDeliveredOnce checks that exactly one of servers recorded the message,
// once, and returns it.
func foDeliveredOnce(t *testing.T, servers ...*smtptest.Server) *smtptest.Message {
	t.Helper()
	var got []smtptest.Message
	for _, s := range servers {
		got = append(got, s.Messages()...)
	}
	if len(got) != 1 {
		t.Fatalf("messages recorded across members = %d, want 1", len(got))
	}
	if string(got[0].Data) != foMsg {
		t.Errorf("data = %q, want %q", got[0].Data, foMsg)
	}
	return &got[0]
}

func foNothingDelivered(t *testing.T, servers ...*smtptest.Server) {
	t.Helper()
	for i, s := range servers {
		if n := len(s.Messages()); n != 0 {
			t.Errorf("server %d recorded %d messages, want none", i, n)
		}
	}
}

// foClasses returns which classes err matches, checking that it is at most
// one.
func foClasses(t *testing.T, err error) (transient, permanent, unknown bool) {
	t.Helper()
	transient = errors.Is(err, transport.ErrTransient)
	permanent = errors.Is(err, transport.ErrPermanent)
	unknown = errors.Is(err, transport.ErrUnknownOutcome)
	n := 0
	for _, b := range []bool{transient, permanent, unknown} {
		if b {
			n++
		}
	}
	if n > 1 {
		t.Errorf("err %v matches %d classes (transient %v, permanent %v, unknown %v), want at most one", err, n, transient, permanent, unknown)
	}
	return
}

func foAllOutcomes(t *testing.T, res *transport.Result, want transport.Outcome) {
	t.Helper()
	if res == nil || len(res.Rcpts) != 2 {
		t.Fatalf("Result = %+v, want 2 recipients", res)
	}
	for _, rr := range res.Rcpts {
		if rr.Outcome != want {
			t.Errorf("<%s>: outcome %v, want %v (err %v)", rr.Addr, rr.Outcome, want, rr.Err)
		}
	}
}

func TestFailoverDeadFirstAddress(t *testing.T) {
	backup := foServer(t, nil)
	f := transport.Failover(foPlain(foDeadAddr(t)), backup.Transport())
	res, err := f.Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
	if err != nil {
		t.Fatalf("Send err = %v, want nil", err)
	}
	foAllOutcomes(t, res, transport.Accepted)
	for _, rr := range res.Rcpts {
		if rr.Attempts != 2 {
			t.Errorf("<%s>: Attempts = %d, want 2 (one per member tried)", rr.Addr, rr.Attempts)
		}
	}
	if res.Reply == nil || res.Reply.Code != 250 {
		t.Errorf("Reply = %v, want the backup's 250", res.Reply)
	}
	m := foDeliveredOnce(t, backup)
	if got := strings.Join(m.To, ","); got != "bob@example.org,carol@example.org" {
		t.Errorf("recipients = %s", got)
	}
}

func TestFailoverGreetingRefused(t *testing.T) {
	for _, greeting := range []string{
		"421 4.3.2 too busy, try later",
		"554 5.3.2 no SMTP service here", // refuses service, not the message
	} {
		t.Run(greeting[:3], func(t *testing.T) {
			primary := foScript(t, scripted.Reply(greeting), scripted.WaitClose(5*time.Second))
			backup := foServer(t, nil)
			res, err := transport.Failover(foPlain(primary.Addr), backup.Transport()).
				Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
			if err != nil {
				t.Fatalf("Send err = %v, want nil", err)
			}
			foAllOutcomes(t, res, transport.Accepted)
			foDeliveredOnce(t, backup)
			if err := primary.Wait(5 * time.Second); err != nil {
				t.Error(err)
			}
			if got := primary.Received(); got != "" {
				t.Errorf("primary received %q after refusing at the greeting, want nothing", got)
			}
		})
	}
}

func TestFailoverBeforeMailAccepted(t *testing.T) {
	// A server without CHUNKING: the body is not read before the replies
	// to MAIL and RCPT, so even a body that cannot be rewound moves on.
	for name, last := range map[string][]scripted.Step{
		"connection lost": {scripted.Close()},
		"421":             {scripted.Reply("421 4.3.2 shutting down"), scripted.WaitClose(5 * time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			steps := []scripted.Step{
				scripted.Reply("220 primary ESMTP"), scripted.Expect("EHLO"),
				scripted.Reply("250-primary", "250 ENHANCEDSTATUSCODES"),
				scripted.Expect("MAIL FROM:<alice@example.org>"),
			}
			primary := foScript(t, append(steps, last...)...)
			backup := foServer(t, nil)
			res, err := transport.Failover(foPlain(primary.Addr), backup.Transport()).
				Send(foCtx(t), foEnv(), foOnlyReader{strings.NewReader(foMsg)})
			if err != nil {
				t.Fatalf("Send err = %v, want nil", err)
			}
			foAllOutcomes(t, res, transport.Accepted)
			foDeliveredOnce(t, backup)
			if err := primary.Wait(5 * time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFailoverTransientBeforeRecipients(t *testing.T) {
	tests := map[string]func(s *smtptest.Server){
		"421 at MAIL": func(s *smtptest.Server) {
			s.Mail = func(string, smtptest.MailOptions) error {
				return foReply(421, transport.EnhancedCode{4, 3, 2}, "shutting down")
			}
		},
		"451 at MAIL": func(s *smtptest.Server) {
			s.Mail = func(string, smtptest.MailOptions) error {
				return foReply(451, transport.EnhancedCode{4, 3, 0}, "local problem")
			}
		},
		"450 to every RCPT": func(s *smtptest.Server) {
			s.Rcpt = func(string, smtptest.RcptOptions) error {
				return foReply(450, transport.EnhancedCode{4, 2, 0}, "greylisted")
			}
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			primary := foServer(t, setup)
			backup := foServer(t, nil)
			res, err := transport.Failover(primary.Transport(), backup.Transport()).
				Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
			if err != nil {
				t.Fatalf("Send err = %v, want nil", err)
			}
			foAllOutcomes(t, res, transport.Accepted)
			foNothingDelivered(t, primary)
			foDeliveredOnce(t, backup)
		})
	}
}

func TestFailoverLMTPTransientForEveryRecipient(t *testing.T) {
	primary := foServer(t, func(s *smtptest.Server) {
		s.LMTP = true
		s.LMTPData = func(_ *smtptest.Message, rcpt string) error {
			return foReply(452, transport.EnhancedCode{4, 2, 2}, "mailbox full")
		}
	})
	t.Run("seekable body: moves on", func(t *testing.T) {
		backup := foServer(t, nil)
		res, err := transport.Failover(primary.LMTPTransport(), backup.Transport()).
			Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
		if err != nil {
			t.Fatalf("Send err = %v, want nil", err)
		}
		foAllOutcomes(t, res, transport.Accepted)
		foDeliveredOnce(t, backup)
	})
	t.Run("body not seekable: stops", func(t *testing.T) {
		backup := foServer(t, nil)
		res, err := transport.Failover(primary.LMTPTransport(), backup.Transport()).
			Send(foCtx(t), foEnv(), foOnlyReader{strings.NewReader(foMsg)})
		if transient, _, _ := foClasses(t, err); !transient {
			t.Errorf("err = %v, want transient", err)
		}
		foAllOutcomes(t, res, transport.TempFailed)
		foNothingDelivered(t, backup)
	})
}

func TestFailoverTLSFailureMovesOn(t *testing.T) {
	primary := smtptest.NewUnstartedServer()
	primary.Security = transport.ImplicitTLS
	primary.ErrorLog = log.New(io.Discard, "", 0)
	primary.Start()
	t.Cleanup(primary.Close)
	// A client that does not trust the primary's certificate.
	untrusting := &transport.SMTP{Addr: primary.Addr, Security: transport.ImplicitTLS,
		TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}}
	backup := foServer(t, nil)
	res, err := transport.Failover(untrusting, backup.Transport()).
		Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
	if err != nil {
		t.Fatalf("Send err = %v, want nil", err)
	}
	foAllOutcomes(t, res, transport.Accepted)
	foNothingDelivered(t, primary)
	foDeliveredOnce(t, backup)
}

func TestFailoverPartialSuccessStays(t *testing.T) {
	primary := foServer(t, func(s *smtptest.Server) {
		s.Rcpt = func(to string, _ smtptest.RcptOptions) error {
			if to == "carol@example.org" {
				return foReply(550, transport.EnhancedCode{5, 1, 1}, "no such user")
			}
			return nil
		}
	})
	backup := foServer(t, nil)
	res, err := transport.Failover(primary.Transport(), backup.Transport()).
		Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
	if err == nil {
		t.Fatal("Send err = nil, want carol's refusal")
	}
	var fe *transport.FailoverError
	if errors.As(err, &fe) {
		t.Errorf("err = %v, want the primary's Result.Err, not a FailoverError", err)
	}
	if want := res.Err(); err.Error() != want.Error() {
		t.Errorf("err = %v, want Result.Err() = %v", err, want)
	}
	var re *transport.RcptError
	if !errors.As(err, &re) || re.Rcpt != "carol@example.org" {
		t.Errorf("err = %v, want a RcptError for carol", err)
	}
	if res.Rcpts[0].Outcome != transport.Accepted || res.Rcpts[1].Outcome != transport.PermFailed {
		t.Errorf("outcomes %v, %v; want accepted, perm-failed", res.Rcpts[0].Outcome, res.Rcpts[1].Outcome)
	}
	m := foDeliveredOnce(t, primary, backup)
	if len(backup.Messages()) != 0 {
		t.Error("the backup got the message after a partial success")
	}
	if got := strings.Join(m.To, ","); got != "bob@example.org" {
		t.Errorf("primary's recipients = %s, want bob only", got)
	}
}

func TestFailoverPermanentFailureStays(t *testing.T) {
	tests := map[string]func(s *smtptest.Server){
		"550 at MAIL": func(s *smtptest.Server) {
			s.Mail = func(string, smtptest.MailOptions) error {
				return foReply(550, transport.EnhancedCode{5, 7, 1}, "sender refused")
			}
		},
		"550 to every RCPT": func(s *smtptest.Server) {
			s.Rcpt = func(string, smtptest.RcptOptions) error {
				return foReply(550, transport.EnhancedCode{5, 1, 1}, "no such user")
			}
		},
		"554 to the data": func(s *smtptest.Server) {
			s.Data = func(*smtptest.Message) error {
				return foReply(554, transport.EnhancedCode{5, 6, 0}, "content refused")
			}
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			primary := foServer(t, setup)
			backup := foServer(t, nil)
			res, err := transport.Failover(primary.Transport(), backup.Transport()).
				Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
			if transient, permanent, _ := foClasses(t, err); !permanent || transient {
				t.Fatalf("err = %v, want permanent only", err)
			}
			foAllOutcomes(t, res, transport.PermFailed)
			foNothingDelivered(t, primary, backup)
		})
	}
}

func TestFailoverInvalidEnvelopeStays(t *testing.T) {
	backup := foServer(t, nil)
	env := envelope.New("alice@example.org", "bob@example.org\r\nDATA", "carol@example.org", "dave@example.org")
	res, err := transport.Failover(foPlain(foDeadAddr(t)), backup.Transport()).
		Send(foCtx(t), env, strings.NewReader(foMsg))
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpEnvelope {
		t.Fatalf("err = %v, want an OpError at envelope", err)
	}
	if res == nil || len(res.Rcpts) != 3 {
		t.Fatalf("Result = %+v, want 3 recipients", res)
	}
	foNothingDelivered(t, backup)
}

func TestFailoverAfterDataStays(t *testing.T) {
	t.Run("451 to the data", func(t *testing.T) {
		primary := foServer(t, func(s *smtptest.Server) {
			s.Data = func(*smtptest.Message) error {
				return foReply(451, transport.EnhancedCode{4, 3, 0}, "try again")
			}
		})
		backup := foServer(t, nil)
		res, err := transport.Failover(primary.Transport(), backup.Transport()).
			Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
		if transient, _, _ := foClasses(t, err); !transient {
			t.Fatalf("err = %v, want transient", err)
		}
		var fe *transport.FailoverError
		if errors.As(err, &fe) {
			t.Errorf("err = %v, want the primary's error as it is", err)
		}
		foAllOutcomes(t, res, transport.TempFailed)
		foNothingDelivered(t, primary, backup)
	})

	t.Run("connection lost after the final dot", func(t *testing.T) {
		primary := foScript(t,
			scripted.Reply("220 primary ESMTP"), scripted.Expect("EHLO"),
			scripted.Reply("250-primary", "250-PIPELINING", "250 ENHANCEDSTATUSCODES"),
			scripted.Expect("MAIL"), scripted.Expect("RCPT"), scripted.Expect("RCPT"),
			scripted.Expect("DATA"),
			scripted.Reply("250 ok", "250 ok", "250 ok", "354 go"),
			scripted.ExpectData(), scripted.Close())
		backup := foServer(t, nil)
		res, err := transport.Failover(foPlain(primary.Addr), backup.Transport()).
			Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
		if _, _, unknown := foClasses(t, err); !unknown {
			t.Fatalf("err = %v, want ErrUnknownOutcome", err)
		}
		foAllOutcomes(t, res, transport.Unknown)
		foNothingDelivered(t, backup)
		if !strings.Contains(primary.Received(), "hello") {
			t.Error("the primary did not get the data")
		}
	})

	t.Run("connection lost after the final dot at a backup", func(t *testing.T) {
		second := foScript(t,
			scripted.Reply("220 second ESMTP"), scripted.Expect("EHLO"),
			scripted.Reply("250-second", "250 ENHANCEDSTATUSCODES"),
			scripted.Expect("MAIL"), scripted.Reply("250 ok"),
			scripted.Expect("RCPT"), scripted.Reply("250 ok"),
			scripted.Expect("RCPT"), scripted.Reply("250 ok"),
			scripted.Expect("DATA"), scripted.Reply("354 go"),
			scripted.ExpectData(), scripted.Close())
		third := foServer(t, nil)
		res, err := transport.Failover(foPlain(foDeadAddr(t)), foPlain(second.Addr), third.Transport()).
			Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
		if _, _, unknown := foClasses(t, err); !unknown {
			t.Fatalf("err = %v, want ErrUnknownOutcome", err)
		}
		var fe *transport.FailoverError
		if !errors.As(err, &fe) || fe.Index != 1 {
			t.Fatalf("err = %v, want a FailoverError ending at member 1", err)
		}
		foAllOutcomes(t, res, transport.Unknown)
		foNothingDelivered(t, third)
	})
}

func (m foMember) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	return m(ctx, env, msg)
}

// foMember is a member whose behaviour a test chooses.
type foMember func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error)

// foRefused returns a member-like answer: every recipient TempFailed by a
// refused connection, as a dead relay answers.
func foRefused(env *envelope.Envelope) (*transport.Result, error) {
	err := &transport.OpError{Op: transport.OpDial, Addr: "mx.invalid:25",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	res := &transport.Result{}
	for _, r := range env.To {
		res.Rcpts = append(res.Rcpts, transport.RcptResult{Addr: r.Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1})
	}
	return res, err
}

func TestFailoverAllFail(t *testing.T) {
	dead := foDeadAddr(t)
	greeting := foScript(t, scripted.Reply("421 4.3.2 too busy"), scripted.WaitClose(5*time.Second))
	mail := foServer(t, func(s *smtptest.Server) {
		s.Mail = func(string, smtptest.MailOptions) error {
			return foReply(421, transport.EnhancedCode{4, 3, 2}, "shutting down")
		}
	})
	res, err := transport.Failover(foPlain(dead), foPlain(greeting.Addr), mail.Transport()).
		Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
	if transient, _, _ := foClasses(t, err); !transient {
		t.Errorf("err = %v, want transient", err)
	}
	var fe *transport.FailoverError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *FailoverError", err, err)
	}
	if fe.Index != 2 || fe.Previous == nil || len(fe.Previous.Errors) != 2 {
		t.Fatalf("FailoverError = %+v, want Index 2 and two earlier answers", fe)
	}
	wantOps := []transport.Op{transport.OpDial, transport.OpGreeting}
	for i, e := range fe.Previous.Errors {
		pe, ok := e.(*transport.FailoverError)
		var oe *transport.OpError
		if !ok || pe.Index != i || !errors.As(pe.Err, &oe) || oe.Op != wantOps[i] {
			t.Errorf("Previous[%d] = %#v, want member %d's OpError at %s", i, e, i, wantOps[i])
		}
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpMail || oe.Addr != mail.Addr {
		t.Errorf("errors.As(err, *OpError) = %v, want the last member's, at mail", oe)
	}
	msg := err.Error()
	for _, want := range []string{
		"transport: failover: #0: transport: dial " + dead + ": ",
		"; #1: transport: greeting " + greeting.Addr + ": 421 4.3.2 too busy",
		"; #2: transport: mail " + mail.Addr + ": 421 4.3.2 shutting down",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("err = %q, want it to contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("err = %q, want one line", msg)
	}
	foAllOutcomes(t, res, transport.TempFailed)
	for _, rr := range res.Rcpts {
		if rr.Attempts != 3 {
			t.Errorf("<%s>: Attempts = %d, want 3", rr.Addr, rr.Attempts)
		}
	}
	foNothingDelivered(t, mail)
}

func TestFailoverClassifiedByLastAnswer(t *testing.T) {
	greet := func(line string) func(t *testing.T) transport.Transport {
		return func(t *testing.T) transport.Transport {
			return foPlain(foScript(t, scripted.Reply(line), scripted.WaitClose(5*time.Second)).Addr)
		}
	}
	dead := func(t *testing.T) transport.Transport { return foPlain(foDeadAddr(t)) }
	mail550 := func(t *testing.T) transport.Transport {
		return foServer(t, func(s *smtptest.Server) {
			s.Mail = func(string, smtptest.MailOptions) error {
				return foReply(550, transport.EnhancedCode{5, 7, 1}, "refused")
			}
		}).Transport()
	}
	tests := []struct {
		name                 string
		members              []func(t *testing.T) transport.Transport
		transient, permanent bool
		lastOutcome          transport.Outcome
	}{
		{"no service then busy", []func(t *testing.T) transport.Transport{greet("554 5.3.2 no service"), greet("421 4.3.2 busy")}, true, false, transport.TempFailed},
		{"busy then no service", []func(t *testing.T) transport.Transport{greet("421 4.3.2 busy"), greet("554 5.3.2 no service")}, false, true, transport.PermFailed},
		{"dead then sender refused", []func(t *testing.T) transport.Transport{dead, mail550}, false, true, transport.PermFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ts []transport.Transport
			for _, m := range tt.members {
				ts = append(ts, m(t))
			}
			res, err := transport.Failover(ts...).Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
			transient, permanent, unknown := foClasses(t, err)
			if transient != tt.transient || permanent != tt.permanent || unknown {
				t.Errorf("err = %v: transient %v, permanent %v, unknown %v; want %v, %v, false",
					err, transient, permanent, unknown, tt.transient, tt.permanent)
			}
			var fe *transport.FailoverError
			if !errors.As(err, &fe) || fe.Index != len(ts)-1 {
				t.Errorf("err = %v, want a FailoverError ending at the last member", err)
			}
			foAllOutcomes(t, res, tt.lastOutcome)
		})
	}
}

func TestFailoverContext(t *testing.T) {
	t.Run("cancelled between members", func(t *testing.T) {
		stop := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(foCtx(t))
		defer cancel(nil)
		first := foMember(func(ctx context.Context, env *envelope.Envelope, _ io.Reader) (*transport.Result, error) {
			cancel(stop)
			return foRefused(env)
		})
		backup := foServer(t, nil)
		res, err := transport.Failover(first, backup.Transport()).Send(ctx, foEnv(), strings.NewReader(foMsg))
		if !errors.Is(err, stop) {
			t.Errorf("err = %v, want the context's cause", err)
		}
		if transient, permanent, unknown := foClasses(t, err); transient || permanent || unknown {
			t.Errorf("err = %v matches a class; the caller's cancellation must match none", err)
		}
		var fe *transport.FailoverError
		var oe *transport.OpError
		if !errors.As(err, &fe) || fe.Index != 1 || !errors.As(err, &oe) || oe.Op != transport.OpDial {
			t.Errorf("err = %v, want a FailoverError whose member 1 answered at dial", err)
		}
		foAllOutcomes(t, res, transport.TempFailed)
		foNothingDelivered(t, backup)
	})

	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		primary, backup := foServer(t, nil), foServer(t, nil)
		res, err := transport.Failover(primary.Transport(), backup.Transport()).Send(ctx, foEnv(), strings.NewReader(foMsg))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		var fe *transport.FailoverError
		if errors.As(err, &fe) {
			t.Errorf("err = %v, want no FailoverError when no member was tried", err)
		}
		foAllOutcomes(t, res, transport.TempFailed)
		foNothingDelivered(t, primary, backup)
	})

	t.Run("member interrupted by the deadline", func(t *testing.T) {
		// The primary accepts the connection but never greets: the
		// deadline interrupts its dial, and Failover must not go on.
		primary := foScript(t, scripted.Stall(3*time.Second))
		backup := foServer(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := transport.Failover(foPlain(primary.Addr), backup.Transport()).Send(ctx, foEnv(), strings.NewReader(foMsg))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
		foNothingDelivered(t, backup)
	})
}

// foOnlyReader hides every method of its reader but Read.
type foOnlyReader struct{ r io.Reader }

func (r foOnlyReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func TestFailoverBodyRead(t *testing.T) {
	// A member that read some of the body (a signing middleware, say)
	// before its relay failed.
	first := foMember(func(_ context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		msg.Read(make([]byte, 7))
		return foRefused(env)
	})

	t.Run("not seekable: stops", func(t *testing.T) {
		backup := foServer(t, nil)
		res, err := transport.Failover(first, backup.Transport()).
			Send(foCtx(t), foEnv(), foOnlyReader{strings.NewReader(foMsg)})
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpDial {
			t.Errorf("err = %v, want the first member's dial error", err)
		}
		var fe *transport.FailoverError
		if errors.As(err, &fe) {
			t.Errorf("err = %v, want the first member's error as it is", err)
		}
		foAllOutcomes(t, res, transport.TempFailed)
		foNothingDelivered(t, backup)
	})

	t.Run("seekable: rewound", func(t *testing.T) {
		backup := foServer(t, nil)
		r := strings.NewReader("X-Skipped: by the caller\r\n" + foMsg)
		r.Seek(int64(len("X-Skipped: by the caller\r\n")), io.SeekStart)
		_, err := transport.Failover(first, backup.Transport()).Send(foCtx(t), foEnv(), r)
		if err != nil {
			t.Fatalf("Send err = %v, want nil", err)
		}
		foDeliveredOnce(t, backup) // from the offset the caller left, whole
	})

	t.Run("not seekable, not read: moves on", func(t *testing.T) {
		backup := foServer(t, nil)
		_, err := transport.Failover(foPlain(foDeadAddr(t)), backup.Transport()).
			Send(foCtx(t), foEnv(), foOnlyReader{strings.NewReader(foMsg)})
		if err != nil {
			t.Fatalf("Send err = %v, want nil", err)
		}
		foDeliveredOnce(t, backup)
	})

	t.Run("read during the data transfer: stops", func(t *testing.T) {
		// The connection is lost in the middle of the data: nothing was
		// delivered, but the data phase had begun.
		lost := foMember(func(_ context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
			msg.Read(make([]byte, 7))
			err := &transport.OpError{Op: transport.OpData, Addr: "mx.invalid:25", Err: io.ErrUnexpectedEOF}
			res := &transport.Result{}
			for _, r := range env.To {
				res.Rcpts = append(res.Rcpts, transport.RcptResult{Addr: r.Addr, Outcome: transport.TempFailed, Err: err, Attempts: 1})
			}
			return res, err
		})
		backup := foServer(t, nil)
		_, err := transport.Failover(lost, backup.Transport()).Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
		if transient, _, _ := foClasses(t, err); !transient {
			t.Errorf("err = %v, want transient", err)
		}
		foNothingDelivered(t, backup)
	})
}

func TestFailoverPassesSizeAndSeeker(t *testing.T) {
	var seeker bool
	var size int64
	first := foMember(func(_ context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		_, seeker = msg.(io.Seeker)
		size = env.Size
		return foRefused(env)
	})
	var declared int64
	backup := foServer(t, func(s *smtptest.Server) {
		s.Mail = func(_ string, o smtptest.MailOptions) error {
			declared = o.Size
			return nil
		}
	})
	env := foEnv()
	if _, err := transport.Failover(first, backup.Transport()).Send(foCtx(t), env, strings.NewReader(foMsg)); err != nil {
		t.Fatal(err)
	}
	if !seeker {
		t.Error("members did not get an io.Seeker for a *strings.Reader")
	}
	if size != int64(len(foMsg)) || declared != int64(len(foMsg)) {
		t.Errorf("declared size %d to the first, SIZE=%d to the backup; want %d", size, declared, len(foMsg))
	}
	if env.Size != 0 {
		t.Errorf("the caller's envelope was modified: Size = %d", env.Size)
	}
	foDeliveredOnce(t, backup)
}

// foIdle counts CloseIdleConnections calls.
type foIdle struct {
	transport.Func
	closed int
}

func (t *foIdle) CloseIdleConnections() { t.closed++ }

type foWrapper struct{ next transport.Transport }

func (w foWrapper) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
	return w.next.Send(ctx, env, msg)
}

func (w foWrapper) Unwrap() transport.Transport { return w.next }

func TestFailoverCloseIdleConnections(t *testing.T) {
	a, b := &foIdle{}, &foIdle{}
	plain := transport.Func(func(context.Context, *envelope.Envelope, io.Reader) (*transport.Result, error) {
		return nil, nil
	})
	f := transport.Failover(a, plain, foWrapper{next: b})
	if _, ok := f.(transport.IdleCloser); !ok {
		t.Fatal("Failover's Transport is not an IdleCloser")
	}
	transport.CloseIdleConnections(f)
	if a.closed != 1 || b.closed != 1 {
		t.Errorf("CloseIdleConnections reached the members %d and %d times, want 1 and 1", a.closed, b.closed)
	}
	u, ok := f.(interface{ Unwrap() []transport.Transport })
	if !ok {
		t.Fatal("Failover's Transport has no Unwrap() []Transport")
	}
	members := u.Unwrap()
	if len(members) != 3 || members[0] != transport.Transport(a) {
		t.Errorf("Unwrap() = %v, want the three members", members)
	}
	members[0] = nil
	if u.Unwrap()[0] == nil {
		t.Error("Unwrap returned the Failover's own slice")
	}
}

func TestFailoverPanics(t *testing.T) {
	for name, ts := range map[string][]transport.Transport{
		"none": nil,
		"nil":  {foPlain("127.0.0.1:1"), nil},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Failover did not panic")
				}
			}()
			transport.Failover(ts...)
		})
	}
}

func TestFailoverNilEnvelope(t *testing.T) {
	res, err := transport.Failover(foPlain(foDeadAddr(t))).Send(foCtx(t), nil, strings.NewReader(foMsg))
	var oe *transport.OpError
	if res != nil || !errors.As(err, &oe) || oe.Op != transport.OpEnvelope || !errors.Is(err, transport.ErrPermanent) {
		t.Errorf("Send(nil envelope) = %v, %v; want nil and a permanent OpError at envelope", res, err)
	}
}

func TestFailoverErrorFormat(t *testing.T) {
	e := &transport.FailoverError{Index: 1, Err: errors.New("b")}
	if got, want := e.Error(), "#1: b"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestFailoverNonSeekableBodyAfterMailRefusal: a body that cannot be
// rewound is held back until the envelope is accepted, so a 4yz to MAIL on
// a CHUNKING and PIPELINING server still moves on.
func TestFailoverNonSeekableBodyAfterMailRefusal(t *testing.T) {
	primary := smtptest.NewUnstartedServer()
	primary.Mail = func(string, smtptest.MailOptions) error {
		return &transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 3, 0}, Message: "try elsewhere"}
	}
	primary.Start()
	defer primary.Close()
	backup := smtptest.NewServer()
	defer backup.Close()
	f := transport.Failover(primary.Transport(), backup.Transport())
	defer transport.CloseIdleConnections(f)
	body := io.MultiReader(strings.NewReader("Subject: x\r\n\r\nnot seekable\r\n"))
	res, err := f.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), body)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Rcpts[0].Outcome != transport.Accepted || len(backup.Messages()) != 1 || len(primary.Messages()) != 0 {
		t.Errorf("outcome %v, backup %d, primary %d", res.Rcpts[0].Outcome, len(backup.Messages()), len(primary.Messages()))
	}
}

// A member's own deadline (a Timeout around it) is a failure like a lost
// connection: with nothing sent, the next member tries. The caller's
// deadline still ends the failover.
func TestFailoverMemberDeadlineMovesOn(t *testing.T) {
	// A server that accepts the connection and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silent := foPlain(ln.Addr().String())
	defer silent.Close()
	bounded := transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		return silent.Send(ctx, env, msg)
	})
	backup := foServer(t, nil)
	res, err := transport.Failover(bounded, backup.Transport()).Send(foCtx(t), foEnv(), strings.NewReader(foMsg))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Count(transport.Accepted) != 2 {
		t.Errorf("result %+v", res)
	}
	foDeliveredOnce(t, backup)
}

// The size declared through Failover is the size on the wire (LF line
// endings become CRLF), as the SMTP transport alone declares it; for a
// buffer too.
func TestFailoverDeclaresTheWireSize(t *testing.T) {
	body := strings.Repeat("a line with an LF ending\n", 50)
	for name, msg := range map[string]func() io.Reader{
		"seeker": func() io.Reader { return strings.NewReader(body) },
		"buffer": func() io.Reader { return bytes.NewBufferString(body) },
	} {
		t.Run(name, func(t *testing.T) {
			s := foServer(t, nil)
			if _, err := transport.Failover(s.Transport()).Send(foCtx(t), foEnv(), msg()); err != nil {
				t.Fatal(err)
			}
			got := s.Messages()[0]
			if got.MailOptions.Size != int64(len(got.Data)) || len(got.Data) != len(body)+50 {
				t.Errorf("SIZE=%d for %d bytes of data, want %d", got.MailOptions.Size, len(got.Data), len(body)+50)
			}
		})
	}
}

// reopenBody is a body that can be reopened, as the retry middleware's
// ReopenFunc bodies are.
type reopenBody struct {
	io.Reader
	text   string
	opened int
}

func (b *reopenBody) Reopen() (io.Reader, error) {
	b.opened++
	return strings.NewReader(b.text), nil
}

// A body that can be reopened stays so for the members (a retry middleware
// inside one reopens it), and Failover itself reopens it to move on after
// a member read some of it.
func TestFailoverKeepsReopen(t *testing.T) {
	body := &reopenBody{Reader: strings.NewReader(foMsg), text: foMsg}
	var reopened bool
	first := foMember(func(_ context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
		ro, ok := msg.(interface{ Reopen() (io.Reader, error) })
		if ok {
			r, err := ro.Reopen()
			reopened = err == nil && r != nil
		}
		io.CopyN(io.Discard, msg, 5) // read some, then fail before any data went out
		return foRefused(env)
	})
	backup := foServer(t, nil)
	if _, err := transport.Failover(first, backup.Transport()).Send(foCtx(t), foEnv(), body); err != nil {
		t.Fatal(err)
	}
	if !reopened {
		t.Error("the member got no Reopen method")
	}
	if body.opened != 2 {
		t.Errorf("body reopened %d times, want 2 (by the member, then by Failover to move on)", body.opened)
	}
	foDeliveredOnce(t, backup)
}
