package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/dialer"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/wire"
	"github.com/mailwire/mailwire/smtptrace"
)

// Ceilings for each step, from RFC 5321 section 4.5.3.2. They bound a
// server that stops answering; the caller's context bounds everything else.
var (
	timeoutGreeting  = 5 * time.Minute  // 4.5.3.2.1 initial 220 message
	timeoutCommand   = 5 * time.Minute  // 4.5.3.2.2-3 MAIL, RCPT and others
	timeoutDataInit  = 2 * time.Minute  // 4.5.3.2.4 DATA initiation
	timeoutDataBlock = 3 * time.Minute  // 4.5.3.2.5 each data block
	timeoutDataTerm  = 10 * time.Minute // 4.5.3.2.6 DATA termination
	timeoutQuit      = 10 * time.Second // QUIT is a courtesy; do not wait long
)

// maxAuthRounds bounds the 334 challenges of one AUTH exchange.
const maxAuthRounds = 16

// sessionConfig is what a session needs from its transport.
type sessionConfig struct {
	network   string
	addr      string
	host      string // for TLS ServerName and auth.ServerInfo
	security  Security
	tlsConfig *tls.Config
	dialer    dialer.Dialer
	auth      auth.Authenticator
	localName string
	debug     io.Writer
	lmtp      bool

	requireAll     bool
	noPipelining   bool
	noChunking     bool
	allowNoTLSAuth bool
}

func (cfg *sessionConfig) opErr(op Op, err error) *OpError {
	return &OpError{Op: op, Addr: cfg.addr, Err: err}
}

// Conn is one established SMTP or LMTP session, returned by [SMTP.Dial] and
// [LMTP.Dial]. It offers the session-level commands of smtplib (NOOP, RSET,
// VRFY, EXPN, HELP, raw commands, extension queries) and sends any number
// of messages over one connection, one transaction after another.
//
// A Conn is safe for concurrent use; its methods are serialised. After a
// failure that leaves the connection unusable (a lost connection, a 421, a
// protocol error, a cancelled context in the middle of a command), every
// method returns an error and the Conn should be closed.
type Conn struct {
	cfg *sessionConfig

	mu         sync.Mutex
	w          *wire.Conn
	greeting   string
	ext        wire.Extensions
	preTLS     wire.Extensions // the extensions offered before STARTTLS
	helo       bool            // the server did not take EHLO; HELO was used
	tls        *tls.ConnectionState
	authed     string    // mechanism used, "" if none
	clientCert bool      // a TLS client certificate was presented
	proven     bool      // the server answered since the connection was taken
	key        string    // the pool key of the configuration that opened it
	idleSince  time.Time // when it was returned to its pool
	qbuf       []expect  // the pipeline's reply queue, kept across calls
	broken     error     // non-nil once the connection is unusable
	dirty      bool      // a transaction may be open: RSET before the next
	closed     bool
	messages   int
}

var _ Transport = (*Conn)(nil)

