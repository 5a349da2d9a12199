package transport_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	. "github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
)

// A server that answers more than it was asked puts every later reply on
// the wrong command. These scripted servers do that at each step; the
// client must stop with a *ProtocolError, report nothing delivered that
// was not acknowledged in step, and never write the end of the data once
// the server has spoken out of turn.

// wantProtocolError checks err is an *OpError at op wrapping a
// *ProtocolError, and the outcomes of res.
func wantProtocolError(t *testing.T, res *transport.Result, err error, op transport.Op, want ...transport.Outcome) {
	t.Helper()
	var pe *transport.ProtocolError
	var oe *transport.OpError
	if !errors.As(err, &pe) || !errors.As(err, &oe) || oe.Op != op {
		t.Fatalf("err = %v, want a ProtocolError at %s", err, op)
	}
	if res == nil || len(res.Rcpts) != len(want) {
		t.Fatalf("result = %+v, want %d recipients", res, len(want))
	}
	for i, w := range want {
		if got := res.Rcpts[i].Outcome; got != w {
			t.Errorf("recipient %d: %v, want %v", i, got, w)
		}
	}
}

// blockingBody yields its first part, then waits for release before the
// rest, so that a script can act while the data is streaming.
type blockingBody struct {
	parts   []string
	release chan struct{}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if len(b.parts) == 0 {
		return 0, io.EOF
	}
	if len(b.parts) == 1 {
		<-b.release
	}
	n := copy(p, b.parts[0])
	b.parts[0] = b.parts[0][n:]
	if b.parts[0] == "" {
		b.parts = b.parts[1:]
	}
	return n, nil
}

func TestReplyAfter354NeverTakenForTheDataReply(t *testing.T) {
	env := envelope.New("a@example.org", "b@example.org")
	head := []Step{Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain),
		Expect("MAIL"), Expect("RCPT"), Expect("DATA")}

	t.Run("same segment", func(t *testing.T) {
		s := startScript(t, append(head, Reply("250 ok", "250 ok", "354 go", "250 spurious"), WaitClose(5*time.Second))...)
		res, err := plainTransport(s).Send(context.Background(), env, strings.NewReader(msg))
		wantProtocolError(t, res, err, transport.OpData, transport.TempFailed)
		if err := s.Wait(5 * time.Second); err != nil {
			t.Error(err)
		}
		if strings.Contains(s.Received(), "\r\n.\r\n") {
			t.Errorf("the end of the data was written: %q", s.Received())
		}
	})

	t.Run("while the data streams", func(t *testing.T) {
		body := &blockingBody{parts: []string{"Subject: x\r\n\r\n", "rest of the body\r\n"}, release: make(chan struct{})}
		s := startScript(t, append(head, Reply("250 ok", "250 ok", "354 go"), Reply("250 spurious"),
			Do(func() { close(body.release) }), WaitClose(5*time.Second))...)
		res, err := plainTransport(s).Send(context.Background(), env, body)
		wantProtocolError(t, res, err, transport.OpData, transport.TempFailed)
		if err := s.Wait(5 * time.Second); err != nil {
			t.Error(err)
		}
		if strings.Contains(s.Received(), "\r\n.\r\n") {
			t.Errorf("the end of the data was written: %q", s.Received())
		}
	})

	t.Run("two replies to the end of the data", func(t *testing.T) {
		s := startScript(t, append(head, Reply("250 ok", "250 ok", "354 go"), ExpectData(),
			Reply("250 queued", "250 again"), WaitClose(5*time.Second))...)
		res, err := plainTransport(s).Send(context.Background(), env, strings.NewReader(msg))
		// The data was sent whole but its reply cannot be trusted.
		wantProtocolError(t, res, err, transport.OpEndOfData, transport.Unknown)
		if !errors.Is(err, transport.ErrUnknownOutcome) {
			t.Errorf("err = %v, want ErrUnknownOutcome", err)
		}
	})
}

