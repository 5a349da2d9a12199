package smtptest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// The identifiers of this file start with "mech".

const mechPassword = "mech-s3cret-Pa55"

// mechServer starts a server with security sec offering mechs to the user
// alice, after configure.
func mechServer(t *testing.T, sec transport.Security, mechs map[string]smtptest.AuthMechanism, configure func(s *smtptest.Server)) *smtptest.Server {
	t.Helper()
	s := smtptest.NewUnstartedServer()
	s.Security = sec
	s.Users = map[string]string{"alice": mechPassword}
	s.AuthMechanisms = mechs
	s.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(s)
	}
	return start(t, s)
}

// mechConn is a client that speaks the AUTH exchange line by line.
type mechConn struct {
	t   *testing.T
	tc  *textproto.Conn
	tls *tls.Conn // nil on a clear connection
}

// mechDial connects to s, with implicit TLS configured by cfg (nil: the
// server's client configuration) if s uses it, and says EHLO.
func mechDial(t *testing.T, s *smtptest.Server, cfg *tls.Config) *mechConn {
	t.Helper()
	d := &net.Dialer{Timeout: testTimeout}
	var nc net.Conn
	var err error
	if s.Security == transport.ImplicitTLS {
		if cfg == nil {
			cfg = s.ClientTLSConfig()
		}
		nc, err = tls.DialWithDialer(d, s.Network, s.Addr, cfg)
	} else {
		nc, err = d.Dial(s.Network, s.Addr)
	}
	if err != nil {
		t.Fatalf("dialing %s: %v", s.Addr, err)
	}
	nc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { nc.Close() })
	c := &mechConn{t: t, tc: textproto.NewConn(nc)}
	c.tls, _ = nc.(*tls.Conn)
	if code, msg := c.read(); code != 220 {
		t.Fatalf("greeting %d %q", code, msg)
	}
	if code, msg := c.cmd("EHLO client.example"); code != 250 {
		t.Fatalf("EHLO: %d %q", code, msg)
	}
	return c
}

func (c *mechConn) read() (int, string) {
	c.t.Helper()
	code, msg, err := c.tc.ReadResponse(0)
	if err != nil {
		if _, ok := err.(*textproto.Error); !ok {
			c.t.Fatalf("reading reply: %v", err)
		}
	}
	return code, msg
}

func (c *mechConn) cmd(line string) (int, string) {
	c.t.Helper()
	if err := c.tc.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("sending %q: %v", line, err)
	}
	return c.read()
}

// auth sends AUTH mech, with ir as the initial response unless it is nil,
// and returns the reply, a 334's text decoded.
func (c *mechConn) auth(mech string, ir []byte) (int, string) {
	c.t.Helper()
	line := "AUTH " + mech
	if ir != nil {
		line += " " + mechEncode(ir)
	}
	return c.decode(c.cmd(line))
}

// respond sends one response of the exchange and returns the reply, a
// 334's text decoded.
func (c *mechConn) respond(resp []byte) (int, string) {
	c.t.Helper()
	return c.decode(c.cmd(base64.StdEncoding.EncodeToString(resp)))
}

func (c *mechConn) decode(code int, msg string) (int, string) {
	c.t.Helper()
	if code != 334 {
		return code, msg
	}
	b, err := base64.StdEncoding.DecodeString(msg)
	if err != nil {
		c.t.Fatalf("334 %q: %v", msg, err)
	}
	return code, string(b)
}

// sendMail runs one transaction that the server must accept.
func (c *mechConn) sendMail() {
	c.t.Helper()
	for _, line := range []string{"MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>"} {
		if code, msg := c.cmd(line); code != 250 {
			c.t.Fatalf("%s: %d %q", line, code, msg)
		}
	}
	if code, msg := c.cmd("DATA"); code != 354 {
		c.t.Fatalf("DATA: %d %q", code, msg)
	}
	w := c.tc.DotWriter()
	io.WriteString(w, body)
	w.Close()
	if code, msg := c.read(); code != 250 {
		c.t.Fatalf("end of data: %d %q", code, msg)
	}
}

