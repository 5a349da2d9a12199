package transport

import "fmt"

// Security says how an SMTP or LMTP transport protects its connection. The
// zero value, StartTLS, is the safe default.
type Security uint8

// Security modes.
const (
	// StartTLS connects in clear and requires STARTTLS (RFC 3207) before
	// anything else; if the server does not offer it or the handshake fails,
	// the send fails with nothing sent and no credential used.
	StartTLS Security = iota
	// StartTLSOpportunistic upgrades with STARTTLS when the server offers
	// it and continues in clear when it does not. It is open to downgrade
	// by anyone on the path; choose it explicitly.
	StartTLSOpportunistic
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465,
	// RFC 8314).
	ImplicitTLS
	// Plaintext never encrypts: for loopback relays, Unix sockets and tests.
	Plaintext
)

var securityNames = [...]string{"starttls", "opportunistic", "tls", "none"}

// String returns "starttls", "opportunistic", "tls" or "none".
func (s Security) String() string {
	if int(s) < len(securityNames) {
		return securityNames[s]
	}
	return fmt.Sprintf("security(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s Security) MarshalText() ([]byte, error) {
	if int(s) >= len(securityNames) {
		return nil, fmt.Errorf("transport: invalid security mode %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. It accepts the names
// String returns and the aliases "starttls-required", "smtps", "implicit",
// "plain" and "plaintext".
func (s *Security) UnmarshalText(b []byte) error {
	switch string(b) {
	case "starttls", "starttls-required", "required":
		*s = StartTLS
	case "opportunistic", "starttls-opportunistic", "may":
		*s = StartTLSOpportunistic
	case "tls", "smtps", "implicit", "implicit-tls":
		*s = ImplicitTLS
	case "none", "plain", "plaintext":
		*s = Plaintext
	default:
		return fmt.Errorf("transport: unknown security mode %q (want starttls, opportunistic, tls or none)", b)
	}
	return nil
}
