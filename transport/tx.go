package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/dataenc"
	"github.com/mailwire/mailwire/internal/wire"
	"github.com/mailwire/mailwire/smtptrace"
)

// ErrNotAllAccepted is the error of recipients the server accepted in a
// transaction that RequireAllRecipients abandoned because another recipient
// was refused; nothing was sent to anyone.
var ErrNotAllAccepted = errors.New("transport: not every recipient was accepted; nothing sent")

// MessageError reports that reading the message failed. The transaction was
// abandoned before its end, so nothing was delivered; whether to try again
// is the caller's decision, and the error matches no class.
type MessageError struct {
	Err error
}

// Error returns "transport: reading message: " and the cause.
func (e *MessageError) Error() string { return "transport: reading message: " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *MessageError) Unwrap() error { return e.Err }

// Send runs one mail transaction on the connection. See [Transport] for
// the contract. A Conn whose previous transaction did not complete sends
// RSET first.
func (c *Conn) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.send(ctx, env, msg)
}

// tx is the state of one transaction.
type tx struct {
	c       *Conn
	ctx     context.Context
	env     *envelope.Envelope
	res     *Result
	pending []int // indexes of recipients accepted at RCPT, awaiting the data
}

func newResult(env *envelope.Envelope) *Result {
	res := &Result{Rcpts: make([]RcptResult, len(env.To))}
	for i, r := range env.To {
		res.Rcpts[i] = RcptResult{Addr: r.Addr}
	}
	return res
}

// set records the outcome of recipient i.
func (t *tx) set(i int, o Outcome, rep *wire.Reply, err error) {
	rr := &t.res.Rcpts[i]
	rr.Outcome = o
	rr.Reply = toReply(rep)
	rr.Err = err
	rr.Attempts = 1
}

// failOpen gives every recipient not yet decided the outcome o.
func (t *tx) failOpen(o Outcome, rep *wire.Reply, err error) {
	for i := range t.res.Rcpts {
		if t.res.Rcpts[i].Outcome == NotAttempted {
			t.set(i, o, rep, err)
		}
	}
}

// failPending gives the recipients accepted at RCPT the outcome o.
func (t *tx) failPending(o Outcome, rep *wire.Reply, err error) {
	for _, i := range t.pending {
		t.set(i, o, rep, err)
	}
	t.pending = nil
}

func replyOutcome(code int) Outcome {
	if code >= 400 && code < 500 {
		return TempFailed
	}
	return PermFailed
}

func (c *Conn) send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	if env == nil {
		return nil, c.cfg.opErr(OpEnvelope, &envelope.Error{Field: "envelope", Err: envelope.ErrNoRecipients})
	}
	t := &tx{c: c, ctx: ctx, env: env, res: newResult(env)}
	if err := env.Validate(); err != nil {
		t.failOpen(PermFailed, nil, err)
		return t.res, c.cfg.opErr(OpEnvelope, err)
	}
	if err := c.usable(); err != nil {
		t.failOpen(TempFailed, nil, err)
		return t.res, c.cfg.opErr(OpMail, err)
	}
	if err := ctx.Err(); err != nil {
		t.failOpen(TempFailed, nil, context.Cause(ctx))
		return t.res, c.cfg.opErr(OpMail, context.Cause(ctx))
	}
	mail, rcpts, err := c.buildCommands(env, msg)
	if err != nil {
		t.failOpen(PermFailed, nil, err)
		return t.res, c.cfg.opErr(OpEnvelope, err)
	}
	unbind := c.w.Bind(ctx)
	defer unbind()
	err = t.run(mail, rcpts, msg)
	if c.broken == nil && ctx.Err() != nil {
		// The context interrupted I/O: the connection is out of step.
		c.broken = context.Cause(ctx)
	}
	return t.res, err
}

