package smtptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-sasl"
)

// ErrAuthFailed is the error the built-in mechanisms return for a wrong user
// name or password. The server answers it, and any error of a mechanism
// that is not a *transport.ReplyError, with "535 5.7.8".
var ErrAuthFailed = errors.New("smtptest: authentication credentials invalid")

// An AuthMechanism is the server side of a SASL mechanism (RFC 4422). The
// server calls it for each AUTH command naming the mechanism and runs the
// exchange with the sasl.Server it returns. Before that server reports
// success, it must call r.Login with the authenticated user name.
//
// The sasl.Server's errors become replies: a *transport.ReplyError is sent as
// it is; any other error is answered "535 5.7.8 Authentication credentials
// invalid".
//
// [Plain], [Login], [CRAMMD5] and [SCRAM] (or [SCRAMConfig.Mechanism])
// check the server's Users; [XOAUTH2], [OAuthBearer], [External] and
// [Anonymous] cover the other built-in client mechanisms; tests add their
// own through [Server.AuthMechanisms].
type AuthMechanism func(r *AuthRequest) sasl.Server

// An AuthRequest describes one AUTH exchange to an [AuthMechanism].
type AuthRequest struct {
	// Mechanism is the mechanism's name, upper case.
	Mechanism string
	// Users is the server's Users map. It must not be modified.
	Users map[string]string
	// Domain is the server's Domain, for challenges that name it.
	Domain string
	// Hello is the EHLO or LHLO argument of the session.
	Hello string
	// RemoteAddr is the client's address.
	RemoteAddr net.Addr
	// TLS is the state of the connection's TLS layer (with the client's
	// certificates, for EXTERNAL); nil if the connection is not encrypted.
	TLS *tls.ConnectionState

	user     string
	loggedIn bool
}

// Login records that the exchange authenticated user. A mechanism calls it
// before its sasl.Server reports success; the server then records user as
// the session's [Message.AuthUser]. If the exchange fails after all, the
// call has no effect.
func (r *AuthRequest) Login(user string) {
	r.user, r.loggedIn = user, true
}

// checkPassword reports whether users holds user with password, in time
// independent of the password's content.
func checkPassword(users map[string]string, user, password string) bool {
	want, ok := users[user]
	match := subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1
	return ok && match
}

// Plain is the server side of PLAIN (RFC 4616), checking the request's
// Users. An authorization identity other than the user name is refused.
func Plain(r *AuthRequest) sasl.Server {
	return sasl.NewPlainServer(func(identity, user, password string) error {
		if identity != "" && identity != user {
			return ErrAuthFailed
		}
		if !checkPassword(r.Users, user, password) {
			return ErrAuthFailed
		}
		r.Login(user)
		return nil
	})
}

// Login is the server side of the obsolete LOGIN mechanism
// (draft-murchison-sasl-login), checking the request's Users. It sends the
// challenges "Username:" and "Password:", and accepts the user name as an
// initial response.
func Login(r *AuthRequest) sasl.Server {
	return &loginServer{r: r}
}

type loginServer struct {
	r     *AuthRequest
	step  int
	user  string
	ended bool
}

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	if s.ended {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	switch s.step {
	case 0:
		s.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.user = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	default:
		s.ended = true
		if !checkPassword(s.r.Users, s.user, string(response)) {
			return nil, false, ErrAuthFailed
		}
		s.r.Login(s.user)
		return nil, true, nil
	}
}

// CRAMMD5 is the server side of CRAM-MD5 (RFC 2195), checking the request's
// Users. Its challenge is "<random.unixtime@domain>".
func CRAMMD5(r *AuthRequest) sasl.Server {
	return &cramMD5Server{r: r}
}

type cramMD5Server struct {
	r         *AuthRequest
	challenge []byte
	ended     bool
}

func (s *cramMD5Server) Next(response []byte) (challenge []byte, done bool, err error) {
	if s.ended {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	if s.challenge == nil {
		if len(response) > 0 {
			// CRAM-MD5 has no initial response.
			s.ended = true
			return nil, false, sasl.ErrUnexpectedClientResponse
		}
		domain := s.r.Domain
		if domain == "" {
			domain = "localhost"
		}
		s.challenge = fmt.Appendf(nil, "<%s.%s@%s>", rand.Text(), strconv.FormatInt(time.Now().Unix(), 10), domain)
		return s.challenge, false, nil
	}
	s.ended = true
	user, digest, ok := bytes.Cut(response, []byte(" "))
	if !ok {
		return nil, false, ErrAuthFailed
	}
	password, known := s.r.Users[string(user)]
	mac := hmac.New(md5.New, []byte(password))
	mac.Write(s.challenge)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), bytes.ToLower(digest)) || !known {
		return nil, false, ErrAuthFailed
	}
	s.r.Login(string(user))
	return nil, true, nil
}
