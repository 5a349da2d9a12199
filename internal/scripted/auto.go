package scripted

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A Command is one client command as [Auto] saw it, or one point where Auto
// is about to reply without a command of its own.
type Command struct {
	// Verb is the command's verb in upper case ("EHLO", "MAIL", ...), or:
	//   - "GREETING" for the greeting (no client line);
	//   - "AUTH-RESPONSE" for a line answering a 334 challenge;
	//   - "." for the end of the data: the final dot of DATA, or a
	//     BDAT ... LAST chunk (Line then holds the BDAT line);
	//   - "BDAT" for an intermediate BDAT chunk.
	Verb string
	// Line is the client's line without CRLF ("" for the greeting); for
	// "." after DATA, the data as sent, dot-stuffed, without the final dot.
	Line string
	// N counts the commands with this verb in the session, from 1.
	N int
	// TLS reports whether the session is encrypted.
	TLS bool
	// Rcpts are the recipients accepted so far in the transaction.
	Rcpts []string
	// Conn is the connection's number, from 0 (see Options.Conns).
	Conn int
}

// A Response replaces Auto's reply to a command. The zero Response keeps
// the default reply.
type Response struct {
	// Text, if not empty, is sent instead of the default reply: raw bytes,
	// so it must end in CRLF to be a complete reply. Use [Lines] to build
	// one.
	Text string
	// SplitAt, if positive, sends Text in two writes split at this byte,
	// with SplitPause between them.
	SplitAt int
	// Close closes the connection after Text (if any) is sent.
	Close bool
	// Reset closes it with a TCP RST instead.
	Reset bool
	// Stall stops after Text (if any): no more reading or writing until
	// Server.Close, like a server that never answers.
	Stall bool
}

// Lines joins reply lines with CRLF, as Reply does, for Response.Text.
func Lines(lines ...string) string { return joinReply(lines) }

// AutoConfig configures [Auto].
type AutoConfig struct {
	// Domain names the server in the greeting and the EHLO reply;
	// "auto.test" if empty.
	Domain string
	// LMTP makes Auto an LMTP server: LHLO instead of EHLO (EHLO gets a
	// 500), and one reply per accepted recipient at the end of the data.
	LMTP bool
	// Caps are advertised in clear; STARTTLS is accepted only if listed.
	Caps Capabilities
	// CapsTLS are advertised after TLS (STARTTLS or implicit); nil means
	// Caps without STARTTLS.
	CapsTLS Capabilities
	// NoGreeting skips the greeting: the script sent it already.
	NoGreeting bool
	// Answer, if not nil, is called before each reply and may replace it.
	Answer func(cmd Command) Response
}

// A Delivery is a message Auto accepted (a 2yz reply to the end of the
// data) for at least one recipient.
type Delivery struct {
	From     string   // the MAIL FROM line's argument, as sent
	Rcpts    []string // recipients accepted at RCPT
	Accepted []string // recipients the end of data was accepted for
	Data     []byte   // as sent (dot-stuffed for DATA; raw for BDAT)
	TLS      bool
}

// Deliveries returns the messages Auto accepted, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Commands returns the verbs of the commands Auto read, in order ("." for
// each end of data), for tests that assert what was or was not sent.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

type autoState struct {
	cfg      AutoConfig
	s        *Session
	counts   map[string]int
	mail     bool // a MAIL was accepted: a transaction is open
	from     string
	rcpts    []string
	authMech string
	authStep int
	inAuth   bool
	chunks   []byte
}

// Auto answers the rest of the session like a tolerant SMTP or LMTP server:
// a greeting, EHLO/LHLO/HELO with the configured capabilities, STARTTLS (a
// real handshake with the server's certificate), AUTH PLAIN, LOGIN, XOAUTH2
// and OAUTHBEARER accepting any credentials, MAIL, RCPT (503 without MAIL),
// DATA with its data, BDAT, RSET, NOOP, VRFY, HELP and QUIT. It reads
// commands as they come, so a pipelining client is served too, and ends
// when the client closes the connection or after QUIT. AutoConfig.Answer
// may replace any reply, and close, reset or stall instead; the commands
// and accepted messages are recorded ([Server.Commands],
// [Server.Deliveries]).
func Auto(cfg AutoConfig) Step {
	if cfg.Domain == "" {
		cfg.Domain = "auto.test"
	}
	if cfg.CapsTLS == nil {
		cfg.CapsTLS = cfg.Caps.Without("STARTTLS")
	}
	return func(s *Session) error {
		a := &autoState{cfg: cfg, s: s, counts: map[string]int{}}
		return a.run()
	}
}

// errStop ends the script without error: a Response closed or stalled, or
// QUIT was answered.
var errStop = fmt.Errorf("scripted: auto stopped")

