package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/transport"
)

const probeUsage = `Usage:
  mailwire probe [flags] URL
  mailwire probe [flags] --config CFG [--profile NAME]

Connects to an SMTP, SMTPS or LMTP server and reports what it offers:
the greeting; the EHLO (LHLO) capabilities before TLS and after it (with
STARTTLS, a first connection in clear lists them, then QUITs); the TLS
version and cipher suite; the certificate chain with subject, issuer,
validity and names, and whether it verifies against the trusted roots
(the system's, or --ca); the AUTH mechanisms and the one mailwire would
choose; the SIZE limit. No message is sent. With --user, it also tries to
authenticate and reports the result.

Exit status: 0 all is well; 68 host not found; 69 STARTTLS required but
not offered; 75 cannot connect; 76 TLS failed or the certificate did NOT
verify; 77 --user given and authentication failed; 64, 78 usage or
configuration errors.

Flags:`

func probe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var o connOptions
	o.stderr = stderr
	o.register(fs, false)
	pos, code, ok := parseCommand(fs, args, probeUsage, stdout, stderr)
	if !ok {
		return code
	}
	o.noteSet(fs)
	rawURL := ""
	switch {
	case len(pos) == 1:
		rawURL = pos[0]
	case len(pos) > 1:
		return usageError(stderr, "probe takes one URL")
	}
	tgt, err := o.resolveTarget(rawURL)
	if err != nil {
		return reportSetup(stderr, err)
	}
	if tgt.smtp == nil && tgt.lmtp == nil {
		return reportSetup(stderr, failf(exitUsage, "probe needs an SMTP or LMTP server; %s is a %T", tgt.label, tgt.tr))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	p := &prober{tgt: tgt, out: stdout, insecure: o.insecure, authFlag: o.mech != ""}
	return p.run(ctx)
}

// prober runs the connections of a probe and prints what it learns.
type prober struct {
	tgt      *target
	out      io.Writer
	insecure bool // --insecure-skip-verify
	authFlag bool // --auth was given
}

// security returns the mode of the probed transport.
func (p *prober) security() transport.Security {
	if p.tgt.smtp != nil {
		return p.tgt.smtp.Security
	}
	if p.tgt.lmtp.RequireTLS {
		return transport.StartTLS
	}
	return transport.Plaintext
}

func (p *prober) hello() string {
	if p.tgt.lmtp != nil {
		return "LHLO"
	}
	return "EHLO"
}

// tlsConfig returns the TLS configuration of the probed transport.
func (p *prober) tlsConfig() *tls.Config {
	if p.tgt.smtp != nil {
		return p.tgt.smtp.TLSConfig
	}
	return p.tgt.lmtp.TLSConfig
}

// dial opens a session with security sec and TLS configuration cfg (nil:
// the transport's), without authenticating.
func (p *prober) dial(ctx context.Context, sec transport.Security, cfg *tls.Config) (*transport.Conn, time.Duration, error) {
	start := time.Now()
	var c *transport.Conn
	var err error
	if o := p.tgt.smtp; o != nil {
		t := &transport.SMTP{Network: o.Network, Addr: o.Addr, Security: sec, TLSConfig: o.TLSConfig,
			Dialer: o.Dialer, LocalName: o.LocalName, Debug: o.Debug}
		if cfg != nil {
			t.TLSConfig = cfg
		}
		c, err = t.Dial(ctx)
	} else {
		o := p.tgt.lmtp
		t := &transport.LMTP{Network: o.Network, Addr: o.Addr, RequireTLS: sec == transport.StartTLS,
			TLSConfig: o.TLSConfig, Dialer: o.Dialer, LocalName: o.LocalName, Debug: o.Debug}
		if cfg != nil {
			t.TLSConfig = cfg
		}
		c, err = t.Dial(ctx)
	}
	return c, time.Since(start), err
}

func (p *prober) authenticator() auth.Authenticator {
	if p.tgt.smtp != nil {
		return p.tgt.smtp.Auth
	}
	return p.tgt.lmtp.Auth
}

func (p *prober) printf(format string, args ...any) { fmt.Fprintf(p.out, format, args...) }

