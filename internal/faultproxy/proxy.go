// Package faultproxy is a TCP and Unix-socket proxy for tests that puts
// faults between an SMTP or LMTP client and a real server (smtptest, or
// Postfix and Dovecot in interop tests): it cuts the connection after byte
// N in either direction, stalls a direction after byte N or before reply N,
// strips STARTTLS and AUTH from EHLO replies, rewrites any reply, and
// terminates TLS with a certificate of its own (a man in the middle, for
// implicit TLS and STARTTLS alike). It counts the bytes each way and
// records both streams of every connection.
//
// Offsets count the bytes of the stream the proxy relays: the raw bytes in
// clear, ciphertext included after a STARTTLS it does not intercept; the
// plaintext when it terminates TLS (the handshakes are not counted).
//
// [Analyze] splits recorded streams into commands and the replies that
// answer them, so that a test can tell which step a cut position falls in
// and whether the end of the data reached the server.
package faultproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Dir is a direction of the relayed streams.
type Dir int

const (
	// Up is client to server.
	Up Dir = iota
	// Down is server to client.
	Down
)

// String returns "client->server" or "server->client".
func (d Dir) String() string {
	if d == Up {
		return "client->server"
	}
	return "server->client"
}

// Point is a position in one direction: after N bytes forwarded.
type Point struct {
	Dir Dir
	N   int64
}

// Config configures a [Proxy].
type Config struct {
	// Network and Addr are where the proxy listens: "tcp" (the default)
	// on Addr or a free port of 127.0.0.1; "unix" on Addr or a socket in a
	// new temporary directory that Close removes.
	Network, Addr string
	// TargetNetwork ("tcp" by default, or "unix") and Target are the
	// server the proxy connects to for each client connection.
	TargetNetwork, Target string

	// Cut, if not nil, closes both connections as soon as Cut.N bytes
	// have been forwarded in Cut.Dir; with N = 0, when the first byte in
	// that direction is ready to be forwarded. Nothing more is forwarded.
	Cut *Point
	// Reset makes a cut close the connections with a TCP RST.
	Reset bool
	// Stall, if not nil, stops forwarding in Stall.Dir once Stall.N bytes
	// have been forwarded (with N = 0, before the first), until the
	// connection ends; the other direction keeps flowing.
	Stall *Point
	// StallReply, if positive, stops forwarding server to client before
	// the StallReply-th reply (1 is the greeting), until the connection
	// ends. Replies are counted only where the proxy sees plaintext.
	StallReply int
	// StripSTARTTLS and StripAUTH remove those capabilities from EHLO and
	// LHLO replies (keeping the reply well formed).
	StripSTARTTLS, StripAUTH bool
	// Rewrite, if not nil, may replace each complete server reply (n
	// counts them from 1, the greeting); it returns the bytes to forward.
	Rewrite func(n int, reply string) string
	// FaultConns limits the faults above (not the TLS settings) to the
	// first FaultConns connections; 0 means every connection.
	FaultConns int

	// TLS is the proxy's own server configuration (its certificate),
	// presented to the client when it terminates TLS.
	TLS *tls.Config
	// ImplicitTLS terminates TLS from the first byte on both sides: with
	// TLS towards the client, with UpstreamTLS towards the server.
	ImplicitTLS bool
	// InterceptSTARTTLS terminates TLS after a STARTTLS: once the server's
	// 220 reply is relayed, the proxy handshakes with the server
	// (UpstreamTLS) and then with the client (TLS), and relays plaintext.
	InterceptSTARTTLS bool
	// UpstreamTLS is the client configuration towards the server.
	UpstreamTLS *tls.Config
}

// ConnInfo describes one relayed connection.
type ConnInfo struct {
	// Index numbers connections from 0 in accept order.
	Index int
	// Faulty reports whether the faults applied to this connection.
	Faulty bool
	// Received holds the bytes read from each direction's source; Forwarded
	// the bytes written to its destination (after rewriting and up to a
	// cut or stall).
	Received, Forwarded [2][]byte
	// Cut reports that the cut fired; Stalled that a stall began, per
	// direction.
	Cut     bool
	Stalled [2]bool
	// TLS reports that the proxy terminated TLS with the client.
	TLS bool
	// Err is the first error that ended the relay (nil for a clean end or a
	// cut).
	Err error
	// Done reports that the connection ended.
	Done bool
}

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg    Config
	ln     net.Listener
	tmpDir string
	wg     sync.WaitGroup

	mu        sync.Mutex
	conns     []*conn
	active    int
	maxActive int
	closed    bool
}

