package interop_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
	"github.com/mailwire/mailwire/middleware/retry"
	"github.com/mailwire/mailwire/transport"
)

// proxy is a TCP proxy in front of a real server, for faults a real server
// does not produce on demand.
type proxy struct {
	l        net.Listener
	upstream string
	// cutAfterDot, when set, drops the server's reply to the end of DATA
	// and closes the client's connection: the server has the message, the
	// client never learns it.
	cutAfterDot bool

	mu    sync.Mutex
	conns []*proxyConn
	wg    sync.WaitGroup
	cuts  atomic.Int64
}

type proxyConn struct {
	client, server net.Conn
	dotSeen        atomic.Bool
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, upstream: upstream}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.kill(nil)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, server: s}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.clientToServer(pc)
		go p.serverToClient(pc)
	}
}

func (p *proxy) clientToServer(pc *proxyConn) {
	defer p.wg.Done()
	defer pc.server.Close()
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := pc.client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if p.cutAfterDot {
				// The end of DATA is the only CRLF "." CRLF a conforming
				// client sends; mark it before the server can answer.
				if bytes.Contains(append(tail, chunk...), []byte("\r\n.\r\n")) {
					pc.dotSeen.Store(true)
				}
				tail = append(tail[:0], chunk[max(0, len(chunk)-4):]...)
			}
			if _, werr := pc.server.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) serverToClient(pc *proxyConn) {
	defer p.wg.Done()
	defer pc.client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.server.Read(buf)
		if n > 0 {
			if pc.dotSeen.Load() {
				p.cuts.Add(1)
				// Let the server finish (it has the message), then cut.
				return
			}
			if _, werr := pc.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// kill writes msg (if any) to every client and closes every connection, as
// a server closing idle sessions does.
func (p *proxy) kill(msg []byte) {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, pc := range conns {
		if msg != nil {
			pc.client.Write(msg)
		}
		pc.client.Close()
		pc.server.Close()
	}
}

// TestPostfixUnknownAfterDot loses the connection between the final dot and
// Postfix's reply: the outcome is Unknown, the retry middleware does not
// send again, and Postfix, which had the message, delivers it exactly once.
func TestPostfixUnknownAfterDot(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	p := startProxy(t, cfg.PostfixSMTP)
	p.cutAfterDot = true
	var cc connCounter
	tr := &transport.SMTP{Addr: p.addr(), Security: transport.Plaintext, LocalName: ehloName, DisableChunking: true, Dialer: cc.dialer()}
	t.Cleanup(func() { tr.Close() })
	rt := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(constBackoff(10*time.Millisecond)))(tr)
	alice := cfg.Alice.Address(cfg.Domain)
	id := marker(t)
	msg := message(id, alice, "unknown outcome", "the reply to this message is lost\r\n.\r\n")
	start := time.Now()
	res, err := rt.Send(testCtx(t, time.Minute), envelope.New(sender, alice), bytes.NewReader(msg))
	if time.Since(start) > 20*time.Second {
		t.Errorf("Send took %v", time.Since(start))
	}
	if !errors.Is(err, transport.ErrUnknownOutcome) || errors.Is(err, transport.ErrTransient) {
		t.Errorf("error %v, want ErrUnknownOutcome only", err)
	}
	var oe *transport.OpError
	if !errors.As(err, &oe) || oe.Op != transport.OpEndOfData {
		t.Errorf("error %v, want an *OpError at %s", err, transport.OpEndOfData)
	}
	checkResult(t, res, addrsOf(alice), []wantRcpt{{outcome: transport.Unknown, attempts: 1}})
	if n := cc.Opened(); n != 1 {
		t.Errorf("%d connections: an unknown outcome was retried", n)
	}
	if p.cuts.Load() != 1 {
		t.Errorf("the proxy cut %d replies, want 1", p.cuts.Load())
	}
	expectDelivered(t, cfg.VirtualMaildir("alice"), id, msg)
	time.Sleep(settleTime)
	expectCount(t, cfg.VirtualMaildir("alice"), id, 1)
}

// TestPostfixStalePooledConn: a pooled connection that the server closed
// while it was idle (with Postfix's 421 timeout reply, or silently) is
// replaced before the next message, which is delivered once.
func TestPostfixStalePooledConn(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"421", []byte("421 4.4.2 mx.interop.test Error: timeout exceeded\r\n")},
		{"silent-close", nil},
	} {
		for _, chunking := range []bool{false, true} {
			t.Run(tc.name+"/"+map[bool]string{false: "DATA", true: "BDAT"}[chunking], func(t *testing.T) {
				t.Parallel()
				p := startProxy(t, cfg.PostfixSMTP)
				var cc connCounter
				tr := &transport.SMTP{Addr: p.addr(), Security: transport.Plaintext, LocalName: ehloName, Dialer: cc.dialer(), DisableChunking: !chunking}
				t.Cleanup(func() { tr.Close() })
				ctx := testCtx(t, time.Minute)
				var ids []string
				msgs := map[string][]byte{}
				for i := 0; i < 3; i++ {
					id := marker(t)
					msg := message(id, alice, "stale pooled connection", "message after an idle close\r\n")
					res, err := tr.Send(ctx, envelope.New(sender, alice), struct{ io.Reader }{bytes.NewReader(msg)})
					if err != nil {
						t.Fatalf("Send %d: %v (%s)", i, err, rcptSummary(res))
					}
					ids = append(ids, id)
					msgs[id] = msg
					if i < 2 {
						p.kill(tc.msg) // the server closes the idle session
						time.Sleep(100 * time.Millisecond)
					}
				}
				if n := cc.Opened(); n != 3 {
					t.Errorf("%d connections, want 3 (one per idle close)", n)
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
}

// blockingBody returns its first part, then cancels the send and blocks
// until the context ends.
type blockingBody struct {
	first  *bytes.Reader
	cancel context.CancelFunc
	ctx    context.Context
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if b.first.Len() > 0 {
		return b.first.Read(p)
	}
	b.cancel()
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

// TestPostfixCancelMidData cancels a Send in the middle of its data: it
// returns promptly with the cancellation, the recipient is not accepted,
// and Postfix never delivers the truncated message.
func TestPostfixCancelMidData(t *testing.T) {
	t.Parallel()
	cfg := interoptest.Env(t)
	alice := cfg.Alice.Address(cfg.Domain)
	for _, chunking := range []bool{false, true} {
		t.Run(map[bool]string{false: "DATA", true: "BDAT"}[chunking], func(t *testing.T) {
			t.Parallel()
			tr := plainPostfix(t, cfg, nil)
			tr.DisableChunking = !chunking
			id := marker(t)
			// The part sent ends as if it were a whole message.
			first := append(message(id, alice, "cancelled", ""), bytes.Repeat([]byte("a line of a message that is cut\r\n"), 4000)...)
			first = append(first, ".\r\n"...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			body := &blockingBody{first: bytes.NewReader(first), cancel: cancel, ctx: ctx}
			start := time.Now()
			res, err := tr.Send(ctx, envelope.New(sender, alice), body)
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("Send returned %v after the start", d)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
			for _, class := range []error{transport.ErrTransient, transport.ErrPermanent, transport.ErrUnknownOutcome} {
				if errors.Is(err, class) {
					t.Errorf("the caller's cancellation matches %v", class)
				}
			}
			if res == nil || len(res.Rcpts) != 1 || res.Rcpts[0].Outcome != transport.TempFailed {
				t.Errorf("Result %s, want alice TempFailed", rcptSummary(res))
			}
			interoptest.AssertNoMaildir(t, cfg.VirtualMaildir("alice"), id, 2*settleTime)
		})
	}
}