// buildCommands checks the envelope against the server's extensions and
// renders the MAIL and RCPT lines. Nothing is written if it fails.
func (c *Conn) buildCommands(env *envelope.Envelope, msg io.Reader) (string, []string, error) {
	ext := c.ext
	utf8 := env.NeedsUTF8()
	if utf8 && !ext.Has("SMTPUTF8") {
		return "", nil, &NotSupportedError{Extension: "SMTPUTF8", Detail: "the envelope has non-ASCII addresses"}
	}
	switch env.Body {
	case envelope.Body8BitMIME:
		if !ext.Has("8BITMIME") {
			return "", nil, &NotSupportedError{Extension: "8BITMIME"}
		}
	case envelope.BodyBinaryMIME:
		if !ext.Has("BINARYMIME") || !ext.Has("CHUNKING") {
			return "", nil, &NotSupportedError{Extension: "BINARYMIME"}
		}
		if c.cfg.noChunking {
			return "", nil, &NotSupportedError{Extension: "BINARYMIME", Detail: "BINARYMIME needs BDAT, which is disabled"}
		}
	}
	if env.RequireTLS && (!ext.Has("REQUIRETLS") || c.tls == nil) {
		return "", nil, &NotSupportedError{Extension: "REQUIRETLS"}
	}
	dsn := env.Return != "" || env.EnvID != ""
	for _, r := range env.To {
		if len(r.Notify) > 0 || r.ORcpt != "" {
			dsn = true
		}
	}
	if dsn && !ext.Has("DSN") {
		return "", nil, &NotSupportedError{Extension: "DSN"}
	}
	size := env.Size
	if size == 0 {
		size = knownSize(msg)
	}
	limit, hasSize := ext.MaxSize()
	if hasSize && limit > 0 && size > limit {
		return "", nil, &SizeError{Size: size, Limit: limit}
	}

	var b strings.Builder
	b.WriteString("MAIL FROM:<")
	b.WriteString(env.From)
	b.WriteByte('>')
	if hasSize && size > 0 {
		b.WriteString(" SIZE=")
		b.WriteString(strconv.FormatInt(size, 10))
	}
	switch {
	case env.Body != "":
		b.WriteString(" BODY=")
		b.WriteString(string(env.Body))
	case ext.Has("8BITMIME"):
		b.WriteString(" BODY=8BITMIME")
	}
	if utf8 {
		b.WriteString(" SMTPUTF8")
	}
	if env.RequireTLS {
		b.WriteString(" REQUIRETLS")
	}
	if env.Return != "" {
		b.WriteString(" RET=")
		b.WriteString(string(env.Return))
	}
	if env.EnvID != "" {
		b.WriteString(" ENVID=")
		b.WriteString(envelope.XText(env.EnvID))
	}
	mail := b.String()
	if err := wire.CheckCommand(mail); err != nil {
		return "", nil, &envelope.Error{Field: "from", Err: envelope.ErrControlChar}
	}
	rcpts := make([]string, len(env.To))
	for i, r := range env.To {
		b.Reset()
		b.WriteString("RCPT TO:<")
		b.WriteString(r.Addr)
		b.WriteByte('>')
		if len(r.Notify) > 0 {
			b.WriteString(" NOTIFY=")
			for j, n := range r.Notify {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(string(n))
			}
		}
		if r.ORcpt != "" {
			b.WriteString(" ORCPT=")
			b.WriteString(r.ORcptParam(utf8))
		}
		rcpts[i] = b.String()
		if err := wire.CheckCommand(rcpts[i]); err != nil {
			return "", nil, &envelope.Error{Field: "to[" + strconv.Itoa(i) + "]", Err: envelope.ErrControlChar}
		}
	}
	return mail, rcpts, nil
}

// knownSize returns the size of msg if it can be known without reading it.
func knownSize(msg io.Reader) int64 {
	switch m := msg.(type) {
	case *bytes.Reader:
		return int64(m.Len())
	case *strings.Reader:
		return int64(m.Len())
	case *bytes.Buffer:
		return int64(m.Len())
	case *os.File:
		fi, err := m.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0
		}
		off, err := m.Seek(0, io.SeekCurrent)
		if err != nil || off > fi.Size() {
			return 0
		}
		return fi.Size() - off
	}
	return 0
}