// Start listens and starts relaying.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Target == "" {
		return nil, errors.New("faultproxy: no Target")
	}
	if (cfg.ImplicitTLS || cfg.InterceptSTARTTLS) && cfg.TLS == nil {
		return nil, errors.New("faultproxy: terminating TLS needs Config.TLS")
	}
	if cfg.ImplicitTLS && cfg.InterceptSTARTTLS {
		return nil, errors.New("faultproxy: ImplicitTLS and InterceptSTARTTLS exclude each other")
	}
	p := &Proxy{cfg: cfg}
	network, addr := cfg.Network, cfg.Addr
	switch network {
	case "", "tcp":
		network = "tcp"
		if addr == "" {
			addr = "127.0.0.1:0"
		}
	case "unix":
		if addr == "" {
			dir, err := os.MkdirTemp("", "faultproxy")
			if err != nil {
				return nil, err
			}
			p.tmpDir = dir
			addr = filepath.Join(dir, "proxy.sock")
		}
	default:
		return nil, fmt.Errorf("faultproxy: unsupported network %q", network)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		if p.tmpDir != "" {
			os.RemoveAll(p.tmpDir)
		}
		return nil, err
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address to dial: "127.0.0.1:port" or the socket path.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Network returns "tcp" or "unix".
func (p *Proxy) Network() string { return p.ln.Addr().Network() }

// Close stops listening, tears down every connection and waits for the
// relaying goroutines to return.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := append([]*conn(nil), p.conns...)
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.teardown(false)
	}
	p.wg.Wait()
	if p.tmpDir != "" {
		os.RemoveAll(p.tmpDir)
	}
	return err
}

// Conns returns a snapshot of every connection so far.
func (p *Proxy) Conns() []ConnInfo {
	p.mu.Lock()
	conns := append([]*conn(nil), p.conns...)
	p.mu.Unlock()
	out := make([]ConnInfo, len(conns))
	for i, c := range conns {
		out[i] = c.snapshot()
	}
	return out
}

// Conn returns a snapshot of connection i, and false if there is none.
func (p *Proxy) Conn(i int) (ConnInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i < 0 || i >= len(p.conns) {
		return ConnInfo{}, false
	}
	return p.conns[i].snapshot(), true
}

// MaxActive returns the largest number of connections relayed at the
// same time.
func (p *Proxy) MaxActive() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxActive
}

// WaitIdle waits until every connection accepted so far has ended, or d
// passes; it reports whether they all ended.
func (p *Proxy) WaitIdle(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		p.mu.Lock()
		n := p.active
		p.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			nc.Close()
			return
		}
		c := &conn{
			p:       p,
			idx:     len(p.conns),
			client:  nc,
			done:    make(chan struct{}),
			verdict: make(chan verdict, 1),
		}
		c.faulty = p.cfg.FaultConns <= 0 || c.idx < p.cfg.FaultConns
		c.info.Index, c.info.Faulty = c.idx, c.faulty
		p.conns = append(p.conns, c)
		p.active++
		p.maxActive = max(p.maxActive, p.active)
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run()
	}
}

// conn is one relayed connection.
type conn struct {
	p      *Proxy
	idx    int
	faulty bool
	client net.Conn // raw, as accepted
	server net.Conn // raw, as dialed

	done     chan struct{}
	downOnce sync.Once
	verdict  chan verdict

	// clientR and serverR read the raw connections in clear; the
	// STARTTLS interception hands them to the TLS layer so that nothing
	// read ahead is lost.
	clientR, serverR *bufio.Reader

	repliesStarted atomic.Int64 // complete replies the down pump began to forward
	tlsReply       atomic.Int64 // the reply that answers STARTTLS, 0 if none pending

	mu   sync.Mutex
	info ConnInfo
	fwd  [2]int64
}

// verdict is what the down pump tells the up pump after the reply to
// STARTTLS: whether TLS starts and, when intercepted, the new connections.
type verdict struct {
	tls      bool
	src, dst net.Conn
}

