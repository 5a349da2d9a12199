package wire

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

// scriptConn is a net.Conn that reads a fixed script and records writes.
type scriptConn struct {
	net.Conn // nil: only Read and Write are used
	r        io.Reader
	w        bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func TestTranscriptAuthLine(t *testing.T) {
	for _, tc := range []struct {
		line, shown, want string
	}{
		// No initial response: nothing to hide, whatever the caller says.
		{"AUTH LOGIN", "AUTH LOGIN [redacted]", "C: AUTH LOGIN\n"},
		{"AUTH CRAM-MD5", "AUTH CRAM-MD5 [redacted]", "C: AUTH CRAM-MD5\n"},
		{"AUTH SCRAM-SHA-256", "", "C: AUTH SCRAM-SHA-256\n"},
		{"auth login", "", "C: auth login\n"},
		// An initial response, empty ("=") or not, is hidden.
		{"AUTH PLAIN AGJvYgBodW50ZXIy", "AUTH PLAIN [redacted]", "C: AUTH PLAIN [redacted]\n"},
		{"AUTH PLAIN AGJvYgBodW50ZXIy", "", "C: AUTH PLAIN [redacted]\n"},
		{"AUTH EXTERNAL =", "AUTH EXTERNAL [redacted]", "C: AUTH EXTERNAL [redacted]\n"},
		{"AUTH XOAUTH2 dXNlcj1ib2I=", "AUTH XOAUTH2 [redacted]", "C: AUTH XOAUTH2 [redacted]\n"},
		{"AUTH LOGIN ", "", "C: AUTH LOGIN [redacted]\n"},
		// A line that is not "AUTH <mechanism>[ ...]" keeps the caller's
		// text, or "[redacted]".
		{"AUTH PLAIN\tAGJvYgBodW50ZXIy", "", "C: [redacted]\n"},
		{"AUTH PLAIN\tAGJvYgBodW50ZXIy", "AUTH PLAIN [redacted]", "C: AUTH PLAIN [redacted]\n"},
		{"AUTH  PLAIN AGJvYgBodW50ZXIy", "", "C: [redacted]\n"},
		{"AUTH PLAIN:AGJvYgBodW50ZXIy", "", "C: [redacted]\n"},
		// SASL responses are always hidden.
		{"AUTH", "", "C: [redacted]\n"},
		{"Ym9i", "", "C: [redacted]\n"},
		{"*", "", "C: [redacted]\n"},
	} {
		var debug bytes.Buffer
		nc := &scriptConn{r: strings.NewReader("")}
		c := NewConn(nc, &debug)
		if err := c.WriteSecretCommand(tc.line, tc.shown); err != nil {
			t.Fatalf("WriteSecretCommand(%q): %v", tc.line, err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := debug.String(); got != tc.want {
			t.Errorf("WriteSecretCommand(%q, %q): transcript %q, want %q", tc.line, tc.shown, got, tc.want)
		}
		if got := nc.w.String(); got != tc.line+"\r\n" {
			t.Errorf("WriteSecretCommand(%q): sent %q", tc.line, got)
		}
	}
}

func TestTranscriptAuthExchange(t *testing.T) {
	// A LOGIN exchange as the session drives it: the bare AUTH line is
	// shown, the challenges and the responses are not.
	var debug bytes.Buffer
	nc := &scriptConn{r: strings.NewReader("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 ok\r\n")}
	c := NewConn(nc, &debug)
	c.RedactReplies(true)
	steps := []string{"AUTH LOGIN", "Ym9i", "aHVudGVyMg=="}
	for i, line := range steps {
		shown := ""
		if i == 0 {
			shown = "AUTH LOGIN [redacted]"
		}
		if err := c.WriteSecretCommand(line, shown); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadReply(); err != nil {
			t.Fatal(err)
		}
	}
	c.RedactReplies(false)
	want := "C: AUTH LOGIN\nS: 334 [redacted]\nC: [redacted]\nS: 334 [redacted]\nC: [redacted]\nS: 235 2.7.0 ok\n"
	if got := debug.String(); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
	for _, secret := range []string{"Ym9i", "aHVudGVyMg", "VXNlcm5hbWU6", "UGFzc3dvcmQ6"} {
		if strings.Contains(debug.String(), secret) {
			t.Errorf("transcript contains %q", secret)
		}
	}
}