func mechEncode(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// mechWant checks a reply.
func mechWant(t *testing.T, what string, code int, msg string, wantCode int, wantPrefix string) {
	t.Helper()
	if code != wantCode || !strings.HasPrefix(msg, wantPrefix) {
		t.Errorf("%s: reply %d %q, want %d %q...", what, code, msg, wantCode, wantPrefix)
	}
}

// mechAuthUsers returns the AuthUser of each message s recorded.
func mechAuthUsers(s *smtptest.Server) []string {
	var users []string
	for _, m := range s.Messages() {
		users = append(users, m.AuthUser)
	}
	return users
}

func mechOneMessageFrom(t *testing.T, s *smtptest.Server, user string) {
	t.Helper()
	if got := mechAuthUsers(s); len(got) != 1 || got[0] != user {
		t.Errorf("messages from %q, want one from %q", got, user)
	}
}

// mechPKI is a certificate authority, a client certificate it issued for
// alice, and a self-signed server certificate for 127.0.0.1.
type mechPKI struct {
	pool   *x509.CertPool
	alice  tls.Certificate
	server tls.Certificate
}

func newMechPKI(t *testing.T) *mechPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	create := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) []byte {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	from, until := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mech CA"},
		NotBefore: from, NotAfter: until, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	ca, err := x509.ParseCertificate(create(caTmpl, caTmpl, &caKey.PublicKey, caKey))
	if err != nil {
		t.Fatal(err)
	}
	aliceKey := newKey()
	aliceDER := create(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: from, NotAfter: until, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, &aliceKey.PublicKey, caKey)
	srvKey := newKey()
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: from, NotAfter: until, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	srvDER := create(srvTmpl, srvTmpl, &srvKey.PublicKey, srvKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &mechPKI{
		pool:   pool,
		alice:  tls.Certificate{Certificate: [][]byte{aliceDER}, PrivateKey: aliceKey},
		server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
}

// mechTLSPair returns the connection states of both ends of a new TLS
// connection of the given version.
func mechTLSPair(t *testing.T, pki *mechPKI, version uint16) (client, server tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: version, MaxVersion: version})
	cli := tls.Client(a, &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

func TestChannelBinding(t *testing.T) {
	pki := newMechPKI(t)
	for _, tc := range []struct {
		version uint16
		cbType  string
	}{
		{tls.VersionTLS13, "tls-exporter"},
		{tls.VersionTLS12, "tls-unique"},
	} {
		cli, srv := mechTLSPair(t, pki, tc.version)
		typ, data, err := smtptest.ChannelBinding(&cli)
		if err != nil || typ != tc.cbType || len(data) == 0 {
			t.Fatalf("client end: %q %x %v, want %s", typ, data, err, tc.cbType)
		}
		styp, sdata, err := smtptest.ChannelBinding(&srv)
		if err != nil || styp != typ || !bytes.Equal(sdata, data) {
			t.Errorf("server end: %q %x %v, want the client's %q %x", styp, sdata, err, typ, data)
		}
		if tc.version == tls.VersionTLS12 && !bytes.Equal(data, cli.TLSUnique) {
			t.Errorf("tls-unique %x, want the state's %x", data, cli.TLSUnique)
		}
		other, _ := mechTLSPair(t, pki, tc.version)
		if _, odata, _ := smtptest.ChannelBinding(&other); bytes.Equal(odata, data) {
			t.Errorf("%s: two connections have the same binding", tc.cbType)
		}
	}
	for name, cs := range map[string]*tls.ConnectionState{
		"nil":             nil,
		"incomplete":      {Version: tls.VersionTLS13},
		"tls1.2-no-value": {Version: tls.VersionTLS12, HandshakeComplete: true},
		"by-hand-tls1.3":  {Version: tls.VersionTLS13, HandshakeComplete: true},
	} {
		if typ, data, err := smtptest.ChannelBinding(cs); err == nil {
			t.Errorf("%s: %q %x, want an error", name, typ, data)
		}
	}
}

// mechSCRAM runs a SCRAM exchange for conv on c, checking server-final
// with conv, and returns the final reply and the server-final message (""
// if there was none).
func mechSCRAM(t *testing.T, c *mechConn, mech string, conv *scram.ClientConversation, initial bool) (code int, msg, serverFinal string) {
	t.Helper()
	first, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	if initial {
		code, msg = c.auth(mech, []byte(first))
	} else {
		if code, msg = c.auth(mech, nil); code != 334 || msg != "" {
			t.Fatalf("AUTH %s without initial response: %d %q, want an empty 334", mech, code, msg)
		}
		code, msg = c.respond([]byte(first))
	}
	if code != 334 {
		return code, msg, ""
	}
	final, err := conv.Step(msg)
	if err != nil {
		t.Fatalf("server-first %q: %v", msg, err)
	}
	if code, msg = c.respond([]byte(final)); code != 334 {
		return code, msg, ""
	}
	serverFinal = msg
	if !strings.HasPrefix(serverFinal, "e=") {
		conv.Step(serverFinal) // conv.Valid() tells whether it verified
	}
	code, msg = c.respond(nil)
	return code, msg, serverFinal
}

func mechSCRAMClient(t *testing.T, mech, user, password, authzid string) *scram.Client {
	t.Helper()
	hash := scram.SHA256
	if strings.HasPrefix(mech, "SCRAM-SHA-1") {
		hash = scram.SHA1
	}
	c, err := hash.NewClient(user, password, authzid)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSCRAM(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			s := mechServer(t, transport.ImplicitTLS, map[string]smtptest.AuthMechanism{mech: smtptest.SCRAM}, nil)
			for _, initial := range []bool{true, false} {
				c := mechDial(t, s, nil)
				conv := mechSCRAMClient(t, mech, "alice", mechPassword, "").NewConversation()
				code, msg, final := mechSCRAM(t, c, mech, conv, initial)
				mechWant(t, "right password", code, msg, 235, "2.0.0")
				if !conv.Valid() {
					t.Errorf("server-final %q does not verify", final)
				}
				c.sendMail()
			}
			if got := mechAuthUsers(s); len(got) != 2 || got[0] != "alice" || got[1] != "alice" {
				t.Errorf("messages from %q, want two from alice", got)
			}

			// A wrong password and an unknown user look the same.
			for _, tc := range []struct{ name, user, password string }{
				{"wrong-password", "alice", "wrong"},
				{"unknown-user", "mallory", mechPassword},
			} {
				c := mechDial(t, s, nil)
				conv := mechSCRAMClient(t, mech, tc.user, tc.password, "").NewConversation()
				code, msg, final := mechSCRAM(t, c, mech, conv, true)
				if final != "e=invalid-proof" {
					t.Errorf("%s: server-final %q, want e=invalid-proof", tc.name, final)
				}
				mechWant(t, tc.name, code, msg, 535, "5.7.8 Authentication credentials invalid")
			}

			c := mechDial(t, s, nil)
			code, msg, _ := mechSCRAM(t, c, mech, mechSCRAMClient(t, mech, "alice", mechPassword, "bob").NewConversation(), true)
			mechWant(t, "other authorization identity", code, msg, 535, "5.7.8")

			// Channel binding under a name without -PLUS.
			c = mechDial(t, s, nil)
			cbType, data, err := smtptest.ChannelBinding(mechState(c))
			if err != nil {
				t.Fatal(err)
			}
			conv := mechSCRAMClient(t, mech, "alice", mechPassword, "").NewConversationWithChannelBinding(scram.ChannelBinding{Type: scram.ChannelBindingType(cbType), Data: data})
			code, msg, _ = mechSCRAM(t, c, mech, conv, true)
			mechWant(t, "p flag without -PLUS", code, msg, 535, "5.7.8")
			if len(s.Messages()) != 2 {
				t.Errorf("%d messages", len(s.Messages()))
			}
		})
	}
}