var (
	errCut     = errors.New("faultproxy: cut")
	errStalled = errors.New("faultproxy: stalled")
)

func (c *conn) snapshot() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := c.info
	for d := 0; d < 2; d++ {
		ci.Received[d] = bytes.Clone(c.info.Received[d])
		ci.Forwarded[d] = bytes.Clone(c.info.Forwarded[d])
	}
	return ci
}

func (c *conn) setErr(err error) {
	if err == nil || errors.Is(err, errCut) || errors.Is(err, errStalled) {
		return
	}
	c.mu.Lock()
	if c.info.Err == nil {
		c.info.Err = err
	}
	c.mu.Unlock()
}

// teardown closes both raw connections (with RST if reset) once.
func (c *conn) teardown(reset bool) {
	c.downOnce.Do(func() {
		close(c.done)
		c.mu.Lock()
		server := c.server
		c.mu.Unlock()
		for _, nc := range []net.Conn{c.client, server} {
			if nc == nil {
				continue
			}
			if reset {
				if tc, ok := nc.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
			}
			nc.Close()
		}
	})
}

func (c *conn) run() {
	defer c.p.wg.Done()
	defer func() {
		c.mu.Lock()
		c.info.Done = true
		c.mu.Unlock()
		c.p.mu.Lock()
		c.p.active--
		c.p.mu.Unlock()
	}()
	cfg := &c.p.cfg

	network := cfg.TargetNetwork
	if network == "" {
		network = "tcp"
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	sc, err := d.Dial(network, cfg.Target)
	if err == nil {
		c.mu.Lock()
		c.server = sc
		c.mu.Unlock()
	}
	if err != nil {
		c.setErr(err)
		c.client.Close()
		c.downOnce.Do(func() { close(c.done) })
		return
	}
	select {
	case <-c.done: // Close ran while dialing
		sc.Close()
		return
	default:
	}
	c.clientR = bufio.NewReaderSize(c.client, 32<<10)
	c.serverR = bufio.NewReaderSize(sc, 32<<10)

	upR, upDst, downR, downDst := c.clientR, net.Conn(sc), c.serverR, c.client
	if cfg.ImplicitTLS {
		ct := tls.Server(readerConn{c.client, c.clientR}, cfg.TLS)
		st := tls.Client(readerConn{sc, c.serverR}, upstreamConfig(cfg))
		upR, upDst, downR, downDst = bufio.NewReaderSize(ct, 32<<10), st, bufio.NewReaderSize(st, 32<<10), ct
		c.mu.Lock()
		c.info.TLS = true
		c.mu.Unlock()
	}
	parse := cfg.ImplicitTLS || cfg.InterceptSTARTTLS ||
		c.faulty && (cfg.StripSTARTTLS || cfg.StripAUTH || cfg.StallReply > 0 || cfg.Rewrite != nil)
	detect := parse && !cfg.ImplicitTLS

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := c.up(upR, upDst, detect)
		c.setErr(err)
		c.teardown(errors.Is(err, errCut) && cfg.Reset)
	}()
	go func() {
		defer wg.Done()
		err := c.down(downR, downDst, parse, detect)
		c.setErr(err)
		c.teardown(errors.Is(err, errCut) && cfg.Reset)
	}()
	wg.Wait()
}

func upstreamConfig(cfg *Config) *tls.Config {
	if cfg.UpstreamTLS != nil {
		return cfg.UpstreamTLS
	}
	return &tls.Config{InsecureSkipVerify: true} // the proxy only relays; the tests check the client
}

// readerConn reads through a bufio.Reader of its connection.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (rc readerConn) Read(p []byte) (int, error) { return rc.r.Read(p) }

func (c *conn) recv(d Dir, b []byte) {
	c.mu.Lock()
	c.info.Received[d] = append(c.info.Received[d], b...)
	c.mu.Unlock()
}

// faultPoint returns the next fault position in direction d and whether it
// is a cut; ok is false if there is none.
func (c *conn) faultPoint(d Dir) (n int64, cut, ok bool) {
	if !c.faulty {
		return 0, false, false
	}
	cfg := &c.p.cfg
	n = -1
	if p := cfg.Cut; p != nil && p.Dir == d {
		n, cut, ok = p.N, true, true
	}
	if p := cfg.Stall; p != nil && p.Dir == d && (!ok || p.N < n) {
		n, cut, ok = p.N, false, true
	}
	return n, cut, ok
}

