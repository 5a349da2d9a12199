package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// A rule says what a built-in mechanism needs from the credentials and the
// connection.
type rule struct {
	// usable returns an *unusableError when the mechanism cannot run with
	// c on the connection info describes; nil means always usable.
	usable func(c Credentials, info ServerInfo) error
	// noCredential is true for mechanisms that send no password, token
	// or crackable hash, and so may run on an unencrypted connection.
	noCredential bool
}

// rules covers the built-ins. A mechanism registered by another package
// has no rule: it is assumed to send a credential and to be usable.
var rules = map[string]rule{
	"PLAIN":              {usable: plainUsable},
	"LOGIN":              {usable: loginUsable},
	"CRAM-MD5":           {usable: cramMD5Usable},
	"XOAUTH2":            {usable: xoauth2Usable},
	"OAUTHBEARER":        {usable: oauthBearerUsable},
	"EXTERNAL":           {usable: externalUsable, noCredential: true},
	"ANONYMOUS":          {usable: anonymousUsable, noCredential: true},
	"SCRAM-SHA-1":        {usable: scramSHA1.usable},
	"SCRAM-SHA-1-PLUS":   {usable: scramSHA1Plus.usable},
	"SCRAM-SHA-256":      {usable: scramSHA256.usable},
	"SCRAM-SHA-256-PLUS": {usable: scramSHA256Plus.usable},
	"SCRAM-SHA-512":      {usable: scramSHA512.usable},
	"SCRAM-SHA-512-PLUS": {usable: scramSHA512Plus.usable},
}

// DefaultPreference returns the order in which a [Config] with nil
// Mechanisms tries mechanisms, strongest first:
//
//	SCRAM-SHA-512-PLUS SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS
//	SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1
//	OAUTHBEARER XOAUTH2 PLAIN LOGIN CRAM-MD5
//
// SCRAM never sends the password and authenticates the server too; its
// -PLUS form also binds the exchange to the TLS connection, so that a
// man-in-the-middle holding a certificate the client trusts cannot relay it
// to the real server, which matters more than the hash: every -PLUS form
// comes before every unbound one. Within each, SHA-512 comes before
// SHA-256 and SHA-256 before SHA-1. OAuth tokens are scoped and expire, so they come
// before passwords, and the standard OAUTHBEARER before Google's and
// Microsoft's XOAUTH2; both are skipped unless [Credentials.Token] is set.
// PLAIN is safe inside TLS, which a Config requires by default, and is
// standard; LOGIN carries the same data in a non-standard way and is there
// for servers that offer nothing else (Office 365). CRAM-MD5 comes last: it
// forces the server to store a password equivalent, uses HMAC-MD5 and does
// not authenticate the server, and inside TLS it protects nothing PLAIN
// does not.
//
// On an unencrypted TCP connection, which a Config only uses when
// AllowInsecure is set, CRAM-MD5 moves ahead of PLAIN and LOGIN because it
// does not put the password itself on the wire.
//
// EXTERNAL and ANONYMOUS are not in the list: they authenticate as an
// identity other than [Credentials.Username] (the TLS client certificate's,
// or none), so a caller must ask for them by name.
func DefaultPreference() []string {
	return []string{
		"SCRAM-SHA-512-PLUS",
		"SCRAM-SHA-256-PLUS",
		"SCRAM-SHA-1-PLUS",
		"SCRAM-SHA-512",
		"SCRAM-SHA-256",
		"SCRAM-SHA-1",
		"OAUTHBEARER",
		"XOAUTH2",
		"PLAIN",
		"LOGIN",
		"CRAM-MD5",
	}
}

// insecurePreference is DefaultPreference for an unencrypted TCP
// connection.
func insecurePreference() []string {
	p := DefaultPreference()
	p = slices.DeleteFunc(p, func(s string) bool { return s == "CRAM-MD5" })
	i := slices.Index(p, "PLAIN")
	return slices.Insert(p, i, "CRAM-MD5")
}

// Config is an [Authenticator] that chooses, for each connection, the first
// mechanism in Mechanisms that the server offers and that can be used with
// the Credentials on that connection. It never picks a mechanism because the
// server lists it first.
//
// Start refuses, without sending anything:
//   - with an error wrapping [ErrInsecure], when the chosen mechanism would
//     send a credential or a crackable hash (every built-in but ANONYMOUS and
//     EXTERNAL, and every mechanism registered by another package) on a
//     connection that is neither TLS nor a Unix socket, unless AllowInsecure
//     is set; it does not fall back to a mechanism further down the list;
//   - with an error wrapping [ErrHostMismatch], when Credentials.Host is set
//     and is not the server's host;
//   - with an error wrapping [ErrMalformedCredentials], when a field holds a
//     CR, LF or NUL character;
//   - with [ErrNotOffered] when the server offers no mechanism, and with a
//     [*NoCommonMechanismError] when none of them is allowed and usable;
//   - with an error wrapping [ErrUnknownMechanism] when Mechanisms names a
//     mechanism that is not registered.
//
// A mechanism is skipped (and named in NoCommonMechanismError.Skipped) when
// it cannot run here: password mechanisms without Username and Password,
// XOAUTH2 and OAUTHBEARER without Token, SCRAM-SHA-256-PLUS without TLS
// channel binding data, EXTERNAL without a TLS client certificate, and
// LOGIN, CRAM-MD5 and XOAUTH2 when Identity is set to someone other than
// Username (they cannot carry it).
//
// A Config must not be modified while a transport uses it; it is safe for
// concurrent use. Printed with fmt or slog it hides the secrets, like
// [Credentials].
type Config struct {
	Credentials

	// Mechanisms are the mechanisms allowed, most preferred first, upper
	// or lower case. nil means [DefaultPreference]; an empty non-nil slice
	// allows none.
	Mechanisms []string

	// AllowInsecure allows credentials to be sent over an unencrypted TCP
	// connection. Loopback connections are not exempt: only set it for a
	// server on the same host or network that cannot do TLS, knowing that
	// anyone who can read the traffic can use or crack what is sent.
	AllowInsecure bool
}

