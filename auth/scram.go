package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/xdg-go/scram"
)

// The SCRAM family (RFC 5802, RFC 7677) runs on github.com/xdg-go/scram,
// which does the key derivation, the proofs and the server signature check;
// this file only adapts its Step conversation to sasl.Client and supplies
// the TLS channel binding data.

func init() {
	Register(scramSHA1.name, SCRAMSHA1)
	Register(scramSHA1Plus.name, SCRAMSHA1Plus)
	Register(scramSHA256.name, SCRAMSHA256)
	Register(scramSHA256Plus.name, SCRAMSHA256Plus)
	Register(scramSHA512.name, SCRAMSHA512)
	Register(scramSHA512Plus.name, SCRAMSHA512Plus)
}

var (
	_ NewFunc = SCRAMSHA1
	_ NewFunc = SCRAMSHA1Plus
	_ NewFunc = SCRAMSHA256
	_ NewFunc = SCRAMSHA256Plus
	_ NewFunc = SCRAMSHA512
	_ NewFunc = SCRAMSHA512Plus
)

// SCRAMSHA1 is the [NewFunc] of the SCRAM-SHA-1 mechanism (RFC 5802). See
// [SCRAMSHA256], which it equals but for the hash.
func SCRAMSHA1(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	return scramSHA1.newClient(c, info, nil)
}

// SCRAMSHA256 is the [NewFunc] of the SCRAM-SHA-256 mechanism (RFC 7677).
// The password never leaves the client: it proves knowledge of a key
// derived from it (PBKDF2 with the server's salt and at least 4096
// iterations; fewer is refused). The server proves it knows the stored key
// in its last message, which the client checks: a wrong or missing server
// signature is an error wrapping [ErrServerNotVerified] (a missing one is
// reported by Finish, see [Finisher]).
//
// Username, Password and Identity (the authorization identity, optional)
// are prepared with SASLprep (RFC 4013). Over TLS, when the server
// advertises no -PLUS mechanism, the client tells it that it supports
// channel binding (GS2 flag "y"), so that a server whose -PLUS offer was
// stripped by an attacker refuses the exchange.
//
// Everything an eavesdropper sees allows an offline guessing attack on the
// password, so a [Config] applies the same rule as for PLAIN. It needs
// Username and Password.
func SCRAMSHA256(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	return scramSHA256.newClient(c, info, nil)
}

// SCRAMSHA256Plus is the [NewFunc] of the SCRAM-SHA-256-PLUS mechanism:
// [SCRAMSHA256] bound to the TLS connection (RFC 5802 section 6), so that
// the exchange fails if anyone relays it between two TLS connections. The
// binding is tls-exporter (RFC 9266) on TLS 1.3 and tls-unique (RFC 5929)
// on TLS 1.2 and earlier; it needs ServerInfo.TLS from a completed
// handshake (and, on TLS 1.2, a tls-unique value, which Go omits for a
// resumed session without extended master secret).
func SCRAMSHA256Plus(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	return scramSHA256Plus.newClient(c, info, nil)
}

// SCRAMSHA1Plus is the [NewFunc] of the SCRAM-SHA-1-PLUS mechanism (RFC
// 5802): [SCRAMSHA1] bound to the TLS connection as [SCRAMSHA256Plus] is.
func SCRAMSHA1Plus(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	return scramSHA1Plus.newClient(c, info, nil)
}

// SCRAMSHA512 is the [NewFunc] of the SCRAM-SHA-512 mechanism
// (draft-melnikov-scram-sha-512, registered with IANA): [SCRAMSHA256] with
// SHA-512.
func SCRAMSHA512(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	return scramSHA512.newClient(c, info, nil)
}

// SCRAMSHA512Plus is the [NewFunc] of the SCRAM-SHA-512-PLUS mechanism:
// [SCRAMSHA512] bound to the TLS connection as [SCRAMSHA256Plus] is.
func SCRAMSHA512Plus(_ context.Context, c Credentials, info ServerInfo) (sasl.Client, error) {
	return scramSHA512Plus.newClient(c, info, nil)
}

type scramVariant struct {
	name string
	hash scram.HashGeneratorFcn
	plus bool // bound to the TLS channel
}

var (
	scramSHA1       = scramVariant{"SCRAM-SHA-1", scram.SHA1, false}
	scramSHA1Plus   = scramVariant{"SCRAM-SHA-1-PLUS", scram.SHA1, true}
	scramSHA256     = scramVariant{"SCRAM-SHA-256", scram.SHA256, false}
	scramSHA256Plus = scramVariant{"SCRAM-SHA-256-PLUS", scram.SHA256, true}
	scramSHA512     = scramVariant{"SCRAM-SHA-512", scram.SHA512, false}
	scramSHA512Plus = scramVariant{"SCRAM-SHA-512-PLUS", scram.SHA512, true}
)

func (v scramVariant) usable(c Credentials, info ServerInfo) error {
	if err := needPassword(v.name, c); err != nil {
		return err
	}
	if v.plus {
		if _, err := channelBinding(info.TLS); err != nil {
			return unusable(v.name, err.Error())
		}
	}
	return nil
}

