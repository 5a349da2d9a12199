package smtptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"github.com/mailwire/mailwire/transport"
)

// A Server is an SMTP or LMTP server on a loopback TCP port or a Unix
// socket, for tests. It accepts and records every message unless a hook
// refuses it.
//
// Create one with [NewServer], [NewTLSServer], [NewStartTLSServer] or
// [NewLMTPServer], or with [NewUnstartedServer], set its exported fields,
// and call [Server.Start]. Start reads the fields and sets Addr and TLS; do
// not change them afterwards (the sessions keep what Start read, but URL,
// Transport and the other methods read the fields). Call [Server.Close] when
// done. A started Server serves any number of
// concurrent connections; its methods are safe for concurrent use.
//
// Besides the hooks' replies, the server answers:
//
//   - MAIL before a successful AUTH, when RequireAuth is set: "530 5.7.0
//     Authentication required";
//   - MAIL with REQUIRETLS on an unencrypted session: "530 5.7.10
//     REQUIRETLS requires an encrypted session";
//   - a failed authentication: "535 5.7.8 Authentication credentials
//     invalid"; an unknown mechanism: "504 5.7.4"; AUTH when no mechanism
//     is configured: "502 5.7.0"; AUTH on an unencrypted session where it
//     is not allowed: "523 5.7.10";
//   - a RCPT beyond MaxRecipients: "452 4.5.3"; a SIZE= or a message over
//     MaxMessageBytes: "552 5.3.4";
//   - parameters of a disabled extension (SMTPUTF8, REQUIRETLS, DSN,
//     BINARYMIME): "504 5.5.4".
type Server struct {
	// Network is "tcp" (the default) or "unix".
	Network string
	// Addr is the address to listen on. Start sets it to the address
	// listened on: "127.0.0.1:port", or the socket's path. If empty, Start
	// listens on a free port of 127.0.0.1, or, for "unix", on a socket in a
	// new temporary directory that Close removes.
	Addr string
	// Security is how sessions are protected. Plaintext offers no TLS;
	// StartTLS and StartTLSOpportunistic both offer STARTTLS without
	// requiring it; ImplicitTLS speaks TLS from the first byte.
	// [NewUnstartedServer] sets Plaintext; the zero value is StartTLS.
	Security transport.Security
	// LMTP makes the server speak LMTP (RFC 2033): LHLO instead of EHLO, and
	// one reply per recipient at the end of the data.
	LMTP bool
	// TLS is the server's TLS configuration. Unless Security is Plaintext,
	// Start sets it: to a copy of the configuration set before Start, if
	// any, or a new one, with a certificate for 127.0.0.1, ::1 and
	// "localhost" issued by a newly generated certificate authority (see
	// [Server.CertPool]) unless the configuration already has certificates.
	// Set ClientAuth and ClientCAs before Start to request client
	// certificates.
	TLS *tls.Config
	// Domain is the server's name in its greeting; "localhost" if empty.
	Domain string
	// MaxMessageBytes, if positive, is the SIZE limit (RFC 1870) the server
	// advertises and enforces; 0 advertises SIZE without a limit.
	MaxMessageBytes int64
	// MaxRecipients, if positive, is the number of recipients per
	// transaction the server accepts; it refuses further RCPT commands with
	// "452 4.5.3" and advertises "LIMITS RCPTMAX=n".
	MaxRecipients int
	// DiscardData makes the server read message data without keeping it:
	// recorded messages have a nil Data and their Size only. Benchmarks and
	// tests of very large messages use it so that the server's memory does
	// not grow with the message.
	DiscardData bool
	// EnableSMTPUTF8 advertises and accepts SMTPUTF8 (RFC 6531).
	EnableSMTPUTF8 bool
	// EnableRequireTLS advertises and accepts REQUIRETLS (RFC 8689) on
	// encrypted sessions.
	EnableRequireTLS bool
	// EnableDSN advertises and accepts DSN parameters (RFC 3461).
	EnableDSN bool
	// EnableBinaryMIME advertises and accepts BODY=BINARYMIME (RFC 3030).
	EnableBinaryMIME bool

	// Users holds the accepted user names and their passwords. If
	// AuthMechanisms is nil and Users is not, the server offers PLAIN and
	// LOGIN checking Users; if both are nil, it does not offer AUTH.
	Users map[string]string
	// AuthMechanisms are the SASL mechanisms offered, by name (upper case
	// on the wire and in the EHLO reply, sorted). If not nil, it replaces
	// the default set: include [Plain], [Login] or [CRAMMD5] to keep them.
	AuthMechanisms map[string]AuthMechanism
	// AllowInsecureAuth offers AUTH on unencrypted sessions of a server
	// whose Security is not Plaintext. By default such a server offers AUTH
	// only after TLS is established, like Postfix with smtpd_tls_auth_only.
	// A Plaintext server always offers AUTH (when configured), since it has
	// no TLS.
	AllowInsecureAuth bool
	// RequireAuth refuses MAIL until the session has authenticated.
	RequireAuth bool

	// Mail, if not nil, is called for each MAIL command with the
	// reverse-path ("" for "<>") and its parameters; an error refuses it.
	Mail func(from string, opts MailOptions) error
	// Rcpt, if not nil, is called for each RCPT command with the
	// forward-path and its parameters; an error refuses the recipient.
	Rcpt func(to string, opts RcptOptions) error
	// Data, if not nil, is called with each complete SMTP message; an error
	// refuses it, and a *transport.ReplyError with a 2yz code accepts it
	// with that reply. Over LMTP, when LMTPData is nil, Data is called once
	// and its result applies to every recipient.
	Data func(m *Message) error
	// LMTPData, if not nil, is called over LMTP for each recipient accepted
	// at RCPT, in RCPT order and duplicates included, once the data is
	// complete; its result is that recipient's reply, as for Data.
	LMTPData func(m *Message, rcpt string) error

	// Debug, if not nil, receives the raw text of every session, both
	// directions, unencrypted (after STARTTLS too), AUTH exchanges included.
	// Writes are serialised, but concurrent sessions interleave.
	Debug io.Writer
	// ErrorLog receives go-smtp's reports of connection errors (a failed
	// TLS handshake) and of panics in hooks; nil logs to standard error.
	ErrorLog *log.Logger

	mu       sync.Mutex
	started  bool
	closed   bool
	messages []Message

	cfg       *config
	srv       *smtp.Server
	ln        net.Listener
	conns     *connTracker
	serveDone chan struct{}
	tmpDir    string
	ca        *x509.Certificate
}

