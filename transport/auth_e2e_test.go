package transport_test

// End-to-end tests of SASL authentication: every built-in mechanism of
// package auth through transport.SMTP against smtptest servers, over
// STARTTLS and implicit TLS, with the server side of each mechanism in
// smtptest. The identifiers of this file start with "ae".

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

const (
	aeUser          = "alice"
	aePassword      = "e2e-Pa55word-correct-horse"
	aeWrongPassword = "e2e-Wr0ng-battery-staple"
	aeToken         = "ya29.e2e-oauth-token-7f3c9a1b5d"
	aeWrongToken    = "ya29.e2e-expired-token-2e8d4f6a0c"
	aeBody          = "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: auth e2e\r\n\r\nhello\r\n"
)

// aeSecrets are every secret the tests use; none may show in a transcript,
// an error or a Result.
var aeSecrets = []string{aePassword, aeWrongPassword, aeToken, aeWrongToken}

// aeCode578 is the enhanced code of a refused authentication (RFC 4954).
var aeCode578 = transport.EnhancedCode{5, 7, 8}

// aeBuffer is a bytes.Buffer safe for the concurrent writes of a server's
// sessions.
type aeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *aeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *aeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func aeCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func aeEnv() *envelope.Envelope { return envelope.New("alice@example.org", "bob@example.org") }

func aeStaticToken(tok string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return tok, nil }
}

// aeStart starts a server with security sec offering mechs (nil: PLAIN and
// LOGIN) to the user alice, after configure, and returns it with the raw
// transcript of its sessions (the server's view, secrets included).
func aeStart(t *testing.T, sec transport.Security, mechs map[string]smtptest.AuthMechanism, configure func(s *smtptest.Server)) (*smtptest.Server, *aeBuffer) {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.Security = sec
	s.Users = map[string]string{aeUser: aePassword}
	s.AuthMechanisms = mechs
	s.ErrorLog = log.New(io.Discard, "", 0)
	debug := new(aeBuffer)
	s.Debug = debug
	if configure != nil {
		configure(s)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, debug
}

// aeTLS returns a configure function for aeStart that pins the
// server's TLS version (0 leaves the default, TLS 1.3), and sets the
// client certificate policy.
func aeTLS(version uint16, clientAuth tls.ClientAuthType, cas *x509.CertPool) func(s *smtptest.Server) {
	return func(s *smtptest.Server) {
		s.TLS = &tls.Config{MaxVersion: version, ClientAuth: clientAuth, ClientCAs: cas}
	}
}

// aeTransport returns a transport for s without pooling, authenticating
// with a, and its client transcript.
func aeTransport(s *smtptest.Server, a auth.Authenticator) (*transport.SMTP, *aeBuffer) {
	tr := s.Transport()
	tr.LocalName = "client.example"
	tr.Auth = a
	tr.Pool.MaxIdleConns = -1
	debug := new(aeBuffer)
	tr.Debug = debug
	return tr, debug
}

func aeNew(t *testing.T, mech string, c auth.Credentials) auth.Authenticator {
	t.Helper()
	a, err := auth.New(mech, c)
	if err != nil {
		t.Fatalf("auth.New(%s): %v", mech, err)
	}
	return a
}

// aeSecretForms returns what would betray secret in a text: the secret
// itself, and for each of the three alignments it can have inside a longer
// base64-encoded message, the run of base64 characters (standard and URL
// alphabets) that depends on the secret's bytes alone.
func aeSecretForms(secret string) []string {
	forms := []string{secret}
	for off := 0; off < 3; off++ {
		padded := append(make([]byte, off), secret...)
		start := (8*off + 5) / 6           // the first character with no bit of the prefix
		end := 8 * (off + len(secret)) / 6 // past the last character with no bit after the secret
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			forms = append(forms, enc.EncodeToString(padded)[start:end])
		}
	}
	return forms
}

// aeLeaked returns the secret text leaks, or "".
func aeLeaked(text string) string {
	for _, s := range aeSecrets {
		for _, f := range aeSecretForms(s) {
			if strings.Contains(text, f) {
				return s
			}
		}
	}
	return ""
}

func aeNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	if s := aeLeaked(text); s != "" {
		t.Errorf("%s leaks the secret %q (or a base64 form of it):\n%s", what, s, text)
	}
}

// aeResultText renders everything a caller could print of a Send's
// outcome.
func aeResultText(res *transport.Result, err error) string {
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "%v\n%+v\n%#v\n", err, err, err)
		for e := err; e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(&b, "%v\n", e)
		}
	}
	if res != nil {
		fmt.Fprintf(&b, "%+v\n", *res)
		if rerr := res.Err(); rerr != nil {
			fmt.Fprintf(&b, "%v\n", rerr)
		}
		for _, r := range res.Rcpts {
			if r.Err != nil {
				fmt.Fprintf(&b, "%v\n", r.Err)
			}
			if r.Reply != nil {
				fmt.Fprintf(&b, "%v\n", *r.Reply)
			}
		}
	}
	return b.String()
}

// aeWantRefused checks that err is an authentication refused by the
// server with code and enhanced code: an *OpError at OpAuth wrapping a
// *ReplyError, classified by its code. It returns the reply.
func aeWantRefused(t *testing.T, err error, code int, enh transport.EnhancedCode) *transport.ReplyError {
	t.Helper()
	var oe *transport.OpError
	var re *transport.ReplyError
	if !errors.As(err, &oe) || oe.Op != transport.OpAuth || !errors.As(err, &re) {
		t.Fatalf("err = %v, want an *OpError at %q wrapping a *ReplyError", err, transport.OpAuth)
	}
	if re.Code != code || re.EnhancedCode != enh {
		t.Errorf("reply = %d %s, want %d %s", re.Code, re.EnhancedCode, code, enh)
	}
	if permanent := code >= 500; errors.Is(err, transport.ErrPermanent) != permanent || errors.Is(err, transport.ErrTransient) == permanent {
		t.Errorf("err = %v: ErrPermanent %v, ErrTransient %v for a %d", err,
			errors.Is(err, transport.ErrPermanent), errors.Is(err, transport.ErrTransient), code)
	}
	return re
}

// aeClientLines returns the lines the client wrote, from its transcript.
func aeClientLines(transcript string) []string {
	var out []string
	for l := range strings.SplitSeq(transcript, "\n") {
		if strings.HasPrefix(l, "C: ") {
			out = append(out, l)
		}
	}
	return out
}

func aeHasCommand(transcript, verb string) bool {
	for _, l := range aeClientLines(transcript) {
		if strings.HasPrefix(l, "C: "+verb) {
			return true
		}
	}
	return false
}