func (a *autoState) run() error {
	if !a.cfg.NoGreeting {
		def := Lines("220 " + a.cfg.Domain + " ESMTP scripted")
		if _, err := a.reply("GREETING", "", def); err != nil {
			return stopped(err)
		}
	}
	for {
		line, err := a.s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF || line == "" {
				return nil // the client closed the connection
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if err := a.command(line); err != nil {
			return stopped(err)
		}
	}
}

func stopped(err error) error {
	if err == errStop {
		return nil
	}
	return err
}

func (a *autoState) caps() Capabilities {
	if a.s.tls {
		return a.cfg.CapsTLS
	}
	return a.cfg.Caps
}

func (a *autoState) record(verb string) {
	a.s.srv.mu.Lock()
	a.s.srv.commands = append(a.s.srv.commands, verb)
	a.s.srv.mu.Unlock()
}

// reply asks Answer, sends the reply and carries out the response. It
// returns the text sent.
func (a *autoState) reply(verb, line, def string) (string, error) {
	a.counts[verb]++
	if verb != "GREETING" {
		a.record(verb)
	}
	var resp Response
	if a.cfg.Answer != nil {
		resp = a.cfg.Answer(Command{Verb: verb, Line: line, N: a.counts[verb], TLS: a.s.tls, Rcpts: append([]string(nil), a.rcpts...), Conn: a.s.index})
	}
	text := def
	if resp.Text != "" || resp.Close || resp.Reset || resp.Stall {
		text = resp.Text
	}
	if text != "" {
		var err error
		if resp.SplitAt > 0 {
			err = SendSplit(text, resp.SplitAt)(a.s)
		} else {
			err = a.s.Write([]byte(text))
		}
		if err != nil {
			return text, err
		}
	}
	switch {
	case resp.Reset:
		Reset()(a.s)
		return text, errStop
	case resp.Close:
		a.s.conn.Close()
		return text, errStop
	case resp.Stall:
		<-a.s.srv.stop
		return text, errStop
	}
	return text, nil
}

// codes returns the codes of the complete replies in text, in order.
func codes(text string) []int {
	var out []int
	for _, l := range strings.SplitAfter(text, "\n") {
		if !strings.HasSuffix(l, "\n") {
			break
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 3 || (len(l) > 3 && l[3] == '-') {
			continue
		}
		n, err := strconv.Atoi(l[:3])
		if err != nil {
			out = append(out, 0)
			continue
		}
		out = append(out, n)
	}
	return out
}

func lastCode(text string) int {
	c := codes(text)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)-1]
}

func positive(code int) bool { return code >= 200 && code < 300 }

func (a *autoState) command(line string) error {
	if a.inAuth {
		a.inAuth = false
		return a.authResponse(line)
	}
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	d := a.cfg.Domain
	switch verb {
	case "EHLO", "LHLO":
		def := Lines("500 5.5.1 this is an LMTP server: use LHLO")
		if (verb == "LHLO") == a.cfg.LMTP {
			def = a.caps().Text(d)
		} else if verb == "LHLO" {
			def = Lines("500 5.5.1 this is an SMTP server")
		}
		a.resetTx()
		_, err := a.reply(verb, line, def)
		return err
	case "HELO":
		a.resetTx()
		_, err := a.reply(verb, line, Lines("250 "+d))
		return err
	case "STARTTLS":
		def := Lines("502 5.5.1 STARTTLS not offered")
		if !a.s.tls && a.cfg.Caps.Has("STARTTLS") {
			def = Lines("220 2.0.0 ready to start TLS")
		}
		text, err := a.reply(verb, line, def)
		if err != nil {
			return err
		}
		if lastCode(text) == 220 && len(codes(text)) == 1 && !a.s.tls {
			if err := StartTLS()(a.s); err != nil {
				return err
			}
			a.resetTx()
		}
		return nil
	case "AUTH":
		return a.auth(line, arg)
	case "MAIL":
		def := Lines("250 2.1.0 sender ok")
		if a.mail {
			def = Lines("503 5.5.1 nested MAIL command")
		}
		text, err := a.reply(verb, line, def)
		if positive(lastCode(text)) {
			a.resetTx()
			a.mail, a.from = true, pathArg(arg)
		}
		return err
	case "RCPT":
		def := Lines("250 2.1.5 recipient ok")
		if !a.mail {
			def = Lines("503 5.5.1 need MAIL first")
		}
		text, err := a.reply(verb, line, def)
		if positive(lastCode(text)) {
			a.rcpts = append(a.rcpts, pathArg(arg))
		}
		return err
	case "DATA":
		def := Lines("354 go ahead, end with <CRLF>.<CRLF>")
		if len(a.rcpts) == 0 {
			def = Lines("554 5.5.1 no valid recipients")
		}
		text, err := a.reply(verb, line, def)
		if err != nil || lastCode(text) != 354 || len(codes(text)) != 1 {
			return err
		}
		data, err := readData(a.s.r)
		if err != nil {
			return err
		}
		return a.endOfData(string(data), data)
	case "BDAT":
		return a.bdat(line, arg)
	case "RSET":
		a.resetTx()
		_, err := a.reply(verb, line, Lines("250 2.0.0 reset"))
		return err
	case "NOOP":
		_, err := a.reply(verb, line, Lines("250 2.0.0 ok"))
		return err
	case "VRFY":
		_, err := a.reply(verb, line, Lines("252 2.1.5 cannot verify, will accept"))
		return err
	case "HELP":
		_, err := a.reply(verb, line, Lines("214 2.0.0 scripted server"))
		return err
	case "QUIT":
		if _, err := a.reply(verb, line, Lines("221 2.0.0 bye")); err != nil {
			return err
		}
		a.s.conn.Close()
		return errStop
	}
	_, err := a.reply(verb, line, Lines("500 5.5.2 command not recognized"))
	return err
}

