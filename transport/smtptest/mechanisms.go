package smtptest

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/xdg-go/scram"

	"github.com/mailwire/mailwire/transport"
)

// This file holds the server side of the mechanisms beyond PLAIN, LOGIN and
// CRAM-MD5 that mailwire's auth package speaks: SCRAM (with and without
// channel binding), XOAUTH2, OAUTHBEARER, EXTERNAL and ANONYMOUS. SCRAM runs
// on github.com/xdg-go/scram, like the client side.

// errEncryptionRequired is the reply to a -PLUS mechanism on a session
// without TLS (RFC 4954 section 6).
var errEncryptionRequired = &transport.ReplyError{Code: 538, EnhancedCode: transport.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}

// errMalformed is the reply to a message that does not follow the
// mechanism's syntax.
func errMalformed(mech string) error {
	return &transport.ReplyError{Code: 501, EnhancedCode: transport.EnhancedCode{5, 5, 2}, Message: "Malformed " + mech + " response"}
}

// refused is a sasl.Server that fails at once with err.
type refused struct{ err error }

func (r refused) Next([]byte) ([]byte, bool, error) { return nil, false, r.err }

// authFailed returns a 535 5.7.8 reply whose text gives reason after the
// usual words; reason must not hold a secret.
func authFailed(reason string) error {
	return &transport.ReplyError{Code: 535, EnhancedCode: transport.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid (" + reason + ")"}
}

// ChannelBinding returns the TLS channel binding of a connection as SCRAM's
// -PLUS mechanisms use it (RFC 5802 section 6), computed from one end's
// connection state: type "tls-exporter" (RFC 9266, 32 bytes of keying
// material exported with the label "EXPORTER-Channel-Binding") on TLS 1.3,
// and "tls-unique" (RFC 5929, the first Finished message) on earlier
// versions. Both ends of one connection compute the same data; two
// connections never do. It fails for a nil state, an incomplete handshake,
// a TLS 1.2 session without a tls-unique value (a resumption without the
// extended master secret), and a state that cannot export keying material
// (one built by hand).
func ChannelBinding(cs *tls.ConnectionState) (cbType string, data []byte, err error) {
	switch {
	case cs == nil:
		return "", nil, errors.New("smtptest: channel binding: no TLS")
	case !cs.HandshakeComplete:
		return "", nil, errors.New("smtptest: channel binding: TLS handshake not complete")
	case cs.Version < tls.VersionTLS13:
		if len(cs.TLSUnique) == 0 {
			return "", nil, errors.New("smtptest: channel binding: no tls-unique value for this TLS session")
		}
		return string(scram.ChannelBindingTLSUnique), slices.Clone(cs.TLSUnique), nil
	}
	data, err = exportKeyingMaterial(cs)
	if err != nil {
		return "", nil, err
	}
	return string(scram.ChannelBindingTLSExporter), data, nil
}

// exportKeyingMaterial guards against a ConnectionState built by hand,
// whose ExportKeyingMaterial panics.
func exportKeyingMaterial(cs *tls.ConnectionState) (data []byte, err error) {
	defer func() {
		if recover() != nil {
			data, err = nil, errors.New("smtptest: channel binding: TLS state cannot export keying material")
		}
	}()
	data, err = cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		return nil, errors.New("smtptest: channel binding: " + err.Error())
	}
	return data, nil
}

