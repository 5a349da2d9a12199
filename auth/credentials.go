package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// redacted replaces a secret wherever Credentials are printed.
const redacted = "[redacted]"

// ErrMalformedCredentials is wrapped by the error returned, before anything
// is sent, for credentials no mechanism can carry safely: a CR, LF or NUL
// in the identity, username or password, or an empty token or one with a
// control character. The error names the field, never its value.
var ErrMalformedCredentials = errors.New("auth: malformed credentials")

// ErrHostMismatch is wrapped by the error an Authenticator returns when the
// credentials are bound to a host ([Credentials.Host]) other than the
// server's.
var ErrHostMismatch = errors.New("auth: credentials bound to another host")

// Credentials are the inputs the built-in mechanisms need. Which fields a
// mechanism uses is listed in its constructor's documentation.
//
// Credentials print without their secrets: with fmt (any verb, %#v
// included) and with log/slog the password and the token show as
// "[redacted]". fmt cannot call methods on unexported struct fields, so a
// struct that holds Credentials (or a [Config]) in an unexported field
// prints them in full: keep them in an exported field or behind a pointer.
type Credentials struct {
	// Identity is the authorization identity (authzid): the user to act
	// as, when it differs from the user who authenticates. Usually empty.
	Identity string
	// Username is the authentication identity.
	Username string
	// Password is the secret for PLAIN, LOGIN, CRAM-MD5 and SCRAM.
	Password string
	// Token returns the OAuth 2.0 bearer token for XOAUTH2 and
	// OAUTHBEARER. It is called once per connection, when one of those
	// mechanisms is chosen, so it can refresh an expiring token. ctx is the
	// context of the Authenticator's Start. nil means no token.
	Token func(ctx context.Context) (string, error)
	// Host binds the credentials to one server: an Authenticator refuses to
	// use them when ServerInfo.Host differs (case-insensitively, ignoring a
	// trailing dot), with an error wrapping [ErrHostMismatch]. Set it
	// whenever the server name can come from somewhere else than the code
	// that holds the password (a shared config file, a flag, an MX or SRV
	// lookup). The empty string binds them to nothing: whatever server the
	// connection reaches receives them.
	Host string
}

// Validate reports whether every mechanism could carry c safely: it
// returns an error wrapping [ErrMalformedCredentials] if Identity, Username
// or Password holds a CR, LF or NUL character. Authenticators and the
// built-in constructors call it before sending anything; callers may call
// it earlier, when they load a configuration.
func (c Credentials) Validate() error {
	for _, f := range [...]struct{ name, value string }{
		{"authorization identity", c.Identity},
		{"username", c.Username},
		{"password", c.Password},
	} {
		if strings.ContainsAny(f.value, "\r\n\x00") {
			return fmt.Errorf("%w: %s contains a CR, LF or NUL character", ErrMalformedCredentials, f.name)
		}
	}
	return nil
}

// checkFor validates c and checks that it may be used on the connection
// info describes.
func (c Credentials) checkFor(info ServerInfo) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Host != "" && !sameHost(c.Host, info.Host) {
		return fmt.Errorf("%w: configured for %q, server is %q", ErrHostMismatch, c.Host, info.Host)
	}
	return nil
}

func sameHost(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// token calls c.Token and checks the result. mech names the mechanism in
// errors.
func (c Credentials) token(ctx context.Context, mech string) (string, error) {
	if c.Token == nil {
		return "", fmt.Errorf("auth: %s: no token source (Credentials.Token is nil)", mech)
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("auth: %s: token source: %w", mech, err)
	}
	if tok == "" {
		return "", fmt.Errorf("%w: %s: token source returned an empty token", ErrMalformedCredentials, mech)
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("%w: %s: token contains a control character", ErrMalformedCredentials, mech)
	}
	return tok, nil
}

// secret returns what prints in place of s.
func secret(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

func (c Credentials) tokenText() string {
	if c.Token == nil {
		return "<nil>"
	}
	return redacted
}

// String returns c as %+v prints it, without the password or the token.
func (c Credentials) String() string {
	return fmt.Sprintf("%+v", c)
}

// GoString returns c as %#v prints it, without the password or the token.
func (c Credentials) GoString() string {
	var b strings.Builder
	b.WriteString("auth.Credentials{Identity:")
	b.WriteString(strconv.Quote(c.Identity))
	b.WriteString(", Username:")
	b.WriteString(strconv.Quote(c.Username))
	b.WriteString(", Password:")
	b.WriteString(strconv.Quote(secret(c.Password)))
	b.WriteString(", Token:")
	if c.Token == nil {
		b.WriteString("nil")
	} else {
		b.WriteString(strconv.Quote(redacted))
	}
	b.WriteString(", Host:")
	b.WriteString(strconv.Quote(c.Host))
	b.WriteString("}")
	return b.String()
}

// Format implements fmt.Formatter so that no verb prints the password or
// the token: %#v prints [Credentials.GoString], %+v the fields with their
// names and every other verb the fields alone, as fmt does for structs.
func (c Credentials) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, c.GoString())
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "{Identity:%s Username:%s Password:%s Token:%s Host:%s}",
			c.Identity, c.Username, secret(c.Password), c.tokenText(), c.Host)
	default:
		fmt.Fprintf(f, "{%s %s %s %s %s}",
			c.Identity, c.Username, secret(c.Password), c.tokenText(), c.Host)
	}
}

// LogValue implements slog.LogValuer: the password and the token are
// logged as "[redacted]".
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("identity", c.Identity),
		slog.String("username", c.Username),
		slog.String("password", secret(c.Password)),
		slog.String("token", c.tokenText()),
		slog.String("host", c.Host),
	)
}

// Principal returns a string naming who the credentials authenticate as,
// without any secret: the authorization identity, the user name and the
// host they are bound to. Transports use it to keep sessions opened with
// different identities apart.
func (c Credentials) Principal() string {
	return c.Identity + "\x00" + c.Username + "\x00" + c.Host
}
