package interop_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/transport"
)

// lmtpTarget is one way of reaching Dovecot's LMTP service.
type lmtpTarget struct {
	name    string
	network string
	addr    func(*interoptest.Config) string
	tls     bool
}

var lmtpTargets = []lmtpTarget{
	{"unix", "unix", func(c *interoptest.Config) string { return c.DovecotLMTPSocket }, false},
	{"tcp", "tcp", func(c *interoptest.Config) string { return c.DovecotLMTPTCP }, false},
	{"tcp-starttls", "tcp", func(c *interoptest.Config) string { return c.DovecotLMTPTCP }, true},
}

func newLMTP(t *testing.T, cfg *interoptest.Config, lt lmtpTarget, debug *syncBuffer) *transport.LMTP {
	t.Helper()
	tr := &transport.LMTP{Network: lt.network, Addr: lt.addr(cfg), LocalName: ehloName, RequireTLS: lt.tls, TLSConfig: cfg.TLSConfig()}
	if debug != nil {
		tr.Debug = debug
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// lmtpAddr returns user's address in the LMTP domain.
func lmtpAddr(cfg *interoptest.Config, user string) string { return user + "@" + cfg.LMTPDomain }

func lmtpMaildir(cfg *interoptest.Config, user string) string {
	return cfg.DovecotMaildir(cfg.LMTPDomain, user)
}

// unknownLocal is the local part of the env's unknown recipient.
func unknownLocal(cfg *interoptest.Config) string {
	local, _, _ := strings.Cut(cfg.UnknownRcpt, "@")
	return local
}

// bigBody returns a body of more than 2 KiB, over the quota user's limit,
// with content that needs care on the wire.
func bigBody() string {
	var b strings.Builder
	for i := 0; b.Len() < 3<<10; i++ {
		fmt.Fprintf(&b, "line %d: Grüße, with a bare LF next\n.dot line %d\r\nbare CR\r", i, i)
	}
	b.WriteString("end without a line end")
	return b.String()
}

// TestLMTPPerRecipient sends a message over 1 KiB to three recipients: one
// accepted, one unknown (550 at RCPT) and one over quota (552 after DATA).
// The accepted one receives it byte-identical and the Result names exactly
// who failed with which code.
func TestLMTPPerRecipient(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	for _, lt := range lmtpTargets {
		t.Run(lt.name, func(t *testing.T) {
			t.Parallel()
			var debug syncBuffer
			tr := newLMTP(t, cfg, lt, &debug)
			id := marker(t)
			alice, nobody, dave := lmtpAddr(cfg, "alice"), lmtpAddr(cfg, unknownLocal(cfg)), lmtpAddr(cfg, cfg.QuotaUser)
			rcpts := addrsOf(alice, nobody, dave)
			msg := message(id, alice, "LMTP per recipient", bigBody())
			if len(msg) <= 2<<10 {
				t.Fatalf("message of %d bytes is not over the quota", len(msg))
			}
			res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, rcpts...), bytes.NewReader(msg))
			checkResult(t, res, rcpts, []wantRcpt{
				{outcome: transport.Accepted, code: 250, attempts: 1},
				{outcome: transport.PermFailed, code: 550, enhanced: transport.EnhancedCode{5, 1, 1}, attempts: 1},
				{outcome: transport.PermFailed, code: 552, enhanced: transport.EnhancedCode{5, 2, 2}, attempts: 1},
			})
			if res != nil && res.Reply != nil {
				t.Errorf("LMTP Result.Reply = %v, want nil (each recipient has its own)", res.Reply)
			}
			// A partial success is not a whole failure: the error lists the
			// two refused recipients.
			var oe *transport.OpError
			if errors.As(err, &oe) {
				t.Errorf("partial success reported as a whole failure: %v", err)
			}
			var merr *multierror.Error
			if !errors.As(err, &merr) || len(merr.Errors) != 2 {
				t.Fatalf("error %v, want 2 RcptErrors", err)
			}
			for i, want := range []string{nobody, dave} {
				var re *transport.RcptError
				if !errors.As(merr.Errors[i], &re) || re.Rcpt != want || re.Outcome != transport.PermFailed {
					t.Errorf("error %d = %v, want a permanent RcptError for %s", i, merr.Errors[i], want)
				}
			}
			if lt.tls && !strings.Contains(debug.String(), "C: STARTTLS") {
				t.Errorf("RequireTLS without STARTTLS:\n%s", debug.String())
			}
			if !debug.sentVerb("LHLO") {
				t.Errorf("no LHLO:\n%s", debug.String())
			}
			expectDelivered(t, lmtpMaildir(cfg, "alice"), id, msg)
			time.Sleep(settleTime)
			expectCount(t, lmtpMaildir(cfg, "alice"), id, 1)
			expectCount(t, lmtpMaildir(cfg, cfg.QuotaUser), id, 0)
			expectCount(t, lmtpMaildir(cfg, unknownLocal(cfg)), id, 0)
		})
	}
}