// newClient builds the client; nonce, if not nil, replaces the random
// client nonce (for test vectors).
func (v scramVariant) newClient(c Credentials, info ServerInfo, nonce scram.NonceGeneratorFcn) (sasl.Client, error) {
	if err := c.checkFor(info); err != nil {
		return nil, err
	}
	if err := v.usable(c, info); err != nil {
		return nil, err
	}
	client, err := v.hash.NewClient(c.Username, c.Password, c.Identity)
	if err != nil {
		// The library's message may quote the username; say less.
		return nil, fmt.Errorf("%w: %s: username, password or authorization identity refused by SASLprep (RFC 4013)",
			ErrMalformedCredentials, v.name)
	}
	if nonce != nil {
		client = client.WithNonceGenerator(nonce)
	}
	cb, cbErr := channelBinding(info.TLS)
	var conv *scram.ClientConversation
	switch {
	case v.plus:
		conv = client.NewConversationWithChannelBinding(cb)
	case cbErr == nil && !offersPlus(info.Mechanisms):
		conv = client.NewConversationAdvertisingChannelBinding()
	default:
		conv = client.NewConversation()
	}
	return &scramClient{name: v.name, conv: conv}, nil
}

// offersPlus reports whether the server advertised any channel-bound
// mechanism: then a client that supports channel binding but does not use
// it must say "n", not "y" (RFC 5802 section 6).
func offersPlus(mechs []string) bool {
	for _, m := range mechs {
		if strings.HasSuffix(strings.ToUpper(m), "-PLUS") {
			return true
		}
	}
	return false
}

// channelBinding returns the channel binding data for a TLS connection:
// tls-exporter on TLS 1.3, tls-unique before.
func channelBinding(cs *tls.ConnectionState) (scram.ChannelBinding, error) {
	switch {
	case cs == nil:
		return scram.ChannelBinding{}, errors.New("no TLS")
	case !cs.HandshakeComplete:
		return scram.ChannelBinding{}, errors.New("TLS handshake not complete")
	case cs.Version >= tls.VersionTLS13:
		return exporterBinding(cs)
	case len(cs.TLSUnique) == 0:
		return scram.ChannelBinding{}, errors.New("no tls-unique value for this TLS session")
	}
	return scram.NewTLSUniqueBinding(cs.TLSUnique), nil
}

// exporterBinding guards against a ConnectionState built by hand, whose
// ExportKeyingMaterial panics.
func exporterBinding(cs *tls.ConnectionState) (cb scram.ChannelBinding, err error) {
	defer func() {
		if recover() != nil {
			cb, err = scram.ChannelBinding{}, errors.New("TLS state cannot export keying material")
		}
	}()
	cb, err = scram.NewTLSExporterBinding(cs)
	if err != nil {
		return scram.ChannelBinding{}, errors.New("TLS state cannot export keying material")
	}
	return cb, nil
}

// scramClient adapts a scram.ClientConversation to sasl.Client. In SMTP
// the exchange is: AUTH with client-first; 334 server-first; client-final;
// 334 server-final; an empty response; 235 (RFC 4954 carries no data with
// the success reply).
type scramClient struct {
	name  string
	conv  *scram.ClientConversation
	state scramState
}

type scramState int

const (
	scramNew       scramState = iota
	scramSentFirst            // client-first sent, awaiting server-first
	scramSentFinal            // client-final sent, awaiting server-final
	scramVerified             // server signature checked
	scramFailed               // server-final was an error or did not verify
)

func (s *scramClient) Start() (string, []byte, error) {
	if s.state != scramNew {
		return "", nil, fmt.Errorf("auth: %s: client already started", s.name)
	}
	msg, err := s.conv.Step("")
	if err != nil {
		return "", nil, fmt.Errorf("auth: %s: %w", s.name, err)
	}
	s.state = scramSentFirst
	return s.name, []byte(msg), nil
}

func (s *scramClient) Next(challenge []byte) ([]byte, error) {
	switch s.state {
	case scramSentFirst:
		if e, ok := strings.CutPrefix(string(challenge), "e="); ok {
			s.state = scramFailed
			return nil, fmt.Errorf("auth: %s: server error %q", s.name, e)
		}
		msg, err := s.conv.Step(string(challenge))
		if err != nil {
			s.state = scramFailed
			return nil, fmt.Errorf("auth: %s: server-first message: %w", s.name, err)
		}
		s.state = scramSentFinal
		return []byte(msg), nil
	case scramSentFinal:
		if _, ok := strings.CutPrefix(string(challenge), "e="); ok {
			// The server refused the proof and reports why; an empty
			// response lets it end the exchange with its failure reply.
			s.state = scramFailed
			return []byte{}, nil
		}
		if _, err := s.conv.Step(string(challenge)); err != nil || !s.conv.Valid() {
			s.state = scramFailed
			if err == nil {
				err = errors.New("invalid server signature")
			}
			return nil, fmt.Errorf("auth: %s: %w: %w", s.name, ErrServerNotVerified, err)
		}
		s.state = scramVerified
		return []byte{}, nil
	}
	return nil, unexpectedChallenge(s.name)
}

// Finish implements [Finisher]: it returns an error wrapping
// [ErrServerNotVerified] unless the server's signature was received and
// checked.
func (s *scramClient) Finish() error {
	if s.state != scramVerified {
		return fmt.Errorf("auth: %s: %w: no valid server signature before success", s.name, ErrServerNotVerified)
	}
	return nil
}

var _ Finisher = (*scramClient)(nil)