// dial opens a session: connect, TLS, greeting, EHLO, STARTTLS, AUTH.
func dial(ctx context.Context, cfg *sessionConfig) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, cfg.opErr(OpDial, context.Cause(ctx))
	}
	network := cfg.network
	if network == "" {
		network = "tcp"
	}
	d := cfg.dialer
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second}
	}
	smtptrace.Start(ctx, smtptrace.PhaseDial, -1)
	nc, err := d.DialContext(ctx, network, cfg.addr)
	smtptrace.Done(ctx, smtptrace.PhaseDial, smtptrace.PhaseInfo{Index: -1, Err: err})
	if err != nil {
		return nil, cfg.opErr(OpDial, ctxErr(ctx, err))
	}
	if t := smtptrace.ContextClientTrace(ctx); t != nil && t.ConnOpened != nil {
		t.ConnOpened(network, cfg.addr)
	}
	c := &Conn{cfg: cfg, w: wire.NewConn(nc, cfg.debug)}
	unbind := c.w.Bind(ctx)
	defer unbind()
	if err := c.open(ctx); err != nil {
		c.w.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) open(ctx context.Context) error {
	cfg := c.cfg
	if cfg.security == ImplicitTLS {
		if err := c.handshake(ctx); err != nil {
			return err
		}
	}

	smtptrace.Start(ctx, smtptrace.PhaseGreeting, -1)
	c.w.SetDeadline(timeoutGreeting)
	rep, err := c.w.ReadReply()
	if err == nil && rep.Code != 220 {
		err = replyErr(rep)
	}
	if err == nil && spokeOutOfTurn(c.w) {
		// A reply before the client said anything: to EHLO, say, sent
		// ahead so as to be taken for the real one.
		err = errUnsolicited
	}
	smtptrace.Done(ctx, smtptrace.PhaseGreeting, phaseInfo(rep, err))
	if err != nil {
		return c.fail(ctx, OpGreeting, err)
	}
	c.greeting = rep.Text()

	if err := c.hello(ctx); err != nil {
		return err
	}

	if c.tls == nil && (cfg.security == StartTLS || cfg.security == StartTLSOpportunistic) {
		if err := c.startTLS(ctx); err != nil {
			return err
		}
	}

	if cfg.auth != nil {
		if err := c.authenticate(ctx); err != nil {
			return err
		}
	}
	c.proven = true
	if t := smtptrace.ContextClientTrace(ctx); t != nil && t.GotConn != nil {
		t.GotConn(c.connInfo(false))
	}
	return nil
}

func (c *Conn) connInfo(reused bool) smtptrace.ConnInfo {
	network := c.cfg.network
	if network == "" {
		network = "tcp"
	}
	return smtptrace.ConnInfo{Network: network, Addr: c.cfg.addr, Reused: reused, TLS: c.tls, Security: c.cfg.security.String()}
}

// fail records err as fatal for the connection and wraps it.
func (c *Conn) fail(ctx context.Context, op Op, err error) error {
	err = ctxErr(ctx, err)
	c.broken = err
	return c.cfg.opErr(op, wireErr(err))
}

// hello sends EHLO (LHLO for LMTP), falling back to HELO on 500/502 when
// that does not weaken a required STARTTLS.
func (c *Conn) hello(ctx context.Context) error {
	name, err := c.localName()
	if err != nil {
		return c.fail(ctx, OpHello, err)
	}
	verb := "EHLO"
	if c.cfg.lmtp {
		verb = "LHLO"
	}
	smtptrace.Start(ctx, smtptrace.PhaseHello, -1)
	rep, err := c.cmd(timeoutCommand, verb+" "+name)
	if err == nil && rep.Code != 250 {
		code := rep.Code
		err = replyErr(rep)
		switch {
		case c.cfg.lmtp && (code == 500 || code == 502):
			// LHLO not recognised: an SMTP server, most likely.
			err = &NotSupportedError{Extension: "LMTP", Detail: "server refused LHLO: " + err.Error()}
		case (code == 500 || code == 502) && (c.cfg.security != StartTLS || c.tls != nil):
			verb = "HELO"
			rep, err = c.cmd(timeoutCommand, "HELO "+name)
			if err == nil && rep.Code != 250 {
				err = replyErr(rep)
			}
			if err == nil {
				c.helo = true
			}
		case code == 500 || code == 502:
			err = &NotSupportedError{Extension: "STARTTLS", Detail: "server does not speak ESMTP: " + err.Error()}
		}
	}
	info := phaseInfo(rep, err)
	info.Command = verb
	smtptrace.Done(ctx, smtptrace.PhaseHello, info)
	if err != nil {
		return c.fail(ctx, OpHello, err)
	}
	if c.helo {
		c.ext = wire.Extensions{}
	} else {
		c.ext = wire.ParseEHLO(rep.Lines)
	}
	return nil
}

func (c *Conn) localName() (string, error) {
	name := c.cfg.localName
	if name == "" {
		name = defaultLocalName(c.w.NetConn())
	}
	if !validLocalName(name) {
		err := envelope.ErrMalformed
		if envelope.CheckText(name) == envelope.ErrControlChar {
			err = envelope.ErrControlChar
		}
		return "", &envelope.Error{Field: "local name", Err: err}
	}
	return name, nil
}