func mechState(c *mechConn) *tls.ConnectionState {
	if c.tls == nil {
		return nil
	}
	cs := c.tls.ConnectionState()
	return &cs
}

func TestSCRAMPlus(t *testing.T) {
	const mech = "SCRAM-SHA-256-PLUS"
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			s := mechServer(t, transport.ImplicitTLS, map[string]smtptest.AuthMechanism{mech: smtptest.SCRAM}, func(s *smtptest.Server) {
				s.TLS = &tls.Config{MaxVersion: version}
			})
			client := mechSCRAMClient(t, mech, "alice", mechPassword, "")
			binding := func(c *mechConn, tamper bool) scram.ChannelBinding {
				typ, data, err := smtptest.ChannelBinding(mechState(c))
				if err != nil {
					t.Fatal(err)
				}
				if tamper {
					data[0] ^= 0xff
				}
				return scram.ChannelBinding{Type: scram.ChannelBindingType(typ), Data: data}
			}

			c := mechDial(t, s, nil)
			conv := client.NewConversationWithChannelBinding(binding(c, false))
			code, msg, _ := mechSCRAM(t, c, mech, conv, true)
			mechWant(t, "bound", code, msg, 235, "2.0.0")
			if !conv.Valid() {
				t.Error("server-final does not verify")
			}
			c.sendMail()
			mechOneMessageFrom(t, s, "alice")

			c = mechDial(t, s, nil)
			code, msg, final := mechSCRAM(t, c, mech, client.NewConversationWithChannelBinding(binding(c, true)), true)
			if final != "e=channel-bindings-dont-match" {
				t.Errorf("other binding data: server-final %q", final)
			}
			mechWant(t, "other binding data", code, msg, 535, "5.7.8")

			for name, conv := range map[string]*scram.ClientConversation{
				"n flag": client.NewConversation(),
				"y flag": client.NewConversationAdvertisingChannelBinding(),
			} {
				code, msg, _ := mechSCRAM(t, mechDial(t, s, nil), mech, conv, true)
				mechWant(t, name, code, msg, 535, "5.7.8")
			}
		})
	}

	s := mechServer(t, transport.Plaintext, map[string]smtptest.AuthMechanism{mech: smtptest.SCRAM}, nil)
	code, msg := mechDial(t, s, nil).auth(mech, []byte("p=tls-unique,,n=alice,r=abc"))
	mechWant(t, "without TLS", code, msg, 538, "5.7.11")
}

