package smtptest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// backend creates a session for each EHLO, HELO or LHLO. go-smtp creates a
// new one after STARTTLS, so the session's TLS state never changes.
type backend struct{ cfg *config }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := &session{cfg: b.cfg, hello: c.Hostname(), remote: c.Conn().RemoteAddr()}
	if state, ok := c.TLSConnectionState(); ok {
		s.tls = &state
	}
	return s, nil
}

// session implements go-smtp's Session, LMTPSession and AuthSession. go-smtp
// calls its methods from the connection's goroutine, except that with BDAT
// Data and LMTPData run in a goroutine of their own while later commands are
// read; mu guards the state they share.
type session struct {
	cfg    *config
	hello  string
	remote net.Addr
	tls    *tls.ConnectionState

	mu       sync.Mutex
	authUser string
	from     string
	mailOpts MailOptions
	to       []string
	rcptOpts []RcptOptions
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.LMTPSession = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.mu.Lock()
	authUser := s.authUser
	s.mu.Unlock()
	if s.cfg.requireAuth && authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	mo := mailOptions(opts)
	if mo.RequireTLS && s.tls == nil {
		// go-smtp advertises REQUIRETLS only over TLS but accepts the
		// parameter on any session; RFC 8689 section 4.1 forbids that.
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 10}, Message: "REQUIRETLS requires an encrypted session"}
	}
	if s.cfg.mail != nil {
		if _, err := reply(s.cfg.mail(from, mo), commandReply); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.from, s.mailOpts = from, mo
	s.to, s.rcptOpts = nil, nil
	s.mu.Unlock()
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	ro := rcptOptions(opts)
	if s.cfg.rcpt != nil {
		if _, err := reply(s.cfg.rcpt(to, ro), commandReply); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.to = append(s.to, to)
	s.rcptOpts = append(s.rcptOpts, ro)
	s.mu.Unlock()
	return nil
}

// message returns the transaction's message with data.
func (s *session) message(data []byte, chunked bool) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Message{
		From:        s.from,
		To:          slices.Clone(s.to),
		RcptOptions: slices.Clone(s.rcptOpts),
		MailOptions: s.mailOpts,
		Data:        data,
		Hello:       s.hello,
		TLS:         s.tls != nil,
		AuthUser:    s.authUser,
		Chunked:     chunked,
	}
}

// readData reads the whole content. go-smtp hands BDAT content through an
// *io.PipeReader and DATA content through its own dot-decoding reader.
func readData(r io.Reader, discard bool) (data []byte, size int64, chunked bool, err error) {
	_, chunked = r.(*io.PipeReader)
	if discard {
		size, err = io.Copy(io.Discard, r)
		return nil, size, chunked, err
	}
	data, err = io.ReadAll(r)
	return data, int64(len(data)), chunked, err
}

func (s *session) Data(r io.Reader) error {
	data, size, chunked, err := readData(r, s.cfg.discard)
	if err != nil {
		return err // go-smtp's own replies, such as 552 for a message too large
	}
	m := s.message(data, chunked)
	m.Size = size
	var hookErr error
	if s.cfg.data != nil {
		hookErr = s.cfg.data(&m)
	}
	accepted, err := reply(hookErr, dataReply)
	if accepted {
		m.Delivered = slices.Clone(m.To)
		s.cfg.record(m)
	}
	return err
}

func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, size, chunked, err := readData(r, s.cfg.discard)
	if err != nil {
		return err // the reply for every recipient
	}
	m := s.message(data, chunked)
	m.Size = size
	hookErrs := make([]error, len(m.To))
	switch {
	case s.cfg.lmtpData != nil:
		for i, rcpt := range m.To {
			hookErrs[i] = s.cfg.lmtpData(&m, rcpt)
		}
	case s.cfg.data != nil:
		err := s.cfg.data(&m)
		for i := range hookErrs {
			hookErrs[i] = err
		}
	}
	replies := make([]error, len(m.To))
	for i, rcpt := range m.To {
		var accepted bool
		accepted, replies[i] = reply(hookErrs[i], lmtpReply)
		if accepted {
			m.Delivered = append(m.Delivered, rcpt)
		}
	}
	// Record before the first reply is written.
	if len(m.Delivered) > 0 {
		s.cfg.record(m)
	}
	for i, rcpt := range m.To {
		status.SetStatus(rcpt, replies[i])
	}
	return nil
}

func (s *session) Reset() {
	s.mu.Lock()
	s.from, s.mailOpts = "", MailOptions{}
	s.to, s.rcptOpts = nil, nil
	s.mu.Unlock()
}

func (s *session) Logout() error { return nil }

