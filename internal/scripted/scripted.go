// Package scripted is a scripted SMTP server for tests of faults that real
// servers do not produce: malformed or oversized replies, a connection
// dropped after the final dot, a stalled greeting, bytes injected after a
// STARTTLS reply. A script is a list of steps run against one client
// connection; the server records every byte the client sent and every byte
// it wrote itself.
//
// A conversation is written as the client lines the server expects and the
// replies it sends:
//
//	s, _ := scripted.Start(
//		scripted.Reply("220 fake ESMTP"),
//		scripted.Expect("EHLO"), scripted.Caps("PIPELINING", "STARTTLS").Without("STARTTLS").Reply("fake"),
//		scripted.Expect("MAIL FROM:"), scripted.ReplySplit(2, "250 ok"), // "25", a pause, " ok\r\n"
//		scripted.Expect("RCPT TO:"), scripted.Reply("250 ok"),
//		scripted.Expect("DATA"), scripted.Reply("354 go"),
//		scripted.ExpectData(), scripted.Close(), // lost after the final dot
//	)
//
// Steps can inject bytes in the same segment as a reply ([ReplyInject]),
// split a reply at any byte ([ReplySplit], [SendSplit]), send part of a
// reply and close ([ReplyCut]), stall ([Stall], [StallUntilClosed]), close
// or reset the connection at any point ([Close], [Reset]), and strip or add
// capabilities ([Capabilities]). [Auto] answers the rest of a session like
// a tolerant SMTP or LMTP server, with a hook to replace, cut or stall the
// reply to any command; it follows whatever order the client writes in,
// pipelined or not.
//
// [Start] listens on a loopback TCP port; [StartWith] also serves implicit
// TLS (TLS from the first byte), a Unix socket, or an in-memory net.Pipe
// reached through [Server.Dialer].
package scripted

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A Step is one action of the server.
type Step func(s *Session) error

// Session is the server side of one connection while a script runs.
type Session struct {
	conn  net.Conn // current connection (TLS after StartTLS)
	raw   net.Conn // the accepted connection
	r     *bufio.Reader
	srv   *Server
	tls   bool
	index int
}

// Index returns the connection's number, from 0 in accept order.
func (s *Session) Index() int { return s.index }

// Conn returns the session's current connection (a *tls.Conn after
// StartTLS or with implicit TLS).
func (s *Session) Conn() net.Conn { return s.conn }

// TLS reports whether the session is encrypted.
func (s *Session) TLS() bool { return s.tls }

// ReadLine reads one line from the client, CRLF included.
func (s *Session) ReadLine() (string, error) { return s.r.ReadString('\n') }

// Write writes raw bytes to the client and records them.
func (s *Session) Write(b []byte) error {
	_, err := s.conn.Write(b)
	s.srv.mu.Lock()
	s.srv.sent.Write(b)
	s.srv.mu.Unlock()
	return err
}

// Reader returns the buffered reader of the client's bytes; steps that read
// must use it so that nothing read ahead is lost.
func (s *Session) Reader() *bufio.Reader { return s.r }

// Server returns the server running the session.
func (s *Session) Server() *Server { return s.srv }

// Options configure [StartWith].
type Options struct {
	// Network is "tcp" (the default: a free port of 127.0.0.1), "unix" (a
	// socket in a new temporary directory, removed by Close) or "pipe" (an
	// in-memory net.Pipe; dial it with [Server.Dialer]).
	Network string
	// ImplicitTLS serves TLS from the first byte, like port 465; the
	// script runs over the TLS connection.
	ImplicitTLS bool
	// TLSConfig is the server's TLS configuration for ImplicitTLS and the
	// StartTLS step; nil uses the package's test certificate (see
	// [CertPool]).
	TLSConfig *tls.Config
	// Conns is the number of connections served, each running the whole
	// script from its first step, concurrently; 0 means 1, a negative
	// value any number. Wait reports on the first; the records (Received,
	// Sent, Commands, Deliveries) cover all of them.
	Conns int
}