// validLocalName reports whether name can follow EHLO, HELO or LHLO: a
// domain (letters, digits, hyphens, underscores and dots, as host names
// are found in the wild) or an address literal in brackets (RFC 5321
// 4.1.3), at most 255 octets.
func validLocalName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	if name[0] == '[' {
		if len(name) < 3 || name[len(name)-1] != ']' {
			return false
		}
		for i := 1; i < len(name)-1; i++ {
			if c := name[i]; c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '\\' {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// defaultLocalName returns the host's name if it is fully qualified, else
// the connection's local address as an address literal, as smtplib does.
func defaultLocalName(nc net.Conn) string {
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && wire.CheckCommand(h) == nil && !strings.ContainsAny(h, " \t<>") {
		return h
	}
	if ta, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		if ip4 := ta.IP.To4(); ip4 != nil {
			return "[" + ip4.String() + "]"
		}
		return "[IPv6:" + ta.IP.String() + "]"
	}
	return "localhost"
}

func (c *Conn) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if c.cfg.tlsConfig != nil {
		cfg = c.cfg.tlsConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = c.cfg.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	// Record whether a client certificate was presented: SASL EXTERNAL
	// depends on it and crypto/tls does not report it.
	get := cfg.GetClientCertificate
	certs := cfg.Certificates
	if get != nil || len(certs) > 0 {
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			var cert *tls.Certificate
			if get != nil {
				var err error
				if cert, err = get(cri); err != nil {
					return nil, err
				}
			} else {
				cert = &certs[0]
				for i := range certs {
					if cri.SupportsCertificate(&certs[i]) == nil {
						cert = &certs[i]
						break
					}
				}
			}
			if cert != nil && len(cert.Certificate) > 0 {
				c.clientCert = true
			}
			return cert, nil
		}
	}
	return cfg
}

func (c *Conn) handshake(ctx context.Context) error {
	smtptrace.Start(ctx, smtptrace.PhaseTLS, -1)
	c.w.SetDeadline(timeoutCommand)
	tc := tls.Client(c.w.NetConn(), c.tlsConfig())
	err := tc.HandshakeContext(ctx)
	smtptrace.Done(ctx, smtptrace.PhaseTLS, smtptrace.PhaseInfo{Index: -1, Err: err})
	if err != nil {
		if !isContextErr(err) && !isTLSErr(err) && (!isNetErr(err) || isTLSAlert(err)) {
			err = fmt.Errorf("%w: %w", ErrTLS, err)
		}
		return c.fail(ctx, OpStartTLS, err)
	}
	st := tc.ConnectionState()
	c.tls = &st
	c.w.Upgrade(tc)
	return nil
}

// startTLS upgrades the connection (RFC 3207). With StartTLS required, a
// server that does not offer it or refuses it ends the session before any
// credential or envelope is sent.
func (c *Conn) startTLS(ctx context.Context) error {
	required := c.cfg.security == StartTLS
	if !c.ext.Has("STARTTLS") {
		if required {
			c.abandon()
			return c.fail(ctx, OpStartTLS, &NotSupportedError{Extension: "STARTTLS"})
		}
		return nil
	}
	rep, err := c.cmd(timeoutCommand, "STARTTLS")
	if err == errUnsolicited {
		err = errDataAfterSTARTTLS
	}
	if err != nil {
		return c.fail(ctx, OpStartTLS, err)
	}
	if rep.Code != 220 {
		if rep.Code == 421 || required {
			c.abandon()
			return c.fail(ctx, OpStartTLS, replyErr(rep))
		}
		return nil // opportunistic: the server declined; continue in clear
	}
	if c.w.Buffered() > 0 {
		// Bytes after the 220 were sent in clear and could be taken for
		// replies on the encrypted channel (CVE-2021-22947 and kin).
		return c.fail(ctx, OpStartTLS, errDataAfterSTARTTLS)
	}
	if err := c.handshake(ctx); err != nil {
		return err
	}
	// RFC 3207 4.2: forget everything learnt in clear and say EHLO again.
	c.preTLS = c.ext
	c.ext = nil
	return c.hello(ctx)
}

// authenticate runs the RFC 4954 exchange with the transport's
// Authenticator while the session is being opened; a failure ends the
// session.
func (c *Conn) authenticate(ctx context.Context) error {
	err := c.runAuth(ctx, c.cfg.auth)
	if err != nil && c.broken == nil {
		c.abandon()
	}
	return err
}

// Authenticate runs an AUTH exchange (RFC 4954) with a on an open session
// that has not authenticated yet, for callers that dial without Auth and
// choose credentials later. If the server refuses, the session stays usable
// for another attempt or a clean Close.
func (c *Conn) Authenticate(ctx context.Context, a auth.Authenticator) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return c.cfg.opErr(OpAuth, err)
	}
	if c.authed != "" {
		return c.cfg.opErr(OpAuth, errors.New("transport: session already authenticated"))
	}
	unbind := c.w.Bind(ctx)
	defer unbind()
	return c.runAuth(ctx, a)
}