// aeServerAuth finds, in a server's raw transcript, the first AUTH command
// for mech and returns the client's initial response, decoded, and whether
// it came after an empty 334 rather than on the AUTH line.
func aeServerAuth(t *testing.T, serverDebug, mech string) (ir string, deferred bool) {
	t.Helper()
	lines := strings.Split(serverDebug, "\r\n")
	for i, l := range lines {
		var enc string
		switch {
		case strings.HasPrefix(l, "AUTH "+mech+" "):
			enc = strings.TrimPrefix(l, "AUTH "+mech+" ")
		case l == "AUTH "+mech:
			if i+2 >= len(lines) || lines[i+1] != "334 " {
				t.Fatalf("server transcript: AUTH %s without an initial response is not followed by an empty 334:\n%s", mech, serverDebug)
			}
			enc, deferred = lines[i+2], true
		default:
			continue
		}
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			t.Fatalf("server transcript: initial response %q: %v", enc, err)
		}
		return string(b), deferred
	}
	t.Fatalf("server transcript has no AUTH %s:\n%s", mech, serverDebug)
	return "", false
}

// aeServerSawAuth reports whether a server's raw transcript has an AUTH
// command.
func aeServerSawAuth(serverDebug string) bool {
	return strings.Contains(serverDebug, "\r\nAUTH ")
}

// aePKI is a certificate authority for TLS client certificates and a
// certificate it issued to alice.
type aePKI struct {
	pool  *x509.CertPool
	alice tls.Certificate
}

func aeNewPKI(t *testing.T) *aePKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	notBefore, notAfter := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "auth e2e client CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: aeUser},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &aePKI{pool: pool, alice: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func aeSecurities() []transport.Security {
	return []transport.Security{transport.StartTLS, transport.ImplicitTLS}
}

// aeAllMechanisms is the server side of every built-in mechanism; SCRAM
// knows whether the -PLUS form is offered when plus is set.
func aeAllMechanisms(plus bool) map[string]smtptest.AuthMechanism {
	scram := smtptest.SCRAMConfig{PlusAdvertised: plus}.Mechanism()
	tokens := map[string]string{aeUser: aeToken}
	m := map[string]smtptest.AuthMechanism{
		"PLAIN":         smtptest.Plain,
		"LOGIN":         smtptest.Login,
		"CRAM-MD5":      smtptest.CRAMMD5,
		"SCRAM-SHA-1":   scram,
		"SCRAM-SHA-256": scram,
		"SCRAM-SHA-512": scram,
		"XOAUTH2":       smtptest.XOAUTH2(tokens),
		"OAUTHBEARER":   smtptest.OAuthBearer(tokens),
		"EXTERNAL":      smtptest.External,
		"ANONYMOUS":     smtptest.Anonymous,
	}
	if plus {
		m["SCRAM-SHA-1-PLUS"] = scram
		m["SCRAM-SHA-256-PLUS"] = scram
		m["SCRAM-SHA-512-PLUS"] = scram
	}
	return m
}

// aeOnly returns the mechanisms of all named by names.
func aeOnly(all map[string]smtptest.AuthMechanism, names ...string) map[string]smtptest.AuthMechanism {
	m := make(map[string]smtptest.AuthMechanism, len(names))
	for _, n := range names {
		m[n] = all[n]
	}
	return m
}

func TestAuthE2ESecretFormsHelper(t *testing.T) {
	// The leak scanner must see a secret inside any base64 message,
	// whatever its offset, or the other tests prove nothing.
	for _, prefix := range []string{"", "\x00", "\x00alice\x00", "user=alice\x01auth=Bearer ", "n,a=alice,\x01auth=Bearer "} {
		msg := prefix + aeToken + "\x01\x01"
		if aeLeaked(base64.StdEncoding.EncodeToString([]byte(msg))) != aeToken {
			t.Errorf("base64 of %q not detected", msg)
		}
	}
	if s := aeLeaked("C: AUTH PLAIN [redacted]\nS: 535 5.7.8 Authentication credentials invalid\n"); s != "" {
		t.Errorf("false positive %q", s)
	}
}

// aeMechCase is one built-in mechanism with the credentials that pass and
// fail against the server side in aeAllMechanisms.
type aeMechCase struct {
	mech      string
	good, bad auth.Credentials
	noBad     bool   // no credential to get wrong
	user      string // the Message.AuthUser the server records
	cert      bool   // the server requires a client certificate
}

func aeMechCases() []aeMechCase {
	pass := func(p string) auth.Credentials { return auth.Credentials{Username: aeUser, Password: p} }
	tok := func(tk string) auth.Credentials { return auth.Credentials{Username: aeUser, Token: aeStaticToken(tk)} }
	var cases []aeMechCase
	for _, m := range []string{"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512-PLUS"} {
		cases = append(cases, aeMechCase{mech: m, good: pass(aePassword), bad: pass(aeWrongPassword), user: aeUser})
	}
	for _, m := range []string{"XOAUTH2", "OAUTHBEARER"} {
		cases = append(cases, aeMechCase{mech: m, good: tok(aeToken), bad: tok(aeWrongToken), user: aeUser})
	}
	return append(cases,
		// EXTERNAL's credential is the certificate; asking to act as
		// someone else is what the server refuses.
		aeMechCase{mech: "EXTERNAL", bad: auth.Credentials{Identity: "mallory"}, user: aeUser, cert: true},
		aeMechCase{mech: "ANONYMOUS", good: auth.Credentials{Username: "e2e-trace@example.org"}, noBad: true, user: "anonymous"},
	)
}

func TestAuthE2EMechanisms(t *testing.T) {
	pki := aeNewPKI(t)
	for _, tc := range aeMechCases() {
		for _, sec := range aeSecurities() {
			t.Run(tc.mech+"/"+sec.String(), func(t *testing.T) {
				configure := func(*smtptest.Server) {}
				if tc.cert {
					configure = aeTLS(0, tls.RequireAndVerifyClientCert, pki.pool)
				}
				// Each server offers only the mechanism under test, with
				// AUTH after TLS only.
				s, serverDebug := aeStart(t, sec, aeOnly(aeAllMechanisms(strings.HasSuffix(tc.mech, "-PLUS")), tc.mech), configure)
				newTransport := func(a auth.Authenticator) (*transport.SMTP, *aeBuffer) {
					tr, transcript := aeTransport(s, a)
					if tc.cert {
						tr.TLSConfig.Certificates = []tls.Certificate{pki.alice}
					}
					return tr, transcript
				}

				tr, transcript := newTransport(aeNew(t, tc.mech, tc.good))
				c, err := tr.Dial(aeCtx(t))
				if err != nil {
					t.Fatalf("Dial: %v\n%s", err, transcript)
				}
				if got := c.AuthMechanism(); got != tc.mech {
					t.Errorf("AuthMechanism() = %q, want %q", got, tc.mech)
				}
				if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
					t.Errorf("Conn.Send: %v", err)
				}
				c.Close()
				res, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody))
				if err != nil {
					t.Fatalf("Send: %v\n%s", err, transcript)
				}
				msgs := s.Messages()
				if len(msgs) != 2 {
					t.Fatalf("server recorded %d messages, want 2", len(msgs))
				}
				for _, m := range msgs {
					if m.AuthUser != tc.user || !m.TLS {
						t.Errorf("message AuthUser %q TLS %v, want %q over TLS", m.AuthUser, m.TLS, tc.user)
					}
				}
				if !strings.Contains(transcript.String(), "C: AUTH "+tc.mech) {
					t.Errorf("client transcript lacks AUTH %s:\n%s", tc.mech, transcript)
				}
				aeNoSecrets(t, "client transcript", transcript.String())
				aeNoSecrets(t, "result", aeResultText(res, err))
				if tc.mech == "ANONYMOUS" {
					if ir, _ := aeServerAuth(t, serverDebug.String(), tc.mech); ir != tc.good.Username {
						t.Errorf("server got trace %q, want %q", ir, tc.good.Username)
					}
				}
				if tc.noBad {
					return
				}

				s.Reset()
				tr, transcript = newTransport(aeNew(t, tc.mech, tc.bad))
				res, err = tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody))
				aeWantRefused(t, err, 535, aeCode578)
				if res == nil || len(res.Rcpts) != 1 || res.Rcpts[0].Outcome != transport.PermFailed {
					t.Errorf("Result = %+v, want the recipient perm-failed", res)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("server recorded %d messages after a refused AUTH", n)
				}
				if aeHasCommand(transcript.String(), "MAIL") {
					t.Errorf("MAIL sent after a refused AUTH:\n%s", transcript)
				}
				aeNoSecrets(t, "client transcript", transcript.String())
				aeNoSecrets(t, "error and result", aeResultText(res, err))
			})
		}
	}
}