// SCRAM is the server side of the SCRAM family, with the defaults of
// [SCRAMConfig]: SCRAM-SHA-1 (RFC 5802), SCRAM-SHA-256 (RFC 7677),
// SCRAM-SHA-512, and their channel-bound -PLUS forms, chosen by the
// request's Mechanism. Register it under each name the server is to
// offer:
//
//	s.AuthMechanisms = map[string]smtptest.AuthMechanism{
//		"SCRAM-SHA-256":      smtptest.SCRAM,
//		"SCRAM-SHA-256-PLUS": smtptest.SCRAM,
//	}
//
// It checks the request's Users. The exchange is the one RFC 4954 gives
// for SMTP: the client-first message as the initial response (or after an
// empty 334), server-first in a 334, client-final, server-final in a 334,
// an empty response from the client, then 235. A wrong password gets
// "e=invalid-proof" as server-final and, after the client's answer, 535
// 5.7.8; an unknown user is treated the same way, with a made-up salt, so
// that the replies do not tell whether the user exists. An authorization
// identity other than the user name is refused.
//
// The -PLUS forms require TLS (538 5.7.11 otherwise) and the "p" flag with
// the binding type and data [ChannelBinding] computes from the server's own
// connection state; anything else fails with 535, and a connection whose
// binding cannot be computed gets 454 4.7.0. Under a name without
// "-PLUS" the server accepts the "n" and "y" flags and refuses "p". A name
// that is not one of the four is refused with 504 5.7.4.
func SCRAM(r *AuthRequest) sasl.Server { return SCRAMConfig{}.server(r) }

// SCRAMConfig configures the server side of SCRAM for tests that need
// something other than [SCRAM]'s defaults: a man-in-the-middle's channel
// binding, a downgrade check, a forged server signature. The zero value is
// SCRAM's behaviour.
type SCRAMConfig struct {
	// Iterations is the PBKDF2 iteration count the server announces; 0
	// means 4096, the least RFC 7677 allows clients to accept.
	Iterations int

	// ChannelBinding, if not nil, replaces [ChannelBinding]: it returns
	// the channel binding type and data the server expects, given the
	// server's connection state. A function that returns other data plays
	// a man-in-the-middle that relays the exchange between two TLS
	// connections: a client that binds the exchange to its own connection
	// must then be refused.
	ChannelBinding func(cs *tls.ConnectionState) (cbType string, data []byte, err error)

	// PlusAdvertised tells the mechanisms without "-PLUS" that the server
	// offers a -PLUS one on TLS sessions (RFC 5802 section 6). A client
	// that supports channel binding and sends the "y" flag has then not
	// seen that offer, as when an attacker stripped it from the EHLO reply,
	// and is refused with 535. Set it when a -PLUS mechanism is offered,
	// or leave the -PLUS mechanism out of AuthMechanisms to play the
	// stripping. It has no effect on sessions without TLS.
	PlusAdvertised bool

	// ServerFinal, if not nil, is called with the server-final message
	// ("v=" and the server signature) of a successful exchange and returns
	// the message to send instead, for tests of a client that must notice
	// a forged signature. If it returns the empty string, the server sends
	// no server-final message and accepts at once with 235, as an impostor
	// that cannot compute the signature might. The server accepts the
	// client either way.
	ServerFinal func(serverFinal string) string
}

// Mechanism returns the server side of SCRAM configured by cfg, to
// register under the names of the SCRAM mechanisms like [SCRAM].
func (cfg SCRAMConfig) Mechanism() AuthMechanism { return cfg.server }

// scramHash returns the hash and the channel binding requirement of a
// SCRAM mechanism name.
func scramHash(mech string) (hash scram.HashGeneratorFcn, plus, ok bool) {
	switch mech {
	case "SCRAM-SHA-1":
		return scram.SHA1, false, true
	case "SCRAM-SHA-1-PLUS":
		return scram.SHA1, true, true
	case "SCRAM-SHA-256":
		return scram.SHA256, false, true
	case "SCRAM-SHA-256-PLUS":
		return scram.SHA256, true, true
	case "SCRAM-SHA-512":
		return scram.SHA512, false, true
	case "SCRAM-SHA-512-PLUS":
		return scram.SHA512, true, true
	}
	return nil, false, false
}