var _ Authenticator = Config{}

// New returns an Authenticator that uses only the named mechanism, with the
// same checks as a [Config] (it is one, with Mechanisms set to name). It
// fails at once, with an error wrapping [ErrUnknownMechanism], if no
// mechanism is registered under name.
func New(name string, c Credentials) (Authenticator, error) {
	if _, err := Lookup(name); err != nil {
		return nil, err
	}
	n, _ := canonicalName(name)
	return Config{Credentials: c, Mechanisms: []string{n}}, nil
}

// Start chooses a mechanism for the connection info describes and returns
// a new client for it. See [Config] for the rules.
func (cfg Config) Start(ctx context.Context, info ServerInfo) (sasl.Client, error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	insecure := info.TLS == nil && !info.Unix
	allowed, err := cfg.allowed(insecure)
	if err != nil {
		return nil, err
	}
	if err := cfg.Credentials.Validate(); err != nil {
		return nil, err
	}
	if len(info.Mechanisms) == 0 {
		return nil, ErrNotOffered
	}
	if err := cfg.Credentials.checkFor(info); err != nil {
		return nil, err
	}
	offered := make(map[string]bool, len(info.Mechanisms))
	for _, m := range info.Mechanisms {
		offered[strings.ToUpper(m)] = true
	}
	var skipped []string
	for _, name := range allowed {
		if !offered[name] {
			continue
		}
		r, builtin := rules[name]
		if builtin && r.usable != nil {
			if err := r.usable(cfg.Credentials, info); err != nil {
				var ue *unusableError
				if errors.As(err, &ue) {
					skipped = append(skipped, ue.mech+": "+ue.reason)
				} else {
					skipped = append(skipped, name+": "+err.Error())
				}
				continue
			}
		}
		if insecure && !cfg.AllowInsecure && !r.noCredential {
			return nil, fmt.Errorf("%w (mechanism %s)", ErrInsecure, name)
		}
		f, err := Lookup(name)
		if err != nil {
			return nil, err
		}
		return f(ctx, cfg.Credentials, info)
	}
	return nil, &NoCommonMechanismError{
		Offered: slices.Clone(info.Mechanisms),
		Allowed: allowed,
		Skipped: skipped,
	}
}

// allowed returns the canonical names of the allowed mechanisms.
func (cfg Config) allowed(insecure bool) ([]string, error) {
	if cfg.Mechanisms == nil {
		if insecure {
			return insecurePreference(), nil
		}
		return DefaultPreference(), nil
	}
	names := make([]string, 0, len(cfg.Mechanisms))
	for _, m := range cfg.Mechanisms {
		if _, err := Lookup(m); err != nil {
			return nil, err
		}
		n, _ := canonicalName(m)
		names = append(names, n)
	}
	return names, nil
}

// String returns cfg as %+v prints it, without the password or the token.
func (cfg Config) String() string {
	return fmt.Sprintf("%+v", cfg)
}

// GoString returns cfg as %#v prints it, without the password or the token.
func (cfg Config) GoString() string {
	return fmt.Sprintf("auth.Config{Credentials:%#v, Mechanisms:%#v, AllowInsecure:%t}",
		cfg.Credentials, cfg.Mechanisms, cfg.AllowInsecure)
}

// Format implements fmt.Formatter so that no verb prints the password or
// the token (see [Credentials.Format]).
func (cfg Config) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, cfg.GoString())
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "{Credentials:%+v Mechanisms:%v AllowInsecure:%t}",
			cfg.Credentials, cfg.Mechanisms, cfg.AllowInsecure)
	default:
		fmt.Fprintf(f, "{%v %v %t}", cfg.Credentials, cfg.Mechanisms, cfg.AllowInsecure)
	}
}

// LogValue implements slog.LogValuer: the password and the token are
// logged as "[redacted]".
func (cfg Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("credentials", cfg.Credentials),
		slog.Any("mechanisms", cfg.Mechanisms),
		slog.Bool("allow_insecure", cfg.AllowInsecure),
	)
}