// aeFlip returns data with its first byte inverted.
func aeFlip(data []byte) []byte {
	data = slices.Clone(data)
	data[0] ^= 0xff
	return data
}

func TestAuthE2EChannelBinding(t *testing.T) {
	const mech = "SCRAM-SHA-256-PLUS"
	// What a man-in-the-middle relaying the exchange between two TLS
	// connections makes the server see: its own connection's binding,
	// which is not the client's.
	mitm := func(cs *tls.ConnectionState) (string, []byte, error) {
		typ, data, err := smtptest.ChannelBinding(cs)
		return typ, aeFlip(data), err
	}
	// A server that binds to its certificate (RFC 5929
	// tls-server-end-point), a type the client does not use: the type
	// alone makes it refuse.
	endpoint := func(*tls.ConnectionState) (string, []byte, error) {
		return "tls-server-end-point", make([]byte, sha256.Size), nil
	}
	for _, v := range []struct {
		name    string
		version uint16
		cbType  string
	}{
		{"TLS1.3", tls.VersionTLS13, "tls-exporter"},
		{"TLS1.2", tls.VersionTLS12, "tls-unique"},
	} {
		for _, sec := range aeSecurities() {
			for _, tc := range []struct {
				name   string
				mitm   bool
				other  bool
				reason string
			}{
				{name: "bound"},
				{name: "mismatch", mitm: true, reason: "channel-bindings-dont-match"},
				{name: "other-type", other: true, reason: "unsupported-channel-binding-type"},
			} {
				t.Run(v.name+"/"+sec.String()+"/"+tc.name, func(t *testing.T) {
					cfg := smtptest.SCRAMConfig{PlusAdvertised: true}
					switch {
					case tc.mitm:
						cfg.ChannelBinding = mitm
					case tc.other:
						cfg.ChannelBinding = endpoint
					}
					scram := cfg.Mechanism()
					s, serverDebug := aeStart(t, sec, map[string]smtptest.AuthMechanism{
						"SCRAM-SHA-256": scram, mech: scram, "PLAIN": smtptest.Plain,
					}, aeTLS(v.version, tls.NoClientCert, nil))
					// The default preference picks the -PLUS form.
					tr, transcript := aeTransport(s, auth.Config{Credentials: auth.Credentials{Username: aeUser, Password: aePassword}})
					c, err := tr.Dial(aeCtx(t))
					if !tc.mitm && !tc.other {
						if err != nil {
							t.Fatalf("Dial: %v\n%s", err, transcript)
						}
						if got := c.AuthMechanism(); got != mech {
							t.Errorf("AuthMechanism() = %q, want %q", got, mech)
						}
						if got := c.TLSConnectionState().Version; got != v.version {
							t.Errorf("TLS version %x, want %x", got, v.version)
						}
						if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
							t.Fatal(err)
						}
						c.Close()
						if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != aeUser {
							t.Errorf("messages %+v, want one from %s", msgs, aeUser)
						}
					} else {
						re := aeWantRefused(t, err, 535, aeCode578)
						if !strings.Contains(re.Message, tc.reason) {
							t.Errorf("reply %q does not give the reason %q", re.Message, tc.reason)
						}
						if n := len(s.Messages()); n != 0 {
							t.Errorf("server recorded %d messages", n)
						}
						if aeHasCommand(transcript.String(), "MAIL") {
							t.Errorf("MAIL sent after a refused AUTH:\n%s", transcript)
						}
					}
					// The server's view: the client bound the exchange with
					// the type of its TLS version.
					ir, _ := aeServerAuth(t, serverDebug.String(), mech)
					if want := "p=" + v.cbType + ",,n=" + aeUser + ",r="; !strings.HasPrefix(ir, want) {
						t.Errorf("client-first message %q, want prefix %q", ir, want)
					}
					aeNoSecrets(t, "client transcript", transcript.String())
					aeNoSecrets(t, "error", aeResultText(nil, err))
				})
			}
		}
	}
}

func TestAuthE2ESCRAMDowngradeFlag(t *testing.T) {
	// RFC 5802 section 6: a TLS client that supports channel binding but
	// sees no -PLUS offer says "y"; a server that did offer -PLUS then
	// knows the offer was stripped on the way.
	creds := auth.Credentials{Username: aeUser, Password: aePassword}
	for _, tc := range []struct {
		name      string
		network   string
		security  transport.Security
		offerPlus bool // the EHLO reply lists SCRAM-SHA-256-PLUS
		plusSaid  bool // the server believes it offered -PLUS
		prefs     []string
		flag      string // the GS2 flag the client must send
		refused   bool
	}{
		{name: "no-plus-offered", security: transport.StartTLS, flag: "y,,"},
		{name: "plus-stripped", security: transport.StartTLS, plusSaid: true, flag: "y,,", refused: true},
		{name: "plus-stripped-implicit", security: transport.ImplicitTLS, plusSaid: true, flag: "y,,", refused: true},
		{name: "plus-offered-not-chosen", security: transport.StartTLS, offerPlus: true, plusSaid: true, prefs: []string{"SCRAM-SHA-256"}, flag: "n,,"},
		{name: "unix-no-tls", network: "unix", security: transport.Plaintext, plusSaid: true, flag: "n,,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scram := smtptest.SCRAMConfig{PlusAdvertised: tc.plusSaid}.Mechanism()
			mechs := map[string]smtptest.AuthMechanism{"SCRAM-SHA-256": scram}
			if tc.offerPlus {
				mechs["SCRAM-SHA-256-PLUS"] = scram
			}
			s, serverDebug := aeStart(t, tc.security, mechs, func(s *smtptest.Server) {
				if tc.network != "" {
					s.Network = tc.network
				}
			})
			tr, transcript := aeTransport(s, auth.Config{Credentials: creds, Mechanisms: tc.prefs})
			_, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody))
			if tc.refused {
				re := aeWantRefused(t, err, 535, aeCode578)
				if !strings.Contains(re.Message, "server-does-support-channel-binding") {
					t.Errorf("reply %q does not give the reason", re.Message)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("server recorded %d messages", n)
				}
			} else if err != nil {
				t.Fatalf("Send: %v\n%s", err, transcript)
			}
			if ir, _ := aeServerAuth(t, serverDebug.String(), "SCRAM-SHA-256"); !strings.HasPrefix(ir, tc.flag) {
				t.Errorf("client-first message %q, want GS2 header %q", ir, tc.flag)
			}
			aeNoSecrets(t, "client transcript", transcript.String())
		})
	}
}

