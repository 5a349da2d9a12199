package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/conncount"
	. "github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func pooledServer(t *testing.T, setup func(*smtptest.Server)) (*smtptest.Server, *transport.SMTP, *conncount.Dialer) {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.Security = transport.Plaintext
	if setup != nil {
		setup(s)
	}
	s.Start()
	t.Cleanup(s.Close)
	tr := s.Transport()
	cd := &conncount.Dialer{}
	tr.Dialer = cd
	tr.LocalName = "client.example"
	t.Cleanup(func() { tr.Close() })
	return s, tr, cd
}

func TestPoolReusesConnections(t *testing.T) {
	s, tr, cd := pooledServer(t, nil)
	for i := range 5 {
		if _, err := tr.Send(ctx(t), envelope.New("a@example.org", fmt.Sprintf("r%d@example.org", i)), strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cd.Opened(); got != 1 {
		t.Errorf("opened %d connections for 5 sequential sends, want 1", got)
	}
	if n := len(s.Messages()); n != 5 {
		t.Errorf("stored %d", n)
	}
	tr.CloseIdleConnections()
	if got := cd.Open(); got != 0 {
		t.Errorf("%d connections open after CloseIdleConnections", got)
	}
	if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if got := cd.Opened(); got != 2 {
		t.Errorf("opened %d, want 2", got)
	}
	tr.Close()
	_, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	if !errors.Is(err, transport.ErrTransportClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

func TestPoolMaxConnsAndConcurrency(t *testing.T) {
	var inData, peakData atomic.Int32
	release := make(chan struct{})
	s, tr, cd := pooledServer(t, func(s *smtptest.Server) {
		s.Data = func(*smtptest.Message) error {
			n := inData.Add(1)
			defer inData.Add(-1)
			for {
				p := peakData.Load()
				if n <= p || peakData.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			return nil
		}
	})
	tr.Pool.MaxConns = 3
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tr.Send(ctx(t), envelope.New("a@example.org", fmt.Sprintf("r%d@example.org", i)), strings.NewReader(msg))
			errs <- err
		}()
	}
	// Let the first three reach the server, then release everything.
	deadline := time.Now().Add(10 * time.Second)
	for inData.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := cd.Peak(); got > 3 {
		t.Errorf("peak open connections %d > MaxConns 3", got)
	}
	if got := peakData.Load(); got != 3 {
		t.Errorf("peak concurrent transactions %d, want 3", got)
	}
	if n := len(s.Messages()); n != 10 {
		t.Errorf("stored %d, want 10", n)
	}
}

func TestPoolMaxConnsWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	_, tr, _ := pooledServer(t, func(s *smtptest.Server) {
		s.Data = func(*smtptest.Message) error { <-release; return nil }
	})
	defer close(release)
	tr.Pool.MaxConns = 1
	go tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg))
	time.Sleep(50 * time.Millisecond)
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := tr.Send(c, envelope.New("a@example.org", "c@example.org"), strings.NewReader(msg))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded while waiting for a connection", err)
	}
	if res.Rcpts[0].Outcome != transport.TempFailed {
		t.Errorf("outcome %v", res.Rcpts[0].Outcome)
	}
}