// run writes the transaction and reads its replies.
func (t *tx) run(mail string, rcpts []string, msg io.Reader) error {
	c := t.c
	pipelining := c.ext.Has("PIPELINING") && !c.cfg.noPipelining
	rset := c.dirty
	c.dirty = true
	// DATA joins the pipelined group unless the decision to send it depends
	// on the RCPT replies: all-or-nothing, and LMTP (RFC 2033 4.2 forbids
	// DATA without an accepted recipient).
	pipeData := pipelining && !c.cfg.requireAll && !c.cfg.lmtp

	if rset {
		if err := c.w.WriteCommand("RSET"); err != nil {
			return t.abort(OpMail, err)
		}
		if !pipelining {
			if err := t.readRset(false); err != nil {
				return err
			}
		}
	}
	smtptrace.Start(t.ctx, smtptrace.PhaseMail, -1)
	c.w.WriteCommand(mail)
	if pipelining {
		for _, l := range rcpts {
			c.w.WriteCommand(l)
		}
		if pipeData {
			c.w.WriteCommand("DATA")
		}
		c.w.SetDeadline(timeoutCommand)
		if err := c.w.Flush(); err != nil {
			smtptrace.Done(t.ctx, smtptrace.PhaseMail, phaseInfo(nil, err))
			return t.abort(OpMail, err)
		}
		if rset {
			if err := t.readRset(true); err != nil {
				smtptrace.Done(t.ctx, smtptrace.PhaseMail, phaseInfo(nil, err))
				return err
			}
		}
	}
	rep, err := t.read(pipelining, timeoutCommand)
	smtptrace.Done(t.ctx, smtptrace.PhaseMail, phaseInfo(rep, err))
	if err != nil {
		return t.abort(OpMail, err)
	}
	if !rep.Positive() {
		re := replyErr(rep)
		t.failOpen(replyOutcome(rep.Code), rep, re)
		if pipelining && c.broken == nil {
			// Collect the replies to the pipelined RCPTs and DATA.
			t.drain(len(rcpts), pipeData)
		}
		c.dirty = rep.Code != 421
		return c.cfg.opErr(OpMail, re)
	}

	for i, l := range rcpts {
		smtptrace.Start(t.ctx, smtptrace.PhaseRcpt, i)
		if !pipelining {
			c.w.WriteCommand(l)
		}
		rep, err := t.read(pipelining, timeoutCommand)
		pi := phaseInfo(rep, err)
		pi.Index = i
		smtptrace.Done(t.ctx, smtptrace.PhaseRcpt, pi)
		if err != nil {
			return t.abort(OpRcpt, err)
		}
		switch {
		case rep.Positive():
			t.pending = append(t.pending, i)
		case rep.Code == 421:
			t.set(i, TempFailed, rep, replyErr(rep))
			t.failPending(TempFailed, rep, replyErr(rep))
			t.failOpen(TempFailed, rep, replyErr(rep))
			return c.cfg.opErr(OpRcpt, replyErr(rep))
		case rep.Code == 552:
			// RFC 5321 4.5.3.1.10: 552 to RCPT means too many recipients.
			t.set(i, TempFailed, rep, replyErr(rep))
		default:
			t.set(i, replyOutcome(rep.Code), rep, replyErr(rep))
		}
	}

	if len(t.pending) == 0 || (c.cfg.requireAll && len(t.pending) < len(rcpts)) {
		return t.noData(pipeData)
	}

	smtptrace.Start(t.ctx, smtptrace.PhaseData, -1)
	if !pipeData {
		c.w.WriteCommand("DATA")
	}
	rep, err = t.read(pipeData, timeoutDataInit)
	if err != nil {
		smtptrace.Done(t.ctx, smtptrace.PhaseData, smtptrace.PhaseInfo{Index: -1, Command: "DATA", Err: err})
		return t.abort(OpData, err)
	}
	if rep.Code != 354 {
		re := replyErr(rep)
		pi := phaseInfo(rep, re)
		pi.Command = "DATA"
		smtptrace.Done(t.ctx, smtptrace.PhaseData, pi)
		if rep.Positive() {
			// A 2yz to DATA is a broken server: the stream is out of step.
			c.broken = re
			t.failPending(TempFailed, rep, &ProtocolError{Reason: "unexpected " + strconv.Itoa(rep.Code) + " reply to DATA"})
			return c.cfg.opErr(OpData, &ProtocolError{Reason: "unexpected reply to DATA: " + re.Error()})
		}
		t.failPending(replyOutcome(rep.Code), rep, re)
		return c.cfg.opErr(OpData, re)
	}
	return t.data(msg)
}

