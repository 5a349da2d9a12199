package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/smtptrace"
)

// Pool defaults, in the manner of net/http's Transport.
const (
	// DefaultMaxIdleConns is the number of idle connections a transport
	// keeps when MaxIdleConns is 0, as net/http keeps per host.
	DefaultMaxIdleConns = 2
	// DefaultIdleTimeout is how long an idle connection is kept when
	// IdleTimeout is 0: well under the 5 minutes a server waits for a
	// command (RFC 5321 4.5.3.2.7), so that servers rarely close first.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxMessagesPerConn is the number of transactions after which a
	// connection is closed when MaxMessagesPerConn is 0; providers often
	// refuse more on one connection (nodemailer and others use 100 too).
	DefaultMaxMessagesPerConn = 100
)

// ErrTransportClosed is returned by Send and SendBatch on a transport
// after Close, whether or not pooling is disabled.
var ErrTransportClosed = errors.New("transport: transport closed")

// PoolConfig configures the connection pool of an SMTP or LMTP transport.
// The zero value keeps DefaultMaxIdleConns idle connections for
// DefaultIdleTimeout, with no limit on open connections.
type PoolConfig struct {
	// MaxConns limits the connections open at once, busy and idle; Sends
	// beyond it wait for one, honouring their context. 0 means no limit.
	// It applies whether or not pooling is disabled.
	MaxConns int
	// MaxIdleConns is the number of idle connections kept for reuse; 0
	// means DefaultMaxIdleConns. A negative value disables pooling, that is
	// reuse only: each Send opens a connection and closes it with QUIT, while
	// MaxConns and Close still apply.
	MaxIdleConns int
	// IdleTimeout closes a connection idle for longer; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxMessagesPerConn closes a connection after that many transactions;
	// 0 means DefaultMaxMessagesPerConn, negative means no limit.
	MaxMessagesPerConn int
}

// pool holds the sessions of one transport: it counts the open ones
// against MaxConns, keeps the idle ones (none when pooling is disabled) and
// refuses use once closed. Every Send and SendBatch of an SMTP or LMTP
// transport goes through its pool. A pool belongs to one
// transport value, whose configuration must not change after the first
// Send; each session also carries the key of the configuration that opened
// it, and a session with another key is never reused.
type pool struct {
	cfg      *sessionConfig
	key      string
	maxConns int
	maxIdle  int
	idleTime time.Duration
	maxMsgs  int

	mu      sync.Mutex
	idle    []*Conn // most recently used last
	open    int
	waiters []chan struct{}
	closed  bool
	timer   *time.Timer
}

func newPool(cfg *sessionConfig, pc PoolConfig) *pool {
	p := &pool{cfg: cfg, key: cfg.key(), maxConns: pc.MaxConns, maxIdle: pc.MaxIdleConns,
		idleTime: pc.IdleTimeout, maxMsgs: pc.MaxMessagesPerConn}
	if p.maxIdle == 0 {
		p.maxIdle = DefaultMaxIdleConns
	}
	if p.idleTime <= 0 {
		p.idleTime = DefaultIdleTimeout
	}
	if p.maxMsgs == 0 {
		p.maxMsgs = DefaultMaxMessagesPerConn
	}
	return p
}

// key identifies everything that makes two sessions interchangeable: the
// address, the security mode, the TLS configuration, the identity and the
// protocol.
func (cfg *sessionConfig) key() string {
	return fmt.Sprintf("%s|%s|%d|%p|%s|%s|%v", cfg.network, cfg.addr, cfg.security, cfg.tlsConfig,
		cfg.localName, authIdentity(cfg.auth), cfg.lmtp)
}

// authIdentity names an Authenticator without reading its secrets.
func authIdentity(a any) string {
	switch v := a.(type) {
	case nil:
		return ""
	case interface{ Principal() string }:
		return fmt.Sprintf("%T:%q", a, v.Principal())
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Chan:
		return fmt.Sprintf("%T:%#x", a, rv.Pointer())
	}
	return fmt.Sprintf("%T", a)
}