// TestLMTPTwoTransactions sends two messages over one LMTP session.
func TestLMTPTwoTransactions(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	for _, lt := range lmtpTargets[:2] {
		t.Run(lt.name, func(t *testing.T) {
			t.Parallel()
			var cc connCounter
			tr := newLMTP(t, cfg, lt, nil)
			tr.Dialer = cc.dialer()
			ctx := testCtx(t, time.Minute)
			c, err := tr.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ok, _ := c.Extension("PIPELINING"); !ok {
				t.Error("Dovecot LMTP did not advertise PIPELINING")
			}
			alice, bob, carol := lmtpAddr(cfg, "alice"), lmtpAddr(cfg, "bob"), lmtpAddr(cfg, "carol")
			id1, id2 := marker(t), marker(t)
			msg1 := message(id1, alice, "first", "first transaction\r\n.\r\n")
			msg2 := message(id2, bob, "second", "second transaction\nbare LF\n")
			res, err := c.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg1))
			if err != nil {
				t.Fatalf("first Send: %v", err)
			}
			checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Accepted, code: 250}})
			if err := c.Noop(ctx); err != nil {
				t.Errorf("Noop between transactions: %v", err)
			}
			res, err = c.Send(ctx, envelope.New(sender, bob, carol), bytes.NewReader(msg2))
			if err != nil {
				t.Fatalf("second Send: %v", err)
			}
			checkResult(t, res, addrsOf(bob, carol), []wantRcpt{{outcome: transport.Accepted, code: 250}, {outcome: transport.Accepted, code: 250}})
			if n := cc.Opened(); n != 1 {
				t.Errorf("%d connections for two transactions on one Conn", n)
			}
			expectDelivered(t, lmtpMaildir(cfg, "alice"), id1, msg1)
			expectDelivered(t, lmtpMaildir(cfg, "bob"), id2, msg2)
			expectDelivered(t, lmtpMaildir(cfg, "carol"), id2, msg2)
			expectCount(t, lmtpMaildir(cfg, "alice"), id2, 0)
		})
	}
}

