package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// Certificate validity. The window starts before 2000-01-01, the fake clock
// of testing/synctest bubbles, so that a handshake verified inside a bubble
// still succeeds, and ends long after any test run.
var (
	certNotBefore = time.Date(1999, time.January, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2099, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// testPKI is a certificate authority and the server certificate it signed.
type testPKI struct {
	ca   *x509.Certificate
	leaf tls.Certificate
}

// newTestPKI generates a new ECDSA P-256 certificate authority and a server
// certificate for 127.0.0.1, ::1 and localhost signed by it.
func newTestPKI() (*testPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"mailwire smtptest"}, CommonName: "smtptest CA"},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"mailwire smtptest"}, CommonName: "localhost"},
		NotBefore:    certNotBefore,
		NotAfter:     certNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testPKI{
		ca: ca,
		leaf: tls.Certificate{
			Certificate: [][]byte{der, caDER},
			PrivateKey:  key,
			Leaf:        leaf,
		},
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("smtptest: generating a serial number: " + err.Error())
	}
	return n
}