func TestAuthE2ESCRAMForgedServerSignature(t *testing.T) {
	creds := auth.Credentials{Username: aeUser, Password: aePassword}
	for _, tc := range []struct {
		name  string
		forge func(string) string
	}{
		// The server accepts the proof but cannot sign: it sends a
		// signature that is not the one the password gives.
		{"wrong-signature", func(final string) string {
			sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(final, "v="))
			return "v=" + base64.StdEncoding.EncodeToString(aeFlip(sig))
		}},
		// It sends no server-final message at all and replies 235.
		{"no-server-final", func(string) string { return "" }},
	} {
		for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"} {
			t.Run(tc.name+"/"+mech, func(t *testing.T) {
				scram := smtptest.SCRAMConfig{PlusAdvertised: true, ServerFinal: tc.forge}.Mechanism()
				s, serverDebug := aeStart(t, transport.StartTLS, map[string]smtptest.AuthMechanism{
					"SCRAM-SHA-1": scram, "SCRAM-SHA-256": scram, "SCRAM-SHA-256-PLUS": scram, "PLAIN": smtptest.Plain,
				}, nil)

				// Send: the session ends without a transaction.
				tr, transcript := aeTransport(s, aeNew(t, mech, creds))
				res, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody))
				var oe *transport.OpError
				if !errors.As(err, &oe) || oe.Op != transport.OpAuth || !errors.Is(err, auth.ErrServerNotVerified) {
					t.Fatalf("Send: err = %v, want an auth error wrapping auth.ErrServerNotVerified", err)
				}
				if res == nil || res.Rcpts[0].Outcome == transport.Accepted {
					t.Errorf("Result = %+v", res)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("server recorded %d messages", n)
				}
				if aeHasCommand(transcript.String(), "MAIL") || strings.Contains(serverDebug.String(), "MAIL FROM") {
					t.Errorf("MAIL sent to a server that did not prove its identity:\n%s", transcript)
				}
				aeNoSecrets(t, "client transcript", transcript.String())
				aeNoSecrets(t, "error and result", aeResultText(res, err))

				// Conn.Authenticate: the session must not be used either.
				tr, transcript = aeTransport(s, nil)
				c, err := tr.Dial(aeCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				err = c.Authenticate(aeCtx(t), aeNew(t, mech, creds))
				if !errors.Is(err, auth.ErrServerNotVerified) {
					t.Fatalf("Authenticate: err = %v, want auth.ErrServerNotVerified", err)
				}
				if got := c.AuthMechanism(); got != "" {
					t.Errorf("AuthMechanism() = %q after an unverified server", got)
				}
				// Nor for another attempt, which would hand the password
				// to the impostor.
				if err := c.Authenticate(aeCtx(t), aeNew(t, "PLAIN", creds)); err == nil {
					t.Errorf("BUG: Conn.Authenticate with PLAIN succeeded after auth.ErrServerNotVerified: the password went to a server that failed to prove its identity")
				}
				if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err == nil {
					t.Errorf("BUG: Conn.Send succeeded on a session whose server failed to prove its identity "+
						"(auth.ErrServerNotVerified: \"the session should be closed\"); transcript:\n%s", transcript)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("server recorded %d messages from a session with an unverified server", n)
				}
			})
		}
	}
}