func TestExtraRepliesWithoutPipelining(t *testing.T) {
	// Two replies to MAIL: the second would be taken for RCPT's.
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250 8BITMIME"),
		Expect("MAIL"), Reply("250 ok", "550 5.1.1 for the next command"), WaitClose(5*time.Second))
	res, err := plainTransport(s).Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	wantProtocolError(t, res, err, transport.OpMail, transport.TempFailed)
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(s.Received(), "RCPT") {
		t.Errorf("the client went on: %q", s.Received())
	}
}

func TestRepliesBeforeTheirCommands(t *testing.T) {
	// An EHLO reply sent with the greeting, ahead of EHLO.
	s := startScript(t, Reply("220 fake ESMTP", "250-forged", "250 AUTH PLAIN"), WaitClose(5*time.Second))
	_, err := plainTransport(s).Dial(context.Background())
	var pe *transport.ProtocolError
	var oe *transport.OpError
	if !errors.As(err, &pe) || !errors.As(err, &oe) || oe.Op != transport.OpGreeting {
		t.Errorf("err = %v, want a ProtocolError at the greeting", err)
	}

	// Two replies to EHLO.
	s = startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain, "250 extra"), WaitClose(5*time.Second))
	_, err = plainTransport(s).Dial(context.Background())
	if !errors.As(err, &pe) || !errors.As(err, &oe) || oe.Op != transport.OpHello {
		t.Errorf("err = %v, want a ProtocolError at hello", err)
	}
}

func TestLMTPMoreRepliesThanRecipients(t *testing.T) {
	s := startScript(t,
		Reply("220 fake LMTP"), Expect("LHLO"), Reply("250-fake", "250 PIPELINING"),
		Expect("MAIL"), Expect("RCPT TO:<a@"), Expect("RCPT TO:<b@"),
		Reply("250 ok", "250 ok", "250 ok"),
		Expect("DATA"), Reply("354 go"), ExpectData(),
		Reply("250 2.0.0 <a@example.org> delivered", "250 2.0.0 <b@example.org> delivered", "550 5.1.1 whose?"),
		WaitClose(5*time.Second),
	)
	tr := &transport.LMTP{Network: "tcp", Addr: s.Addr, LocalName: "client.example", Pool: transport.PoolConfig{MaxIdleConns: -1}}
	res, err := tr.Send(context.Background(), envelope.New("s@example.org", "a@example.org", "b@example.org"), strings.NewReader(msg))
	// Which reply is whose cannot be known: none is trusted.
	wantProtocolError(t, res, err, transport.OpEndOfData, transport.Unknown, transport.Unknown)
}

func TestRawCommandsCannotHideTheirName(t *testing.T) {
	s := startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain), Expect("NOOP"), Reply("250 ok"),
		Expect("QUIT"), Reply("221 bye"))
	c, err := plainTransport(s).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		" DATA", "DATA\t", "\tQUIT", "QUIT\t", "STARTTLS\t", " MAIL FROM:<a@example.org>",
		"MAIL\tFROM:<a@example.org>", "NOOP\r\nRSET", "VRFY a\u2028b", "HELP \x1b[2J", "NOOP\x7f", "",
		"VRFY " + strings.Repeat("a", 13000),
	} {
		_, err := c.Command(context.Background(), line)
		var ee *envelope.Error
		if !errors.As(err, &ee) || !errors.Is(err, transport.ErrPermanent) {
			t.Errorf("Command(%.20q) = %v, want a permanent *envelope.Error", line, err)
		}
	}
	if _, err := c.Verify(context.Background(), "a\x00b"); !errors.Is(err, envelope.ErrControlChar) {
		t.Errorf("Verify with NUL = %v, want ErrControlChar", err)
	}
	// The Conn is still in step.
	if _, err := c.Command(context.Background(), "NOOP"); err != nil {
		t.Errorf("NOOP after the refusals: %v", err)
	}
	c.Close()
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
}

func TestLocalNameChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error // nil: accepted
	}{
		{"client.example", nil},
		{"mail_relay-1.example", nil},
		{"[192.0.2.1]", nil},
		{"[IPv6:2001:db8::1]", nil},
		{"host\r\nMAIL FROM:<x@y>", envelope.ErrControlChar},
		{"host\tname", envelope.ErrControlChar},
		{"two words", envelope.ErrMalformed},
		{"<host>", envelope.ErrMalformed},
		{"[192.0.2.1", envelope.ErrMalformed},
		{"héllo.example", envelope.ErrMalformed},
		{strings.Repeat("a", 256), envelope.ErrMalformed},
	} {
		var steps []Step
		if tc.want == nil {
			steps = []Step{Reply("220 fake ESMTP"), ExpectLine("EHLO " + tc.name), Reply(ehloPlain), Expect("QUIT"), Reply("221 bye")}
		} else {
			steps = []Step{Reply("220 fake ESMTP"), WaitClose(5 * time.Second)}
		}
		s := startScript(t, steps...)
		tr := plainTransport(s)
		tr.LocalName = tc.name
		c, err := tr.Dial(context.Background())
		if tc.want == nil {
			if err != nil {
				t.Errorf("%q: %v", tc.name, err)
				continue
			}
			c.Close()
		} else {
			var oe *transport.OpError
			if !errors.Is(err, tc.want) || !errors.Is(err, transport.ErrPermanent) || !errors.As(err, &oe) || oe.Op != transport.OpHello {
				t.Errorf("%.30q: err = %v, want %v at hello, permanent", tc.name, err, tc.want)
			}
		}
		if err := s.Wait(5 * time.Second); err != nil {
			t.Errorf("%.30q: %v", tc.name, err)
		}
		if tc.want != nil && s.Received() != "" {
			t.Errorf("%.30q: client wrote %q", tc.name, s.Received())
		}
	}
}

// A 421 right after a reply is the server announcing that it is closing
// (RFC 5321 3.8), not a reply out of turn: the message it acknowledged is
// delivered, and the connection is not used again.
func TestClosingNoticeAfterTheDataReply(t *testing.T) {
	s := startScript(t,
		Reply("220 fake ESMTP"), Expect("EHLO"), Reply(ehloPlain),
		Expect("MAIL"), Expect("RCPT"), Expect("DATA"), Reply("250 ok", "250 ok", "354 go"), ExpectData(),
		Reply("250 2.0.0 queued", "421 4.3.2 shutting down"), WaitClose(5*time.Second))
	tr := plainTransport(s)
	tr.Pool = transport.PoolConfig{}
	defer tr.Close()
	res, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if err != nil || res.Rcpts[0].Outcome != transport.Accepted {
		t.Fatalf("Send = %+v, %v; want accepted", res, err)
	}
	tr.CloseIdleConnections()
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
}