func TestSCRAMConfig(t *testing.T) {
	client := mechSCRAMClient(t, "SCRAM-SHA-256", "alice", mechPassword, "")
	newServer := func(t *testing.T, cfg smtptest.SCRAMConfig, names ...string) *smtptest.Server {
		mechs := make(map[string]smtptest.AuthMechanism)
		for _, n := range names {
			mechs[n] = cfg.Mechanism()
		}
		return mechServer(t, transport.ImplicitTLS, mechs, nil)
	}

	t.Run("iterations", func(t *testing.T) {
		s := newServer(t, smtptest.SCRAMConfig{Iterations: 5000}, "SCRAM-SHA-256")
		c := mechDial(t, s, nil)
		first, _ := client.NewConversation().Step("")
		if code, msg := c.auth("SCRAM-SHA-256", []byte(first)); code != 334 || !strings.HasSuffix(msg, ",i=5000") {
			t.Errorf("server-first %d %q, want i=5000", code, msg)
		}
	})

	t.Run("plus-advertised", func(t *testing.T) {
		// The client supports channel binding and saw no -PLUS offer.
		for _, advertised := range []bool{false, true} {
			s := newServer(t, smtptest.SCRAMConfig{PlusAdvertised: advertised}, "SCRAM-SHA-256")
			code, msg, _ := mechSCRAM(t, mechDial(t, s, nil), "SCRAM-SHA-256", client.NewConversationAdvertisingChannelBinding(), true)
			if advertised {
				mechWant(t, "y flag, -PLUS stripped", code, msg, 535, "5.7.8 Authentication credentials invalid (SCRAM: server-does-support-channel-binding)")
			} else {
				mechWant(t, "y flag, no -PLUS", code, msg, 235, "2.0.0")
			}
			// A client without channel binding support is fine either way.
			code, msg, _ = mechSCRAM(t, mechDial(t, s, nil), "SCRAM-SHA-256", client.NewConversation(), true)
			mechWant(t, "n flag", code, msg, 235, "2.0.0")
		}
	})

	t.Run("channel-binding", func(t *testing.T) {
		s := newServer(t, smtptest.SCRAMConfig{ChannelBinding: func(cs *tls.ConnectionState) (string, []byte, error) {
			return "tls-exporter", []byte("not the connection's"), nil
		}}, "SCRAM-SHA-256-PLUS")
		c := mechDial(t, s, nil)
		typ, data, _ := smtptest.ChannelBinding(mechState(c))
		code, msg, final := mechSCRAM(t, c, "SCRAM-SHA-256-PLUS", client.NewConversationWithChannelBinding(scram.ChannelBinding{Type: scram.ChannelBindingType(typ), Data: data}), true)
		mechWant(t, "replaced binding", code, msg, 535, "5.7.8")
		if final != "e=channel-bindings-dont-match" {
			t.Errorf("server-final %q", final)
		}

		s = newServer(t, smtptest.SCRAMConfig{ChannelBinding: func(*tls.ConnectionState) (string, []byte, error) {
			return "", nil, io.ErrUnexpectedEOF
		}}, "SCRAM-SHA-256-PLUS")
		code, msg = mechDial(t, s, nil).auth("SCRAM-SHA-256-PLUS", []byte("p=tls-exporter,,n=alice,r=abc"))
		mechWant(t, "binding unavailable", code, msg, 454, "4.7.0")
	})

	t.Run("server-final", func(t *testing.T) {
		forged := "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
		s := newServer(t, smtptest.SCRAMConfig{ServerFinal: func(string) string { return forged }}, "SCRAM-SHA-256")
		conv := client.NewConversation()
		c := mechDial(t, s, nil)
		code, msg, final := mechSCRAM(t, c, "SCRAM-SHA-256", conv, true)
		if final != forged || conv.Valid() {
			t.Errorf("server-final %q (valid %v), want the forged %q", final, conv.Valid(), forged)
		}
		mechWant(t, "forged server-final", code, msg, 235, "2.0.0")

		s = newServer(t, smtptest.SCRAMConfig{ServerFinal: func(string) string { return "" }}, "SCRAM-SHA-256")
		c = mechDial(t, s, nil)
		conv = client.NewConversation()
		first, _ := conv.Step("")
		_, serverFirst := c.auth("SCRAM-SHA-256", []byte(first))
		clientFinal, err := conv.Step(serverFirst)
		if err != nil {
			t.Fatal(err)
		}
		code, msg = c.respond([]byte(clientFinal))
		mechWant(t, "no server-final", code, msg, 235, "2.0.0")
		c.sendMail()
		mechOneMessageFrom(t, s, "alice")
	})

	t.Run("unknown-name", func(t *testing.T) {
		s := newServer(t, smtptest.SCRAMConfig{}, "SCRAM-SHA-384")
		code, msg := mechDial(t, s, nil).auth("SCRAM-SHA-384", []byte("n,,n=alice,r=abc"))
		mechWant(t, "SCRAM-SHA-384", code, msg, 504, "5.7.4")
	})
}