func (p *prober) run(ctx context.Context) int {
	sec := p.security()
	p.printf("probing %s (security: %s)\n", p.tgt.label, securityText(sec, p.tgt.lmtp != nil))
	status := exitOK

	if sec == transport.StartTLS || sec == transport.StartTLSOpportunistic {
		// The capabilities before TLS need a session that stays in clear.
		c, took, err := p.dial(ctx, transport.Plaintext, nil)
		if err != nil {
			p.printf("connection failed: %s\n", oneLine(err.Error()))
			return exitCode(nil, err)
		}
		p.printf("connected to %s in %s\n", p.tgt.addr, roundDuration(took))
		p.printf("greeting: 220 %s\n", oneLine(c.Greeting()))
		p.capabilities("before TLS", c.Extensions())
		has, _ := c.Extension("STARTTLS")
		c.Close()
		if !has {
			if sec == transport.StartTLS {
				p.printf("STARTTLS: NOT offered; a send with this URL would fail before MAIL (add ?tls=opportunistic or ?tls=none to send in clear)\n")
				return exitUnavailable
			}
			p.printf("STARTTLS: not offered; the session stays in clear\n")
			sec = transport.Plaintext
		} else {
			p.printf("STARTTLS: offered\n")
		}
	}
	if sec == transport.Plaintext {
		c, took, err := p.dial(ctx, transport.Plaintext, nil)
		if err != nil {
			p.printf("connection failed: %s\n", oneLine(err.Error()))
			return exitCode(nil, err)
		}
		defer c.Close()
		if p.security() == transport.Plaintext {
			p.printf("connected to %s in %s\n", p.tgt.addr, roundDuration(took))
			p.printf("greeting: 220 %s\n", oneLine(c.Greeting()))
			p.capabilities("(no TLS)", c.Extensions())
		}
		p.printf("TLS: none; everything, credentials included, travels in clear\n")
		return worse(status, p.tail(ctx, c))
	}

	// A TLS session: with STARTTLS the second connection, with implicit
	// TLS the only one.
	c, took, err := p.dial(ctx, sec, nil)
	verifyFailed := false
	if err != nil && isVerifyError(err) {
		verifyFailed = true
		p.printf("TLS handshake: certificate verification FAILED: %s\n", oneLine(rootCause(err).Error()))
		p.printf("(connecting again without verification, only to show the chain)\n")
		cfg := p.tlsConfig()
		if cfg == nil {
			cfg = &tls.Config{}
		} else {
			cfg = cfg.Clone()
		}
		cfg.InsecureSkipVerify = true
		c, took, err = p.dial(ctx, sec, cfg)
	}
	if err != nil {
		p.printf("connection failed: %s\n", oneLine(err.Error()))
		return exitCode(nil, err)
	}
	defer c.Close()
	if sec == transport.ImplicitTLS {
		p.printf("connected to %s in %s\n", p.tgt.addr, roundDuration(took))
		p.printf("greeting: 220 %s\n", oneLine(c.Greeting()))
	}
	cs := c.TLSConnectionState()
	if cs == nil {
		p.printf("TLS: none (unexpected)\n")
		return exitProtocol
	}
	p.printf("TLS: %s, cipher suite %s\n", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	if !p.chain(cs) || verifyFailed {
		status = exitProtocol
	}
	p.capabilities("after TLS", c.Extensions())
	return worse(status, p.tail(ctx, c))
}

// tail prints the AUTH mechanisms and the SIZE limit, and tries to
// authenticate when --user was given.
func (p *prober) tail(ctx context.Context, c *transport.Conn) int {
	mechs := c.AuthMechanisms()
	if len(mechs) == 0 {
		p.printf("AUTH: not offered\n")
	} else {
		p.printf("AUTH: %s\n", strings.Join(mechs, " "))
		allowed := p.requested()
		mech, err := p.choose(ctx, c, mechs, allowed)
		chosen := mech
		if err != nil {
			chosen = "none (" + oneLine(err.Error()) + ")"
		}
		switch {
		case allowed == nil:
			p.printf("  mailwire would choose: %s (for a user name and password)\n", chosen)
		// --auth (or the profile) names the mechanisms: say so, rather than
		// what negotiation among all would choose, which is not used.
		case len(allowed) == 1 && err == nil:
			p.printf("  requested %s: %s (offered, usable on this session)\n", p.requestedBy(), allowed[0])
		case len(allowed) == 1:
			p.printf("  requested %s: %s, which cannot be used on this session: %s\n", p.requestedBy(), allowed[0], oneLine(err.Error()))
		default:
			p.printf("  allowed %s: %s; mailwire would choose: %s\n", p.requestedBy(), strings.Join(allowed, " "), chosen)
		}
	}
	switch n, ok := c.MaxMessageSize(); {
	case !ok:
		p.printf("SIZE: not advertised\n")
	case n == 0:
		p.printf("SIZE: advertised, no limit given\n")
	default:
		p.printf("SIZE: %d bytes (%s)\n", n, humanBytes(n))
	}
	a := p.authenticator()
	if a == nil {
		return exitOK
	}
	err := c.Authenticate(ctx, a)
	if err != nil {
		p.printf("authentication: FAILED: %s\n", oneLine(err.Error()))
		return exitCode(nil, err)
	}
	p.printf("authentication: ok with %s\n", c.AuthMechanism())
	return exitOK
}

// requested returns the mechanisms the authenticator is restricted to:
// the one --auth names, or those of the profile's auth block; nil when it
// negotiates among all (or there is no authenticator).
func (p *prober) requested() []string {
	cfg, ok := p.authenticator().(auth.Config)
	if !ok || cfg.Mechanisms == nil {
		return nil
	}
	upper := make([]string, len(cfg.Mechanisms))
	for i, m := range cfg.Mechanisms {
		upper[i] = strings.ToUpper(m)
	}
	return upper
}

// requestedBy says where the requested mechanisms come from.
func (p *prober) requestedBy() string {
	if p.authFlag {
		return "with --auth"
	}
	return "by the profile"
}

// choose returns the mechanism mailwire picks on this session for a user
// name and password (and a token, for the OAuth mechanisms) among allowed
// (nil: the default preference), or why none can be used.
func (p *prober) choose(ctx context.Context, c *transport.Conn, mechs, allowed []string) (string, error) {
	host := p.tgt.serverName
	info := auth.ServerInfo{Host: host, Mechanisms: mechs, TLS: c.TLSConnectionState(), Unix: host == ""}
	cfg := auth.Config{Credentials: auth.Credentials{Username: "probe", Password: "probe"}}
	if allowed != nil {
		cfg.Mechanisms = allowed
		cfg.Token = func(context.Context) (string, error) { return "probe", nil }
		if a, ok := p.authenticator().(auth.Config); ok {
			cfg.AllowInsecure = a.AllowInsecure
		}
		if tc := p.tlsConfig(); info.TLS != nil && tc != nil && len(tc.Certificates) > 0 {
			info.ClientCert = true
		}
	}
	cl, err := cfg.Start(ctx, info)
	if err != nil {
		return "", err
	}
	mech, _, err := cl.Start()
	if err != nil {
		return "", err
	}
	return mech, nil
}

// capabilities prints the service extensions, sorted.
func (p *prober) capabilities(when string, ext map[string]string) {
	p.printf("%s capabilities %s:\n", p.hello(), when)
	if len(ext) == 0 {
		p.printf("  (none: the server took only HELO)\n")
		return
	}
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ext[k] != "" {
			p.printf("  %s %s\n", k, ext[k])
		} else {
			p.printf("  %s\n", k)
		}
	}
}