func (s *session) AuthMechanisms() []string {
	return slices.Clone(s.cfg.mechNames)
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	m, ok := s.cfg.mechs[mech]
	if !ok {
		if len(s.cfg.mechs) == 0 {
			return nil, smtp.ErrAuthUnsupported
		}
		return nil, smtp.ErrAuthUnknownMechanism
	}
	req := &AuthRequest{
		Mechanism:  mech,
		Users:      s.cfg.users,
		Domain:     s.cfg.domain,
		Hello:      s.hello,
		RemoteAddr: s.remote,
		TLS:        s.tls,
	}
	srv := m(req)
	if srv == nil {
		return nil, &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "smtptest: mechanism " + mech + " returned no server"}
	}
	return &authExchange{srv: srv, req: req, sess: s}, nil
}

// authExchange maps a mechanism's errors to replies and records the user
// when the exchange succeeds.
type authExchange struct {
	srv  sasl.Server
	req  *AuthRequest
	sess *session
}

func (a *authExchange) Next(response []byte) (challenge []byte, done bool, err error) {
	challenge, done, err = a.srv.Next(response)
	if err != nil {
		var re *transport.ReplyError
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &re):
			return nil, false, smtpError(re, commandReply)
		case errors.As(err, &se):
			return nil, false, se
		}
		return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	}
	if done {
		if !a.req.loggedIn {
			return nil, false, &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "smtptest: mechanism " + a.req.Mechanism + " succeeded without calling Login"}
		}
		a.sess.mu.Lock()
		a.sess.authUser = a.req.user
		a.sess.mu.Unlock()
	}
	return challenge, done, nil
}

// Where a hook's reply goes; it decides what a ReplyError may say.
type replyKind int

const (
	commandReply replyKind = iota // MAIL, RCPT: only refusals
	dataReply                     // SMTP end of data: 2yz accepts
	lmtpReply                     // one LMTP recipient's reply: 2yz accepts
)

// reply turns a hook's result into what go-smtp sends and reports whether
// it accepts. A *transport.ReplyError is sent exactly; a 2yz code accepts at
// the end of the data and is a hook error at MAIL or RCPT. go-smtp's own
// errors pass through. Any other error is "451 4.3.0".
func reply(err error, kind replyKind) (accepted bool, sent error) {
	if err == nil {
		return true, nil
	}
	var re *transport.ReplyError
	if errors.As(err, &re) {
		if re.Code >= 200 && re.Code < 300 {
			if kind != commandReply {
				return true, smtpError(re, kind)
			}
			return false, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "smtptest: a MAIL or RCPT hook returned a positive reply " + re.Error()}
		}
		return false, smtpError(re, kind)
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return false, se
	}
	return false, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: err.Error()}
}

// smtpError converts re for go-smtp. A zero enhanced code sends none
// (go-smtp would otherwise invent X.0.0). go-smtp writes the enhanced code
// on the last line of a multi-line reply only, so a multi-line message gets
// the code on every line here instead, as RFC 2034 wants; except for an
// LMTP recipient's reply, where go-smtp puts "<rcpt> " before the text.
func smtpError(re *transport.ReplyError, kind replyKind) *smtp.SMTPError {
	if re.EnhancedCode == (transport.EnhancedCode{}) {
		return &smtp.SMTPError{Code: re.Code, EnhancedCode: smtp.NoEnhancedCode, Message: re.Message}
	}
	if kind == lmtpReply || !strings.Contains(re.Message, "\n") {
		return &smtp.SMTPError{Code: re.Code, EnhancedCode: smtp.EnhancedCode(re.EnhancedCode), Message: re.Message}
	}
	lines := strings.Split(re.Message, "\n")
	for i, l := range lines {
		lines[i] = re.EnhancedCode.String() + " " + l
	}
	return &smtp.SMTPError{Code: re.Code, EnhancedCode: smtp.NoEnhancedCode, Message: strings.Join(lines, "\n")}
}

func mailOptions(o *smtp.MailOptions) MailOptions {
	if o == nil {
		return MailOptions{}
	}
	mo := MailOptions{
		Size:       o.Size,
		Body:       envelope.BodyType(o.Body),
		UTF8:       o.UTF8,
		RequireTLS: o.RequireTLS,
		Return:     envelope.DSNReturn(o.Return),
		EnvID:      o.EnvelopeID,
	}
	if o.Auth != nil {
		mo.Auth = *o.Auth
		if mo.Auth == "" {
			mo.Auth = "<>"
		}
	}
	return mo
}

func rcptOptions(o *smtp.RcptOptions) RcptOptions {
	if o == nil {
		return RcptOptions{}
	}
	ro := RcptOptions{
		ORcpt:     o.OriginalRecipient,
		ORcptType: string(o.OriginalRecipientType),
	}
	for _, n := range o.Notify {
		ro.Notify = append(ro.Notify, envelope.DSNNotify(n))
	}
	return ro
}
