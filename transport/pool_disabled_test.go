package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/conncount"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// batchTransport is what SMTP and LMTP have in common for these tests.
type batchTransport interface {
	transport.Transport
	SendBatch(ctx context.Context, msgs iter.Seq[transport.Message], done func(i int, res *transport.Result, err error)) error
	Close() error
}

// noPoolServer starts a server (LMTP or SMTP) and returns it with a
// transport for it that has pooling disabled and counts its connections.
func noPoolServer(t *testing.T, lmtp bool, setup func(*smtptest.Server)) (*smtptest.Server, batchTransport, *conncount.Dialer) {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.Security = transport.Plaintext
	s.LMTP = lmtp
	if setup != nil {
		setup(s)
	}
	s.Start()
	t.Cleanup(s.Close)
	cd := &conncount.Dialer{}
	var tr batchTransport
	if lmtp {
		lt := s.LMTPTransport()
		lt.Dialer, lt.LocalName, lt.Pool.MaxIdleConns = cd, "client.example", -1
		tr = lt
	} else {
		st := s.Transport()
		st.Dialer, st.LocalName, st.Pool.MaxIdleConns = cd, "client.example", -1
		tr = st
	}
	t.Cleanup(func() { tr.Close() })
	return s, tr, cd
}

// numbered yields n messages to r0@example.org, r1@example.org and so on.
func numbered(prefix string, n int) iter.Seq[transport.Message] {
	return func(yield func(transport.Message) bool) {
		for i := range n {
			to := fmt.Sprintf("%s%d@example.org", prefix, i)
			if !yield(transport.Message{Envelope: envelope.New("a@example.org", to), Body: strings.NewReader(msg)}) {
				return
			}
		}
	}
}

// TestPoolDisabledCloseRefusesSend: Close makes Send and SendBatch fail
// with ErrTransportClosed even with pooling disabled, before any Send or
// after one, and nothing more reaches the server.
func TestPoolDisabledCloseRefusesSend(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		for _, sendFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("lmtp=%v/sendFirst=%v", lmtp, sendFirst), func(t *testing.T) {
				s, tr, cd := noPoolServer(t, lmtp, nil)
				want := 0
				if sendFirst {
					if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "first@example.org"), strings.NewReader(msg)); err != nil {
						t.Fatal(err)
					}
					want = 1
					if got := cd.Open(); got != 0 {
						t.Errorf("%d connections open after a Send without pooling", got)
					}
				}
				if err := tr.Close(); err != nil {
					t.Fatal(err)
				}

				res, err := tr.Send(ctx(t), envelope.New("a@example.org", "late@example.org"), strings.NewReader(msg))
				if !errors.Is(err, transport.ErrTransportClosed) {
					t.Errorf("Send after Close: err = %v, want ErrTransportClosed", err)
				}
				if res == nil || res.Rcpts[0].Outcome == transport.Accepted {
					t.Errorf("Send after Close: result %+v", res)
				}

				var calls []int
				err = tr.SendBatch(ctx(t), numbered("batch", 3), func(i int, res *transport.Result, err error) {
					calls = append(calls, i)
					if !errors.Is(err, transport.ErrTransportClosed) {
						t.Errorf("SendBatch after Close: message %d err = %v, want ErrTransportClosed", i, err)
					}
				})
				if !errors.Is(err, transport.ErrTransportClosed) {
					t.Errorf("SendBatch after Close: err = %v, want ErrTransportClosed", err)
				}
				if len(calls) != 1 || calls[0] != 0 {
					t.Errorf("SendBatch after Close: done called for %v, want [0]", calls)
				}

				if got := cd.Opened(); got != int64(want) {
					t.Errorf("opened %d connections, want %d: a closed transport dialed", got, want)
				}
				if got := len(s.Messages()); got != want {
					t.Errorf("server stored %d messages, want %d", got, want)
				}
			})
		}
	}
}

// pairBarrier returns a Data hook that holds each message until another
// one arrives, then lets both go: every message is in DATA together with
// another, so two connections are certainly open at once. stop lets any
// held message go (at the end of a failed test).
func pairBarrier(peak *atomic.Int32) (hook func(*smtptest.Message) error, stop func()) {
	var mu sync.Mutex
	var waiting chan struct{}
	var in int32
	done := make(chan struct{})
	hook = func(*smtptest.Message) error {
		mu.Lock()
		in++
		if in > peak.Load() {
			peak.Store(in)
		}
		if waiting == nil {
			ch := make(chan struct{})
			waiting = ch
			mu.Unlock()
			select {
			case <-ch:
			case <-done:
			}
		} else {
			close(waiting)
			waiting = nil
			mu.Unlock()
		}
		mu.Lock()
		in--
		mu.Unlock()
		return nil
	}
	var once sync.Once
	return hook, func() { once.Do(func() { close(done) }) }
}