// get returns an idle session that still answers, or a new one.
func (p *pool) get(ctx context.Context) (c *Conn, reused bool, err error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, p.cfg.opErr(OpDial, ErrTransportClosed)
		}
		for len(p.idle) > 0 {
			c = p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if time.Since(c.idleSince) > p.idleTime || c.key != p.key || c.w.Stale() {
				// Close before the slot is freed, so that MaxConns counts
				// every socket still open.
				p.mu.Unlock()
				c.closeNow()
				p.mu.Lock()
				p.open--
				continue
			}
			p.mu.Unlock()
			if t := smtptrace.ContextClientTrace(ctx); t != nil && t.GotConn != nil {
				t.GotConn(c.connInfo(true))
			}
			return c, true, nil
		}
		if p.maxConns <= 0 || p.open < p.maxConns {
			p.open++
			p.mu.Unlock()
			c, err := p.dialSlot(ctx)
			return c, false, err
		}
		ch := make(chan struct{}, 1)
		p.waiters = append(p.waiters, ch)
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			p.mu.Lock()
			for i, w := range p.waiters {
				if w == ch {
					p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
					break
				}
			}
			p.mu.Unlock()
			select {
			case <-ch:
				p.wakeOne() // pass the wake-up on
			default:
			}
			return nil, false, p.cfg.opErr(OpDial, context.Cause(ctx))
		}
	}
}

// dialSlot opens a session in a slot already counted in open; if the dial
// fails, the slot is released.
func (p *pool) dialSlot(ctx context.Context) (*Conn, error) {
	c, err := dial(ctx, p.cfg)
	if err != nil {
		p.release()
		return nil, err
	}
	c.key = p.key
	return c, nil
}

// replace closes a reused session found dead and dials a new session in its
// slot. The replacement is never taken from the idle list, whose sessions
// are likely dead for the same reason (a server restart, an idle timeout),
// and never waits behind other Sends for a slot, the dead session's being
// handed over; MaxConns still holds, as the dead socket is closed first.
func (p *pool) replace(ctx context.Context, dead *Conn) (*Conn, error) {
	dead.closeNow()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.release()
		return nil, p.cfg.opErr(OpDial, ErrTransportClosed)
	}
	return p.dialSlot(ctx)
}

// release forgets a connection that was closed or never opened.
func (p *pool) release() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
	p.wakeOne()
}

func (p *pool) wakeOne() {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		ch <- struct{}{}
	}
	p.mu.Unlock()
}

// put returns a session after use: kept idle if it is healthy and room
// remains, else closed. With pooling disabled, it is closed with QUIT and
// its reply awaited (bounded by ctx), as after a Send on a Conn.
func (p *pool) put(ctx context.Context, c *Conn) {
	if p.maxIdle < 0 {
		// Close before the slot is freed, so that MaxConns counts every
		// socket still open.
		c.CloseContext(ctx)
		p.release()
		return
	}
	c.mu.Lock()
	healthy := c.broken == nil && !c.closed && (p.maxMsgs < 0 || c.messages < p.maxMsgs)
	c.mu.Unlock()
	p.mu.Lock()
	if !healthy || p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.closeQuiet()
		p.release()
		return
	}
	c.idleSince = time.Now()
	c.proven = false
	p.idle = append(p.idle, c)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTime, p.reap)
	}
	p.mu.Unlock()
	p.wakeOne()
}

// reap closes idle sessions past their idle time.
func (p *pool) reap() {
	p.mu.Lock()
	p.timer = nil
	var expired []*Conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if time.Since(c.idleSince) >= p.idleTime {
			expired = append(expired, c)
		} else {
			keep = append(keep, c)
		}
	}
	for i := len(keep); i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = keep
	if len(p.idle) > 0 && !p.closed {
		p.timer = time.AfterFunc(p.idleTime, p.reap)
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.closeQuiet()
		p.release()
	}
}

