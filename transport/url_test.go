package transport_test

import (
	"strings"
	"testing"

	"github.com/mailwire/mailwire/transport"
)

func TestFromURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "%T addr security" of the result, or "error: <part of the message>"
	}{
		{"smtp://mx.example.org", "*transport.SMTP mx.example.org:25 starttls"},
		{"smtp://mx.example.org:2525?tls=none", "*transport.SMTP mx.example.org:2525 none"},
		{"smtp://mx.example.org?tls=opportunistic", "*transport.SMTP mx.example.org:25 opportunistic"},
		{"smtp://mx.example.org?tls=smtps", "*transport.SMTP mx.example.org:465 tls"},
		{"submission://smtp.example.org", "*transport.SMTP smtp.example.org:587 starttls"},
		{"smtps://smtp.example.org", "*transport.SMTP smtp.example.org:465 tls"},
		{"smtps://smtp.example.org?tls=tls", "*transport.SMTP smtp.example.org:465 tls"},
		{"smtp://[2001:db8::1]:25", "*transport.SMTP [2001:db8::1]:25 starttls"},
		{"lmtp:///run/dovecot/lmtp", "*transport.LMTP /run/dovecot/lmtp unix"},
		{"lmtp://127.0.0.1:24", "*transport.LMTP 127.0.0.1:24 tcp"},

		{"smtp://", "error: no host"},
		{"smtp://:25", "error: no host"},
		{"smtp://user:secret@mx.example.org", "error: credentials"},
		{"smtp://mx.example.org/path", "error: unexpected path"},
		{"smtp://mx.example.org?tls=none&tls=starttls", "error: given once"},
		{"smtp://mx.example.org?tls=", "error: given once"},
		{"smtp://mx.example.org?%zz", "error: bad query"},
		{"smtp://mx.example.org?port=25", "error: not recognised"},
		{"smtp://mx.example.org#frag", "error: fragment"},
		{"smtp://mx.example.org:0", "error: not a port number"},
		{"smtp://mx.example.org:99999", "error: not a port number"},
		{"smtps://mx.example.org?tls=none", "error: smtps URL with tls=none"},
		{"lmtp://127.0.0.1:24/path", "error: unexpected path"},
		{"lmtp://127.0.0.1", "error: needs a port"},
		{"lmtp://127.0.0.1:025", "error: port 25"},
		{"lmtp:///", "error: directory"},
		{"lmtp:///run/dov%0aecot", "error: control characters"},
		{"lmtp:///run/a%00b", "error: control characters"},
		{"lmtp:///run/dov ecot", "error: control characters or spaces"},
		{"pop3://mx.example.org", "error: unknown URL scheme"},
	} {
		tr, err := transport.FromURL(tc.url)
		var got string
		switch v := tr.(type) {
		case nil:
			got = "error: " + err.Error()
		case *transport.SMTP:
			got = "*transport.SMTP " + v.Addr + " " + v.Security.String()
		case *transport.LMTP:
			got = "*transport.LMTP " + v.Addr + " " + v.Network
		}
		if err != nil && tr != nil {
			t.Errorf("FromURL(%q) returned both %v and %T", tc.url, err, tr)
		}
		if strings.HasPrefix(tc.want, "error: ") {
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tc.want, "error: ")) {
				t.Errorf("FromURL(%q) = %s, want an error containing %q", tc.url, got, strings.TrimPrefix(tc.want, "error: "))
			}
			if strings.Contains(got, "secret") {
				t.Errorf("FromURL(%q) error shows the password: %s", tc.url, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("FromURL(%q) = %s, want %s", tc.url, got, tc.want)
		}
	}
}