func TestAuthE2ENegotiation(t *testing.T) {
	pki := aeNewPKI(t)
	all := []string{"ANONYMOUS", "CRAM-MD5", "EXTERNAL", "LOGIN", "OAUTHBEARER", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "XOAUTH2"}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(m string) bool { return slices.Contains(drop, m) })
	}
	for _, tc := range []struct {
		name    string
		offered []string
		prefs   []string // nil: auth.DefaultPreference
		noToken bool     // Credentials.Token is nil
		cert    bool     // the client presents a certificate
		version uint16   // the server's maximum TLS version; 0: TLS 1.3
		want    string   // the mechanism used; "" if none can be
		user    string   // the AuthUser the server records; default alice
	}{
		{name: "all", offered: all, want: "SCRAM-SHA-256-PLUS"},
		{name: "all-tls1.2", offered: all, version: tls.VersionTLS12, want: "SCRAM-SHA-256-PLUS"},
		{name: "no-plus", offered: without("SCRAM-SHA-256-PLUS"), want: "SCRAM-SHA-256"},
		{name: "sha1-best", offered: without("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"), want: "SCRAM-SHA-1"},
		{name: "oauthbearer-best", offered: []string{"CRAM-MD5", "LOGIN", "OAUTHBEARER", "PLAIN", "XOAUTH2"}, want: "OAUTHBEARER"},
		{name: "xoauth2-best", offered: []string{"CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2"}, want: "XOAUTH2"},
		{name: "oauth-without-token", offered: []string{"CRAM-MD5", "LOGIN", "OAUTHBEARER", "PLAIN", "XOAUTH2"}, noToken: true, want: "PLAIN"},
		// The server lists CRAM-MD5 first (its list is sorted); PLAIN is
		// preferred inside TLS.
		{name: "plain-over-cram", offered: []string{"CRAM-MD5", "LOGIN", "PLAIN"}, want: "PLAIN"},
		{name: "login", offered: []string{"CRAM-MD5", "LOGIN"}, want: "LOGIN"},
		{name: "cram-md5", offered: []string{"CRAM-MD5"}, want: "CRAM-MD5"},
		{name: "external-anonymous-by-name-only", offered: []string{"ANONYMOUS", "CRAM-MD5", "EXTERNAL"}, cert: true, want: "CRAM-MD5"},
		{name: "pref-cram-md5", offered: all, prefs: []string{"CRAM-MD5", "PLAIN"}, want: "CRAM-MD5"},
		{name: "pref-lower-case", offered: all, prefs: []string{"login", "plain"}, want: "LOGIN"},
		{name: "pref-skips-unoffered", offered: []string{"LOGIN", "PLAIN"}, prefs: []string{"SCRAM-SHA-256", "CRAM-MD5", "LOGIN", "PLAIN"}, want: "LOGIN"},
		{name: "pref-external-with-cert", offered: all, prefs: []string{"EXTERNAL", "PLAIN"}, cert: true, want: "EXTERNAL"},
		{name: "pref-external-without-cert", offered: all, prefs: []string{"EXTERNAL", "PLAIN"}, want: "PLAIN"},
		{name: "pref-anonymous", offered: all, prefs: []string{"ANONYMOUS", "PLAIN"}, want: "ANONYMOUS", user: "anonymous"},
		{name: "pref-token-missing", offered: all, prefs: []string{"XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-1"}, noToken: true, want: "SCRAM-SHA-1"},
		{name: "pref-plus-only", offered: all, prefs: []string{"SCRAM-SHA-256-PLUS"}, version: tls.VersionTLS12, want: "SCRAM-SHA-256-PLUS"},
		// Every SCRAM form: SHA-512-PLUS first; a channel-bound SHA-1
		// before an unbound SHA-256; SHA-512 before SHA-256 unbound.
		{name: "all-scram", offered: append(slices.Clone(all), "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS"), want: "SCRAM-SHA-512-PLUS"},
		{name: "all-scram-tls1.2", offered: append(slices.Clone(all), "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS"), version: tls.VersionTLS12, want: "SCRAM-SHA-512-PLUS"},
		{name: "sha1-plus-over-sha256", offered: []string{"PLAIN", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256"}, want: "SCRAM-SHA-1-PLUS"},
		{name: "sha512-unbound", offered: []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"}, want: "SCRAM-SHA-512"},
		{name: "none-common", offered: []string{"PLAIN"}, prefs: []string{"SCRAM-SHA-256", "LOGIN"}},
		{name: "none-usable", offered: []string{"EXTERNAL", "XOAUTH2"}, noToken: true},
		{name: "none-allowed", offered: all, prefs: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plus := slices.ContainsFunc(tc.offered, func(m string) bool { return strings.HasSuffix(m, "-PLUS") })
			mechs := aeOnly(aeAllMechanisms(plus), tc.offered...)
			s, serverDebug := aeStart(t, transport.StartTLS, mechs, aeTLS(tc.version, tls.VerifyClientCertIfGiven, pki.pool))
			creds := auth.Credentials{Username: aeUser, Password: aePassword, Token: aeStaticToken(aeToken)}
			if tc.noToken {
				creds.Token = nil
			}
			tr, transcript := aeTransport(s, auth.Config{Credentials: creds, Mechanisms: tc.prefs})
			if tc.cert {
				tr.TLSConfig.Certificates = []tls.Certificate{pki.alice}
			}
			c, err := tr.Dial(aeCtx(t))
			if tc.want == "" {
				var oe *transport.OpError
				if !errors.As(err, &oe) || oe.Op != transport.OpAuth || !errors.Is(err, auth.ErrNoCommonMechanism) {
					t.Fatalf("err = %v, want an auth error wrapping auth.ErrNoCommonMechanism", err)
				}
				if aeServerSawAuth(serverDebug.String()) || aeHasCommand(transcript.String(), "AUTH") {
					t.Errorf("AUTH sent although no mechanism can be used:\n%s", transcript)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v\n%s", err, transcript)
			}
			defer c.Close()
			if got := c.AuthMechanism(); got != tc.want {
				t.Errorf("AuthMechanism() = %q, want %q (server offers %v, client prefers %v)", got, tc.want, c.AuthMechanisms(), tc.prefs)
			}
			if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
				t.Fatal(err)
			}
			want := tc.user
			if want == "" {
				want = aeUser
			}
			if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != want {
				t.Errorf("messages %+v, want one from %s", msgs, want)
			}
			if n := strings.Count(serverDebug.String(), "\r\nAUTH "+tc.want); n != 1 {
				t.Errorf("server saw AUTH %s %d times, want once", tc.want, n)
			}
			aeNoSecrets(t, "client transcript", transcript.String())
		})
	}
}

func TestAuthE2ENegotiationErrorDetails(t *testing.T) {
	// The error of a failed negotiation says why each offered mechanism
	// was skipped, and never carries the credentials.
	s, _ := aeStart(t, transport.StartTLS, aeOnly(aeAllMechanisms(false), "EXTERNAL", "XOAUTH2"), nil)
	tr, _ := aeTransport(s, auth.Config{
		Credentials: auth.Credentials{Username: aeUser, Password: aePassword},
		Mechanisms:  []string{"XOAUTH2", "EXTERNAL", "PLAIN"},
	})
	res, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody))
	var nce *auth.NoCommonMechanismError
	if !errors.As(err, &nce) {
		t.Fatalf("err = %v, want a *auth.NoCommonMechanismError", err)
	}
	for _, want := range []string{"XOAUTH2: no token source", "EXTERNAL: no TLS client certificate"} {
		if !slices.Contains(nce.Skipped, want) {
			t.Errorf("Skipped = %q, want %q in it", nce.Skipped, want)
		}
	}
	if res == nil || res.Rcpts[0].Outcome == transport.Accepted {
		t.Errorf("Result = %+v", res)
	}
	aeNoSecrets(t, "error and result", aeResultText(res, err))
}