// TestLMTPPooled sends several messages through one LMTP value: the pooled
// connection is reused and each message arrives once.
func TestLMTPPooled(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	var cc connCounter
	tr := newLMTP(t, cfg, lmtpTargets[0], nil)
	tr.Dialer = cc.dialer()
	ctx := testCtx(t, time.Minute)
	alice := lmtpAddr(cfg, "alice")
	var ids []string
	msgs := map[string][]byte{}
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("%s-%d", marker(t), i)
		msg := message(id, alice, "pooled LMTP", fmt.Sprintf("message %d\r\n", i))
		if _, err := tr.Send(ctx, envelope.New(sender, alice), bytes.NewReader(msg)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		ids = append(ids, id)
		msgs[id] = msg
	}
	if n := cc.Opened(); n != 1 {
		t.Errorf("%d connections for 5 sequential Sends, want 1", n)
	}
	got := waitMaildirAll(t, lmtpMaildir(cfg, "alice"), ids, deliveryTimeout)
	for _, id := range ids {
		if err := interoptest.CompareDelivered(got[id], normalize(msgs[id])); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// TestLMTPRefusals: refusals that come before any byte of the message.
func TestLMTPRefusals(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := lmtpAddr(cfg, "alice")

	t.Run("all-recipients-unknown", func(t *testing.T) {
		t.Parallel()
		var debug syncBuffer
		tr := newLMTP(t, cfg, lmtpTargets[0], &debug)
		rcpts := addrsOf(lmtpAddr(cfg, unknownLocal(cfg)), lmtpAddr(cfg, "nobody-else"))
		res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, rcpts...), bytes.NewReader(message(marker(t), rcpts[0], "x", "x\r\n")))
		if err == nil {
			t.Fatal("Send succeeded")
		}
		checkResult(t, res, rcpts, []wantRcpt{{outcome: transport.PermFailed, code: 550}, {outcome: transport.PermFailed, code: 550}})
		if debug.sentVerb("DATA") {
			t.Errorf("DATA sent although no recipient was accepted:\n%s", debug.String())
		}
	})

	t.Run("SMTPUTF8-not-offered", func(t *testing.T) {
		t.Parallel()
		var debug syncBuffer
		tr := newLMTP(t, cfg, lmtpTargets[0], &debug)
		to := "josé@" + cfg.LMTPDomain
		id := marker(t)
		res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, alice, to), bytes.NewReader(message(id, alice, "utf8", "x\r\n")))
		var ns *transport.NotSupportedError
		if !errors.As(err, &ns) || ns.Extension != "SMTPUTF8" {
			t.Fatalf("error %v, want a NotSupportedError for SMTPUTF8", err)
		}
		checkResult(t, res, addrsOf(alice, to), []wantRcpt{{outcome: transport.PermFailed}, {outcome: transport.PermFailed}})
		if debug.sentVerb("MAIL") {
			t.Errorf("MAIL sent without SMTPUTF8 support:\n%s", debug.String())
		}
		interoptest.AssertNoMaildir(t, lmtpMaildir(cfg, "alice"), id, settleTime)
	})

	t.Run("LMTP-to-SMTP-server", func(t *testing.T) {
		t.Parallel()
		tr := &transport.LMTP{Addr: cfg.PostfixSMTP, LocalName: ehloName}
		t.Cleanup(func() { tr.Close() })
		id := marker(t)
		a := cfg.Alice.Address(cfg.Domain)
		res, err := tr.Send(testCtx(t, time.Minute), envelope.New(sender, a), bytes.NewReader(message(id, a, "lmtp to smtp", "x\r\n")))
		var ns *transport.NotSupportedError
		if !errors.As(err, &ns) || ns.Extension != "LMTP" {
			t.Fatalf("error %v, want a NotSupportedError for LMTP", err)
		}
		var oe *transport.OpError
		if !errors.As(err, &oe) || oe.Op != transport.OpHello {
			t.Errorf("error %v, want an *OpError at %s", err, transport.OpHello)
		}
		checkResult(t, res, addrsOf(a), []wantRcpt{{outcome: transport.PermFailed}})
		interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, settleTime)
	})
}