// chain prints the server's certificates and verifies them against the
// configured roots; it reports whether they verified.
func (p *prober) chain(cs *tls.ConnectionState) bool {
	certs := cs.PeerCertificates
	p.printf("certificate chain (%d, as sent by the server):\n", len(certs))
	now := time.Now()
	for i, c := range certs {
		p.printf("  %d subject:  %s\n", i, c.Subject)
		p.printf("    issuer:   %s\n", c.Issuer)
		validity := fmt.Sprintf("%s to %s", c.NotBefore.UTC().Format(time.DateTime+" MST"), c.NotAfter.UTC().Format(time.DateTime+" MST"))
		switch {
		case now.After(c.NotAfter):
			validity += " (EXPIRED)"
		case now.Before(c.NotBefore):
			validity += " (NOT YET VALID)"
		default:
			validity += fmt.Sprintf(" (%d days left)", int(c.NotAfter.Sub(now).Hours()/24))
		}
		p.printf("    validity: %s\n", validity)
		if sans := subjectAltNames(c); sans != "" {
			p.printf("    SANs:     %s\n", sans)
		}
		p.printf("    key:      %s, signed with %s\n", keyText(c), c.SignatureAlgorithm)
		sum := sha256.Sum256(c.Raw)
		p.printf("    sha256:   %X\n", sum[:])
	}
	name := cs.ServerName
	if name == "" {
		name = p.tgt.serverName
	}
	rootsText := "the system roots"
	if p.tgt.roots != nil {
		rootsText = "the --ca roots"
	}
	chains, err := verifyChain(certs, name, p.tgt.roots)
	if err != nil {
		p.printf("verification: FAILED for %q against %s: %s\n", name, rootsText, oneLine(err.Error()))
		return false
	}
	var path []string
	for _, c := range chains[0] {
		path = append(path, c.Subject.String())
	}
	p.printf("verification: ok for %q against %s (%s)\n", name, rootsText, strings.Join(path, " <- "))
	if p.insecure {
		p.printf("  (the connection itself was not verified: --insecure-skip-verify)\n")
	}
	return true
}

// verifyChain verifies certs, leaf first, for name against roots (nil: the
// system's), as crypto/tls does.
func verifyChain(certs []*x509.Certificate, name string, roots *x509.CertPool) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	return certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
}

func subjectAltNames(c *x509.Certificate) string {
	var sans []string
	for _, d := range c.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	for _, e := range c.EmailAddresses {
		sans = append(sans, "email:"+e)
	}
	for _, u := range c.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	return strings.Join(sans, ", ")
}

func keyText(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// isVerifyError reports whether err is a certificate the client could not
// verify, as opposed to a handshake that failed.
func isVerifyError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// rootCause returns the certificate error inside err, for a shorter report.
func rootCause(err error) error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) && cv.Err != nil {
		return cv.Err
	}
	return err
}

func securityText(s transport.Security, lmtp bool) string {
	switch s {
	case transport.StartTLS:
		return "STARTTLS required"
	case transport.StartTLSOpportunistic:
		return "STARTTLS if offered"
	case transport.ImplicitTLS:
		return "implicit TLS"
	}
	if lmtp {
		return "LMTP in clear"
	}
	return "no TLS"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