func TestAuthE2EInsecureConnections(t *testing.T) {
	pass := auth.Credentials{Username: aeUser, Password: aePassword}
	for _, tc := range []struct {
		name     string
		network  string
		security transport.Security // the client's; the server speaks in clear
		offered  []string           // nil: CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256 ANONYMOUS
		config   auth.Config
		want     string // the mechanism used; "" if refused with ErrInsecure
		user     string
	}{
		{name: "tcp-refused", security: transport.Plaintext, config: auth.Config{Credentials: pass}},
		{name: "tcp-refused-by-name", security: transport.Plaintext, config: auth.Config{Credentials: pass, Mechanisms: []string{"PLAIN"}}},
		{name: "tcp-refused-scram", security: transport.Plaintext, config: auth.Config{Credentials: pass, Mechanisms: []string{"SCRAM-SHA-256"}}},
		// STARTTLS not offered, and the caller accepted to go on in clear:
		// the credentials still stay home.
		{name: "opportunistic-refused", security: transport.StartTLSOpportunistic, config: auth.Config{Credentials: pass}},
		// Allowed: SCRAM first as always, then, on an unencrypted
		// connection, CRAM-MD5 before PLAIN and LOGIN.
		{name: "tcp-allowed", security: transport.Plaintext, config: auth.Config{Credentials: pass, AllowInsecure: true}, want: "SCRAM-SHA-256", user: aeUser},
		{name: "tcp-allowed-cram-md5", security: transport.Plaintext, offered: []string{"CRAM-MD5", "LOGIN", "PLAIN"}, config: auth.Config{Credentials: pass, AllowInsecure: true}, want: "CRAM-MD5", user: aeUser},
		{name: "tcp-refused-cram-md5", security: transport.Plaintext, offered: []string{"CRAM-MD5", "LOGIN", "PLAIN"}, config: auth.Config{Credentials: pass}},
		{name: "tcp-allowed-plain", security: transport.Plaintext, config: auth.Config{Credentials: pass, AllowInsecure: true, Mechanisms: []string{"PLAIN"}}, want: "PLAIN", user: aeUser},
		// ANONYMOUS sends no credential.
		{name: "tcp-anonymous", security: transport.Plaintext, config: auth.Config{Credentials: auth.Credentials{Username: "trace"}, Mechanisms: []string{"ANONYMOUS"}}, want: "ANONYMOUS", user: "anonymous"},
		// A Unix socket is as private as the host: the usual order holds.
		{name: "unix", network: "unix", security: transport.Plaintext, config: auth.Config{Credentials: pass}, want: "SCRAM-SHA-256", user: aeUser},
		{name: "unix-plain", network: "unix", security: transport.Plaintext, config: auth.Config{Credentials: pass, Mechanisms: []string{"PLAIN"}}, want: "PLAIN", user: aeUser},
		{name: "unix-plain-over-cram-md5", network: "unix", security: transport.Plaintext, offered: []string{"CRAM-MD5", "LOGIN", "PLAIN"}, config: auth.Config{Credentials: pass}, want: "PLAIN", user: aeUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offered := tc.offered
			if offered == nil {
				offered = []string{"CRAM-MD5", "LOGIN", "PLAIN", "SCRAM-SHA-256", "ANONYMOUS"}
			}
			s, serverDebug := aeStart(t, transport.Plaintext, aeOnly(aeAllMechanisms(false), offered...), func(s *smtptest.Server) {
				if tc.network != "" {
					s.Network = tc.network
				}
			})
			tr, transcript := aeTransport(s, tc.config)
			tr.Security = tc.security
			c, err := tr.Dial(aeCtx(t))
			if tc.want != "" {
				if err != nil {
					t.Fatalf("Dial: %v\n%s", err, transcript)
				}
				defer c.Close()
				if got := c.AuthMechanism(); got != tc.want {
					t.Errorf("AuthMechanism() = %q, want %q", got, tc.want)
				}
				if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
					t.Fatal(err)
				}
				if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != tc.user {
					t.Errorf("messages %+v, want one from %s", msgs, tc.user)
				}
				aeNoSecrets(t, "client transcript", transcript.String())
				return
			}
			var oe *transport.OpError
			if !errors.As(err, &oe) || oe.Op != transport.OpAuth || !errors.Is(err, auth.ErrInsecure) || !errors.Is(err, transport.ErrInsecureAuth) {
				t.Fatalf("err = %v, want an auth error wrapping auth.ErrInsecure", err)
			}
			if errors.Is(err, transport.ErrTransient) {
				t.Errorf("err = %v matches ErrTransient: a retry would not help", err)
			}
			// Nothing but QUIT after EHLO; the server saw no AUTH.
			lines := aeClientLines(transcript.String())
			i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "C: EHLO") })
			if i < 0 {
				t.Fatalf("no EHLO in the transcript:\n%s", transcript)
			}
			for _, l := range lines[i+1:] {
				if l != "C: QUIT" {
					t.Errorf("client wrote %q after EHLO:\n%s", l, transcript)
				}
			}
			if aeServerSawAuth(serverDebug.String()) {
				t.Errorf("server saw AUTH:\n%s", serverDebug)
			}
			if aeLeaked(serverDebug.String()) != "" {
				t.Error("the password reached the server")
			}
			aeNoSecrets(t, "error", aeResultText(nil, err))
		})
	}
}

func TestAuthE2ELongInitialResponseDeferred(t *testing.T) {
	// RFC 4954 section 4: an initial response that would make the AUTH
	// line longer than 512 octets goes after an empty 334 instead. The
	// XOAUTH2 message is 25 octets plus the token: a 347-octet token makes
	// 496 base64 characters and a 511-octet line; 348 makes 500 and 515.
	for _, tc := range []struct {
		mech     string
		tokenLen int
		deferred bool
	}{
		{"XOAUTH2", 347, false},
		{"XOAUTH2", 348, true},
		{"XOAUTH2", 1200, true},
		{"OAUTHBEARER", 64, false},
		{"OAUTHBEARER", 1200, true},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.mech, tc.tokenLen), func(t *testing.T) {
			token := strings.Repeat("T0k-", tc.tokenLen/4+1)[:tc.tokenLen]
			tokens := map[string]string{aeUser: token}
			mechs := map[string]smtptest.AuthMechanism{"XOAUTH2": smtptest.XOAUTH2(tokens), "OAUTHBEARER": smtptest.OAuthBearer(tokens)}
			s, serverDebug := aeStart(t, transport.StartTLS, mechs, nil)
			tr, transcript := aeTransport(s, aeNew(t, tc.mech, auth.Credentials{Username: aeUser, Token: aeStaticToken(token)}))
			if _, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
				t.Fatalf("Send: %v\n%s", err, transcript)
			}
			if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != aeUser {
				t.Errorf("messages %+v, want one from %s", msgs, aeUser)
			}
			// The server's view.
			ir, deferred := aeServerAuth(t, serverDebug.String(), tc.mech)
			if deferred != tc.deferred {
				t.Errorf("initial response deferred = %v, want %v", deferred, tc.deferred)
			}
			if !strings.Contains(ir, "auth=Bearer "+token+"\x01\x01") {
				t.Errorf("initial response %q lacks the token", ir)
			}
			for _, l := range strings.Split(serverDebug.String(), "\r\n") {
				if strings.HasPrefix(l, "AUTH ") && len(l)+2 > 512 {
					t.Errorf("AUTH line of %d octets", len(l)+2)
				}
			}
			// The client's view, in order.
			got := transcript.String()
			authAt := strings.Index(got, "C: AUTH "+tc.mech)
			okAt := strings.Index(got, "S: 235")
			if authAt < 0 || okAt < authAt {
				t.Fatalf("transcript:\n%s", got)
			}
			exchange := got[authAt:okAt]
			if tc.deferred {
				challengeAt := strings.Index(exchange, "S: 334")
				responseAt := strings.Index(exchange, "C: [redacted]")
				if challengeAt < 0 || responseAt < challengeAt {
					t.Errorf("want AUTH, then 334, then the response, then 235:\n%s", got)
				}
			} else if strings.Contains(exchange, "S: 334") {
				t.Errorf("a 334 in an exchange with an initial response:\n%s", got)
			}
			if strings.Contains(got, token[:32]) || strings.Contains(got, base64.StdEncoding.EncodeToString([]byte(token))[:32]) {
				t.Errorf("the token shows in the transcript:\n%s", got)
			}
		})
	}
}