// listen421 starts a listener that greets every connection with 421 and
// closes it; it returns its address and a counter of connections.
func listen421(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("421 4.3.2 try another\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String(), &n
}

// TestFailover tries a dead address, then a server that answers 421, before
// real servers: the message is delivered exactly once, and a refusal by a
// real server never moves on to the next member.
func TestFailover(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	smtp := func(addr string, cc *connCounter) *transport.SMTP {
		tr := &transport.SMTP{Addr: addr, Security: transport.Plaintext, LocalName: ehloName}
		if cc != nil {
			tr.Dialer = cc.dialer()
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}

	t.Run("dead-first", func(t *testing.T) {
		t.Parallel()
		var cc connCounter
		f := transport.Failover(smtp(deadAddr(t), nil), smtp(cfg.PostfixSMTP, &cc))
		id := marker(t)
		msg := message(id, alice, "failover dead", "via the second member\r\n")
		res, err := f.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Accepted, code: 250, attempts: 2}})
		if n := cc.Opened(); n != 1 {
			t.Errorf("second member dialed %d times", n)
		}
		expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
		time.Sleep(settleTime)
		expectCount(t, cfg.VirtualMaildir("alice"), id, 1)
	})

	t.Run("421-first", func(t *testing.T) {
		t.Parallel()
		addr, n421 := listen421(t)
		f := transport.Failover(smtp(addr, nil), smtp(cfg.PostfixSMTP, nil))
		id := marker(t)
		msg := message(id, alice, "failover 421", "via the second member\r\n")
		// A non-seekable body: the 421 came before any of it was read.
		res, err := f.Send(testCtx(t, time.Minute), envelope.New(sender, alice), struct{ *bytes.Reader }{bytes.NewReader(msg)})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Accepted, code: 250, attempts: 2}})
		if n := n421.Load(); n != 1 {
			t.Errorf("the 421 server saw %d connections, want 1", n)
		}
		expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
		time.Sleep(settleTime)
		expectCount(t, cfg.VirtualMaildir("alice"), id, 1)
	})

	t.Run("dead-and-421-then-LMTP", func(t *testing.T) {
		t.Parallel()
		addr, _ := listen421(t)
		dead := &transport.LMTP{Network: "unix", Addr: filepath.Join(t.TempDir(), "no.sock"), LocalName: ehloName}
		lm421 := &transport.LMTP{Addr: addr, LocalName: ehloName}
		f := transport.Failover(dead, lm421, newLMTP(t, cfg, lmtpTargets[0], nil))
		to := lmtpAddr(cfg, "alice")
		id := marker(t)
		msg := message(id, to, "failover LMTP", "via the third member\r\n")
		res, err := f.Send(testCtx(t, time.Minute), envelope.New(sender, to), bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		checkResult(t, res, addrsOf(to), []wantRcpt{{outcome: transport.Accepted, code: 250, attempts: 3}})
		expectDelivered(t, lmtpMaildir(cfg, "alice"), id, msg)
	})

	t.Run("all-fail", func(t *testing.T) {
		t.Parallel()
		addr, _ := listen421(t)
		f := transport.Failover(smtp(deadAddr(t), nil), smtp(addr, nil))
		res, err := f.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(message(marker(t), alice, "x", "x\r\n")))
		var fe *transport.FailoverError
		if !errors.As(err, &fe) || fe.Index != 1 || fe.Previous == nil || len(fe.Previous.Errors) != 1 {
			t.Fatalf("error %v (%T), want a FailoverError for member 1 with one previous answer", err, err)
		}
		var re *transport.ReplyError
		if !errors.As(err, &re) || re.Code != 421 {
			t.Errorf("error %v does not unwrap to the last member's 421", err)
		}
		if !errors.Is(err, transport.ErrTransient) {
			t.Errorf("error %v is not transient like the last answer", err)
		}
		if !strings.Contains(err.Error(), "#0: ") || !strings.Contains(err.Error(), "#1: ") {
			t.Errorf("error %q does not list both members", err)
		}
		checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.TempFailed, attempts: 2}})
	})

	// A real server's refusal of the message ends the failover: the backup
	// is never dialed, and nothing is sent twice.
	t.Run("refusal-stops", func(t *testing.T) {
		t.Parallel()
		var backup connCounter
		f := transport.Failover(smtp(cfg.PostfixSMTP, nil), smtp(cfg.PostfixSMTP, &backup))
		cases := []struct {
			name  string
			from  string
			rcpts []string
			want  []wantRcpt
		}{
			{"rcpt-5xx", sender, addrsOf(cfg.RejectRcpt), []wantRcpt{{outcome: transport.PermFailed, code: 550}}},
			{"sender-5xx", cfg.BadSender, addrsOf(alice), []wantRcpt{{outcome: transport.PermFailed}}},
			{"partial", sender, addrsOf(alice, cfg.TempfailRcpt), []wantRcpt{{outcome: transport.Accepted, code: 250}, {outcome: transport.TempFailed, code: 450}}},
		}
		var delivered []string
		msgs := map[string][]byte{}
		for _, tc := range cases {
			id := marker(t) + "-" + tc.name
			msg := message(id, alice, "failover "+tc.name, "once\r\n")
			res, err := f.Send(testCtx(t, time.Minute), envelope.New(tc.from, tc.rcpts...), bytes.NewReader(msg))
			if err == nil {
				t.Errorf("%s: Send succeeded", tc.name)
			}
			checkResult(t, res, tc.rcpts, tc.want)
			var fe *transport.FailoverError
			if errors.As(err, &fe) {
				t.Errorf("%s: FailoverError %v after one member", tc.name, err)
			}
			if tc.name == "partial" {
				delivered = append(delivered, id)
				msgs[id] = msg
			}
		}
		if n := backup.Opened(); n != 0 {
			t.Errorf("the backup was dialed %d times after refusals by the first member", n)
		}
		for _, id := range delivered {
			expectDelivered(t, cfg.VirtualMaildir("alice"), id, msgs[id])
		}
		time.Sleep(settleTime)
		for _, id := range delivered {
			expectCount(t, cfg.VirtualMaildir("alice"), id, 1)
		}
	})
}