func TestXOAUTH2(t *testing.T) {
	tokens := map[string]string{"alice": "tok-alice"}
	s := mechServer(t, transport.ImplicitTLS, map[string]smtptest.AuthMechanism{"XOAUTH2": smtptest.XOAUTH2(tokens)}, nil)
	tokens["alice"] = "changed" // XOAUTH2 copied the map
	msgFor := func(user, token string) []byte {
		return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
	}

	c := mechDial(t, s, nil)
	code, msg := c.auth("XOAUTH2", msgFor("alice", "tok-alice"))
	mechWant(t, "initial response", code, msg, 235, "2.0.0")
	c.sendMail()
	mechOneMessageFrom(t, s, "alice")

	c = mechDial(t, s, nil)
	if code, msg := c.auth("XOAUTH2", nil); code != 334 || msg != "" {
		t.Fatalf("AUTH XOAUTH2: %d %q, want an empty 334", code, msg)
	}
	code, msg = c.respond(msgFor("alice", "tok-alice"))
	mechWant(t, "response after 334", code, msg, 235, "2.0.0")

	for _, tc := range []struct{ name, user, token string }{
		{"wrong-token", "alice", "tok-mallory"},
		{"unknown-user", "mallory", "tok-alice"},
	} {
		c := mechDial(t, s, nil)
		code, msg := c.auth("XOAUTH2", msgFor(tc.user, tc.token))
		var report map[string]string
		if code != 334 || json.Unmarshal([]byte(msg), &report) != nil || report["status"] == "" {
			t.Fatalf("%s: %d %q, want a 334 with a JSON error report", tc.name, code, msg)
		}
		code, msg = c.respond(nil)
		mechWant(t, tc.name, code, msg, 535, "5.7.8")
	}

	c = mechDial(t, s, nil)
	c.auth("XOAUTH2", msgFor("alice", "wrong"))
	code, msg = c.respond([]byte("x"))
	mechWant(t, "non-empty answer to the report", code, msg, 501, "5.5.2")

	for _, bad := range []string{"user=alice\x01auth=Bearer tok-alice", "auth=Bearer tok-alice\x01\x01", "user=alice\x01auth=Basic tok-alice\x01\x01", "user=alice\x01auth=Bearer \x01\x01", "user=\x01auth=Bearer tok-alice\x01\x01"} {
		code, msg := mechDial(t, s, nil).auth("XOAUTH2", []byte(bad))
		mechWant(t, "malformed "+strings.ReplaceAll(bad, "\x01", "^A"), code, msg, 501, "5.5.2")
	}
}