func TestPoolMaxMessagesPerConn(t *testing.T) {
	s, tr, cd := pooledServer(t, nil)
	tr.Pool.MaxMessagesPerConn = 3
	for i := range 7 {
		if _, err := tr.Send(ctx(t), envelope.New("a@example.org", fmt.Sprintf("r%d@example.org", i)), strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cd.Opened(); got != 3 {
		t.Errorf("opened %d connections, want 3 (3+3+1 messages)", got)
	}
	if n := len(s.Messages()); n != 7 {
		t.Errorf("stored %d", n)
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	_, tr, cd := pooledServer(t, nil)
	tr.Pool.IdleTimeout = 20 * time.Millisecond
	send := func() {
		if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send()
	time.Sleep(200 * time.Millisecond)
	if got := cd.Open(); got != 0 {
		t.Errorf("%d connections still open after the idle timeout", got)
	}
	send()
	if got := cd.Opened(); got != 2 {
		t.Errorf("opened %d, want 2", got)
	}
}

// killableProxy forwards to a server and can cut every connection,
// optionally saying 421 first, as a server closing idle connections does.
type killableProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newKillableProxy(t *testing.T, target string) *killableProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &killableProxy{ln: ln}
	go func() {
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
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.kill("") })
	return p
}

func (p *killableProxy) kill(say string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if say != "" && i%2 == 0 {
			io.WriteString(c, say)
		}
		c.Close()
	}
	p.conns = nil
}

func TestPoolReplacesStaleConnection(t *testing.T) {
	for _, say := range []string{"", "421 4.4.2 idle timeout\r\n"} {
		t.Run(fmt.Sprintf("say=%q", say), func(t *testing.T) {
			s, _, _ := pooledServer(t, nil)
			proxy := newKillableProxy(t, s.Addr)
			cd := &conncount.Dialer{}
			tr := &transport.SMTP{Addr: proxy.ln.Addr().String(), Security: transport.Plaintext, Dialer: cd, LocalName: "client.example"}
			defer tr.Close()
			if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			proxy.kill(say)
			time.Sleep(20 * time.Millisecond)
			res, err := tr.Send(ctx(t), envelope.New("a@example.org", "c@example.org"), strings.NewReader(msg))
			if err != nil {
				t.Fatalf("send on a stale pool: %v", err)
			}
			if res.Rcpts[0].Outcome != transport.Accepted || cd.Opened() != 2 {
				t.Errorf("outcome %v, opened %d", res.Rcpts[0].Outcome, cd.Opened())
			}
			if n := len(s.Messages()); n != 2 {
				t.Errorf("stored %d, want 2", n)
			}
		})
	}
}

// TestPoolStaleAtMailNeverResendsBody uses two scripted servers: the first
// delivers one message, then answers the reused connection's MAIL with 421;
// the second must receive the second message, and the first must never
// have received any of its content.
func TestPoolStaleAtMailNeverResendsBody(t *testing.T) {
	first := startScript(t,
		Reply("220 first ESMTP"), Expect("EHLO"), Reply("250-first", "250-PIPELINING", "250 8BITMIME"),
		Expect("MAIL"), Expect("RCPT"), Expect("DATA"), Reply("250 ok", "250 ok", "354 go"),
		ExpectData(), Reply("250 queued 1"),
		Expect("MAIL FROM:<a@example.org>"), Expect("RCPT"), Expect("DATA"),
		Reply("421 4.4.2 idle too long"), WaitClose(5*time.Second),
	)
	second := startScript(t,
		Reply("220 second ESMTP"), Expect("EHLO"), Reply("250-second", "250-PIPELINING", "250 8BITMIME"),
		Expect("MAIL"), Expect("RCPT"), Expect("DATA"), Reply("250 ok", "250 ok", "354 go"),
		ExpectData(), Reply("250 queued 2"), Expect("QUIT"), Reply("221 bye"),
	)
	var dials atomic.Int32
	tr := &transport.SMTP{Addr: "mx.example:25", Security: transport.Plaintext, LocalName: "client.example",
		Dialer: dialer.Func(func(ctx context.Context, network, _ string) (net.Conn, error) {
			addr := first.Addr
			if dials.Add(1) > 1 {
				addr = second.Addr
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		})}
	if _, err := tr.Send(ctx(t), envelope.New("a@example.org", "b@example.org"), strings.NewReader("Subject: one\r\n\r\nfirst\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := tr.Send(ctx(t), envelope.New("a@example.org", "c@example.org"), strings.NewReader("Subject: two\r\n\r\nsecond\r\n"))
	if err != nil {
		t.Fatalf("second send: %v", err)
	}
	if res.Reply == nil || res.Reply.Text != "queued 2" {
		t.Errorf("reply %+v", res.Reply)
	}
	tr.Close()
	if err := first.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if err := second.Wait(5 * time.Second); err != nil {
		t.Error(err)
	}
	if strings.Contains(first.Received(), "Subject: two") {
		t.Error("the second message's content reached the dead connection")
	}
	if got := strings.Count(second.Received(), "Subject: two"); got != 1 {
		t.Errorf("second server got the message %d times", got)
	}
}

func TestBatch(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		s, tr := m.server(t, func(s *smtptest.Server) { s.Rcpt = refuseSome })
		d := tr.(interface {
			Dial(context.Context) (*transport.Conn, error)
		})
		c, err := d.Dial(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		const n = 40
		msgs := func(yield func(transport.Message) bool) {
			for i := range n {
				to := fmt.Sprintf("ok%d@example.org", i)
				switch i % 10 {
				case 3:
					to = "perm@example.org"
				case 7:
					to = "temp@example.org"
				}
				body := fmt.Sprintf("Subject: %d\r\nX-Index: %d\r\n\r\n.%d\r\n", i, i, i)
				if !yield(transport.Message{Envelope: envelope.New("a@example.org", to, fmt.Sprintf("second%d@example.org", i)), Body: strings.NewReader(body)}) {
					return
				}
			}
		}
		var got []int
		var stats [5]int
		err = c.SendBatch(ctx(t), msgs, func(i int, res *transport.Result, err error) {
			got = append(got, i)
			stats[res.Rcpts[0].Outcome]++
			if res.Rcpts[1].Outcome != transport.Accepted {
				t.Errorf("message %d second rcpt %v (%v)", i, res.Rcpts[1].Outcome, err)
			}
			want := transport.Accepted
			switch i % 10 {
			case 3:
				want = transport.PermFailed
			case 7:
				want = transport.TempFailed
			}
			if res.Rcpts[0].Outcome != want {
				t.Errorf("message %d first rcpt %v, want %v", i, res.Rcpts[0].Outcome, want)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(got) || len(got) != n {
			t.Errorf("done order %v", got)
		}
		msgsStored := s.Messages()
		if len(msgsStored) != n {
			t.Fatalf("stored %d, want %d", len(msgsStored), n)
		}
		for i, m := range msgsStored {
			if want := fmt.Sprintf("X-Index: %d\r\n\r\n.%d\r\n", i, i); !strings.Contains(string(m.Data), want) {
				t.Errorf("message %d data %q", i, m.Data)
			}
		}
		if err := c.Noop(ctx(t)); err != nil {
			t.Errorf("session unusable after batch: %v", err)
		}
	})
}

func TestSMTPSendBatchPooled(t *testing.T) {
	s, tr, cd := pooledServer(t, nil)
	msgs := func(yield func(transport.Message) bool) {
		for i := range 100 {
			if !yield(transport.Message{Envelope: envelope.New("a@example.org", fmt.Sprintf("r%d@example.org", i)), Body: strings.NewReader(msg)}) {
				return
			}
		}
	}
	count := 0
	if err := tr.SendBatch(ctx(t), msgs, func(i int, res *transport.Result, err error) {
		count++
		if err != nil {
			t.Errorf("%d: %v", i, err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if count != 100 || len(s.Messages()) != 100 {
		t.Errorf("done %d, stored %d", count, len(s.Messages()))
	}
	if got := cd.Opened(); got != 1 {
		t.Errorf("opened %d connections", got)
	}
}

// TestBatchPipelinesAcrossTransactions proves the write-ahead: the scripted
// server reads the next transaction's commands before it answers the
// previous one, which would deadlock a client that waited for each reply.
func TestBatchPipelinesAcrossTransactions(t *testing.T) {
	two := func(yield func(transport.Message) bool) {
		for _, b := range []string{"Subject: one\r\n\r\nfirst\r\n", "Subject: two\r\n\r\nsecond\r\n"} {
			if !yield(transport.Message{Envelope: envelope.New("a@example.org", "b@example.org"), Body: strings.NewReader(b)}) {
				return
			}
		}
	}
	t.Run("DATA", func(t *testing.T) {
		s := startScript(t,
			Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250-PIPELINING", "250 8BITMIME"),
			Expect("MAIL"), Expect("RCPT"), Expect("DATA"), Reply("250 ok", "250 ok", "354 go"),
			Expect("Subject: one"), Expect(""), Expect("first"), Expect("."),
			// The second envelope arrives with the first end of data.
			Expect("MAIL"), Expect("RCPT"), Expect("DATA"),
			Reply("250 queued 1", "250 ok", "250 ok", "354 go"),
			ExpectData(), Reply("250 queued 2"), Expect("QUIT"), Reply("221 bye"),
		)
		c, err := plainTransport(s).Dial(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var replies []string
		if err := c.SendBatch(ctx(t), two, func(i int, res *transport.Result, err error) {
			if err != nil {
				t.Errorf("%d: %v", i, err)
				return
			}
			replies = append(replies, res.Reply.Text)
		}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := s.Wait(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if strings.Join(replies, ",") != "queued 1,queued 2" {
			t.Errorf("replies %v", replies)
		}
	})
	t.Run("BDAT", func(t *testing.T) {
		s := startScript(t,
			Reply("220 fake ESMTP"), Expect("EHLO"), Reply("250-fake", "250-PIPELINING", "250-CHUNKING", "250 8BITMIME"),
			// Both transactions, whole, before any reply.
			Expect("MAIL"), Expect("RCPT"), Expect("BDAT 23 LAST"), Expect("Subject: one"), Expect(""), Expect("first"),
			Expect("RSET"), Expect("MAIL"), Expect("RCPT"), Expect("BDAT 24 LAST"), Expect("Subject: two"), Expect(""), Expect("second"),
			Reply("250 ok", "250 ok", "250 queued 1", "250 reset", "250 ok", "250 ok", "250 queued 2"),
			Expect("QUIT"), Reply("221 bye"),
		)
		c, err := plainTransport(s).Dial(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var replies []string
		if err := c.SendBatch(ctx(t), two, func(i int, res *transport.Result, err error) {
			if err != nil {
				t.Errorf("%d: %v", i, err)
				return
			}
			replies = append(replies, res.Reply.Text)
		}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := s.Wait(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if strings.Join(replies, ",") != "queued 1,queued 2" {
			t.Errorf("replies %v", replies)
		}
	})
}

// TestBatch421MidStreamNeverMisreports sends a batch to a server that
// answers 421 to one message's data but, unlike a compliant server, goes on
// processing what was already sent. No message the server accepted may be
// reported as certainly undelivered, and none reported accepted may be
// missing.
func TestBatch421MidStreamNeverMisreports(t *testing.T) {
	for _, bdat := range []bool{false, true} {
		t.Run(fmt.Sprintf("bdat=%v", bdat), func(t *testing.T) {
			s, tr, _ := pooledServer(t, func(s *smtptest.Server) {
				s.Data = func(m *smtptest.Message) error {
					if strings.Contains(string(m.Data), "X-Index: 2\r\n") {
						return &transport.ReplyError{Code: 421, EnhancedCode: transport.EnhancedCode{4, 3, 2}, Message: "going down"}
					}
					return nil
				}
			})
			tr.DisableChunking = !bdat
			c, err := tr.Dial(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const n = 52
			msgs := func(yield func(transport.Message) bool) {
				for i := range n {
					body := fmt.Sprintf("Subject: %d\r\nX-Index: %d\r\n\r\nbody\r\n", i, i)
					if !yield(transport.Message{Envelope: envelope.New("a@example.org", "b@example.org"), Body: strings.NewReader(body)}) {
						return
					}
				}
			}
			outcome := map[int]transport.Outcome{}
			c.SendBatch(ctx(t), msgs, func(i int, res *transport.Result, err error) {
				outcome[i] = res.Rcpts[0].Outcome
			})
			stored := map[int]bool{}
			for _, m := range s.Messages() {
				var i int
				fmt.Sscanf(string(m.Data), "Subject: %d", &i)
				stored[i] = true
			}
			for i, o := range outcome {
				switch {
				case stored[i] && o != transport.Accepted && o != transport.Unknown:
					t.Errorf("message %d was accepted by the server but reported %v", i, o)
				case !stored[i] && o == transport.Accepted:
					t.Errorf("message %d reported accepted but the server has no copy", i)
				}
			}
			if outcome[2] != transport.TempFailed {
				t.Errorf("message 2 (the 421) = %v", outcome[2])
			}
		})
	}
}