func (c *Conn) runAuth(ctx context.Context, a auth.Authenticator) error {
	mechs := c.ext.AuthMechanisms()
	if len(mechs) == 0 {
		return c.cfg.opErr(OpAuth, &NotSupportedError{Extension: "AUTH"})
	}
	info := auth.ServerInfo{Host: c.cfg.host, Mechanisms: mechs, TLS: c.tls, Unix: c.cfg.network == "unix", ClientCert: c.clientCert}
	smtptrace.Start(ctx, smtptrace.PhaseAuth, -1)
	mech, err := c.authExchange(ctx, a, info)
	pi := smtptrace.PhaseInfo{Index: -1, Command: mech, Err: err}
	var re *ReplyError
	if errors.As(err, &re) {
		pi.Code, pi.EnhancedCode = re.Code, re.EnhancedCode
	}
	smtptrace.Done(ctx, smtptrace.PhaseAuth, pi)
	if err != nil {
		if c.broken != nil {
			return c.fail(ctx, OpAuth, err)
		}
		return c.cfg.opErr(OpAuth, err)
	}
	c.authed = mech
	return nil
}

func (c *Conn) authExchange(ctx context.Context, a auth.Authenticator, info auth.ServerInfo) (string, error) {
	client, err := a.Start(ctx, info)
	if err != nil {
		return "", err
	}
	mech, ir, err := client.Start()
	if err != nil {
		return mech, err
	}
	if !slices.Contains(info.Mechanisms, strings.ToUpper(mech)) {
		return mech, &NotSupportedError{Extension: "AUTH " + mech}
	}
	line := "AUTH " + mech
	var deferred []byte // an initial response too long for the AUTH line
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		// RFC 4954 4: an initial response that would make the line longer
		// than 512 octets is sent after an empty challenge instead.
		if len(line)+1+len(enc)+2 > 512 {
			deferred = ir
		} else {
			line += " " + enc
		}
	}
	// Whatever the client sends in the exchange is a secret: a server that
	// echoes it in a reply must not get it into the transcript or errors.
	var sc scrubber
	if ir != nil {
		sc.add(ir)
	}
	c.w.RedactReplies(true)
	c.w.SetScrub(sc.scrub)
	defer func() {
		c.w.RedactReplies(false)
		c.w.SetScrub(nil)
	}()
	if err := c.w.WriteSecretCommand(line, "AUTH "+mech+" [redacted]"); err != nil {
		return mech, err
	}
	for round := 0; ; round++ {
		rep, err := c.flushRead(timeoutCommand)
		if err != nil {
			c.broken = err
			return mech, err
		}
		switch {
		case rep.Positive():
			if f, ok := client.(auth.Finisher); ok {
				if err := f.Finish(); err != nil {
					// The server did not prove it knows the credentials:
					// the session must not be used.
					c.broken = err
					return mech, err
				}
			}
			return mech, nil
		case rep.Code != 334:
			re := replyErr(rep)
			re.Message = sc.scrub(re.Message)
			return mech, re
		}
		if round >= maxAuthRounds {
			return mech, c.cancelAuth(&ProtocolError{Reason: "too many AUTH challenges"})
		}
		var resp []byte
		if deferred != nil && round == 0 {
			resp, deferred = deferred, nil
		} else {
			challenge, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(rep.Text()))
			if derr != nil {
				return mech, c.cancelAuth(&ProtocolError{Reason: "AUTH challenge is not base64"})
			}
			resp, err = client.Next(challenge)
			if err != nil {
				cerr := c.cancelAuth(err)
				if errors.Is(err, auth.ErrServerNotVerified) && c.broken == nil {
					// The server failed to prove it knows the credentials:
					// whatever it answers to "*", the session must not be
					// used for anything, another AUTH included.
					c.broken = err
				}
				return mech, cerr
			}
		}
		sc.add(resp)
		if err := c.w.WriteSecretCommand(base64.StdEncoding.EncodeToString(resp), ""); err != nil {
			return mech, err
		}
	}
}