func TestOAuthBearer(t *testing.T) {
	tokens := map[string]string{"alice": "tok-alice", "a,b=c": "tok-odd"}
	s := mechServer(t, transport.ImplicitTLS, map[string]smtptest.AuthMechanism{"OAUTHBEARER": smtptest.OAuthBearer(tokens)}, nil)

	for _, tc := range []struct{ name, msg, user string }{
		{"authzid", "n,a=alice,\x01host=127.0.0.1\x01port=465\x01auth=Bearer tok-alice\x01\x01", "alice"},
		{"no-authzid", "n,,\x01auth=Bearer tok-alice\x01\x01", "alice"},
		{"escaped-authzid", "n,a=a=2Cb=3Dc,\x01auth=bearer tok-odd\x01\x01", "a,b=c"},
		{"y-flag", "y,a=alice,\x01host=localhost\x01auth=Bearer tok-alice\x01\x01", "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Reset()
			c := mechDial(t, s, nil)
			code, msg := c.auth("OAUTHBEARER", []byte(tc.msg))
			mechWant(t, tc.name, code, msg, 235, "2.0.0")
			c.sendMail()
			mechOneMessageFrom(t, s, tc.user)
		})
	}

	for _, tc := range []struct{ name, msg string }{
		{"wrong-token", "n,a=alice,\x01auth=Bearer tok-mallory\x01\x01"},
		{"other-users-token", "n,a=alice,\x01auth=Bearer tok-odd\x01\x01"},
		{"unknown-token", "n,,\x01auth=Bearer tok-mallory\x01\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mechDial(t, s, nil)
			code, msg := c.auth("OAUTHBEARER", []byte(tc.msg))
			if code != 334 || msg != `{"status":"invalid_token"}` {
				t.Fatalf("%d %q, want 334 with the RFC 7628 error report", code, msg)
			}
			code, msg = c.respond([]byte{0x01})
			mechWant(t, tc.name, code, msg, 535, "5.7.8")
		})
	}

	c := mechDial(t, s, nil)
	c.auth("OAUTHBEARER", []byte("n,a=alice,\x01auth=Bearer wrong\x01\x01"))
	code, msg := c.respond(nil)
	mechWant(t, "empty answer to the report", code, msg, 501, "5.5.2")

	for _, bad := range []string{
		"p=tls-unique,a=alice,\x01auth=Bearer tok-alice\x01\x01",
		"n,alice,\x01auth=Bearer tok-alice\x01\x01",
		"n,a=a=2Xb,\x01auth=Bearer tok-alice\x01\x01",
		"n,a=alice,\x01host=localhost\x01\x01",
		"n,a=alice,\x01auth=Basic dG9r\x01\x01",
		"n,a=alice,\x01auth=Bearer tok-alice\x01",
		"n,a=alice,auth=Bearer tok-alice\x01\x01",
		"n,a=alice,\x01auth=Bearer tok-alice\x01auth=Bearer tok-alice\x01\x01",
		"n,a=alice,\x01bad key=1\x01auth=Bearer tok-alice\x01\x01",
	} {
		code, msg := mechDial(t, s, nil).auth("OAUTHBEARER", []byte(bad))
		mechWant(t, "malformed "+strings.ReplaceAll(bad, "\x01", "^A"), code, msg, 501, "5.5.2")
	}
}