// TestLMTPSendBatch sends a batch over one LMTP session, pipelined across
// transactions, mixing accepted, unknown (550 at RCPT), over-quota (552
// after the data) and all-refused messages: each message's outcomes are
// its own, and the accepted copies arrive once each.
func TestLMTPSendBatch(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	for _, lt := range lmtpTargets[:2] {
		t.Run(lt.name, func(t *testing.T) {
			t.Parallel()
			tr := newLMTP(t, cfg, lt, nil)
			ctx := testCtx(t, time.Minute)
			c, err := tr.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			alice, bob := lmtpAddr(cfg, "alice"), lmtpAddr(cfg, "bob")
			nobody, dave := lmtpAddr(cfg, unknownLocal(cfg)), lmtpAddr(cfg, cfg.QuotaUser)
			acc := wantRcpt{outcome: transport.Accepted, code: 250}
			unk := wantRcpt{outcome: transport.PermFailed, code: 550}
			quota := wantRcpt{outcome: transport.PermFailed, code: 552}
			patterns := []struct {
				rcpts []string
				want  []wantRcpt
			}{
				{addrsOf(alice), []wantRcpt{acc}},
				{addrsOf(alice, nobody, bob), []wantRcpt{acc, unk, acc}},
				{addrsOf(dave, alice), []wantRcpt{quota, acc}},
				{addrsOf(nobody), []wantRcpt{unk}},
				{addrsOf(bob, dave, nobody, alice), []wantRcpt{acc, quota, unk, acc}},
			}
			base := marker(t)
			type item struct {
				id    string
				msg   []byte
				rcpts []string
				want  []wantRcpt
			}
			var items []item
			for i := 0; i < 15; i++ {
				pt := patterns[i%len(patterns)]
				id := fmt.Sprintf("%s-%02d", base, i)
				items = append(items, item{id, message(id, alice, "LMTP batch", bigBody()), pt.rcpts, pt.want})
			}
			seq := func(yield func(transport.Message) bool) {
				for _, it := range items {
					if !yield(transport.Message{Envelope: envelope.New(sender, it.rcpts...), Body: bytes.NewReader(it.msg)}) {
						return
					}
				}
			}
			var calls int
			err = c.SendBatch(ctx, seq, func(i int, res *transport.Result, err error) {
				if i != calls {
					t.Errorf("done(%d), want %d", i, calls)
				}
				calls++
				checkResult(t, res, items[i].rcpts, items[i].want)
				if res != nil && res.Count(transport.Accepted) > 0 && res.Count(transport.Accepted) < len(items[i].rcpts) {
					var oe *transport.OpError
					if errors.As(err, &oe) {
						t.Errorf("message %d: partial success reported as %v", i, err)
					}
				}
			})
			if err != nil {
				t.Fatalf("SendBatch: %v", err)
			}
			if calls != len(items) {
				t.Fatalf("done called %d times, want %d", calls, len(items))
			}
			for _, user := range []string{"alice", "bob"} {
				var ids []string
				for _, it := range items {
					for _, r := range it.rcpts {
						if r == lmtpAddr(cfg, user) {
							ids = append(ids, it.id)
						}
					}
				}
				got := waitMaildirAll(t, lmtpMaildir(cfg, user), ids, deliveryTimeout)
				for _, it := range items {
					if m, ok := got[it.id]; ok {
						if err := interoptest.CompareDelivered(m, normalize(it.msg)); err != nil {
							t.Errorf("%s %s: %v", user, it.id, err)
						}
					}
				}
			}
			idx := maildirIndex(t, lmtpMaildir(cfg, cfg.QuotaUser), func() []string {
				var ids []string
				for _, it := range items {
					ids = append(ids, it.id)
				}
				return ids
			}())
			if len(idx) != 0 {
				t.Errorf("the quota user received %d batch messages", len(idx))
			}
		})
	}
}