// Without PIPELINING a batch is lock-step: nothing of the next message is
// written before the reply to the previous end of data, and BDAT chunks
// wait for each other's replies (RFC 3030 4.2). A server that closes after
// a final dot therefore leaves the next message untouched.
func TestBatchWithoutPipeliningWaits(t *testing.T) {
	big := strings.Repeat("a line of the message body\r\n", 5000) // three BDAT chunks
	for _, tc := range []struct {
		name, ehlo string
		body       string
		script     []Step
	}{
		{"DATA", "250 8BITMIME", msg, []Step{Expect("DATA"), Reply("354 go"), ExpectData()}},
		{"BDAT", "250 CHUNKING", big, []Step{
			Expect("BDAT 65536"), chunk(65536), ExpectNothing(100 * time.Millisecond), Reply("250 2.0.0 chunk"),
			Expect("BDAT 65536"), chunk(65536), ExpectNothing(100 * time.Millisecond), Reply("250 2.0.0 chunk"),
			Expect("BDAT 8928 LAST"), chunk(8928)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps := []Step{Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", tc.ehlo),
				Expect("MAIL"), Reply("250 ok"), Expect("RCPT"), Reply("250 ok")}
			steps = append(steps, tc.script...)
			steps = append(steps, ExpectNothing(100*time.Millisecond), Close())
			s := startScript(t, steps...)
			c, err := plainTransport(s).Dial(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			env := envelope.New("a@example.org", "b@example.org")
			msgs := func(yield func(transport.Message) bool) {
				for range 2 {
					if !yield(transport.Message{Envelope: env, Body: strings.NewReader(tc.body)}) {
						return
					}
				}
			}
			var outcomes []transport.Outcome
			err = c.SendBatch(context.Background(), msgs, func(i int, res *transport.Result, err error) {
				outcomes = append(outcomes, res.Rcpts[0].Outcome)
			})
			if err == nil {
				t.Error("SendBatch = nil after the server closed")
			}
			if len(outcomes) != 1 || outcomes[0] != transport.Unknown {
				t.Errorf("outcomes %v, want [unknown] and no call for the message never started", outcomes)
			}
			if err := s.Wait(5 * time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

// chunk reads the n bytes of a BDAT chunk.
func chunk(n int) Step {
	return Func(func(s *Session) error {
		_, err := io.ReadFull(s.Reader(), make([]byte, n))
		return err
	})
}

// A 421 in a pipelined batch fails the command it answers; every command
// written after it was never run by a server that said it is closing, so
// those transactions are temp-failed even where their data was written
// whole, not unknown.
func TestBatch421AfterWholeTransactions(t *testing.T) {
	const body = "Subject: x\r\n\r\nbody\r\n" // 20 bytes
	var steps []Step
	steps = append(steps, Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250-PIPELINING", "250 CHUNKING"))
	for i := range 3 {
		if i > 0 {
			steps = append(steps, Expect("RSET"))
		}
		steps = append(steps, Expect("MAIL"), Expect("RCPT"), Expect("BDAT 20 LAST"), chunk(20))
	}
	steps = append(steps, Reply("250 ok", "250 ok", "250 2.0.0 queued", "250 reset", "421 4.3.2 closing"), Close())
	s := startScript(t, steps...)
	c, err := plainTransport(s).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := envelope.New("a@example.org", "b@example.org")
	msgs := func(yield func(transport.Message) bool) {
		for range 3 {
			if !yield(transport.Message{Envelope: env, Body: strings.NewReader(body)}) {
				return
			}
		}
	}
	var outcomes []transport.Outcome
	c.SendBatch(context.Background(), msgs, func(_ int, res *transport.Result, _ error) {
		outcomes = append(outcomes, res.Rcpts[0].Outcome)
	})
	want := []transport.Outcome{transport.Accepted, transport.TempFailed, transport.TempFailed}
	if len(outcomes) != 3 || outcomes[0] != want[0] || outcomes[1] != want[1] || outcomes[2] != want[2] {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}
	if err := s.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
}

// cancellingBody yields 1 KiB per Read and cancels its context at the
// tenth, counting the reads after that.
type cancellingBody struct {
	cancel context.CancelFunc
	reads  int
	after  int
}

func (b *cancellingBody) Read(p []byte) (int, error) {
	b.reads++
	if b.reads > 10 {
		b.after++
	}
	if b.reads == 10 {
		b.cancel()
	}
	return copy(p, strings.Repeat("x", 1023)+"\n"), nil
}

// A Send cancelled while BDAT is filling a chunk from a slow body stops
// reading the body at once, not when the 64 KiB chunk is full.
func TestCancelStopsReadingTheBodyWithBDAT(t *testing.T) {
	s := startScript(t, Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250-PIPELINING", "250 CHUNKING"),
		Expect("MAIL"), Expect("RCPT"), Reply("250 ok", "250 ok"), WaitClose(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := &cancellingBody{cancel: cancel}
	_, err := plainTransport(s).Send(ctx, envelope.New("a@example.org", "b@example.org"), body)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if body.after > 0 {
		t.Errorf("%d reads of the body after the cancellation", body.after)
	}
}
