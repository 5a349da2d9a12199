package auth_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/xdg-go/scram"
)

// testCert returns a self-signed certificate for 127.0.0.1 and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// serverBinding computes, on the server's side of the connection, the
// binding data RFC 9266 and RFC 5929 define.
func serverBinding(cs tls.ConnectionState) scram.ChannelBinding {
	if cs.Version >= tls.VersionTLS13 {
		cb, err := scram.NewTLSExporterBinding(&cs)
		if err != nil {
			panic(err)
		}
		return cb
	}
	return scram.NewTLSUniqueBinding(cs.TLSUnique)
}

// serveAUTH reads one AUTH exchange (RFC 4954 syntax) on conn and runs it
// against conv, which requires channel binding. It returns the client's
// first message.
func serveAUTH(conn net.Conn, conv *scram.ServerConversation) (clientFirst string, err error) {
	r := bufio.NewReader(conn)
	readLine := func() (string, error) {
		l, err := r.ReadString('\n')
		return strings.TrimSuffix(l, "\r\n"), err
	}
	reply := func(s string) error { _, err := fmt.Fprintf(conn, "%s\r\n", s); return err }
	decode := func(s string) (string, error) { b, err := base64.StdEncoding.DecodeString(s); return string(b), err }

	line, err := readLine()
	if err != nil {
		return "", err
	}
	mech, ir, ok := strings.Cut(strings.TrimPrefix(line, "AUTH "), " ")
	if mech != "SCRAM-SHA-256-PLUS" || !ok {
		return "", reply("504 5.5.4 unexpected " + line)
	}
	msg, err := decode(ir)
	if err != nil {
		return "", err
	}
	clientFirst = msg
	for {
		out, err := conv.Step(msg)
		if err != nil {
			return clientFirst, reply("535 5.7.8 " + out)
		}
		if err := reply("334 " + base64.StdEncoding.EncodeToString([]byte(out))); err != nil {
			return clientFirst, err
		}
		line, err := readLine()
		if err != nil {
			return clientFirst, err
		}
		if conv.Done() {
			if line != "" {
				return clientFirst, reply("501 5.5.2 expected an empty response")
			}
			return clientFirst, reply("235 2.7.0 authenticated")
		}
		if msg, err = decode(line); err != nil {
			return clientFirst, err
		}
	}
}

// clientAUTH runs the client side of one AUTH exchange on conn.
func clientAUTH(conn *tls.Conn, a auth.Authenticator) error {
	cs := conn.ConnectionState()
	c, err := a.Start(context.Background(), auth.ServerInfo{
		Host:       "127.0.0.1",
		Mechanisms: []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"},
		TLS:        &cs,
	})
	if err != nil {
		return err
	}
	mech, ir, err := c.Start()
	if err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "AUTH %s %s\r\n", mech, base64.StdEncoding.EncodeToString(ir))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(line, "\r\n")
		code, text, _ := strings.Cut(line, " ")
		switch code {
		case "235":
			if f, ok := c.(auth.Finisher); ok {
				return f.Finish()
			}
			return nil
		case "334":
			challenge, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return err
			}
			resp, err := c.Next(challenge)
			if err != nil {
				fmt.Fprintf(conn, "*\r\n")
				return err
			}
			fmt.Fprintf(conn, "%s\r\n", base64.StdEncoding.EncodeToString(resp))
		default:
			return errors.New(line)
		}
	}
}

func TestChannelBindingOverTLS(t *testing.T) {
	const user, pass = "alice", "correct horse"
	cert, pool := testCert(t)
	srv := newSCRAMServer(t, scram.SHA256, user, pass)
	for _, tc := range []struct {
		name    string
		version uint16
		cbType  string
	}{
		{"TLS1.3", tls.VersionTLS13, "tls-exporter"},
		{"TLS1.2", tls.VersionTLS12, "tls-unique"},
	} {
		for _, tamper := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tampered=%v", tc.name, tamper), func(t *testing.T) {
				ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
					Certificates: []tls.Certificate{cert},
					MinVersion:   tc.version,
					MaxVersion:   tc.version,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				type result struct {
					first string
					err   error
				}
				done := make(chan result, 1)
				go func() {
					conn, err := ln.Accept()
					if err != nil {
						done <- result{err: err}
						return
					}
					defer conn.Close()
					tconn := conn.(*tls.Conn)
					if err := tconn.Handshake(); err != nil {
						done <- result{err: err}
						return
					}
					cb := serverBinding(tconn.ConnectionState())
					if tamper {
						// What a relaying man-in-the-middle's second
						// TLS connection would produce.
						cb.Data = append([]byte(nil), cb.Data...)
						cb.Data[0] ^= 0xff
					}
					first, err := serveAUTH(conn, srv.NewConversationWithChannelBindingRequired(cb))
					done <- result{first, err}
				}()

				conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
					RootCAs:    pool,
					ServerName: "127.0.0.1",
					MinVersion: tc.version,
					MaxVersion: tc.version,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				cerr := clientAUTH(conn, auth.Config{Credentials: auth.Credentials{Username: user, Password: pass}})
				res := <-done
				if res.err != nil {
					t.Fatalf("server: %v", res.err)
				}
				if want := "p=" + tc.cbType + ",,"; !strings.HasPrefix(res.first, want) {
					t.Errorf("client-first %q, want prefix %q", res.first, want)
				}
				if tamper {
					if cerr == nil || !strings.HasPrefix(cerr.Error(), "535 ") {
						t.Errorf("client err = %v, want the server's 535", cerr)
					}
				} else if cerr != nil {
					t.Errorf("client err = %v", cerr)
				}
			})
		}
	}
}
