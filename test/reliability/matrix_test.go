package reliability_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwire/mailwire/auth"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/scripted"
	"github.com/mailwire/mailwire/transport"
)

// The EAST-style reply matrix: every command a session sends answered with
// every class of reply, on the scripted server (a real server does not
// answer 354 to MAIL or send garbage).

// matrixMode is a transport mode served by scripted.Auto.
type matrixMode struct {
	name     string
	opts     scripted.Options
	cfg      scripted.AutoConfig
	security transport.Security
	lmtp     bool
	auth     bool
	noPool   bool
}

var matrixModes = []matrixMode{
	{name: "plain", cfg: scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")}, security: transport.Plaintext},
	{name: "plain-nopipelining", cfg: scripted.AutoConfig{Caps: scripted.Caps("8BITMIME")}, security: transport.Plaintext},
	{name: "plain-chunking", cfg: scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME", "CHUNKING")}, security: transport.Plaintext},
	{name: "plain-nopool", cfg: scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME")}, security: transport.Plaintext, noPool: true},
	{name: "starttls", cfg: scripted.AutoConfig{Caps: scripted.Caps("STARTTLS", "PIPELINING"), CapsTLS: scripted.Caps("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN")},
		security: transport.StartTLS, auth: true},
	{name: "implicit-tls", opts: scripted.Options{ImplicitTLS: true}, cfg: scripted.AutoConfig{Caps: scripted.Caps("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN")},
		security: transport.ImplicitTLS, auth: true},
	{name: "lmtp-tcp", cfg: scripted.AutoConfig{LMTP: true, Caps: scripted.Caps("PIPELINING", "ENHANCEDSTATUSCODES")}, lmtp: true, security: transport.Plaintext},
	{name: "lmtp-unix", opts: scripted.Options{Network: "unix"}, cfg: scripted.AutoConfig{LMTP: true, Caps: scripted.Caps("PIPELINING")}, lmtp: true, security: transport.Plaintext},
}

var matrixCommands = []string{"GREETING", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", ".", "RSET", "QUIT"}
var replyClasses = []string{"2yz", "3yz", "421", "4yz", "5yz", "malformed", "close", "timeout"}

// applies reports whether the mode sends the command at all.
func (m matrixMode) applies(cmd string) bool {
	switch cmd {
	case "STARTTLS":
		return m.security == transport.StartTLS
	case "AUTH":
		return m.auth
	case "DATA":
		return !m.cfg.Caps.Has("CHUNKING")
	}
	return true
}

// classReply returns the reply text of a class for a command.
func classReply(cmd, class string) string {
	switch class {
	case "2yz":
		return map[string]string{
			"GREETING": "250 2.0.0 not a greeting", "EHLO": "220 auto.test hello", "STARTTLS": "250 2.0.0 fine",
			"AUTH": "250 2.7.0 fine", "MAIL": "251 2.1.0 fine", "RCPT": "251 2.1.5 will forward", "DATA": "250 2.0.0 fine",
			".": "250 2.0.0 queued", "RSET": "250 2.0.0 reset", "QUIT": "250 2.0.0 bye",
		}[cmd]
	case "3yz":
		switch cmd {
		case "DATA":
			return "334 unexpected"
		case "AUTH":
			return "334 Zm9v"
		}
		return "354 unexpected"
	case "421":
		return "421 4.3.2 closing"
	case "4yz":
		return map[string]string{
			"GREETING": "450 4.3.2 busy", "STARTTLS": "454 4.7.0 TLS not available", "AUTH": "454 4.7.0 temporary failure",
			"RCPT": "450 4.2.1 mailbox busy",
		}[cmd]
	case "5yz":
		return map[string]string{
			"GREETING": "554 5.3.2 no service", "EHLO": "554 5.5.1 denied", "STARTTLS": "554 5.7.0 no", "AUTH": "535 5.7.8 bad credentials",
			"MAIL": "550 5.7.1 refused", "RCPT": "550 5.1.1 no such user", "DATA": "554 5.5.1 refused", ".": "554 5.6.0 refused",
			"RSET": "554 5.5.1 no", "QUIT": "554 5.5.1 no",
		}[cmd]
	case "malformed":
		return "hello there"
	}
	return ""
}

func classReplyText(cmd, class string) string {
	r := classReply(cmd, class)
	if r == "" && class == "4yz" {
		r = "451 4.3.0 try later"
	}
	return r
}

// cellAnswer returns the Answer hook of a cell: the first cmd on the first
// connection gets the class; for the RSET cell, the first MAIL is refused
// with 451 so that the next transaction begins with RSET.
func cellAnswer(m matrixMode, cmd, class string) func(c scripted.Command) scripted.Response {
	lmtpDot := m.lmtp && cmd == "."
	return func(c scripted.Command) scripted.Response {
		if cmd == "RSET" && c.Verb == "MAIL" && c.N == 1 && c.Conn == 0 {
			return scripted.Response{Text: scripted.Lines("451 4.3.0 not now")}
		}
		verb := cmd
		if cmd == "EHLO" && m.lmtp {
			verb = "LHLO"
		}
		if c.Verb != verb || c.N != 1 || c.Conn != 0 {
			return scripted.Response{}
		}
		switch class {
		case "close":
			return scripted.Response{Close: true}
		case "timeout":
			return scripted.Response{Stall: true}
		case "421":
			return scripted.Response{Text: scripted.Lines(classReplyText(cmd, class)), Close: true}
		}
		text := scripted.Lines(classReplyText(cmd, class))
		if lmtpDot && class != "malformed" {
			// The class for the first recipient, the second accepted.
			for _, r := range c.Rcpts[1:] {
				text += scripted.Lines("250 2.0.0 <" + r + "> delivered")
			}
		}
		return scripted.Response{Text: text}
	}
}

// cellWant is what a cell must produce.
type cellWant struct {
	outcomes [2][]transport.Outcome // allowed outcomes per recipient
	op       transport.Op           // step named by the error, when every recipient failed
	class    string                 // "transient", "permanent", "unknown", "deadline", "" (success or aggregate), "any"
	noMail   bool                   // no MAIL may be written (security failures)
	noBody   bool                   // the message must not be delivered
	bug      map[string]string      // outcome deviations that match a known bug: outcome string -> bug id
}

var (
	oA = transport.Accepted
	oT = transport.TempFailed
	oP = transport.PermFailed
	oU = transport.Unknown
)

func both(o ...transport.Outcome) [2][]transport.Outcome { return [2][]transport.Outcome{o, o} }

// expectCell is the classification table of the catalogue applied to
// every cell.
func expectCell(m matrixMode, cmd, class string) cellWant {
	opFor := map[string]transport.Op{
		"GREETING": transport.OpGreeting, "EHLO": transport.OpHello, "STARTTLS": transport.OpStartTLS, "AUTH": transport.OpAuth,
		"MAIL": transport.OpMail, "RCPT": transport.OpRcpt, "DATA": transport.OpData, ".": transport.OpEndOfData,
	}
	w := cellWant{op: opFor[cmd]}
	failClass := map[string]string{"421": "transient", "4yz": "transient", "5yz": "permanent", "malformed": "transient",
		"close": "transient", "timeout": "deadline", "2yz": "transient", "3yz": "transient"}[class]
	failOutcome := map[string]transport.Outcome{"5yz": oP}[class]
	if failOutcome == 0 {
		failOutcome = oT
	}
	switch cmd {
	case "GREETING", "EHLO", "STARTTLS", "AUTH":
		w.outcomes, w.class = both(failOutcome), failClass
		w.noMail, w.noBody = true, true
		switch {
		case cmd == "AUTH" && class == "2yz":
			// A 2yz other than 235 to AUTH: taking it as success is lenient
			// but safe (the server decides whom it trusts).
			w.outcomes, w.class, w.noMail, w.noBody = both(oA, oT), "any", false, false
		case cmd == "AUTH" && class == "3yz":
			// An unexpected challenge after PLAIN's initial response: the
			// exchange is cancelled; the failure is the client's refusal.
			w.outcomes, w.class = both(oT, oP), "any"
		}
	case "MAIL", "RCPT":
		if m.cfg.Caps.Has("CHUNKING") && (class == "3yz" || class == "malformed" || class == "close" || class == "timeout") {
			// BDAT ... LAST went with MAIL and RCPT (RFC 3030 allows it):
			// without a usable reply, the server may have the message.
			w = cellWant{outcomes: both(oU), op: transport.OpEndOfData, class: "unknown"}
			break
		}
		fallthrough
	case "MAIL/RCPT":
	}
	switch cmd {
	case "MAIL":
		if w.class == "unknown" {
			break
		}
		w.outcomes, w.class, w.noBody = both(failOutcome), failClass, !m.cfg.Caps.Has("CHUNKING")
		switch class {
		case "2yz":
			w = cellWant{outcomes: both(oA)}
		}
	case "RCPT":
		if w.class == "unknown" {
			break
		}
		switch class {
		case "2yz":
			w = cellWant{outcomes: both(oA)}
		case "4yz":
			w = cellWant{outcomes: [2][]transport.Outcome{{oT}, {oA}}}
		case "5yz":
			w = cellWant{outcomes: [2][]transport.Outcome{{oP}, {oA}}}
		case "3yz":
			// A desynchronised session: temporary for the refused recipient;
			// the other may go on or be abandoned.
			w = cellWant{outcomes: [2][]transport.Outcome{{oT}, {oA, oT}}, class: "any"}
		default:
			w.outcomes, w.class, w.noBody = both(oT), failClass, !m.cfg.Caps.Has("CHUNKING")
		}
	case "DATA":
		w.outcomes, w.class, w.noBody = both(failOutcome), failClass, true
	case ".":
		switch class {
		case "2yz":
			w = cellWant{outcomes: both(oA)}
		case "421", "4yz", "5yz":
			w.outcomes, w.class = both(failOutcome), failClass
			if m.lmtp {
				second := []transport.Outcome{oA}
				if class == "421" {
					// The server closed before that recipient's reply: it may
					// have delivered to it.
					second = []transport.Outcome{oU}
				}
				w = cellWant{outcomes: [2][]transport.Outcome{{failOutcome}, second}}
				if class == "421" {
					w.class = "any"
					w.bug = map[string]string{"temp-failed": "lmtp-421-rest-temp"}
				}
			}
		case "3yz":
			// Not a reply to the end of data: the outcome is unknown.
			w.outcomes, w.class = both(oU), "unknown"
			if m.lmtp {
				w.outcomes = [2][]transport.Outcome{{oU}, {oU, oA}}
				w.class = "any"
			}
		default: // malformed, close, timeout
			w.outcomes, w.class = both(oU), "unknown"
		}
	case "RSET":
		// The first transaction failed (MAIL 451); the second begins with
		// RSET. A failed RSET loses the connection; the pool may replace it.
		w = cellWant{outcomes: both(oA, oT), class: "any"}
	case "QUIT":
		w = cellWant{outcomes: both(oA)}
	}
	return w
}

func outcomeIn(o transport.Outcome, set []transport.Outcome) bool {
	for _, x := range set {
		if x == o {
			return true
		}
	}
	return false
}

func matrixTransport(m matrixMode, s *scripted.Server, debug *lockedBuffer) transport.Transport {
	network := "tcp"
	if m.opts.Network == "unix" {
		network = "unix"
	}
	if m.lmtp {
		tr := &transport.LMTP{Network: network, Addr: s.Addr, LocalName: localName}
		if m.noPool {
			tr.Pool.MaxIdleConns = -1
		}
		if debug != nil {
			tr.Debug = debug
		}
		return tr
	}
	tr := &transport.SMTP{Network: network, Addr: s.Addr, Security: m.security, LocalName: localName,
		TLSConfig: &tls.Config{RootCAs: scripted.CertPool()}}
	if m.noPool {
		tr.Pool.MaxIdleConns = -1
	}
	if m.auth {
		tr.Auth = auth.Config{Credentials: auth.Credentials{Username: testUser, Password: testPassword}, Mechanisms: []string{"PLAIN"}}
	}
	if debug != nil {
		tr.Debug = debug
	}
	return tr
}

// cellResult is one cell's run.
type cellResult struct {
	r          sendResult
	first      sendResult // the RSET cell's first Send
	commands   []string
	deliveries []scripted.Delivery
	received   string
}

const matrixTimeoutDeadline = 2500 * time.Millisecond

func runCell(m matrixMode, cmd, class string) (cellResult, error) {
	cfg := m.cfg
	cfg.Answer = cellAnswer(m, cmd, class)
	opts := m.opts
	opts.Conns = -1
	s, err := scripted.StartWith(opts, scripted.Auto(cfg))
	if err != nil {
		return cellResult{}, err
	}
	tr := matrixTransport(m, s, nil)
	deadline := runDeadline
	if class == "timeout" {
		deadline = matrixTimeoutDeadline
	}
	var out cellResult
	if cmd == "RSET" {
		out.first = sendNoClose(tr, deadline, refEnvelope(), refMessage)
	}
	out.r = send(tr, deadline, refEnvelope(), refMessage)
	s.Close()
	out.commands = s.Commands()
	out.deliveries = s.Deliveries()
	out.received = s.Received()
	return out, nil
}

// sendNoClose is send without closing the idle connections, so that the
// next Send reuses the session.
func sendNoClose(tr transport.Transport, timeout time.Duration, env *envelope.Envelope, msg string) (out sendResult) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	begin := time.Now()
	defer func() {
		out.elapsed = time.Since(begin)
		if p := recover(); p != nil {
			out.panic = p
		}
	}()
	out.res, out.err = tr.Send(ctx, env, strings.NewReader(msg))
	return out
}

func checkCell(m matrixMode, cmd, class string, w cellWant, out cellResult) []string {
	r := out.r
	p := checkShape(r, refEnvelope())
	if len(p) > 0 {
		return p
	}
	deadline := runDeadline
	if class == "timeout" {
		deadline = matrixTimeoutDeadline
	}
	quit := cmd == "QUIT" && r.err == nil
	p = append(p, checkElapsed(r.elapsed, deadline, quit)...)
	p = append(p, checkCloseIdle(r)...)
	for k, rr := range r.res.Rcpts {
		if !outcomeIn(rr.Outcome, w.outcomes[k]) {
			if id := w.bug[rr.Outcome.String()]; id != "" {
				p = append(p, knownf(id, "recipient %d: %v, want %v", k, rr.Outcome, w.outcomes[k]))
				continue
			}
			p = append(p, fmt.Sprintf("recipient %d: %v, want %v", k, rr.Outcome, w.outcomes[k]))
		}
	}
	// Delivery: the server's record and the Result agree.
	acc := map[string]int{}
	for _, d := range out.deliveries {
		for _, a := range d.Accepted {
			acc[a]++
		}
	}
	for k, rr := range r.res.Rcpts {
		n := acc[rcptAddrs[k]]
		switch {
		case n > 1:
			p = append(p, fmt.Sprintf("recipient %d delivered %d times", k, n))
		case rr.Outcome == oA && n != 1:
			p = append(p, fmt.Sprintf("recipient %d reported accepted, server accepted it %d times", k, n))
		case n == 1 && rr.Outcome != oA && rr.Outcome != oU:
			p = append(p, fmt.Sprintf("recipient %d accepted by the server but reported %v", k, rr.Outcome))
		}
	}
	if w.noBody && strings.Contains(out.received, "a line with a leading dot") {
		p = append(p, "the message body was sent")
	}
	if w.noMail {
		for _, c := range out.commands {
			if c == "MAIL" || (cmd == "STARTTLS" && c == "AUTH") {
				p = append(p, fmt.Sprintf("%s written after the %s failure (commands %v)", c, cmd, out.commands))
				break
			}
		}
	}
	allFailed := r.res.Count(oA) == 0
	if r.err == nil || !allFailed || w.class == "any" {
		return p
	}
	oe := opError(r.err)
	if oe == nil {
		if cmd == "RCPT" {
			return append(p, knownf("rcpt-all-refused-not-operror", "error %T %v is not an *OpError", r.err, r.err))
		}
		return append(p, fmt.Sprintf("error %T %v is not an *OpError", r.err, r.err))
	}
	if w.op != "" && oe.Op != w.op {
		if cmd == "DATA" && class == "2yz" && oe.Op == transport.OpMail {
			p = append(p, knownf("data-2yz-wrong-op", "op %s, want %s (%v)", oe.Op, w.op, r.err))
		} else {
			p = append(p, fmt.Sprintf("op %s, want %s (%v)", oe.Op, w.op, r.err))
		}
	}
	switch w.class {
	case "transient":
		if !errors.Is(r.err, transport.ErrTransient) {
			p = append(p, fmt.Sprintf("error %v is not transient", r.err))
		}
	case "permanent":
		if !errors.Is(r.err, transport.ErrPermanent) {
			p = append(p, fmt.Sprintf("error %v is not permanent", r.err))
		}
	case "unknown":
		if !errors.Is(r.err, transport.ErrUnknownOutcome) {
			p = append(p, fmt.Sprintf("error %v does not match ErrUnknownOutcome", r.err))
		}
	case "deadline":
		p = append(p, checkDeadlineErr(r.err, w.op)...)
	}
	return p
}

var (
	figMatrixCells    = newFigure("reply-matrix-cells-classified")
	figMatrixDeadline = newFigure("reply-matrix-runs-within-deadline")
)

// TestReplyMatrix answers each command of each mode with each reply class
// and checks the outcome against the classification table. Cells that end
// by the deadline (the timeout class) run in parallel.
func TestReplyMatrix(t *testing.T) {
	type cell struct {
		m          matrixMode
		cmd, class string
	}
	var serial, parallel []cell
	for _, m := range matrixModes {
		for _, cmd := range matrixCommands {
			if !m.applies(cmd) {
				continue
			}
			for _, class := range replyClasses {
				c := cell{m, cmd, class}
				if class == "timeout" {
					parallel = append(parallel, c)
				} else {
					serial = append(serial, c)
				}
			}
		}
	}
	run := func(c cell) []string {
		out, err := runCell(c.m, c.cmd, c.class)
		if err != nil {
			return []string{err.Error()}
		}
		w := expectCell(c.m, c.cmd, c.class)
		p := checkCell(c.m, c.cmd, c.class, w, out)
		figMatrixDeadline.add(out.r.elapsed <= runDeadline+runSlack)
		return p
	}
	report := func(c cell, p []string) {
		figMatrixCells.add(len(p) == 0)
		if p = dropKnown(p); len(p) > 0 {
			t.Errorf("%s %s answered %s: %s", c.m.name, c.cmd, c.class, strings.Join(p, "\n  "))
		}
	}
	for _, c := range serial {
		snap := takeSnapshot()
		begin := time.Now()
		p := run(c)
		mid := time.Now()
		if l := snap.leaks(leakSettle); l != "" {
			p = append(p, "leak: "+l)
		}
		if d := time.Since(begin); d > 500*time.Millisecond {
			t.Logf("slow cell %s %s %s: run %v, leak check %v", c.m.name, c.cmd, c.class, mid.Sub(begin), time.Since(mid))
		}
		report(c, p)
	}
	snap := takeSnapshot()
	var wg sync.WaitGroup
	for _, c := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			report(c, run(c))
		}()
	}
	wg.Wait()
	if l := snap.leaks(leakSettle); l != "" {
		t.Errorf("after the timeout cells: %s", l)
	}
	t.Logf("%d cells (%d modes x applicable commands x %d classes)", len(serial)+len(parallel), len(matrixModes), len(replyClasses))
	figMatrixCells.log(t)
	figMatrixDeadline.log(t)
}
