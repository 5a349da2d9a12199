// Package scripted is a scripted SMTP server for tests of faults that real
// servers do not produce: malformed or oversized replies, a connection
// dropped after the final dot, a stalled greeting, bytes injected after a
// STARTTLS reply. A script is a list of steps run against one client
// connection; the server records every byte the client sent.
package scripted

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// A Step is one action of the server.
type Step func(s *Session) error

// Session is the server side of one connection while a script runs.
type Session struct {
	conn net.Conn
	r    *bufio.Reader
	srv  *Server
}

// Server accepts one connection per script run on a loopback port.
type Server struct {
	Addr string

	ln     net.Listener
	script []Step
	tls    *tls.Config

	mu       sync.Mutex
	received bytes.Buffer
	done     chan error
	conns    []net.Conn
}

// Start listens on 127.0.0.1 and runs script against the first connection.
func Start(script ...Step) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, script: script, done: make(chan error, 1), tls: testTLS}
	go s.serve()
	return s, nil
}

// Wait returns the script's result once the connection is finished.
func (s *Server) Wait(timeout time.Duration) error {
	select {
	case err := <-s.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("scripted: script did not finish in %v", timeout)
	}
}

// Close stops the server and its connection.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// Received returns everything the client sent (decrypted after TLS).
func (s *Server) Received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received.String()
}

func (s *Server) serve() {
	c, err := s.ln.Accept()
	if err != nil {
		s.done <- err
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	sess := &Session{conn: c, srv: s}
	sess.r = bufio.NewReader(&recorder{r: c, s: s})
	for i, step := range s.script {
		if err := step(sess); err != nil {
			c.Close()
			s.done <- fmt.Errorf("step %d: %w", i, err)
			return
		}
	}
	c.Close()
	s.done <- nil
}

type recorder struct {
	r io.Reader
	s *Server
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.s.mu.Lock()
	r.s.received.Write(p[:n])
	r.s.mu.Unlock()
	return n, err
}

// Send writes raw bytes.
func Send(b string) Step {
	return func(s *Session) error {
		_, err := io.WriteString(s.conn, b)
		return err
	}
}

// Reply writes each line followed by CRLF, all in one write.
func Reply(lines ...string) Step {
	return Send(strings.Join(lines, "\r\n") + "\r\n")
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

// ExpectData reads message data up to and including the final dot.
func ExpectData() Step {
	return func(s *Session) error {
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("reading data: %w", err)
			}
			if line == ".\r\n" {
				return nil
			}
		}
	}
}

// Close closes the connection.
func Close() Step {
	return func(s *Session) error { return s.conn.Close() }
}

// Stall waits d without reading or writing.
func Stall(d time.Duration) Step {
	return func(s *Session) error { time.Sleep(d); return nil }
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

// StartTLS performs the server side of a TLS handshake with the package's
// test certificate; later steps speak over TLS.
func StartTLS() Step {
	return func(s *Session) error {
		tc := tls.Server(s.conn, s.srv.tls)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		s.conn = tc
		s.r = bufio.NewReader(&recorder{r: tc, s: s.srv})
		return nil
	}
}

// Do runs f.
func Do(f func()) Step { return func(*Session) error { f(); return nil } }

var testTLS *tls.Config

// CertPool returns a pool trusting the server's test certificate, which is
// valid for 127.0.0.1 and localhost.
func CertPool() *x509.CertPool { return testPool }

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