// scrubber removes from server text whatever the client sent during an
// AUTH exchange: the base64 responses, their decoded bytes, their fields
// (user names, passwords and tokens are separated by NUL, 0x01, spaces,
// commas or "=" in every SASL mechanism), and any base64 word that decodes
// to one of those.
type scrubber struct {
	words []string
}

// scrubStop lists field values that are protocol words, not secrets.
var scrubStop = map[string]bool{"user": true, "auth": true, "Bearer": true, "bearer": true, "host": true, "port": true}

func (s *scrubber) add(resp []byte) {
	if len(resp) == 0 {
		return
	}
	s.words = append(s.words, base64.StdEncoding.EncodeToString(resp), string(resp))
	for _, f := range bytes.FieldsFunc(resp, func(r rune) bool {
		return r == 0 || r == 1 || r == ' ' || r == ',' || r == '=' || r == '\t'
	}) {
		if len(f) >= 4 && !scrubStop[string(f)] {
			s.words = append(s.words, string(f))
		}
	}
}

func (s *scrubber) scrub(text string) string {
	if len(s.words) == 0 {
		return text
	}
	for _, w := range s.words {
		if len(w) >= 4 {
			text = strings.ReplaceAll(text, w, "[redacted]")
		}
	}
	for _, tok := range strings.Fields(text) {
		tok = strings.Trim(tok, "<>\"'()[],;:")
		if len(tok) < 8 {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if dec, err := enc.DecodeString(tok); err == nil && s.holds(dec) {
				text = strings.ReplaceAll(text, tok, "[redacted]")
				break
			}
		}
	}
	return text
}

func (s *scrubber) holds(b []byte) bool {
	for _, w := range s.words {
		if len(w) >= 4 && bytes.Contains(b, []byte(w)) {
			return true
		}
	}
	return false
}

// cancelAuth sends "*" (RFC 4954 4) and reads the server's reply, keeping
// the connection in step; it returns cause.
func (c *Conn) cancelAuth(cause error) error {
	c.w.WriteCommand("*")
	rep, err := c.flushRead(timeoutCommand)
	if err != nil {
		c.broken = err
	} else if rep.Code == 235 {
		c.broken = cause
	}
	return cause
}

// cmd writes one command, flushes and reads its reply.
func (c *Conn) cmd(ceiling time.Duration, line string) (*wire.Reply, error) {
	if err := c.w.WriteCommand(line); err != nil {
		return nil, err
	}
	return c.flushRead(ceiling)
}

func (c *Conn) flushRead(ceiling time.Duration) (*wire.Reply, error) {
	c.w.SetDeadline(ceiling)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	rep, err := c.w.ReadReply()
	if err != nil {
		return nil, err
	}
	if spokeOutOfTurn(c.w) {
		// More than one reply to one command: the server and the client
		// are out of step, and the next reply would answer the wrong
		// command.
		c.broken = errUnsolicited
		return nil, errUnsolicited
	}
	if rep.Code == 421 {
		// The server is closing the channel (RFC 5321 3.8).
		c.broken = replyErr(rep)
	}
	return rep, nil
}

// errDataAfterSTARTTLS is the protocol error of a server that sent bytes
// after its 220 reply to STARTTLS.
var errDataAfterSTARTTLS = &ProtocolError{Reason: "server sent data after its STARTTLS reply"}

// quit sends QUIT and waits briefly for the reply; failures are ignored.
func (c *Conn) quit(ctx context.Context) {
	if c.broken != nil {
		return
	}
	smtptrace.Start(ctx, smtptrace.PhaseQuit, -1)
	rep, err := c.cmd(timeoutQuit, "QUIT")
	smtptrace.Done(ctx, smtptrace.PhaseQuit, phaseInfo(rep, err))
	c.broken = net.ErrClosed
}

