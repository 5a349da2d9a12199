package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/dataenc"
	"github.com/mailwire/mailwire/internal/wire"
)

// ErrNotAllAccepted is the error of recipients the server accepted in a
// transaction that RequireAllRecipients abandoned because another recipient
// was refused; nothing was sent to anyone.
var ErrNotAllAccepted = errors.New("transport: accepted, but nothing sent: another recipient was refused (all or nothing)")

// MessageError reports that reading the message failed. The transaction was
// abandoned before its end, so nothing was delivered; whether to try again
// is the caller's decision, and the error matches no class.
type MessageError struct {
	// Err is the error the message's reader returned.
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
	return c.send(ctx, env, msg, false)
}

// sendValidated is Send for an envelope the caller already validated.
func (c *Conn) sendValidated(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.send(ctx, env, msg, true)
}

// tx is the state of one transaction.
type tx struct {
	c     *Conn
	ctx   context.Context
	env   *envelope.Envelope
	msg   io.Reader
	res   *Result
	mail  string
	rcpts []string

	pending     []int // recipients accepted at RCPT, awaiting the end of the data
	mailDone    bool  // the MAIL reply was processed
	mailFailed  bool  // MAIL was refused: later replies of this transaction are ignored
	rcptsDone   int   // RCPT replies processed
	dataDone    bool  // the DATA reply was processed
	dataReady   bool  // DATA got 354
	chunkFailed bool  // a BDAT chunk was refused
	endWritten  bool  // the end of the data (dot or BDAT LAST) is buffered or sent
	endPos      int64 // connection offset just after the end of the data
	ended       bool  // the transaction is over on the server (end replied, or MAIL refused)
	finished    bool  // every outcome is final
	expects     int   // replies still due for this transaction
	err         error // whole-transaction failure
	bytes       int64 // message bytes written
	chunked     bool  // sent with BDAT
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

func (c *Conn) send(ctx context.Context, env *envelope.Envelope, msg io.Reader, validated bool) (*Result, error) {
	t, err := c.newTx(ctx, env, msg, validated)
	if err != nil {
		if t == nil {
			return nil, err
		}
		return t.res, err
	}
	unbind := c.w.Bind(ctx)
	defer unbind()
	p := &pipe{c: c, ctx: ctx, q: c.qbuf[:0]}
	p.start(t, c.dirty)
	p.body(t)
	p.finish()
	p.settle(t)
	p.release()
	c.dirty = !t.ended
	return t.res, t.finalErr()
}

// newTx prepares a transaction: it checks env (unless the caller already
// validated it) against the session and renders its commands. When the
// transaction cannot start, the error says why and the *tx, if env was not
// nil, holds the Result to return with it.
func (c *Conn) newTx(ctx context.Context, env *envelope.Envelope, msg io.Reader, validated bool) (*tx, error) {
	if env == nil {
		return nil, c.cfg.opErr(OpEnvelope, &envelope.Error{Field: "envelope", Err: envelope.ErrNoRecipients})
	}
	t := &tx{c: c, ctx: ctx, env: env, msg: msg, res: newResult(env)}
	if !validated {
		if err := env.Validate(); err != nil {
			t.failOpen(PermFailed, nil, err)
			return t, c.cfg.opErr(OpEnvelope, err)
		}
	}
	if err := c.usable(); err != nil {
		t.failOpen(TempFailed, nil, c.cfg.opErr(OpMail, err))
		return t, c.cfg.opErr(OpMail, err)
	}
	if err := ctx.Err(); err != nil {
		t.failOpen(TempFailed, nil, c.cfg.opErr(OpMail, context.Cause(ctx)))
		return t, c.cfg.opErr(OpMail, context.Cause(ctx))
	}
	mail, rcpts, err := c.buildCommands(env, msg)
	if err != nil {
		t.failOpen(PermFailed, nil, err)
		return t, c.cfg.opErr(OpEnvelope, err)
	}
	t.mail, t.rcpts = mail, rcpts
	return t, nil
}

// finalErr returns the error Send reports for the transaction.
func (t *tx) finalErr() error {
	if t.err != nil && t.res.Count(Accepted) == 0 {
		return t.err
	}
	return t.res.Err()
}

// buildCommands checks the envelope against the server's extensions and
// renders the MAIL and RCPT lines. Nothing is written if it fails.
func (c *Conn) buildCommands(env *envelope.Envelope, msg io.Reader) (string, []string, error) {
	ext := c.ext
	utf8 := env.NeedsUTF8()
	if utf8 && !ext.Has("SMTPUTF8") {
		return "", nil, &NotSupportedError{Extension: "SMTPUTF8", Detail: "the envelope has non-ASCII addresses"}
	}
	limit, hasSize := ext.MaxSize()
	size := env.Size
	// A body that can be read twice is scanned first when its 8-bit
	// content matters (a server without 8BITMIME: the refusal then comes
	// before MAIL; any other body is checked as it streams) or when the
	// server takes SIZE and the caller declared none: the size declared is
	// then the one the data has on the wire, every line ending CRLF (RFC
	// 1870), not the size of a file with LF line endings.
	scan8 := env.Body == "" && !ext.Has("8BITMIME")
	scanSize := hasSize && size == 0 && env.Body != envelope.BodyBinaryMIME
	if scan8 || scanSize {
		wire, has8, ok, err := scanBody(msg)
		switch {
		case err != nil:
			return "", nil, &MessageError{Err: err}
		case scan8 && has8:
			return "", nil, &NotSupportedError{Extension: "8BITMIME", Detail: "the message has 8-bit content"}
		case ok && scanSize:
			size = wire
		}
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
	if size == 0 && hasSize {
		// Not found by the scan above: a body that cannot seek but whose
		// size is known (a buffer, a binary body).
		size = wireSize(msg, env.Body == envelope.BodyBinaryMIME)
	}
	if hasSize && limit > 0 && size > limit {
		return "", nil, &SizeError{Size: size, Limit: limit}
	}

	var b strings.Builder
	b.Grow(64 + len(env.From) + len(env.EnvID)*3)
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
		b = strings.Builder{}
		b.Grow(16 + len(r.Addr) + 3*len(r.ORcpt) + 40)
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

// scanBody reads a seekable msg through and puts it back where it was. It
// returns the size of its content with CRLF line endings and whether it
// holds a byte above 0x7f; ok is false, and nothing is read, for a body
// that cannot seek.
func scanBody(msg io.Reader) (size int64, eightBit, ok bool, err error) {
	if cr, isCounting := msg.(*countingReader); isCounting {
		msg = cr.r
	}
	rs, isSeeker := msg.(io.ReadSeeker)
	if !isSeeker {
		return 0, false, false, nil
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, false, false, nil
	}
	bp := bufPool.Get().(*[]byte)
	size, eightBit, err = dataenc.Scan(rs, *bp)
	bufPool.Put(bp)
	if err != nil {
		return 0, false, false, err
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return 0, false, false, err
	}
	return size, eightBit, true, nil
}

// wireSize returns the size msg has on the wire, every line ending CRLF
// unless binary, if it can be known without consuming msg: a body that can
// seek is read through and put back, an in-memory buffer is scanned in
// place; 0 if it cannot be known.
func wireSize(msg io.Reader, binary bool) int64 {
	if binary {
		return knownSize(msg)
	}
	if cr, ok := msg.(*countingReader); ok {
		msg = cr.r
	}
	if b, ok := msg.(*bytes.Buffer); ok {
		bp := bufPool.Get().(*[]byte)
		n, _, _ := dataenc.Scan(bytes.NewReader(b.Bytes()), *bp)
		bufPool.Put(bp)
		return n
	}
	if n, _, ok, err := scanBody(msg); ok && err == nil {
		return n
	}
	return knownSize(msg)
}

// knownSize returns the size of msg if it can be known without reading it.
func knownSize(msg io.Reader) int64 {
	switch m := msg.(type) {
	case *countingReader:
		return knownSize(m.r)
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