func TestAuthE2ETokenSourceOncePerConnection(t *testing.T) {
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		for _, pooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pooled=%v", mech, pooled), func(t *testing.T) {
				s, serverDebug := aeStart(t, transport.StartTLS, aeOnly(aeAllMechanisms(false), mech), nil)
				var calls atomic.Int32
				source := func(ctx context.Context) (string, error) {
					if ctx == nil || ctx.Err() != nil {
						return "", errors.New("token source called without a live context")
					}
					calls.Add(1)
					return aeToken, nil
				}
				tr, transcript := aeTransport(s, aeNew(t, mech, auth.Credentials{Username: aeUser, Token: source}))
				if pooled {
					tr.Pool.MaxIdleConns = 0 // the default: keep idle connections
				}
				defer tr.Close()
				sent := 0
				send := func() {
					t.Helper()
					sent++
					if _, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
						t.Fatalf("Send: %v\n%s", err, transcript)
					}
				}
				const sends = 3
				for range sends {
					send()
				}
				want := int32(sends)
				if pooled {
					want = 1
				}
				if got := calls.Load(); got != want {
					t.Errorf("token source called %d times for %d sends, want %d", got, sends, want)
				}
				if pooled {
					tr.CloseIdleConnections()
					send()
					want++
					if got := calls.Load(); got != want {
						t.Errorf("after CloseIdleConnections, token source called %d times, want %d", got, want)
					}
				}
				// One call per AUTH exchange, one exchange per connection.
				if n := strings.Count(serverDebug.String(), "\r\nAUTH "+mech); int32(n) != want {
					t.Errorf("server saw %d AUTH exchanges, want %d", n, want)
				}
				if got := len(s.Messages()); got != sent {
					t.Errorf("server recorded %d messages, want %d", got, sent)
				}
				aeNoSecrets(t, "client transcript", transcript.String())
			})
		}
	}
}

func TestAuthE2EAuthenticateAgainAfterFailure(t *testing.T) {
	// Dial without Auth, fail once, then succeed on the same session.
	pass := func(p string) auth.Credentials { return auth.Credentials{Username: aeUser, Password: p} }
	tok := func(tk string) auth.Credentials { return auth.Credentials{Username: aeUser, Token: aeStaticToken(tk)} }
	for _, tc := range []struct {
		mech      string
		bad, good auth.Credentials
	}{
		{"PLAIN", pass(aeWrongPassword), pass(aePassword)},
		{"LOGIN", pass(aeWrongPassword), pass(aePassword)},
		{"CRAM-MD5", pass(aeWrongPassword), pass(aePassword)},
		{"SCRAM-SHA-1", pass(aeWrongPassword), pass(aePassword)},
		{"SCRAM-SHA-256", pass(aeWrongPassword), pass(aePassword)},
		{"SCRAM-SHA-256-PLUS", pass(aeWrongPassword), pass(aePassword)},
		{"XOAUTH2", tok(aeWrongToken), tok(aeToken)},
		{"OAUTHBEARER", tok(aeWrongToken), tok(aeToken)},
		{"PLAIN", auth.Credentials{Username: "mallory", Password: aePassword}, pass(aePassword)},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			s, _ := aeStart(t, transport.StartTLS, aeAllMechanisms(true), func(s *smtptest.Server) { s.RequireAuth = true })
			tr, transcript := aeTransport(s, nil)
			c, err := tr.Dial(aeCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.AuthMechanism(); got != "" {
				t.Errorf("AuthMechanism() = %q before Authenticate", got)
			}
			err = c.Authenticate(aeCtx(t), aeNew(t, tc.mech, tc.bad))
			aeWantRefused(t, err, 535, aeCode578)
			aeNoSecrets(t, "first error", aeResultText(nil, err))
			if got := c.AuthMechanism(); got != "" {
				t.Errorf("AuthMechanism() = %q after a refusal", got)
			}
			// The server still refuses mail: the session is not
			// authenticated, and still in step.
			if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err == nil {
				t.Error("mail accepted before authentication")
			}
			if err := c.Authenticate(aeCtx(t), aeNew(t, tc.mech, tc.good)); err != nil {
				t.Fatalf("second Authenticate: %v\n%s", err, transcript)
			}
			if got := c.AuthMechanism(); got != tc.mech {
				t.Errorf("AuthMechanism() = %q, want %q", got, tc.mech)
			}
			if err := c.Authenticate(aeCtx(t), aeNew(t, tc.mech, tc.good)); err == nil {
				t.Error("a third Authenticate on an authenticated session succeeded")
			}
			if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
				t.Fatalf("Send after Authenticate: %v", err)
			}
			if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != aeUser {
				t.Errorf("messages %+v, want one from %s", msgs, aeUser)
			}
			if n := strings.Count(transcript.String(), "C: AUTH "+tc.mech); n != 2 {
				t.Errorf("%d AUTH commands, want 2:\n%s", n, transcript)
			}
			aeNoSecrets(t, "client transcript", transcript.String())
		})
	}
}

func TestAuthE2EAuthenticateAfterLocalRefusal(t *testing.T) {
	// A refusal before anything is sent (no common mechanism, insecure)
	// leaves the session as it was.
	s, serverDebug := aeStart(t, transport.StartTLS, aeOnly(aeAllMechanisms(false), "PLAIN"), nil)
	tr, transcript := aeTransport(s, nil)
	c, err := tr.Dial(aeCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	creds := auth.Credentials{Username: aeUser, Password: aePassword}
	err = c.Authenticate(aeCtx(t), auth.Config{Credentials: creds, Mechanisms: []string{"SCRAM-SHA-256"}})
	if !errors.Is(err, auth.ErrNoCommonMechanism) {
		t.Fatalf("err = %v, want auth.ErrNoCommonMechanism", err)
	}
	if aeServerSawAuth(serverDebug.String()) {
		t.Errorf("AUTH sent:\n%s", transcript)
	}
	if err := c.Authenticate(aeCtx(t), auth.Config{Credentials: creds}); err != nil {
		t.Fatalf("second Authenticate: %v", err)
	}
	if got := c.AuthMechanism(); got != "PLAIN" {
		t.Errorf("AuthMechanism() = %q", got)
	}
}

// aeEchoAuth is an Authenticator whose client answers every challenge:
// only the transport's round limit ends its exchange with a server that
// never decides.
type aeEchoAuth struct{}

func (aeEchoAuth) Start(context.Context, auth.ServerInfo) (sasl.Client, error) {
	return aeEchoClient{}, nil
}

type aeEchoClient struct{}

func (aeEchoClient) Start() (string, []byte, error) { return "X-ECHO", []byte("hello"), nil }
func (aeEchoClient) Next(ch []byte) ([]byte, error) { return ch, nil }

type aeForeverServer struct{ rounds *atomic.Int32 }

func (s aeForeverServer) Next([]byte) ([]byte, bool, error) {
	s.rounds.Add(1)
	return []byte("again"), false, nil
}

func TestAuthE2EEndlessChallengesCutOff(t *testing.T) {
	var rounds atomic.Int32
	s, serverDebug := aeStart(t, transport.StartTLS, map[string]smtptest.AuthMechanism{
		"X-ECHO": func(*smtptest.AuthRequest) sasl.Server { return aeForeverServer{&rounds} },
	}, nil)
	tr, transcript := aeTransport(s, aeEchoAuth{})
	start := time.Now()
	res, err := tr.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody))
	var oe *transport.OpError
	var pe *transport.ProtocolError
	if !errors.As(err, &oe) || oe.Op != transport.OpAuth || !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a protocol error at auth", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("the exchange was ended by time, not by the round limit: %v", err)
	}
	if n := rounds.Load(); n > 20 {
		t.Errorf("server made %d rounds", n)
	}
	if !strings.Contains(transcript.String(), "C: *") || !strings.Contains(serverDebug.String(), "\r\n*\r\n") {
		t.Errorf("client did not cancel with *:\n%s", transcript)
	}
	if res == nil || res.Rcpts[0].Outcome == transport.Accepted || len(s.Messages()) != 0 {
		t.Errorf("Result = %+v, messages %d", res, len(s.Messages()))
	}
}