// config is what Start read from the exported fields: the sessions use
// it, so that later changes to the fields neither race nor take effect.
type config struct {
	lmtp        bool
	domain      string
	users       map[string]string
	mechs       map[string]AuthMechanism
	mechNames   []string
	requireAuth bool
	mail        func(string, MailOptions) error
	rcpt        func(string, RcptOptions) error
	data        func(*Message) error
	lmtpData    func(*Message, string) error
	record      func(Message)
	discard     bool
}

// NewUnstartedServer returns a Server that is not started: plain SMTP
// (Security Plaintext) on a free port of 127.0.0.1, with Domain
// "localhost". Set its fields, then call [Server.Start].
func NewUnstartedServer() *Server {
	return &Server{Network: "tcp", Security: transport.Plaintext, Domain: "localhost"}
}

// NewServer starts and returns a plain SMTP server on 127.0.0.1, without
// TLS.
func NewServer() *Server {
	s := NewUnstartedServer()
	s.Start()
	return s
}

// NewTLSServer starts and returns an SMTP server on 127.0.0.1 that speaks
// TLS from the first byte (implicit TLS, like port 465).
func NewTLSServer() *Server {
	s := NewUnstartedServer()
	s.Security = transport.ImplicitTLS
	s.Start()
	return s
}

// NewStartTLSServer starts and returns an SMTP server on 127.0.0.1 that
// offers STARTTLS.
func NewStartTLSServer() *Server {
	s := NewUnstartedServer()
	s.Security = transport.StartTLS
	s.Start()
	return s
}

// NewLMTPServer starts and returns an LMTP server on a Unix socket in a new
// temporary directory, without TLS.
func NewLMTPServer() *Server {
	s := NewUnstartedServer()
	s.LMTP = true
	s.Network = "unix"
	s.Start()
	return s
}