// Server accepts one connection per script run.
type Server struct {
	// Addr is the address to dial: "127.0.0.1:port", the socket's path,
	// or "pipe".
	Addr string
	// Network is "tcp", "unix" or "pipe".
	Network string

	ln     net.Listener
	script []Step
	tls    *tls.Config
	opts   Options
	tmpDir string
	pipe   chan net.Conn

	mu         sync.Mutex
	received   bytes.Buffer
	sent       bytes.Buffer
	conns      []net.Conn
	closed     bool
	clientEOF  bool
	commands   []string
	deliveries []Delivery

	done     chan error    // the script's result, once
	exited   chan struct{} // closed when the serving goroutine returns
	stop     chan struct{} // closed by Close: interrupts stalls
	stopOnce sync.Once
}

// Start listens on 127.0.0.1 and runs script against the first connection.
func Start(script ...Step) (*Server, error) {
	return StartWith(Options{}, script...)
}

// StartWith is Start with options: implicit TLS, a Unix socket or a pipe.
func StartWith(o Options, script ...Step) (*Server, error) {
	s := &Server{
		script: script,
		opts:   o,
		tls:    o.TLSConfig,
		done:   make(chan error, 1),
		exited: make(chan struct{}),
		stop:   make(chan struct{}),
	}
	if s.tls == nil {
		s.tls = testTLS
	}
	s.Network = o.Network
	switch o.Network {
	case "", "tcp":
		s.Network = "tcp"
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.ln = ln
		s.Addr = ln.Addr().String()
	case "unix":
		dir, err := os.MkdirTemp("", "scripted")
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "smtp.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.ln, s.tmpDir, s.Addr = ln, dir, path
	case "pipe":
		s.Addr = "pipe"
		s.pipe = make(chan net.Conn)
	default:
		return nil, fmt.Errorf("scripted: unknown network %q", o.Network)
	}
	go s.serve()
	return s, nil
}

// Dialer returns a dialer that reaches the server whatever address it is
// asked for: a net.Pipe for a "pipe" server, the listener's address
// otherwise. It satisfies the dialer.Dialer interface.
func (s *Server) Dialer() Dialer { return Dialer{s: s} }

// Dialer dials a scripted server; see [Server.Dialer].
type Dialer struct{ s *Server }

// DialContext connects to the server.
func (d Dialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	s := d.s
	if s.Network != "pipe" {
		var nd net.Dialer
		return nd.DialContext(ctx, s.Network, s.Addr)
	}
	client, server := net.Pipe()
	select {
	case s.pipe <- server:
		return client, nil
	case <-s.stop:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}

// Wait returns the script's result once the connection is finished.
func (s *Server) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-s.done:
		s.done <- err // keep it for another Wait
		return err
	case <-t.C:
		return fmt.Errorf("scripted: script did not finish in %v", timeout)
	}
}

// Close stops the server and its connection, interrupts any stall, and
// waits (up to five seconds) for the script's goroutine to return.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
	}
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// Received returns everything the client sent (decrypted after TLS).
func (s *Server) Received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received.String()
}

// Sent returns everything the server wrote (before encryption).
func (s *Server) Sent() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent.String()
}

// ClientClosed reports whether the server saw the client close the
// connection (end of stream) while reading.
func (s *Server) ClientClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientEOF
}

func (s *Server) accept() (net.Conn, error) {
	if s.pipe != nil {
		select {
		case c := <-s.pipe:
			return c, nil
		case <-s.stop:
			return nil, net.ErrClosed
		}
	}
	return s.ln.Accept()
}