// TestPoolDisabledMaxConns: MaxConns caps the connections open at once
// when pooling is disabled, for Send and for SendBatch, and every message
// is delivered once.
func TestPoolDisabledMaxConns(t *testing.T) {
	t.Run("Send", func(t *testing.T) {
		var peakData atomic.Int32
		hook, stop := pairBarrier(&peakData)
		s, btr, cd := noPoolServer(t, false, func(s *smtptest.Server) { s.Data = hook })
		t.Cleanup(stop) // runs before the server's Close
		tr := btr.(*transport.SMTP)
		tr.Pool.MaxConns = 2

		const n = 10
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				res, err := tr.Send(ctx(t), envelope.New("a@example.org", fmt.Sprintf("r%d@example.org", i)), strings.NewReader(msg))
				if err == nil && res.Rcpts[0].Outcome != transport.Accepted {
					err = fmt.Errorf("message %d: outcome %v", i, res.Rcpts[0].Outcome)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		// The barrier holds two messages in DATA at once, so the peak is
		// at least 2; MaxConns makes it at most 2.
		if got := cd.Peak(); got != 2 {
			t.Errorf("peak open connections %d, want MaxConns 2", got)
		}
		if got := peakData.Load(); got != 2 {
			t.Errorf("peak concurrent transactions %d, want 2", got)
		}
		if got := cd.Opened(); got != n {
			t.Errorf("opened %d connections, want %d (one per Send without pooling)", got, n)
		}
		if got := cd.Open(); got != 0 {
			t.Errorf("%d connections still open", got)
		}
		checkDeliveredOnce(t, s, "r", n)
	})

	t.Run("SendBatch", func(t *testing.T) {
		for _, lmtp := range []bool{false, true} {
			t.Run(fmt.Sprintf("lmtp=%v", lmtp), func(t *testing.T) {
				s, tr, cd := noPoolServer(t, lmtp, nil)
				switch tr := tr.(type) {
				case *transport.SMTP:
					tr.Pool.MaxConns = 2
				case *transport.LMTP:
					tr.Pool.MaxConns = 2
				}
				const batches, per = 5, 4
				var wg sync.WaitGroup
				for b := range batches {
					wg.Go(func() {
						err := tr.SendBatch(ctx(t), numbered(fmt.Sprintf("b%d-", b), per), func(i int, res *transport.Result, err error) {
							if err != nil {
								t.Errorf("batch %d message %d: %v", b, i, err)
							}
						})
						if err != nil {
							t.Errorf("batch %d: %v", b, err)
						}
					})
				}
				wg.Wait()
				if got := cd.Peak(); got > 2 {
					t.Errorf("peak open connections %d > MaxConns 2", got)
				}
				if got := cd.Open(); got != 0 {
					t.Errorf("%d connections still open after the batches without pooling", got)
				}
				for b := range batches {
					checkDeliveredOnce(t, s, fmt.Sprintf("b%d-", b), per)
				}
			})
		}
	})
}

// checkDeliveredOnce checks that the server stored exactly one message for
// each of prefix0@example.org ... prefix(n-1)@example.org.
func checkDeliveredOnce(t *testing.T, s *smtptest.Server, prefix string, n int) {
	t.Helper()
	count := map[string]int{}
	for _, m := range s.Messages() {
		for _, to := range m.To {
			count[to]++
		}
	}
	for i := range n {
		to := fmt.Sprintf("%s%d@example.org", prefix, i)
		if count[to] != 1 {
			t.Errorf("%s delivered %d times, want 1", to, count[to])
		}
	}
}

// restartProxy forwards connections to a server. restart makes every
// connection open at the time behave as one to a server that restarted
// since: it stays silent (so it does not look stale while idle) and answers
// the client's next command with 421 and closes, forwarding nothing more.
type restartProxy struct {
	ln   net.Listener
	hits atomic.Int32 // commands answered with 421 on a dead connection

	mu    sync.Mutex
	conns []*proxied
}

type proxied struct {
	c, s net.Conn
	dead atomic.Bool
}

func newRestartProxy(t *testing.T, target string) *restartProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &restartProxy{ln: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxied{c: c, s: s}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			wg.Go(func() {
				io.Copy(c, s)
				c.(*net.TCPConn).CloseWrite()
			})
			wg.Go(func() { p.pump(pc) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, pc := range p.conns {
			pc.c.Close()
			pc.s.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

// pump forwards the client's bytes to the server until the connection is
// dead, then answers 421 and closes.
func (p *restartProxy) pump(pc *proxied) {
	defer pc.c.Close()
	defer pc.s.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.c.Read(buf)
		if n > 0 {
			if pc.dead.Load() {
				p.hits.Add(1)
				io.WriteString(pc.c, "421 4.3.2 service restarted, closing\r\n")
				pc.s.Close()
				pc.c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, pc.c) // until the client closes
				return
			}
			if _, err := pc.s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *restartProxy) restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.dead.Store(true)
	}
}

// TestPoolReplacesDeadIdleWithFreshConnection: when every idle connection
// is dead (the server restarted) but does not look it until used, the
// reused one answers 421 to MAIL and the Send goes on over a newly dialed
// connection, not over another dead idle one; the message is delivered
// once.
func TestPoolReplacesDeadIdleWithFreshConnection(t *testing.T) {
	var arrived atomic.Int32
	both := make(chan struct{})
	stop := make(chan struct{})
	s := smtptest.NewUnstartedServer()
	s.Security = transport.Plaintext
	s.Data = func(*smtptest.Message) error {
		// Hold the first two messages until both are in DATA, so that
		// they travel on two connections, both kept idle afterwards.
		if n := arrived.Add(1); n <= 2 {
			if n == 2 {
				close(both)
			}
			select {
			case <-both:
			case <-stop:
			}
		}
		return nil
	}
	s.Start()
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	proxy := newRestartProxy(t, s.Addr)
	cd := &conncount.Dialer{}
	tr := &transport.SMTP{Addr: proxy.ln.Addr().String(), Security: transport.Plaintext, Dialer: cd, LocalName: "client.example"}
	defer tr.Close()

	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if _, err := tr.Send(ctx(t), envelope.New("a@example.org", fmt.Sprintf("warm%d@example.org", i)), strings.NewReader(msg)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if cd.Opened() != 2 || cd.Open() != 2 {
		t.Fatalf("opened %d, open %d: want 2 idle connections", cd.Opened(), cd.Open())
	}

	proxy.restart()
	res, err := tr.Send(ctx(t), envelope.New("a@example.org", "after0@example.org"), strings.NewReader("Subject: after\r\n\r\nafter the restart\r\n"))
	if err != nil {
		t.Fatalf("Send with every idle connection dead: %v", err)
	}
	if res.Rcpts[0].Outcome != transport.Accepted {
		t.Errorf("outcome %v", res.Rcpts[0].Outcome)
	}
	if got := proxy.hits.Load(); got != 1 {
		t.Errorf("%d dead connections used, want 1 (then a fresh one)", got)
	}
	if got := cd.Opened(); got != 3 {
		t.Errorf("opened %d connections, want 3 (2 warm, 1 fresh)", got)
	}
	if got := cd.Peak(); got > 2 {
		t.Errorf("peak open connections %d: the dead connection was not closed before the fresh dial", got)
	}
	checkDeliveredOnce(t, s, "warm", 2)
	checkDeliveredOnce(t, s, "after", 1)
	stored := 0
	for _, m := range s.Messages() {
		stored += strings.Count(string(m.Data), "after the restart")
	}
	if stored != 1 {
		t.Errorf("the message was stored %d times, want 1", stored)
	}
}

// A batch whose first message finds its pooled connection dead (a 421 to
// MAIL, before any of the body was read) gets a new connection for it, as
// Send does: the message is delivered once and reported once.
func TestBatchReplacesStaleConnection(t *testing.T) {
	s := smtptest.NewUnstartedServer()
	var mails atomic.Int32
	s.Mail = func(string, smtptest.MailOptions) error {
		if mails.Add(1) == 2 { // the first MAIL on the reused connection
			return &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 3, 2}, Message: "restarting"}
		}
		return nil
	}
	s.Start()
	defer s.Close()
	tr := s.Transport()
	defer tr.Close()
	env := envelope.New("a@example.org", "b@example.org")
	one := func(body string) iter.Seq[transport.Message] {
		return func(yield func(transport.Message) bool) {
			yield(transport.Message{Envelope: env, Body: strings.NewReader(body)})
		}
	}
	for i, body := range []string{"Subject: one\r\n\r\nfirst\r\n", "Subject: two\r\n\r\nsecond\r\n"} {
		var calls []transport.Outcome
		err := tr.SendBatch(context.Background(), one(body), func(_ int, res *transport.Result, err error) {
			calls = append(calls, res.Rcpts[0].Outcome)
		})
		if err != nil || len(calls) != 1 || calls[0] != transport.Accepted {
			t.Fatalf("batch %d: err %v, done calls %v; want one, accepted", i, err, calls)
		}
	}
	if got := s.Messages(); len(got) != 2 || !strings.Contains(string(got[1].Data), "second") {
		t.Errorf("server stored %d messages", len(got))
	}
}