func (cfg SCRAMConfig) server(r *AuthRequest) sasl.Server {
	hash, plus, ok := scramHash(strings.ToUpper(r.Mechanism))
	if !ok {
		return refused{&transport.ReplyError{Code: 504, EnhancedCode: transport.EnhancedCode{5, 7, 4}, Message: "smtptest: SCRAM cannot serve mechanism " + r.Mechanism}}
	}
	if plus && r.TLS == nil {
		return refused{errEncryptionRequired}
	}
	iters := cfg.Iterations
	if iters <= 0 {
		iters = 4096
	}
	srv, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) {
		return scramCredentials(hash, r.Users, user, iters), nil
	})
	if err != nil {
		return refused{err}
	}

	var cb scram.ChannelBinding
	if r.TLS != nil && (plus || cfg.PlusAdvertised) {
		binding := cfg.ChannelBinding
		if binding == nil {
			binding = ChannelBinding
		}
		cbType, data, err := binding(r.TLS)
		if err != nil {
			if plus {
				return refused{&transport.ReplyError{Code: 454, EnhancedCode: transport.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure (no channel binding: " + err.Error() + ")"}}
			}
		} else {
			cb = scram.ChannelBinding{Type: scram.ChannelBindingType(cbType), Data: slices.Clone(data)}
		}
	}
	s := &scramServer{r: r, plus: plus, final: cfg.ServerFinal}
	switch {
	case plus:
		s.conv = srv.NewConversationWithChannelBindingRequired(cb)
	case cb.IsSupported():
		s.conv = srv.NewConversationWithChannelBinding(cb)
	default:
		s.conv = srv.NewConversation()
	}
	return s
}

// scramCredentials returns what a server stores for user: derived from
// the password in users, or from a random one for an unknown user, so
// that the exchange fails at the proof as for a wrong password.
func scramCredentials(hash scram.HashGeneratorFcn, users map[string]string, user string, iters int) scram.StoredCredentials {
	kf := scram.KeyFactors{Salt: string(randomBytes(16)), Iters: iters}
	if password, ok := users[user]; ok {
		if c, err := hash.NewClient(user, password, ""); err == nil {
			if sc, err := c.GetStoredCredentialsWithError(kf); err == nil {
				return sc
			}
		}
	}
	c, err := hash.NewClientUnprepped(user, rand.Text(), "")
	if err == nil {
		if sc, err := c.GetStoredCredentialsWithError(kf); err == nil {
			return sc
		}
	}
	// Keys no proof can match.
	return scram.StoredCredentials{KeyFactors: kf, StoredKey: randomBytes(32), ServerKey: randomBytes(32)}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// scramServer adapts a scram.ServerConversation to sasl.Server and to the
// SMTP exchange: server-final goes in a 334 challenge that the client
// acknowledges with an empty response.
type scramServer struct {
	r     *AuthRequest
	conv  *scram.ServerConversation
	plus  bool
	final func(string) string

	step    int   // messages from the client handled
	waiting bool  // server-final (or an "e=" message) sent
	failure error // the reply after the client's acknowledgement, if failing
	ended   bool
}

func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	if s.ended {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	if s.waiting {
		s.ended = true
		if s.failure != nil {
			return nil, false, s.failure
		}
		if len(response) != 0 {
			return nil, false, authFailed("SCRAM: non-empty response to server-final")
		}
		s.r.Login(s.conv.Username())
		return nil, true, nil
	}
	if response == nil && s.step == 0 {
		// No initial response: ask for the client-first message.
		return []byte{}, false, nil
	}
	s.step++
	if s.step == 1 {
		return s.first(string(response))
	}
	return s.clientFinal(string(response))
}

// first handles the client-first message. Its failures end the exchange
// at once: server-first has no error form (RFC 5802 section 7).
func (s *scramServer) first(msg string) ([]byte, bool, error) {
	flag := msg[:min(len(msg), 1)]
	if s.plus && flag != "p" {
		s.ended = true
		return nil, false, authFailed("SCRAM: channel binding required")
	}
	if !s.plus && flag == "p" {
		s.ended = true
		return nil, false, authFailed("SCRAM: channel binding is for the -PLUS mechanism")
	}
	out, err := s.conv.Step(msg)
	if err != nil {
		s.ended = true
		if e, ok := strings.CutPrefix(out, "e="); ok {
			return nil, false, authFailed("SCRAM: " + e)
		}
		return nil, false, errMalformed("SCRAM")
	}
	if z := s.conv.AuthzID(); z != "" && z != s.conv.Username() {
		s.ended = true
		return nil, false, ErrAuthFailed
	}
	return []byte(out), false, nil
}

// clientFinal handles the client-final message: it answers with
// server-final, or with an "e=" message and a 535 after the client's
// acknowledgement.
func (s *scramServer) clientFinal(msg string) ([]byte, bool, error) {
	out, err := s.conv.Step(msg)
	if err != nil {
		e, ok := strings.CutPrefix(out, "e=")
		if !ok {
			s.ended = true
			return nil, false, errMalformed("SCRAM")
		}
		s.waiting, s.failure = true, authFailed("SCRAM: "+e)
		return []byte(out), false, nil
	}
	if s.final != nil {
		out = s.final(out)
		if out == "" {
			s.ended = true
			s.r.Login(s.conv.Username())
			return nil, true, nil
		}
	}
	s.waiting = true
	return []byte(out), false, nil
}

// XOAUTH2 returns the server side of XOAUTH2, the OAuth 2.0 mechanism of
// Google and Microsoft, accepting for each user name of tokens the bearer
// token it maps to (tokens is copied). The client sends
// "user=NAME^Aauth=Bearer TOKEN^A^A" as its initial response, or after an
// empty 334. A token that does not match gets a JSON error report in a 334
// challenge, which the client must answer with an empty response; the
// server then replies 535 5.7.8. A malformed message gets 501 5.5.2.
func XOAUTH2(tokens map[string]string) AuthMechanism {
	tokens = maps.Clone(tokens)
	return func(r *AuthRequest) sasl.Server {
		return &bearerServer{r: r, tokens: tokens, mech: "XOAUTH2", parse: parseXOAUTH2,
			report: `{"status":"401","schemes":"Bearer"}`, ack: []byte{}}
	}
}

// OAuthBearer returns the server side of OAUTHBEARER (RFC 7628),
// accepting for each user name of tokens the bearer token it maps to
// (tokens is copied). The user is the authorization identity of the GS2
// header ("a=", with "=2C" and "=3D" decoded); without one, the user whose
// token the client sent. The host and port fields are accepted and not
// checked. A token that does not match gets the JSON error report of RFC
// 7628 section 3.2.2 in a 334 challenge, which the client must answer with
// the single byte 0x01; the server then replies 535 5.7.8. A malformed
// message gets 501 5.5.2.
func OAuthBearer(tokens map[string]string) AuthMechanism {
	tokens = maps.Clone(tokens)
	return func(r *AuthRequest) sasl.Server {
		return &bearerServer{r: r, tokens: tokens, mech: "OAUTHBEARER", parse: parseOAuthBearer,
			report: `{"status":"invalid_token"}`, ack: []byte{0x01}}
	}
}

// bearerServer is the server side of XOAUTH2 and OAUTHBEARER, which
// differ in their message syntax, their error report and the client's
// answer to it.
type bearerServer struct {
	r      *AuthRequest
	tokens map[string]string
	mech   string
	parse  func(msg string) (user, token string, ok bool)
	report string // JSON error report
	ack    []byte // the client's answer to the report

	asked, reported, ended bool
}

func (s *bearerServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case s.ended:
		return nil, false, sasl.ErrUnexpectedClientResponse
	case s.reported:
		s.ended = true
		if string(response) != string(s.ack) {
			return nil, false, errMalformed(s.mech)
		}
		return nil, false, ErrAuthFailed
	case response == nil && !s.asked:
		s.asked = true
		return []byte{}, false, nil // no initial response: ask for it
	}
	user, token, ok := s.parse(string(response))
	if !ok {
		s.ended = true
		return nil, false, errMalformed(s.mech)
	}
	if user == "" {
		user = s.userOf(token)
	}
	if user == "" || !checkPassword(s.tokens, user, token) {
		s.reported = true
		return []byte(s.report), false, nil
	}
	s.ended = true
	s.r.Login(user)
	return nil, true, nil
}

// userOf returns the user whose token is token, or "".
func (s *bearerServer) userOf(token string) string {
	found := ""
	for _, u := range slices.Sorted(maps.Keys(s.tokens)) {
		if subtle.ConstantTimeCompare([]byte(s.tokens[u]), []byte(token)) == 1 && found == "" {
			found = u
		}
	}
	return found
}

// parseXOAUTH2 parses "user=NAME^Aauth=Bearer TOKEN^A^A".
func parseXOAUTH2(msg string) (user, token string, ok bool) {
	body, ok := strings.CutSuffix(msg, "\x01\x01")
	if !ok {
		return "", "", false
	}
	fields := strings.Split(body, "\x01")
	if len(fields) != 2 {
		return "", "", false
	}
	user, ok1 := strings.CutPrefix(fields[0], "user=")
	token, ok2 := cutBearer(fields[1])
	if !ok1 || !ok2 || user == "" {
		return "", "", false
	}
	return user, token, true
}

// parseOAuthBearer parses the client's message of RFC 7628 section 3.1:
// a GS2 header, then key=value pairs each after a 0x01, then 0x01 0x01.
func parseOAuthBearer(msg string) (user, token string, ok bool) {
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok || (flag != "n" && flag != "y") {
		return "", "", false
	}
	authzid, kvs, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", false
	}
	if authzid != "" {
		name, ok := strings.CutPrefix(authzid, "a=")
		if !ok {
			return "", "", false
		}
		if user, ok = decodeSASLName(name); !ok || user == "" {
			return "", "", false
		}
	}
	kvs, ok1 := strings.CutPrefix(kvs, "\x01")
	kvs, ok2 := strings.CutSuffix(kvs, "\x01\x01")
	if !ok1 || !ok2 {
		return "", "", false
	}
	seen := false
	for kv := range strings.SplitSeq(kvs, "\x01") {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" || strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return "", "", false
		}
		if key == "auth" {
			if seen {
				return "", "", false
			}
			if token, ok = cutBearer(kv); !ok {
				return "", "", false
			}
			seen = true
		}
	}
	return user, token, seen
}