func (s *Server) serve() {
	defer close(s.exited)
	n := s.opts.Conns
	if n == 0 {
		n = 1
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; n < 0 || i < n; i++ {
		c, err := s.accept()
		if err != nil {
			if i == 0 {
				s.done <- err
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			if i == 0 {
				s.done <- net.ErrClosed
			}
			return
		}
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.run(c, i)
			if i == 0 {
				s.done <- err
			}
		}()
	}
}

// run runs the script on connection c, the index-th accepted.
func (s *Server) run(c net.Conn, index int) error {
	defer c.Close()
	sess := &Session{conn: c, raw: c, srv: s, index: index}
	if s.opts.ImplicitTLS {
		tc := tls.Server(c, s.tls)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("implicit tls handshake: %w", err)
		}
		tc.SetDeadline(time.Time{})
		sess.conn, sess.tls = tc, true
	}
	sess.r = bufio.NewReader(&recorder{r: sess.conn, s: s})
	for i, step := range s.script {
		if err := step(sess); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

type recorder struct {
	r io.Reader
	s *Server
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.s.mu.Lock()
	r.s.received.Write(p[:n])
	if err == io.EOF {
		r.s.clientEOF = true
	}
	r.s.mu.Unlock()
	return n, err
}

// Send writes raw bytes in one write.
func Send(b string) Step {
	return func(s *Session) error { return s.Write([]byte(b)) }
}

// Reply writes each line followed by CRLF, all in one write.
func Reply(lines ...string) Step {
	return Send(joinReply(lines))
}

func joinReply(lines []string) string {
	return strings.Join(lines, "\r\n") + "\r\n"
}

// ReplyInject writes the reply lines, each followed by CRLF, and then
// extra, in the same write (the same TCP segment, as far as the kernel
// goes): the shape of a STARTTLS response injection.
func ReplyInject(extra string, lines ...string) Step {
	return Send(joinReply(lines) + extra)
}

// SplitPause is the pause between the two writes of ReplySplit and
// SendSplit: long enough for the client to read the first part alone.
const SplitPause = 20 * time.Millisecond

// SendSplit writes b[:at], pauses for SplitPause, then writes b[at:]. An
// out-of-range at is clamped.
func SendSplit(b string, at int) Step {
	at = max(0, min(at, len(b)))
	return SendChunks(SplitPause, b[:at], b[at:])
}

// ReplySplit writes the reply split at byte at (counted in the reply with
// its CRLFs) in two writes with a pause between.
func ReplySplit(at int, lines ...string) Step {
	return SendSplit(joinReply(lines), at)
}

// SendChunks writes each chunk in its own write, pausing between them.
// Empty chunks are skipped. A Close interrupts the pauses.
func SendChunks(pause time.Duration, chunks ...string) Step {
	return func(s *Session) error {
		first := true
		for _, c := range chunks {
			if c == "" {
				continue
			}
			if !first {
				if err := s.sleep(pause); err != nil {
					return err
				}
			}
			first = false
			if err := s.Write([]byte(c)); err != nil {
				return err
			}
		}
		return nil
	}
}

// ReplyCut writes the first n bytes of the reply (with CRLFs) and closes
// the connection: a server lost in the middle of a reply.
func ReplyCut(n int, lines ...string) Step {
	b := joinReply(lines)
	n = max(0, min(n, len(b)))
	return func(s *Session) error {
		if n > 0 {
			if err := s.Write([]byte(b[:n])); err != nil {
				return err
			}
		}
		return s.conn.Close()
	}
}

// Expect reads one line and checks that it starts with prefix
// (case-insensitively).
func Expect(prefix string) Step {
	return func(s *Session) error {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("expecting %q: %w", prefix, err)
		}
		if !strings.HasPrefix(strings.ToUpper(line), strings.ToUpper(prefix)) {
			return fmt.Errorf("got %q, want prefix %q", line, prefix)
		}
		return nil
	}
}

// ExpectLine reads one line and checks that it is exactly line followed
// by CRLF.
func ExpectLine(line string) Step {
	return func(s *Session) error {
		got, err := s.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("expecting %q: %w", line, err)
		}
		if got != line+"\r\n" {
			return fmt.Errorf("got %q, want %q", got, line+"\r\n")
		}
		return nil
	}
}

// ExpectData reads message data up to and including the final dot.
func ExpectData() Step {
	return ExpectDataFunc(nil)
}

// ExpectDataFunc reads message data up to and including the final dot and
// passes the data as sent (dot-stuffed, CRLF line endings, without the
// final ".\r\n") to check, if not nil; check's error fails the step.
func ExpectDataFunc(check func(data []byte) error) Step {
	return func(s *Session) error {
		data, err := readData(s.r)
		if err != nil {
			return err
		}
		if check != nil {
			return check(data)
		}
		return nil
	}
}