// emit forwards b to dst in direction d, firing a cut or a stall at its
// position.
func (c *conn) emit(d Dir, dst net.Conn, b []byte) error {
	point, cut, has := c.faultPoint(d)
	for {
		c.mu.Lock()
		fwd := c.fwd[d]
		c.mu.Unlock()
		if has && fwd >= point {
			return c.fire(d, cut)
		}
		if len(b) == 0 {
			return nil
		}
		n := int64(len(b))
		if has && point-fwd < n {
			n = point - fwd
		}
		w, err := dst.Write(b[:n])
		c.mu.Lock()
		c.fwd[d] += int64(w)
		c.info.Forwarded[d] = append(c.info.Forwarded[d], b[:w]...)
		c.mu.Unlock()
		if err != nil {
			return err
		}
		b = b[n:]
	}
}

func (c *conn) fire(d Dir, cut bool) error {
	if cut {
		c.mu.Lock()
		c.info.Cut = true
		c.mu.Unlock()
		return errCut
	}
	c.mu.Lock()
	c.info.Stalled[d] = true
	c.mu.Unlock()
	<-c.done
	return errStalled
}

// up relays client to server. With detect, it reads lines until the first
// MAIL and watches for STARTTLS, waiting for the down pump's verdict.
func (c *conn) up(r *bufio.Reader, dst net.Conn, detect bool) error {
	buf := make([]byte, 32<<10)
	for {
		if !detect {
			n, err := r.Read(buf)
			if n > 0 {
				c.recv(Up, buf[:n])
				if werr := c.emit(Up, dst, buf[:n]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return endErr(err)
			}
			continue
		}
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			// The slice is only valid until the next read, which the
			// STARTTLS interception may do from the other goroutine.
			line = bytes.Clone(line)
			c.recv(Up, line)
			verb := strings.ToUpper(strings.TrimSpace(string(line)))
			starttls := err == nil && verb == "STARTTLS"
			if starttls {
				c.tlsReply.Store(c.repliesStarted.Load() + 1)
			}
			if werr := c.emit(Up, dst, line); werr != nil {
				return werr
			}
			if v, _, _ := strings.Cut(verb, " "); v == "MAIL" || v == "DATA" || v == "BDAT" {
				detect = false
			}
			if starttls {
				var v verdict
				select {
				case v = <-c.verdict:
				case <-c.done:
					return nil
				}
				if v.tls {
					detect = false
					if v.src != nil {
						dst = v.dst
						r = bufio.NewReaderSize(v.src, 32<<10)
					}
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return endErr(err)
		}
	}
}

func endErr(err error) error {
	if err == io.EOF || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// down relays server to client. With parse, it forwards whole replies,
// counting them for StallReply and rewriting them; with detect it handles
// the reply to STARTTLS.
func (c *conn) down(r *bufio.Reader, dst net.Conn, parse, detect bool) error {
	cfg := &c.p.cfg
	buf := make([]byte, 32<<10)
	for {
		if !parse {
			n, err := r.Read(buf)
			if n > 0 {
				c.recv(Down, buf[:n])
				if werr := c.emit(Down, dst, buf[:n]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return endErr(err)
			}
			continue
		}
		reply, err := readReply(r)
		if len(reply) > 0 {
			c.recv(Down, reply)
			complete := err == nil
			var n int64
			if complete {
				n = c.repliesStarted.Add(1)
				if c.faulty && cfg.StallReply > 0 && int64(cfg.StallReply) == n {
					return c.fire(Down, false)
				}
				reply = c.rewrite(int(n), reply)
			}
			if werr := c.emit(Down, dst, reply); werr != nil {
				return werr
			}
			if complete && detect && c.tlsReply.Load() == n {
				c.tlsReply.Store(0)
				v := verdict{tls: replyCode(reply) == 220}
				if v.tls {
					parse = cfg.InterceptSTARTTLS
					if cfg.InterceptSTARTTLS {
						ct, st, herr := c.intercept()
						if herr != nil {
							c.verdict <- verdict{}
							return herr
						}
						v.src, v.dst = ct, st
						dst = ct
						r = bufio.NewReaderSize(st, 32<<10)
					}
				}
				c.verdict <- v
			}
		}
		if err != nil {
			return endErr(err)
		}
	}
}

// intercept runs both TLS handshakes after a 220 reply to STARTTLS and
// returns the client-side and server-side TLS connections.
func (c *conn) intercept() (client, server *tls.Conn, err error) {
	cfg := &c.p.cfg
	st := tls.Client(readerConn{c.server, c.serverR}, upstreamConfig(cfg))
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if err := st.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("faultproxy: upstream handshake: %w", err)
	}
	st.SetDeadline(time.Time{})
	ct := tls.Server(readerConn{c.client, c.clientR}, cfg.TLS)
	ct.SetDeadline(time.Now().Add(10 * time.Second))
	if err := ct.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("faultproxy: client handshake: %w", err)
	}
	ct.SetDeadline(time.Time{})
	c.mu.Lock()
	c.info.TLS = true
	c.mu.Unlock()
	return ct, st, nil
}

func (c *conn) rewrite(n int, reply []byte) []byte {
	cfg := &c.p.cfg
	if !c.faulty {
		return reply
	}
	var strip []string
	if cfg.StripSTARTTLS {
		strip = append(strip, "STARTTLS")
	}
	if cfg.StripAUTH {
		strip = append(strip, "AUTH")
	}
	if len(strip) > 0 {
		reply = StripCapabilities(reply, strip...)
	}
	if cfg.Rewrite != nil {
		reply = []byte(cfg.Rewrite(n, string(reply)))
	}
	return reply
}

// maxReply bounds what the proxy collects as one reply; a longer one is
// forwarded as it is.
const maxReply = 1 << 20

// readReply reads one complete reply (lines up to one whose fourth byte is
// not '-'). On error it returns what it read so far.
func readReply(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		line, err := r.ReadSlice('\n')
		out = append(out, line...)
		if err == bufio.ErrBufferFull {
			if len(out) > maxReply {
				return out, nil
			}
			continue
		}
		if err != nil {
			return out, err
		}
		if finalLine(line) || len(out) > maxReply {
			return out, nil
		}
	}
}

func finalLine(line []byte) bool {
	l := bytes.TrimRight(line, "\r\n")
	return len(l) < 4 || l[3] != '-'
}

func replyCode(reply []byte) int {
	if len(reply) < 3 {
		return 0
	}
	n := 0
	for _, b := range reply[:3] {
		if b < '0' || b > '9' {
			return 0
		}
		n = n*10 + int(b-'0')
	}
	return n
}

// StripCapabilities removes the lines whose keyword is one of keywords
// (case-insensitively; "AUTH" also removes the obsolete "AUTH=" form)
// from a multi-line 250 reply, and fixes the separators so that the
// reply stays well formed. Other replies are returned unchanged.
func StripCapabilities(reply []byte, keywords ...string) []byte {
	lines := bytes.SplitAfter(reply, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) < 2 || !bytes.HasPrefix(lines[0], []byte("250")) {
		return reply
	}
	kept := [][]byte{lines[0]}
	for _, l := range lines[1:] {
		text := bytes.TrimRight(l, "\r\n")
		if len(text) > 4 {
			kw, _, _ := strings.Cut(string(text[4:]), " ")
			kw, _, _ = strings.Cut(kw, "=")
			drop := false
			for _, k := range keywords {
				if strings.EqualFold(kw, k) {
					drop = true
				}
			}
			if drop {
				continue
			}
		}
		kept = append(kept, l)
	}
	if len(kept) == len(lines) {
		return reply
	}
	var out []byte
	for i, l := range kept {
		l = bytes.Clone(l)
		if len(l) >= 4 && l[3] != '\r' && l[3] != '\n' {
			if i == len(kept)-1 {
				l[3] = ' '
			} else {
				l[3] = '-'
			}
		} else if i < len(kept)-1 {
			// "250" alone followed by more lines: make it a continuation.
			l = append([]byte("250-"), bytes.TrimLeft(l[3:], " ")...)
		}
		out = append(out, l...)
	}
	return out
}
