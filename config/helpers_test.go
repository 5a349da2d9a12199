package config_test

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeCA writes the certificate authority of s to a PEM file in dir.
func writeCA(t *testing.T, dir string, s *smtptest.Server) string {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	return writeFile(t, dir, "ca.pem", string(b))
}

// send sends a short message from alice to the recipients through tr.
func send(t *testing.T, tr transport.Transport, to ...string) (*transport.Result, error) {
	t.Helper()
	env := envelope.New("alice@example.org", to...)
	msg := "From: alice@example.org\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: test\r\n\r\nHello.\r\n"
	return tr.Send(context.Background(), env, strings.NewReader(msg))
}

// yamlFile joins lines into a YAML document; tests write their line
// numbers next to the lines that matter.
func yamlFile(lines ...string) []byte {
	return []byte(strings.Join(lines, "\n") + "\n")
}