func readData(r *bufio.Reader) ([]byte, error) {
	var data []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return data, fmt.Errorf("reading data: %w", err)
		}
		if line == ".\r\n" {
			return data, nil
		}
		data = append(data, line...)
	}
}

// ExpectNothing fails if the client sends any byte within d; it is how a
// script checks that a client waits for a reply (nothing pipelined after
// STARTTLS, say). It does not consume anything but fails on any byte.
func ExpectNothing(d time.Duration) Step {
	return func(s *Session) error {
		s.conn.SetReadDeadline(time.Now().Add(d))
		defer s.conn.SetReadDeadline(time.Time{})
		b, err := s.r.Peek(1)
		if len(b) > 0 {
			return fmt.Errorf("client sent %q while it should wait", b)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		return err
	}
}

// ExpectClose waits up to d for the client to close the connection and
// fails if it sends anything first or does not close in time.
func ExpectClose(d time.Duration) Step {
	return func(s *Session) error {
		s.conn.SetReadDeadline(time.Now().Add(d))
		b, err := s.r.ReadByte()
		if err == nil {
			rest, _ := s.r.Peek(s.r.Buffered())
			return fmt.Errorf("client sent %q instead of closing", append([]byte{b}, rest...))
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("client did not close the connection within %v", d)
		}
		return nil
	}
}

// Close closes the connection.
func Close() Step {
	return func(s *Session) error { return s.conn.Close() }
}

// Reset closes the connection with a TCP RST instead of a FIN (a plain
// close on other networks).
func Reset() Step {
	return func(s *Session) error {
		if tc, ok := s.raw.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return s.raw.Close()
	}
}

// Stall waits d without reading or writing. Server.Close interrupts it.
func Stall(d time.Duration) Step {
	return func(s *Session) error { return s.sleep(d) }
}

// StallUntilClosed waits, without reading or writing, until Server.Close
// is called: a server that never answers.
func StallUntilClosed() Step {
	return func(s *Session) error {
		<-s.srv.stop
		return net.ErrClosed
	}
}

func (s *Session) sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.srv.stop:
		return net.ErrClosed
	}
}

// WaitClose waits until the client closes the connection (or d passes),
// discarding what it sends.
func WaitClose(d time.Duration) Step {
	return func(s *Session) error {
		s.conn.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, s.r)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("client did not close the connection within %v", d)
		}
		return nil
	}
}

// StartTLS performs the server side of a TLS handshake with the server's
// certificate (the package's test certificate unless Options.TLSConfig
// says otherwise); later steps speak over TLS. Anything the client sent
// before its ClientHello and the script did not read fails the step.
func StartTLS() Step {
	return func(s *Session) error {
		if n := s.r.Buffered(); n > 0 {
			b, _ := s.r.Peek(n)
			return fmt.Errorf("client sent %q before its TLS handshake", b)
		}
		tc := tls.Server(s.conn, s.srv.tls)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		tc.SetDeadline(time.Time{})
		s.conn, s.tls = tc, true
		s.r = bufio.NewReader(&recorder{r: tc, s: s.srv})
		return nil
	}
}

// Do runs f.
func Do(f func()) Step { return func(*Session) error { f(); return nil } }

// Func runs f with the session, for steps the package does not provide.
func Func(f func(s *Session) error) Step { return Step(f) }

// Steps concatenates steps and step lists into one list.
func Steps(parts ...any) []Step {
	var out []Step
	for _, p := range parts {
		switch v := p.(type) {
		case Step:
			out = append(out, v)
		case func(*Session) error:
			out = append(out, v)
		case []Step:
			out = append(out, v...)
		default:
			panic(fmt.Sprintf("scripted.Steps: unexpected %T", p))
		}
	}
	return out
}

var testTLS *tls.Config

// CertPool returns a pool trusting the server's test certificate, which is
// valid for 127.0.0.1 and localhost.
func CertPool() *x509.CertPool { return testPool }

// TLSConfig returns a copy of the server's default TLS configuration (the
// test certificate).
func TLSConfig() *tls.Config { return testTLS.Clone() }

var testPool *x509.CertPool

func init() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "scripted test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	testPool = x509.NewCertPool()
	testPool.AddCert(cert)
	testTLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
}