func TestExternal(t *testing.T) {
	pki := newMechPKI(t)
	other := newMechPKI(t)
	mechs := map[string]smtptest.AuthMechanism{"EXTERNAL": smtptest.External}
	verifying := mechServer(t, transport.ImplicitTLS, mechs, func(s *smtptest.Server) {
		s.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pki.pool}
	})
	withCert := func(s *smtptest.Server, cert tls.Certificate) *tls.Config {
		cfg := s.ClientTLSConfig()
		cfg.Certificates = []tls.Certificate{cert}
		return cfg
	}

	for _, identity := range []string{"", "alice"} {
		verifying.Reset()
		c := mechDial(t, verifying, withCert(verifying, pki.alice))
		code, msg := c.auth("EXTERNAL", []byte(identity))
		mechWant(t, "identity "+identity, code, msg, 235, "2.0.0")
		c.sendMail()
		mechOneMessageFrom(t, verifying, "alice")
	}
	// Without an initial response, the identity comes after a 334.
	c := mechDial(t, verifying, withCert(verifying, pki.alice))
	if code, msg := c.auth("EXTERNAL", nil); code != 334 || msg != "" {
		t.Fatalf("AUTH EXTERNAL: %d %q", code, msg)
	}
	code, msg := c.respond(nil)
	mechWant(t, "identity after 334", code, msg, 235, "2.0.0")

	code, msg = mechDial(t, verifying, withCert(verifying, pki.alice)).auth("EXTERNAL", []byte("bob"))
	mechWant(t, "other identity", code, msg, 535, "5.7.8")
	code, msg = mechDial(t, verifying, nil).auth("EXTERNAL", []byte{})
	mechWant(t, "no certificate", code, msg, 535, "5.7.8")

	// A certificate requested but not verified does not authenticate.
	requesting := mechServer(t, transport.ImplicitTLS, mechs, func(s *smtptest.Server) {
		s.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	})
	code, msg = mechDial(t, requesting, withCert(requesting, other.alice)).auth("EXTERNAL", []byte{})
	mechWant(t, "unverified certificate", code, msg, 535, "5.7.8")

	clear := mechServer(t, transport.Plaintext, mechs, nil)
	code, msg = mechDial(t, clear, nil).auth("EXTERNAL", []byte{})
	mechWant(t, "no TLS", code, msg, 535, "5.7.8")
}

func TestAnonymous(t *testing.T) {
	s := mechServer(t, transport.Plaintext, map[string]smtptest.AuthMechanism{"ANONYMOUS": smtptest.Anonymous}, nil)
	c := mechDial(t, s, nil)
	code, msg := c.auth("ANONYMOUS", []byte("sirhc@example.org"))
	mechWant(t, "trace", code, msg, 235, "2.0.0")
	c.sendMail()
	mechOneMessageFrom(t, s, "anonymous")

	c = mechDial(t, s, nil)
	if code, msg := c.auth("ANONYMOUS", nil); code != 334 || msg != "" {
		t.Fatalf("AUTH ANONYMOUS: %d %q", code, msg)
	}
	code, msg = c.respond(nil)
	mechWant(t, "empty trace after 334", code, msg, 235, "2.0.0")

	for name, trace := range map[string]string{"long": strings.Repeat("x", 256), "invalid-utf8": "\xff\xfe"} {
		code, msg := mechDial(t, s, nil).auth("ANONYMOUS", []byte(trace))
		mechWant(t, name, code, msg, 535, "5.7.8")
	}
}