// aeRecordingAuth is an Authenticator that records the ServerInfo the
// transport gives it.
type aeRecordingAuth struct {
	auth.Authenticator
	info *auth.ServerInfo
}

func (a aeRecordingAuth) Start(ctx context.Context, info auth.ServerInfo) (sasl.Client, error) {
	*a.info = info
	return a.Authenticator.Start(ctx, info)
}

func TestAuthE2EExternalNeedsPresentedCertificate(t *testing.T) {
	pki := aeNewPKI(t)
	other := aeNewPKI(t) // a CA the server does not trust
	for _, tc := range []struct {
		name       string
		security   transport.Security
		clientAuth tls.ClientAuthType
		cert       *tls.Certificate
		prefs      []string
		want       string // mechanism; "" for no common mechanism
		refused    bool   // EXTERNAL chosen and refused by the server
	}{
		{"required/starttls", transport.StartTLS, tls.RequireAndVerifyClientCert, &pki.alice, []string{"EXTERNAL"}, "EXTERNAL", false},
		{"required/implicit", transport.ImplicitTLS, tls.RequireAndVerifyClientCert, &pki.alice, []string{"EXTERNAL"}, "EXTERNAL", false},
		{"if-given", transport.StartTLS, tls.VerifyClientCertIfGiven, &pki.alice, []string{"EXTERNAL", "PLAIN"}, "EXTERNAL", false},
		{"none-given", transport.StartTLS, tls.VerifyClientCertIfGiven, nil, []string{"EXTERNAL", "PLAIN"}, "PLAIN", false},
		{"none-given-only-external", transport.StartTLS, tls.VerifyClientCertIfGiven, nil, []string{"EXTERNAL"}, "", false},
		// The client has a certificate but the server never asks for it:
		// it is not presented, so EXTERNAL cannot work.
		{"not-requested", transport.StartTLS, tls.NoClientCert, &pki.alice, []string{"EXTERNAL", "PLAIN"}, "PLAIN", false},
		{"not-requested-implicit", transport.ImplicitTLS, tls.NoClientCert, &pki.alice, []string{"EXTERNAL", "PLAIN"}, "PLAIN", false},
		// Presented but not verified by the server: refused by EXTERNAL.
		{"unverified", transport.StartTLS, tls.RequestClientCert, &other.alice, []string{"EXTERNAL", "PLAIN"}, "EXTERNAL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, serverDebug := aeStart(t, tc.security, aeOnly(aeAllMechanisms(false), "EXTERNAL", "PLAIN"), aeTLS(0, tc.clientAuth, pki.pool))
			var info auth.ServerInfo
			a := aeRecordingAuth{auth.Config{Credentials: auth.Credentials{Username: aeUser, Password: aePassword}, Mechanisms: tc.prefs}, &info}
			tr, transcript := aeTransport(s, a)
			if tc.cert != nil {
				tr.TLSConfig.Certificates = []tls.Certificate{*tc.cert}
			}
			c, err := tr.Dial(aeCtx(t))
			if info.ClientCert != (tc.cert != nil && tc.clientAuth != tls.NoClientCert) {
				t.Errorf("ServerInfo.ClientCert = %v", info.ClientCert)
			}
			if info.TLS == nil || info.Host != "127.0.0.1" || info.Unix || !slices.Equal(info.Mechanisms, []string{"EXTERNAL", "PLAIN"}) {
				t.Errorf("ServerInfo = %+v", info)
			}
			switch {
			case tc.refused:
				aeWantRefused(t, err, 535, aeCode578)
				if !strings.Contains(serverDebug.String(), "AUTH EXTERNAL") {
					t.Errorf("EXTERNAL not tried:\n%s", transcript)
				}
				return
			case tc.want == "":
				if !errors.Is(err, auth.ErrNoCommonMechanism) {
					t.Fatalf("err = %v, want auth.ErrNoCommonMechanism", err)
				}
				return
			case err != nil:
				t.Fatalf("Dial: %v\n%s", err, transcript)
			}
			defer c.Close()
			if got := c.AuthMechanism(); got != tc.want {
				t.Errorf("AuthMechanism() = %q, want %q", got, tc.want)
			}
			if _, err := c.Send(aeCtx(t), aeEnv(), strings.NewReader(aeBody)); err != nil {
				t.Fatal(err)
			}
			if msgs := s.Messages(); len(msgs) != 1 || msgs[0].AuthUser != aeUser {
				t.Errorf("messages %+v, want one from %s", msgs, aeUser)
			}
		})
	}
}

func TestAuthE2EServerInfo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		network  string
		security transport.Security
		tls      bool
		unix     bool
	}{
		{"starttls", "tcp", transport.StartTLS, true, false},
		{"implicit", "tcp", transport.ImplicitTLS, true, false},
		{"plaintext", "tcp", transport.Plaintext, false, false},
		{"unix", "unix", transport.Plaintext, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := aeStart(t, tc.security, aeOnly(aeAllMechanisms(false), "PLAIN", "LOGIN"), func(s *smtptest.Server) { s.Network = tc.network })
			var info auth.ServerInfo
			cfg := auth.Config{Credentials: auth.Credentials{Username: aeUser, Password: aePassword}, AllowInsecure: true}
			tr, _ := aeTransport(s, aeRecordingAuth{cfg, &info})
			c, err := tr.Dial(aeCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if (info.TLS != nil) != tc.tls || info.Unix != tc.unix || info.ClientCert {
				t.Errorf("ServerInfo = %+v", info)
			}
			if info.TLS != nil && !info.TLS.HandshakeComplete {
				t.Error("ServerInfo.TLS: handshake not complete")
			}
			wantHost := "127.0.0.1"
			if tc.unix {
				wantHost = s.Addr
			}
			if info.Host != wantHost {
				t.Errorf("ServerInfo.Host = %q, want %q", info.Host, wantHost)
			}
			if !slices.Equal(info.Mechanisms, []string{"LOGIN", "PLAIN"}) {
				t.Errorf("ServerInfo.Mechanisms = %q", info.Mechanisms)
			}
		})
	}
}