// abandon sends QUIT without waiting for the reply, before a session that
// failed a policy check is closed.
func (c *Conn) abandon() {
	if c.broken != nil {
		return
	}
	c.w.SetDeadline(timeoutQuit)
	if c.w.WriteCommand("QUIT") == nil {
		c.w.Flush()
	}
	c.broken = net.ErrClosed
}

// Close sends QUIT, waits briefly for the reply and closes the connection.
// A failed QUIT is not an error: whatever was delivered stays delivered.
func (c *Conn) Close() error {
	return c.CloseContext(context.Background())
}

// CloseContext is Close with a context bounding the wait for the QUIT
// reply; a context already done closes at once, without QUIT.
func (c *Conn) CloseContext(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if ctx.Err() == nil {
		unbind := c.w.Bind(ctx)
		c.quit(ctx)
		unbind()
	}
	return c.w.Close()
}

// closeQuiet sends QUIT without waiting for the reply and closes the
// connection: for idle connections a pool lets go, where waiting for each
// reply would hold up the caller.
func (c *Conn) closeQuiet() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.abandon()
	c.w.Close()
}

// Extensions returns the service extensions the server advertised in its
// last EHLO or LHLO reply (after TLS, if TLS is on), as upper-case keyword
// to parameters. It is like smtplib's esmtp_features.
func (c *Conn) Extensions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]string, len(c.ext))
	for k, v := range c.ext {
		m[k] = v
	}
	return m
}

// PreTLSExtensions returns the extensions the server advertised in clear,
// before STARTTLS; nil if the session did not upgrade with STARTTLS. They
// are informational only (mailwire never acts on them): `mailwire probe`
// shows them.
func (c *Conn) PreTLSExtensions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.preTLS == nil {
		return nil
	}
	m := make(map[string]string, len(c.preTLS))
	for k, v := range c.preTLS {
		m[k] = v
	}
	return m
}

// Extension reports whether the server advertised the keyword (any case)
// and returns its parameters, like smtplib's has_extn.
func (c *Conn) Extension(keyword string) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.ext[strings.ToUpper(keyword)]
	return ok, v
}

// MaxMessageSize returns the server's SIZE limit (RFC 1870) and whether
// the server advertised SIZE; 0 means no limit.
func (c *Conn) MaxMessageSize() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ext.MaxSize()
}

// AuthMechanisms returns the SASL mechanisms the server advertised.
func (c *Conn) AuthMechanisms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ext.AuthMechanisms()
}

// Greeting returns the text of the server's 220 greeting.
func (c *Conn) Greeting() string { return c.greeting }

// TLSConnectionState returns the TLS state, or nil for a clear connection.
func (c *Conn) TLSConnectionState() *tls.ConnectionState { return c.tls }

// AuthMechanism returns the SASL mechanism the session authenticated with,
// or "".
func (c *Conn) AuthMechanism() string { return c.authed }

// Noop sends NOOP.
func (c *Conn) Noop(ctx context.Context) error {
	_, err := c.Command(ctx, "NOOP")
	return err
}

// Reset sends RSET, aborting any transaction in progress.
func (c *Conn) Reset(ctx context.Context) error {
	_, err := c.Command(ctx, "RSET")
	if err == nil {
		c.mu.Lock()
		c.dirty = false
		c.mu.Unlock()
	}
	return err
}

// Verify sends VRFY for addr (RFC 5321 3.5) and returns the server's reply.
// Servers commonly answer 252 (cannot verify, will accept) or refuse VRFY.
func (c *Conn) Verify(ctx context.Context, addr string) (*Reply, error) {
	return c.Command(ctx, "VRFY "+addr)
}

// Expand sends EXPN for a mailing list name and returns the reply.
func (c *Conn) Expand(ctx context.Context, list string) (*Reply, error) {
	return c.Command(ctx, "EXPN "+list)
}