// read returns the next reply: in a pipelined group the commands are already
// flushed; otherwise the command just buffered is flushed first.
func (t *tx) read(pipelined bool, ceiling time.Duration) (*wire.Reply, error) {
	c := t.c
	if pipelined {
		c.w.SetDeadline(ceiling)
		rep, err := c.w.ReadReply()
		if err == nil && rep.Code == 421 {
			c.broken = replyErr(rep)
		}
		return rep, err
	}
	return c.flushRead(ceiling)
}

func (t *tx) readRset(pipelined bool) error {
	c := t.c
	rep, err := t.read(pipelined, timeoutCommand)
	if err != nil {
		return t.abort(OpMail, err)
	}
	if !rep.Positive() {
		re := replyErr(rep)
		c.broken = re
		t.failOpen(TempFailed, rep, re)
		return c.cfg.opErr(OpMail, re)
	}
	return nil
}

// drain reads the replies to pipelined commands whose outcome is already
// decided, keeping the connection in step.
func (t *tx) drain(rcpts int, data bool) {
	c := t.c
	n := rcpts
	if data {
		n++
	}
	for k := 0; k < n; k++ {
		rep, err := t.read(true, timeoutCommand)
		if err != nil {
			c.broken = err
			return
		}
		if rep.Code == 421 {
			return
		}
		if data && k == n-1 && rep.Code == 354 {
			t.loneDot()
		}
	}
}

// loneDot answers a 354 that should not have come (every recipient was
// refused) with an empty message that the server must refuse (RFC 2920
// 3.1), and reads the reply.
func (t *tx) loneDot() {
	c := t.c
	c.w.DataWriter().WriteString(".\r\n")
	c.w.Note("<empty data: no recipient was accepted>")
	if _, err := t.read(false, timeoutDataTerm); err != nil {
		c.broken = err
	}
}

// noData ends a transaction that sends no message: every recipient was
// refused, or all-or-nothing was asked and one was.
func (t *tx) noData(pipeData bool) error {
	c := t.c
	if pipeData {
		rep, err := t.read(true, timeoutDataInit)
		if err != nil {
			c.broken = err
		} else if rep.Code == 354 {
			t.loneDot()
		}
	}
	if len(t.pending) > 0 {
		worst := TempFailed
		for _, rr := range t.res.Rcpts {
			if rr.Outcome == PermFailed {
				worst = PermFailed
			}
		}
		t.failPending(worst, nil, ErrNotAllAccepted)
	}
	return t.res.Err()
}