// Start starts the server. It panics if the server was already started or
// cannot listen.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("smtptest: Server already started")
	}
	s.started = true
	if s.Network == "" {
		s.Network = "tcp"
	}
	if s.Network != "tcp" && s.Network != "unix" {
		panic("smtptest: unsupported network " + s.Network + ` (want "tcp" or "unix")`)
	}
	if s.Domain == "" {
		s.Domain = "localhost"
	}

	var tlsConfig *tls.Config
	if s.Security != transport.Plaintext {
		tlsConfig = s.TLS.Clone()
		if tlsConfig == nil {
			tlsConfig = new(tls.Config)
		}
		if len(tlsConfig.Certificates) == 0 && tlsConfig.GetCertificate == nil && tlsConfig.GetConfigForClient == nil {
			pki, err := newTestPKI()
			if err != nil {
				panic("smtptest: generating certificates: " + err.Error())
			}
			tlsConfig.Certificates = []tls.Certificate{pki.leaf}
			s.ca = pki.ca
		}
		s.TLS = tlsConfig
	}

	addr := s.Addr
	if s.Network == "unix" && addr == "" {
		dir, err := os.MkdirTemp("", "smtptest")
		if err != nil {
			panic("smtptest: " + err.Error())
		}
		s.tmpDir = dir
		name := "smtp.sock"
		if s.LMTP {
			name = "lmtp.sock"
		}
		addr = filepath.Join(dir, name)
	} else if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen(s.Network, addr)
	if err != nil {
		if s.tmpDir != "" {
			os.RemoveAll(s.tmpDir)
		}
		panic("smtptest: failed to listen on " + addr + ": " + err.Error())
	}
	s.Addr = ln.Addr().String()
	s.conns = &connTracker{Listener: ln, conns: make(map[*trackedConn]struct{})}
	s.ln = s.conns
	if s.Security == transport.ImplicitTLS {
		s.ln = tls.NewListener(s.conns, tlsConfig)
	}

	s.cfg = s.config()
	srv := smtp.NewServer(&backend{cfg: s.cfg})
	srv.LMTP = s.LMTP
	srv.Domain = s.Domain
	srv.MaxMessageBytes = s.MaxMessageBytes
	srv.MaxRecipients = s.MaxRecipients
	srv.EnableSMTPUTF8 = s.EnableSMTPUTF8
	srv.EnableREQUIRETLS = s.EnableRequireTLS
	srv.EnableDSN = s.EnableDSN
	srv.EnableBINARYMIME = s.EnableBinaryMIME
	srv.AllowInsecureAuth = s.Security == transport.Plaintext || s.AllowInsecureAuth
	if s.Security == transport.StartTLS || s.Security == transport.StartTLSOpportunistic {
		srv.TLSConfig = tlsConfig // go-smtp offers STARTTLS when it has a config
	}
	if s.Debug != nil {
		srv.Debug = &lockedWriter{w: s.Debug}
	}
	if s.ErrorLog != nil {
		srv.ErrorLog = s.ErrorLog
	} else {
		srv.ErrorLog = log.New(os.Stderr, "smtptest: ", log.LstdFlags)
	}
	s.srv = srv

	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		srv.Serve(s.ln) // returns when Close closes the listener
	}()
}

func (s *Server) config() *config {
	c := &config{
		lmtp:        s.LMTP,
		domain:      s.Domain,
		requireAuth: s.RequireAuth,
		mail:        s.Mail,
		rcpt:        s.Rcpt,
		data:        s.Data,
		lmtpData:    s.LMTPData,
		record:      s.record,
		discard:     s.DiscardData,
	}
	if s.Users != nil {
		c.users = make(map[string]string, len(s.Users))
		for u, p := range s.Users {
			c.users[u] = p
		}
	}
	mechs := s.AuthMechanisms
	if mechs == nil && s.Users != nil {
		mechs = map[string]AuthMechanism{"PLAIN": Plain, "LOGIN": Login}
	}
	c.mechs = make(map[string]AuthMechanism, len(mechs))
	for name, m := range mechs {
		if m == nil {
			continue
		}
		name = strings.ToUpper(name)
		c.mechs[name] = m
		c.mechNames = append(c.mechNames, name)
	}
	slices.Sort(c.mechNames)
	return c
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
}