// cutBearer returns the token of the field "auth=Bearer TOKEN" (the
// scheme is case-insensitive); a field that is not one, or has an empty
// token, is not ok.
func cutBearer(field string) (string, bool) {
	const scheme = "bearer "
	v, ok := strings.CutPrefix(field, "auth=")
	if !ok || len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	return v[len(scheme):], true
}

// decodeSASLName undoes the "=2C" and "=3D" escapes of RFC 5801 section 4.
func decodeSASLName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',':
			return "", false
		case '=':
			switch s[i+1 : min(i+3, len(s))] {
			case "2C":
				b.WriteByte(',')
			case "3D":
				b.WriteByte('=')
			default:
				return "", false
			}
			i += 2
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), true
}

// External is the server side of EXTERNAL (RFC 4422 appendix A) with a
// TLS client certificate. It accepts a client whose certificate the
// server's TLS configuration verified: set the Server's TLS ClientAuth to
// tls.VerifyClientCertIfGiven or tls.RequireAndVerifyClientCert, and
// ClientCAs, before Start. The user is the certificate's subject common
// name; the client may name it as its authorization identity, or send an
// empty one. A session without a verified certificate, or a certificate
// without a common name, or any other authorization identity, gets 535
// 5.7.8. Users is not consulted.
func External(r *AuthRequest) sasl.Server {
	return sasl.NewExternalServer(func(identity string) error {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return authFailed("no verified TLS client certificate")
		}
		user := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if user == "" {
			return authFailed("client certificate without a common name")
		}
		if identity != "" && identity != user {
			return ErrAuthFailed
		}
		r.Login(user)
		return nil
	})
}

// Anonymous is the server side of ANONYMOUS (RFC 4505): it accepts any
// client, on any session, and records the user as "anonymous". The trace
// information the client sends (its initial response, or its answer to an
// empty 334) is not kept; one longer than 255 characters or not valid
// UTF-8 gets 535 5.7.8.
func Anonymous(r *AuthRequest) sasl.Server {
	return sasl.NewAnonymousServer(func(trace string) error {
		if !utf8.ValidString(trace) || utf8.RuneCountInString(trace) > 255 {
			return authFailed("ANONYMOUS: invalid trace")
		}
		r.Login("anonymous")
		return nil
	})
}