func pathArg(arg string) string {
	_, rest, ok := strings.Cut(arg, ":")
	if !ok {
		return arg
	}
	rest = strings.TrimSpace(rest)
	if i := strings.IndexByte(rest, '>'); strings.HasPrefix(rest, "<") && i > 0 {
		return rest[1:i]
	}
	p, _, _ := strings.Cut(rest, " ")
	return p
}

func (a *autoState) resetTx() {
	a.mail, a.from, a.rcpts, a.chunks = false, "", nil, nil
}

// endOfData answers the end of the data and records the delivery.
func (a *autoState) endOfData(line string, data []byte) error {
	var def string
	if a.cfg.LMTP {
		var b strings.Builder
		for _, r := range a.rcpts {
			b.WriteString("250 2.0.0 <" + r + "> delivered\r\n")
		}
		def = b.String()
	} else {
		def = Lines("250 2.0.0 queued as SCRIPTED")
	}
	text, err := a.reply(".", line, def)
	d := Delivery{From: a.from, Rcpts: append([]string(nil), a.rcpts...), Data: data, TLS: a.s.tls}
	cs := codes(text)
	if a.cfg.LMTP {
		for i, r := range a.rcpts {
			if i < len(cs) && positive(cs[i]) {
				d.Accepted = append(d.Accepted, r)
			}
		}
	} else if len(cs) > 0 && positive(cs[0]) {
		d.Accepted = append(d.Accepted, a.rcpts...)
	}
	if len(d.Accepted) > 0 {
		a.s.srv.mu.Lock()
		a.s.srv.deliveries = append(a.s.srv.deliveries, d)
		a.s.srv.mu.Unlock()
	}
	a.resetTx()
	return err
}

func (a *autoState) bdat(line, arg string) error {
	f := strings.Fields(arg)
	n := -1
	if len(f) > 0 {
		if v, err := strconv.Atoi(f[0]); err == nil && v >= 0 {
			n = v
		}
	}
	if n < 0 {
		_, err := a.reply("BDAT", line, Lines("501 5.5.4 bad BDAT size"))
		return err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(a.s.r, buf); err != nil {
		return err
	}
	last := len(f) > 1 && strings.EqualFold(f[1], "LAST")
	if len(a.rcpts) == 0 {
		// RFC 3030: the chunk is read and refused; a failed transaction
		// is over.
		if last {
			a.resetTx()
		}
		_, err := a.reply("BDAT", line, Lines("503 5.5.1 no valid recipients"))
		return err
	}
	a.chunks = append(a.chunks, buf...)
	if last {
		return a.endOfData(line, a.chunks)
	}
	_, err := a.reply("BDAT", line, Lines(fmt.Sprintf("250 2.0.0 %d octets received", n)))
	return err
}

func (a *autoState) auth(line, arg string) error {
	mech, ir, _ := strings.Cut(arg, " ")
	a.authMech, a.authStep = strings.ToUpper(mech), 0
	var def string
	switch {
	case !a.caps().Has("AUTH"):
		def = Lines("503 5.5.1 AUTH not offered")
	case (a.authMech == "PLAIN" || a.authMech == "XOAUTH2" || a.authMech == "OAUTHBEARER") && ir != "":
		def = Lines("235 2.7.0 authenticated")
	case a.authMech == "PLAIN" || a.authMech == "XOAUTH2" || a.authMech == "OAUTHBEARER":
		def = Lines("334 ")
	case a.authMech == "LOGIN" && ir != "":
		a.authStep = 1
		def = Lines("334 UGFzc3dvcmQ6")
	case a.authMech == "LOGIN":
		def = Lines("334 VXNlcm5hbWU6")
	default:
		def = Lines("504 5.5.4 mechanism not supported")
	}
	text, err := a.reply("AUTH", line, def)
	a.inAuth = lastCode(text) == 334
	return err
}

func (a *autoState) authResponse(line string) error {
	a.authStep++
	def := Lines("235 2.7.0 authenticated")
	switch {
	case line == "*":
		def = Lines("501 5.7.0 authentication cancelled")
	case a.authMech == "LOGIN" && a.authStep == 1:
		def = Lines("334 UGFzc3dvcmQ6")
	}
	text, err := a.reply("AUTH-RESPONSE", line, def)
	a.inAuth = lastCode(text) == 334
	return err
}