// Help sends HELP, with an optional topic, and returns the reply.
func (c *Conn) Help(ctx context.Context, topic string) (*Reply, error) {
	line := "HELP"
	if topic != "" {
		line += " " + topic
	}
	return c.Command(ctx, line)
}

// Command sends one raw command line, like smtplib's docmd, and returns the
// reply. The line starts with the command's name and holds no control
// character (CR, LF, NUL, TAB and the others [envelope.CheckText] refuses):
// otherwise nothing is written and the error is an *OpError wrapping an
// *envelope.Error (matching envelope.ErrControlChar, envelope.ErrMalformed
// or envelope.ErrTooLong, and ErrPermanent). A 4yz or 5yz reply is returned
// as a *ReplyError inside an *OpError, together with the reply. Commands
// that change the session's state behind the Conn's back (STARTTLS, AUTH,
// DATA, BDAT, QUIT, EHLO, HELO, LHLO) are refused: use the dedicated
// methods.
func (c *Conn) Command(ctx context.Context, line string) (*Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return nil, c.cfg.opErr(OpCommand, err)
	}
	if err := checkRawCommand(line); err != nil {
		return nil, c.cfg.opErr(OpCommand, err)
	}
	verb, _, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "STARTTLS", "AUTH", "DATA", "BDAT", "QUIT", "EHLO", "HELO", "LHLO":
		return nil, c.cfg.opErr(OpCommand, fmt.Errorf("transport: %s cannot be sent as a raw command", strings.ToUpper(verb)))
	case "MAIL":
		c.dirty = true
	}
	unbind := c.w.Bind(ctx)
	defer unbind()
	rep, err := c.cmd(timeoutCommand, line)
	if err != nil {
		return nil, c.fail(ctx, OpCommand, err)
	}
	r := toReply(rep)
	if rep.Code >= 400 {
		return r, c.cfg.opErr(OpCommand, replyErr(rep))
	}
	return r, nil
}

// checkRawCommand refuses a raw command line that does not start with a
// command name (letters), or that holds a control character or is too
// long: such a line could be read by a server as another command than the
// one the Conn checked.
func checkRawCommand(line string) error {
	if err := envelope.CheckText(line); err != nil {
		return &envelope.Error{Field: "command", Err: err}
	}
	if len(line) > wire.MaxCommandLen {
		return &envelope.Error{Field: "command", Err: envelope.ErrTooLong}
	}
	verb, _, _ := strings.Cut(line, " ")
	if verb == "" || strings.IndexFunc(verb, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') }) >= 0 {
		return &envelope.Error{Field: "command", Err: envelope.ErrMalformed}
	}
	return nil
}

func (c *Conn) usable() error {
	if c.closed {
		return net.ErrClosed
	}
	return c.broken
}

// ctxErr returns the context's cause if ctx is done: an I/O error after a
// cancellation is the cancellation.
func ctxErr(ctx context.Context, err error) error {
	if err == nil || isContextErr(err) {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// The connection's deadline is the context's: a timeout at or after it
	// is the context expiring, even if its timer has not fired yet.
	var ne net.Error
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && errors.As(err, &ne) && ne.Timeout() {
		return context.DeadlineExceeded
	}
	return err
}

// wireErr converts the wire engine's errors to this package's types.
func wireErr(err error) error {
	var pe *wire.ProtocolError
	if errors.As(err, &pe) {
		return &ProtocolError{Reason: pe.Reason}
	}
	if errors.Is(err, wire.ErrCommandInvalid) {
		return &envelope.Error{Field: "command", Err: envelope.ErrControlChar}
	}
	return err
}

func replyErr(r *wire.Reply) *ReplyError {
	return &ReplyError{Code: r.Code, EnhancedCode: EnhancedCode(r.Enhanced), Message: r.Text()}
}

func toReply(r *wire.Reply) *Reply {
	if r == nil {
		return nil
	}
	return &Reply{Code: r.Code, EnhancedCode: EnhancedCode(r.Enhanced), Text: r.Text()}
}

func phaseInfo(r *wire.Reply, err error) smtptrace.PhaseInfo {
	pi := smtptrace.PhaseInfo{Index: -1, Err: err}
	if r != nil {
		pi.Code, pi.EnhancedCode = r.Code, r.Enhanced
	}
	return pi
}