// abort handles an I/O or protocol failure before the end of the data:
// nothing was delivered, the connection is unusable.
func (t *tx) abort(op Op, err error) error {
	c := t.c
	err = ctxErr(t.ctx, err)
	c.broken = err
	oe := c.cfg.opErr(op, wireErr(err))
	t.failPending(TempFailed, nil, oe)
	t.failOpen(TempFailed, nil, oe)
	return oe
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// data streams the message and reads the end-of-data reply (or replies).
func (t *tx) data(msg io.Reader) error {
	c := t.c
	dw := dataenc.NewDotWriter(c.w.DataWriter())
	dw.Strict7Bit = !c.ext.Has("8BITMIME")
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	var err error
	for {
		n, rerr := msg.Read(buf)
		if n > 0 {
			c.w.SetDeadline(timeoutDataBlock)
			if _, werr := dw.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = &MessageError{Err: rerr}
			break
		}
	}
	bufPool.Put(bp)
	if err == nil {
		err = dw.Close()
	}
	info := smtptrace.PhaseInfo{Index: -1, Command: "DATA", Bytes: dw.Bytes(), Err: err}
	if err != nil {
		smtptrace.Done(t.ctx, smtptrace.PhaseData, info)
		// The end-of-data sequence was not written: closing the connection
		// now guarantees nothing is delivered.
		c.broken = err
		c.w.Close()
		if errors.Is(err, dataenc.ErrEightBit) {
			err = &NotSupportedError{Extension: "8BITMIME", Detail: "the message has 8-bit content"}
			t.failPending(PermFailed, nil, err)
			return c.cfg.opErr(OpData, err)
		}
		return t.abort(OpData, err)
	}
	c.w.Note("<message data: %d bytes>", dw.Bytes())
	smtptrace.Done(t.ctx, smtptrace.PhaseData, info)

	// The end-of-data sequence ends the buffer: once the connection has
	// accepted byte 'last', the server may have the whole message.
	last := c.w.Written() + int64(c.w.Pending())
	smtptrace.Start(t.ctx, smtptrace.PhaseEndOfData, -1)
	c.w.SetDeadline(timeoutDataTerm)
	if err := c.w.Flush(); err != nil {
		smtptrace.Done(t.ctx, smtptrace.PhaseEndOfData, phaseInfo(nil, err))
		if c.w.Written() < last {
			return t.abort(OpData, err)
		}
		return t.unknown(err)
	}
	c.dirty = false
	if c.cfg.lmtp {
		return t.lmtpReplies()
	}
	rep, err := c.w.ReadReply()
	smtptrace.Done(t.ctx, smtptrace.PhaseEndOfData, phaseInfo(rep, err))
	if err != nil {
		return t.unknown(err)
	}
	if rep.Code == 421 {
		c.broken = replyErr(rep)
	}
	if !rep.Positive() {
		re := replyErr(rep)
		t.failPending(replyOutcome(rep.Code), rep, re)
		return c.cfg.opErr(OpEndOfData, re)
	}
	t.res.Reply = toReply(rep)
	for _, i := range t.pending {
		t.set(i, Accepted, rep, nil)
	}
	t.pending = nil
	c.messages++
	return t.res.Err()
}

// lmtpReplies reads one reply per accepted recipient, in RCPT order
// (RFC 2033 4.2).
func (t *tx) lmtpReplies() error {
	c := t.c
	for k, i := range t.pending {
		rep, err := c.w.ReadReply()
		pi := phaseInfo(rep, err)
		pi.Index = i
		smtptrace.Done(t.ctx, smtptrace.PhaseEndOfData, pi)
		if err != nil {
			t.pending = t.pending[k:]
			return t.unknown(err)
		}
		if rep.Positive() {
			t.set(i, Accepted, rep, nil)
		} else {
			t.set(i, replyOutcome(rep.Code), rep, replyErr(rep))
		}
		if rep.Code == 421 {
			c.broken = replyErr(rep)
			t.pending = t.pending[k+1:]
			t.failPending(Unknown, rep, c.cfg.opErr(OpEndOfData, replyErr(rep)))
			return t.res.Err()
		}
	}
	t.pending = nil
	c.messages++
	return t.res.Err()
}

// unknown handles a loss after the end of the data was sent: the server
// may have the message (RFC 1047).
func (t *tx) unknown(err error) error {
	c := t.c
	err = wireErr(ctxErr(t.ctx, err))
	c.broken = err
	oe := c.cfg.opErr(OpEndOfData, err)
	t.failPending(Unknown, nil, oe)
	if t.res.Count(Accepted) > 0 {
		return t.res.Err()
	}
	return oe
}