// Close closes the listener and every connection, waits for the sessions
// to end, and removes the temporary directory of a Unix socket it created.
// A hook still running keeps Close waiting. Close may be called more than
// once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.serveDone == nil || s.closed { // not started, or Start failed
		s.closed = true
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()

	// Stop accepting first, so that no session starts after the
	// connections are closed, then close them and wait for their
	// goroutines. go-smtp's own Close does not wait, and its Shutdown does
	// not close connections; Shutdown after closing them does both.
	s.ln.Close()
	<-s.serveDone
	s.conns.closeAll()
	s.srv.Shutdown(context.Background())
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// Messages returns the messages the server accepted so far, in the order
// their data ended.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Reset forgets the messages recorded so far.
func (s *Server) Reset() {
	s.mu.Lock()
	s.messages = nil
	s.mu.Unlock()
}

// Certificate returns the certificate of the test certificate authority
// that issued the server's certificate, or nil if Start generated none
// (Security is Plaintext, or TLS came with its own certificates).
func (s *Server) Certificate() *x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ca
}

// CertPool returns a new pool holding [Server.Certificate], for a client's
// RootCAs; nil if there is no such certificate.
func (s *Server) CertPool() *x509.CertPool {
	ca := s.Certificate()
	if ca == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// ClientTLSConfig returns a new TLS configuration for a client of the
// server: RootCAs is [Server.CertPool] and ServerName is the host of Addr
// ("127.0.0.1"), or "localhost" for a Unix socket.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), ServerName: s.serverName()}
}

func (s *Server) serverName() string {
	if s.Network == "unix" {
		return "localhost"
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return "localhost"
	}
	return host
}

// URL returns the server's address as a URL: "smtp://127.0.0.1:port" or
// "lmtp://127.0.0.1:port" with a query "?tls=none" or "?tls=starttls" for
// Security Plaintext or StartTLS; "smtps://127.0.0.1:port" for implicit
// TLS; "lmtp:///path/to/socket" for a Unix socket without TLS (the query
// names any other Security). The tls values are the names of
// transport.Security.
func (s *Server) URL() string {
	u := &url.URL{Scheme: "smtp"}
	if s.LMTP {
		u.Scheme = "lmtp"
	}
	if s.Network == "unix" {
		u.Path = s.Addr
	} else {
		u.Host = s.Addr
	}
	switch {
	case s.Security == transport.ImplicitTLS && !s.LMTP && s.Network != "unix":
		u.Scheme = "smtps"
	case s.Security == transport.Plaintext && s.Network == "unix":
	default:
		u.RawQuery = "tls=" + s.Security.String()
	}
	return u.String()
}

// Transport returns a new *transport.SMTP for the server: Network, Addr
// and Security match it, and TLSConfig is [Server.ClientTLSConfig]. Set
// Auth and other fields as needed. It panics for an LMTP server; use
// [Server.LMTPTransport].
func (s *Server) Transport() *transport.SMTP {
	if s.LMTP {
		panic("smtptest: Transport called on an LMTP server; use LMTPTransport")
	}
	return &transport.SMTP{
		Network:   s.Network,
		Addr:      s.Addr,
		Security:  s.Security,
		TLSConfig: s.ClientTLSConfig(),
	}
}

// LMTPTransport returns a new *transport.LMTP for the server: Network and
// Addr match it, RequireTLS is set if the server offers STARTTLS, and
// TLSConfig is [Server.ClientTLSConfig]. It panics for an SMTP server, and
// for an LMTP server with implicit TLS, which transport.LMTP does not
// speak.
func (s *Server) LMTPTransport() *transport.LMTP {
	if !s.LMTP {
		panic("smtptest: LMTPTransport called on an SMTP server; use Transport")
	}
	if s.Security == transport.ImplicitTLS {
		panic("smtptest: transport.LMTP does not speak implicit TLS")
	}
	return &transport.LMTP{
		Network:    s.Network,
		Addr:       s.Addr,
		RequireTLS: s.Security != transport.Plaintext,
		TLSConfig:  s.ClientTLSConfig(),
	}
}

// lockedWriter serialises writes from concurrent sessions.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// connTracker is a listener that remembers the connections it accepted
// until they are closed, so that Close can close them.
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	done  bool
}

func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *connTracker) closeAll() {
	l.mu.Lock()
	l.done = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