// closeIdle closes every idle session; with shut, the pool also refuses
// further use.
func (p *pool) closeIdle(shut bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if shut {
		p.closed = true
		if p.timer != nil {
			p.timer.Stop()
			p.timer = nil
		}
	}
	waiters := p.waiters
	if shut {
		p.waiters = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.closeQuiet()
		p.release()
	}
	for _, w := range waiters {
		w <- struct{}{}
	}
}

// send delivers one message on a pooled session. A reused session that
// turns out to be dead (closed, or 421) before any of the message was read
// is replaced once, by a newly dialed session; the message is never written
// twice.
func (p *pool) send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	if res, err := invalidEnvelope(p.cfg, env); err != nil {
		return res, err
	}
	cr := &countingReader{r: msg}
	c, reused, err := p.get(ctx)
	if err != nil {
		return dialFailure(env, err)
	}
	res, err := c.sendValidated(ctx, env, cr)
	if reused && cr.n == 0 && staleFailure(err, res) {
		if c, err = p.replace(ctx, c); err != nil {
			return dialFailure(env, err)
		}
		res, err = c.sendValidated(ctx, env, cr)
	}
	p.put(ctx, c)
	return res, err
}

// staleFailure reports whether a transaction on a reused connection failed
// because the connection was already dead: lost or 421 before or at MAIL,
// with nothing accepted.
func staleFailure(err error, res *Result) bool {
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != OpMail || res == nil || res.Count(Accepted) > 0 {
		return false
	}
	var re *ReplyError
	if errors.As(oe.Err, &re) {
		return re.Code == 421
	}
	return isNetErr(oe.Err) && !isContextErr(oe.Err)
}

// invalidEnvelope checks env before any connection is taken, so that an
// envelope the server will never see costs no dial. A nil env passes: the
// session reports it.
func invalidEnvelope(cfg *sessionConfig, env *envelope.Envelope) (*Result, error) {
	if env == nil {
		return nil, nil
	}
	if err := env.Validate(); err != nil {
		res := newResult(env)
		(&tx{res: res}).failOpen(PermFailed, nil, err)
		return res, cfg.opErr(OpEnvelope, err)
	}
	return nil, nil
}

// dialFailure builds the Result of a Send whose session could not open.
func dialFailure(env *envelope.Envelope, err error) (*Result, error) {
	if env == nil {
		return nil, err
	}
	res := newResult(env)
	o := PermFailed
	if errors.Is(err, ErrTransient) || isContextErr(err) {
		o = TempFailed
	}
	(&tx{res: res}).failOpen(o, nil, err)
	return res, err
}

// countingReader counts the bytes read from a message.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// closeNow closes the connection without QUIT.
func (c *Conn) closeNow() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.w.Close()
}

// poolSlot holds a transport's pool; SMTP and LMTP embed it. The pool is
// made on first use, pooling disabled or not, and once the transport is
// closed every pool the slot makes is closed too.
type poolSlot struct {
	mu     sync.Mutex
	p      *pool
	closed bool
}

// get returns the pool for cfg. If the configuration changed since the
// pool was made (which the documentation forbids, but happens), a new pool
// replaces it so that no session is reused for another address, TLS
// configuration or identity.
func (s *poolSlot) get(cfg *sessionConfig, pc PoolConfig) *pool {
	s.mu.Lock()
	var old *pool
	if s.p == nil || s.p.key != cfg.key() {
		old = s.p
		s.p = newPool(cfg, pc)
		s.p.closed = s.closed
	}
	p := s.p
	s.mu.Unlock()
	if old != nil {
		old.closeIdle(true)
	}
	return p
}

// closeIdle closes the idle connections of the current pool, if any; with
// shut, the transport is closed: the pool, and any pool made later, refuses
// further use.
func (s *poolSlot) closeIdle(shut bool) {
	s.mu.Lock()
	if shut {
		s.closed = true
	}
	p := s.p
	s.mu.Unlock()
	if p != nil {
		p.closeIdle(shut)
	}
}
