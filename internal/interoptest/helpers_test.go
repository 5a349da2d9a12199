package interoptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeTB records Skip and Fatal calls instead of ending the real test. The
// function under test runs in its own goroutine, which Skipf and Fatalf end
// with runtime.Goexit, as the testing package does.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runFake runs fn with a fakeTB wrapping t and returns it once fn has ended.
func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

// writeCA writes a self-signed CA certificate in PEM to dir/name.
func writeCA(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "interoptest " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeEnv writes a complete env file like start.sh's into a new temporary
// directory, with extra lines appended, and returns its path.
func writeEnv(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	ca := writeCA(t, dir, "ca.pem")
	untrusted := writeCA(t, dir, "untrusted-ca.pem")
	lines := []string{
		"# written by a test",
		"MAILWIRE_INTEROP_DIR='" + dir + "'",
		"POSTFIX_SMTP='127.0.0.1:2525'",
		"POSTFIX_SUBMISSION='127.0.0.1:2587'",
		"POSTFIX_SMTPS='127.0.0.1:2465'",
		"POSTFIX_SIZE_LIMIT='10485760'",
		"DOVECOT_LMTP_SOCKET='" + dir + "/lmtp.sock'",
		"DOVECOT_LMTP_TCP='127.0.0.1:2424'",
		"DOVECOT_SUBMISSION=''",
		"LEDGER_SMTP='127.0.0.1:2526'",
		"LEDGER_DIR='" + dir + "/ledger'",
		"SINK_SMTP=\"127.0.0.1:2527\"",
		"TLS_SERVER_NAME='localhost'",
		"CA_FILE='" + ca + "'",
		"UNTRUSTED_CA_FILE='" + untrusted + "'",
		"DOMAIN='interop.test'",
		"LMTP_DOMAIN='lmtp.interop.test'",
		"VIRTUAL_MAILDIR_ROOT='" + dir + "/mail/virtual'",
		"DOVECOT_MAILDIR_ROOT='" + dir + "/mail/dovecot'",
		"USERS='alice bob carol dave'",
		"ALICE_PASSWORD='alice-secret-PW1'",
		"BOB_PASSWORD='bob-secret-PW2'",
		"CAROL_PASSWORD='carol-secret-PW3'",
		"export DAVE_PASSWORD=dave-secret-PW4",
		"UTF8_ADDRESS='josé@interop.test'",
		"",
	}
	lines = append(lines, extra...)
	path := filepath.Join(dir, "env")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
