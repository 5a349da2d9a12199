package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/dataenc"
	"github.com/mailwire/mailwire/internal/wire"
	"github.com/mailwire/mailwire/smtptrace"
)

// The pipeline engine. Commands are written ahead of their replies as far
// as RFC 2920 and RFC 3030 allow, and every written command leaves an
// expectation in a FIFO queue; replies are read in order and applied to the
// expectation at the head, whatever happens, so replies can never be paired
// with the wrong command. Without PIPELINING the same engine waits for each
// reply before writing the next command.

// kind is the command an expectation waits a reply for.
type kind uint8

const (
	kRset kind = iota
	kMail
	kRcpt
	kData
	kBdat     // an intermediate BDAT chunk
	kBdatLast // BDAT ... LAST: its reply is the end-of-data reply
	kDot      // the end of DATA
	kLoneDot  // an empty data stream answering an unwanted 354
)

func (k kind) op() Op {
	switch k {
	case kRset, kMail:
		return OpMail
	case kRcpt:
		return OpRcpt
	case kData, kBdat:
		return OpData
	}
	return OpEndOfData
}

func (k kind) ceiling() time.Duration {
	switch k {
	case kData:
		return timeoutDataInit
	case kBdat:
		return timeoutDataBlock
	case kBdatLast, kDot, kLoneDot:
		return timeoutDataTerm
	}
	return timeoutCommand
}

type expect struct {
	kind kind
	t    *tx
	idx  int // recipient index for kRcpt
}

// maxOutstanding bounds the replies due on a connection before the writer
// stops to read some; it keeps both sides' buffers from filling up.
const maxOutstanding = 512

// chunkSize is the amount of message read for one BDAT chunk.
const chunkSize = 64 << 10

// pipe runs transactions on one connection for one call.
type pipe struct {
	c    *Conn
	ctx  context.Context
	q    []expect
	head int
	lost error // set once the connection failed during this call
	// closing is the 421 reply after which the server is closing the
	// connection: nothing more is written, but the replies still due are
	// read, briefly, so that what the server did with commands already sent
	// is known rather than guessed.
	closing error

	chunk *chunkState
}

func (p *pipe) pipelining() bool {
	return p.c.ext.Has("PIPELINING") && !p.c.cfg.noPipelining
}

func (p *pipe) chunking() bool {
	return p.c.ext.Has("CHUNKING") && !p.c.cfg.noChunking
}

func (p *pipe) outstanding() int { return len(p.q) - p.head }

func (p *pipe) push(k kind, t *tx, idx int) {
	p.q = append(p.q, expect{kind: k, t: t, idx: idx})
	t.expects++
}

// write buffers one command line for t; a refused line (which cannot
// happen for lines built by buildCommands) fails the connection.
func (p *pipe) write(t *tx, k kind, idx int, line string) bool {
	if p.lost != nil || p.closing != nil {
		return false
	}
	if err := p.c.w.WriteCommand(line); err != nil {
		p.fail(err)
		return false
	}
	p.push(k, t, idx)
	return true
}

func (p *pipe) flush() bool {
	if p.lost != nil {
		return false
	}
	p.c.w.SetDeadline(timeoutDataBlock)
	if err := p.c.w.Flush(); err != nil {
		p.fail(err)
		return false
	}
	return true
}

// readOne reads the reply to the oldest expectation and applies it.
func (p *pipe) readOne() bool {
	if p.lost != nil || p.outstanding() == 0 {
		return false
	}
	e := p.q[p.head]
	ceiling := e.kind.ceiling()
	if p.closing != nil {
		ceiling = timeoutQuit
	}
	p.c.w.SetDeadline(ceiling)
	rep, err := p.c.w.ReadReply()
	if err != nil {
		p.fail(err)
		return false
	}
	if p.outstanding() == 1 && spokeOutOfTurn(p.c.w) && !p.lmtpMulti(e) {
		// Every command written has its reply, yet more has come: the
		// server answered a command it was never sent (a reply ahead of
		// the message data, or one too many). Which reply belongs to which
		// command can no longer be known.
		p.fail(errUnsolicited)
		return false
	}
	if rep.Intermediate() && !(e.kind == kData && rep.Code == 354) {
		// A 3yz where none is due: the conversation is out of step, and
		// nothing after this reply can be trusted.
		p.fail(&ProtocolError{Reason: "unexpected " + strconv.Itoa(rep.Code) + " reply"})
		return false
	}
	p.c.proven = true
	p.q[p.head] = expect{}
	p.head++
	if p.head == len(p.q) {
		p.q, p.head = p.q[:0], 0
	}
	e.t.expects--
	p.apply(e, rep)
	return p.lost == nil
}

// errUnsolicited is the protocol error of a server that sent a reply no
// command asked for.
var errUnsolicited = &ProtocolError{Reason: "the server sent a reply to no command"}

// spokeOutOfTurn reports whether the server sent bytes that no command
// asked for, when every command written has its reply. A 421 is not out of
// turn: a server may announce at any time that it is closing (RFC 5321
// 3.8), and the next read takes it as such.
func spokeOutOfTurn(w *wire.Conn) bool {
	if w.Buffered() == 0 {
		return false
	}
	return !strings.HasPrefix("421", string(w.Peeked(3)))
}

// lmtpMulti reports whether e is an LMTP end of data that several replies
// answer (RFC 2033 4.2); lmtpReplies reads those after the first.
func (p *pipe) lmtpMulti(e expect) bool {
	return p.c.cfg.lmtp && (e.kind == kDot || e.kind == kBdatLast) && len(e.t.pending) > 1
}

// until flushes and reads replies until cond holds or nothing is due.
func (p *pipe) until(cond func() bool) {
	if cond() {
		return
	}
	if !p.flush() {
		return
	}
	for !cond() && p.readOne() {
	}
}

// finish flushes and reads every reply still due.
func (p *pipe) finish() {
	if p.outstanding() > 0 && (p.closing != nil || p.flush()) {
		for p.readOne() {
		}
	}
}

// dataInFlight reports whether a transaction whose data was written whole
// still waits for its end-of-data reply.
func (p *pipe) dataInFlight() bool {
	for i := p.head; i < len(p.q); i++ {
		if t := p.q[i].t; t.endWritten && !t.finished {
			return true
		}
	}
	return false
}

// settle gives a transaction that could not run to its end (nothing more
// could be written after a 421 or a loss) its final outcomes.
func (p *pipe) settle(t *tx) {
	if t.finished {
		return
	}
	cause := p.lost
	if cause == nil {
		cause = p.closing
	}
	if cause == nil {
		// Every reply was read and nothing was left to write: the outcomes
		// recorded are final.
		if t.res.Count(NotAttempted) > 0 {
			cause = &ProtocolError{Reason: "transaction ended without a reply for every recipient"}
			t.lose(kMail, cause, p.c.w.Written())
		}
		t.finished = true
		return
	}
	t.lose(kMail, cause, p.c.w.Written())
}

// fail handles a lost connection (or a write refused by the choke point):
// every transaction with replies still due is settled, the connection is
// closed so that no partial data can ever be completed.
func (p *pipe) fail(err error) {
	if p.lost != nil {
		return
	}
	err = wireErr(ctxErr(p.ctx, err))
	p.lost = err
	p.c.broken = err
	written, cause := p.c.w.Written(), err
	if p.closing != nil {
		// Every command still due was written after the one the server
		// answered with 421, and a server that said it is closing runs
		// nothing more (RFC 5321 3.8): none of them was delivered, even
		// where the whole data was written.
		written, cause = -1, p.closing
	}
	for i := p.head; i < len(p.q); i++ {
		e := p.q[i]
		e.t.lose(e.kind, cause, written)
	}
	p.q, p.head = nil, 0
	p.c.w.Close()
}

// abandon stops reading a conversation that cannot be trusted any more (a
// 421 with no data in flight, a refused RSET, a 2yz to DATA) and settles
// every transaction with replies still due as the loss of the connection
// would: temp-failed, or unknown for one whose data left the client whole.
func (p *pipe) abandon(cause error) {
	p.c.broken = cause
	p.lost = cause
	written := p.c.w.Written()
	for i := p.head; i < len(p.q); i++ {
		e := p.q[i]
		e.t.lose(e.kind, cause, written)
	}
	p.q, p.head = nil, 0
}

// lose settles t after the connection was lost while a reply to a k
// command was due. If the whole end-of-data sequence had left the client,
// the server may have the message: the outcome is unknown (RFC 1047).
func (t *tx) lose(k kind, err error, written int64) {
	if t.finished {
		return
	}
	t.finished = true
	if t.endWritten && written >= t.endPos && !t.mailFailed && !t.chunkFailed {
		oe := t.c.cfg.opErr(OpEndOfData, err)
		t.failPending(Unknown, nil, oe)
		t.failOpen(Unknown, nil, oe)
		t.setErr(oe)
		smtptrace.Done(t.ctx, smtptrace.PhaseEndOfData, smtptrace.PhaseInfo{Index: -1, Err: err})
		return
	}
	op := k.op()
	if k == kBdatLast || k == kDot {
		op = OpData // the end of the data never left the client
	}
	oe := t.c.cfg.opErr(op, err)
	t.failPending(TempFailed, nil, oe)
	t.failOpen(TempFailed, nil, oe)
	t.setErr(oe)
}

// allRefused ends a transaction in which no recipient was accepted: the
// whole transaction failed at RCPT, and the error says so, wrapping one
// *RcptError per recipient.
func (t *tx) allRefused() {
	t.finished = true
	if t.err == nil {
		t.err = t.c.cfg.opErr(OpRcpt, t.res.Err())
	}
}

func (t *tx) setErr(err error) {
	if t.err == nil {
		t.err = err
	}
}

// apply records the reply to expectation e.
func (p *pipe) apply(e expect, rep *wire.Reply) {
	t, c := e.t, p.c
	if rep.Code == 421 && e.kind == kDot && c.cfg.lmtp && len(t.pending) > 0 && !t.finished && !t.mailFailed {
		// A 421 in place of the first recipient's reply after the data:
		// that recipient failed, the others' fate is unknown.
		t.ended = true
		p.lmtpReplies(t, rep)
		return
	}
	if rep.Code == 421 {
		// The server is closing the channel: this command failed. Replies
		// still due are read until the server closes; those it never sends
		// are settled by the loss (unknown only for data it may have).
		re := replyErr(rep)
		if !t.finished {
			oe := c.cfg.opErr(e.kind.op(), re)
			if e.kind == kRcpt {
				t.set(e.idx, TempFailed, rep, re)
			}
			t.failPending(TempFailed, rep, oe)
			t.failOpen(TempFailed, rep, oe)
			t.setErr(oe)
			t.finished = true
			t.ended = true
		}
		p.traceReply(e, rep, re)
		c.broken = re
		if !p.dataInFlight() {
			// Nothing written after this command can have been delivered.
			p.abandon(re)
			return
		}
		if p.closing == nil {
			p.closing = re
		}
		return
	}
	switch e.kind {
	case kRset:
		if !rep.Positive() {
			// A server that refuses RSET is out of step with us.
			pe := &ProtocolError{Reason: "RSET refused: " + replyErr(rep).Error()}
			oe := c.cfg.opErr(OpMail, pe)
			t.failOpen(TempFailed, rep, oe)
			t.setErr(oe)
			t.finished = true
			p.abandon(pe)
		}
	case kMail:
		t.mailDone = true
		p.traceReply(e, rep, nil)
		if !rep.Positive() {
			re := replyErr(rep)
			t.mailFailed = true
			t.ended = true
			t.failOpen(replyOutcome(rep.Code), rep, re)
			t.setErr(c.cfg.opErr(OpMail, re))
			t.finished = true
		}
	case kRcpt:
		t.rcptsDone++
		p.traceReply(e, rep, nil)
		if t.mailFailed || t.finished {
			return
		}
		switch {
		case rep.Positive():
			t.pending = append(t.pending, e.idx)
		case rep.Code == 552:
			// RFC 5321 4.5.3.1.10: 552 to RCPT means too many recipients.
			t.set(e.idx, TempFailed, rep, &RcptLimitError{Reply: replyErr(rep)})
		default:
			t.set(e.idx, replyOutcome(rep.Code), rep, replyErr(rep))
		}
	case kData:
		t.dataDone = true
		if rep.Code == 354 {
			t.dataReady = true
			if p.closing != nil {
				// Never send data, not even an empty message, to a server
				// that said it is closing: drop the connection instead.
				p.fail(p.closing)
				return
			}
			if t.mailFailed || len(t.pending) == 0 || t.finished {
				// Every recipient was refused but the server wants the
				// data: send an empty message it must refuse (RFC 2920 3.1).
				c.w.DataWriter().WriteString(".\r\n")
				c.w.Note("<empty data: no recipient was accepted>")
				p.push(kLoneDot, t, -1)
				t.ended = true
				if !t.mailFailed && !t.finished {
					t.allRefused()
				}
			}
			return
		}
		if t.mailFailed || t.finished {
			return
		}
		if len(t.pending) == 0 {
			// DATA refused because no recipient was accepted: the server
			// may still hold the transaction open (Postfix does), so the
			// next one starts with RSET.
			t.allRefused()
			return
		}
		re := replyErr(rep)
		pi := phaseInfo(rep, re)
		pi.Command = "DATA"
		smtptrace.Done(t.ctx, smtptrace.PhaseData, pi)
		if rep.Positive() {
			pe := &ProtocolError{Reason: "unexpected reply to DATA: " + re.Error()}
			oe := c.cfg.opErr(OpData, pe)
			t.failPending(TempFailed, rep, oe)
			t.failOpen(TempFailed, rep, oe)
			t.setErr(oe)
			t.finished = true
			p.abandon(pe)
			return
		}
		t.failPending(replyOutcome(rep.Code), rep, re)
		t.setErr(c.cfg.opErr(OpData, re))
		t.finished = true
	case kBdat:
		if !rep.Positive() && !t.mailFailed && !t.chunkFailed && !t.finished && len(t.pending) > 0 {
			re := replyErr(rep)
			t.chunkFailed = true
			t.failPending(replyOutcome(rep.Code), rep, re)
			t.setErr(c.cfg.opErr(OpData, re))
			t.finished = true
		}
	case kLoneDot:
	case kDot, kBdatLast:
		// The end of DATA ends the transaction whatever the reply; a
		// refused BDAT LAST may leave it open (RFC 3030 does not say).
		t.ended = t.ended || e.kind == kDot || rep.Positive()
		if t.mailFailed || t.chunkFailed || t.finished {
			return
		}
		if len(t.pending) == 0 {
			// Every recipient was refused (BDAT pipelined with them).
			t.allRefused()
			return
		}
		if c.cfg.lmtp {
			p.lmtpReplies(t, rep)
			return
		}
		p.traceReply(e, rep, nil)
		t.finished = true
		if !rep.Positive() {
			re := replyErr(rep)
			t.failPending(replyOutcome(rep.Code), rep, re)
			t.setErr(c.cfg.opErr(OpEndOfData, re))
			return
		}
		final := toReply(rep)
		t.res.Reply = final
		for _, i := range t.pending {
			rr := &t.res.Rcpts[i]
			rr.Outcome, rr.Reply, rr.Err, rr.Attempts = Accepted, final, nil, 1
		}
		t.pending = nil
		c.messages++
	}
}

// lmtpReplies applies one reply per accepted recipient, in RCPT order
// (RFC 2033 4.2); first is already read.
func (p *pipe) lmtpReplies(t *tx, first *wire.Reply) {
	c := p.c
	rep := first
	for k, i := range t.pending {
		if k > 0 {
			c.w.SetDeadline(timeoutDataTerm)
			var err error
			rep, err = c.w.ReadReply()
			if err != nil {
				t.pending = t.pending[k:]
				oe := c.cfg.opErr(OpEndOfData, wireErr(ctxErr(p.ctx, err)))
				t.failPending(Unknown, nil, oe)
				t.setErr(oe)
				t.finished = true
				p.fail(err)
				return
			}
		}
		pi := phaseInfo(rep, nil)
		pi.Index = i
		smtptrace.Done(t.ctx, smtptrace.PhaseEndOfData, pi)
		if rep.Positive() {
			t.set(i, Accepted, rep, nil)
		} else {
			t.set(i, replyOutcome(rep.Code), rep, replyErr(rep))
		}
		if k == len(t.pending)-1 && p.outstanding() == 0 && rep.Code != 421 && spokeOutOfTurn(c.w) {
			// More replies than accepted recipients: which reply is whose
			// cannot be known, so none of them is trusted.
			oe := c.cfg.opErr(OpEndOfData, errUnsolicited)
			for _, j := range t.pending {
				t.set(j, Unknown, nil, oe)
			}
			t.pending = nil
			t.setErr(oe)
			t.finished = true
			p.fail(errUnsolicited)
			return
		}
		if rep.Code == 421 {
			// Recipients after this one got no reply: their fate is unknown.
			rest := t.pending[k+1:]
			oe := c.cfg.opErr(OpEndOfData, &ProtocolError{Reason: "the server closed the session (421) before this recipient's reply"})
			for _, j := range rest {
				t.set(j, Unknown, nil, oe)
			}
			t.pending = nil
			t.finished = true
			p.abandon(replyErr(rep))
			return
		}
	}
	t.pending = nil
	t.finished = true
	c.messages++
}

func (p *pipe) traceReply(e expect, rep *wire.Reply, err error) {
	var phase smtptrace.Phase
	switch e.kind {
	case kMail:
		phase = smtptrace.PhaseMail
	case kRcpt:
		phase = smtptrace.PhaseRcpt
	case kDot, kBdatLast:
		phase = smtptrace.PhaseEndOfData
	default:
		return
	}
	if err == nil && !rep.Positive() {
		err = replyErr(rep)
	}
	pi := phaseInfo(rep, err)
	if e.kind == kRcpt {
		pi.Index = e.idx
	}
	smtptrace.Done(e.t.ctx, phase, pi)
}

// start writes t's envelope: RSET if the server may hold an open
// transaction, MAIL, the RCPTs and, when it may join the group, DATA.
// Without PIPELINING it waits for each reply and stops at a refused MAIL.
func (p *pipe) start(t *tx, rset bool) {
	pipelining := p.pipelining()
	sync := func() {
		if !pipelining {
			p.until(func() bool { return p.outstanding() == 0 })
		}
	}
	// Without PIPELINING nothing of this transaction is written before the
	// previous one's last reply (its end of data) is in.
	sync()
	if p.lost != nil || p.closing != nil {
		return
	}
	if rset {
		if !p.write(t, kRset, -1, "RSET") {
			return
		}
		sync()
	}
	smtptrace.Start(t.ctx, smtptrace.PhaseMail, -1)
	if !p.write(t, kMail, -1, t.mail) {
		return
	}
	sync()
	for i, l := range t.rcpts {
		if t.finished || p.lost != nil {
			return
		}
		smtptrace.Start(t.ctx, smtptrace.PhaseRcpt, i)
		if !p.write(t, kRcpt, i, l) {
			return
		}
		sync()
	}
	if pipelining && p.dataInGroup() {
		smtptrace.Start(t.ctx, smtptrace.PhaseData, -1)
		p.write(t, kData, -1, "DATA")
	}
}

// dataInGroup reports whether DATA joins the MAIL/RCPT group: not for
// all-or-nothing sends, whose decision depends on the RCPT replies, nor for
// LMTP (RFC 2033 4.2: no DATA without an accepted recipient), nor when BDAT
// is used.
func (p *pipe) dataInGroup() bool {
	return !p.c.cfg.requireAll && !p.c.cfg.lmtp && !p.chunking()
}

// bodyEarly reports whether the first BDAT chunk may be written before the
// RCPT replies are read: only on a connection that has answered since it
// was taken, so that a stale pooled connection is found before any of the
// message is sent.
func (p *pipe) bodyEarly() bool {
	return p.chunking() && p.pipelining() && !p.c.cfg.requireAll && !p.c.cfg.lmtp && p.c.proven &&
		p.ctx.Value(holdBodyKey{}) == nil
}

// holdBodyKey marks a context whose Send must not read the message before
// the RCPT replies are in, so that a caller (Failover) can still give the
// message to another transport after a refusal of the envelope.
type holdBodyKey struct{}

func withHoldBody(ctx context.Context) context.Context {
	return context.WithValue(ctx, holdBodyKey{}, true)
}

// body sends t's message, with DATA or BDAT, once the replies it depends on
// are known.
func (p *pipe) body(t *tx) {
	if t.finished || p.lost != nil || p.closing != nil {
		return
	}
	c := p.c
	chunking := p.chunking()
	dataSent := p.pipelining() && p.dataInGroup()
	if !(chunking && p.bodyEarly()) && !dataSent {
		// Decide on the RCPT replies.
		p.until(func() bool { return t.finished || t.rcptsDone == len(t.rcpts) })
		if t.finished || p.lost != nil {
			return
		}
		if len(t.pending) == 0 {
			t.allRefused()
			return
		}
		if c.cfg.requireAll && len(t.pending) < len(t.rcpts) {
			worst := TempFailed
			for _, rr := range t.res.Rcpts {
				if rr.Outcome == PermFailed {
					worst = PermFailed
				}
			}
			t.failPending(worst, nil, ErrNotAllAccepted)
			t.allRefused()
			return
		}
	}
	if chunking {
		p.bdat(t)
		return
	}
	if !dataSent {
		smtptrace.Start(t.ctx, smtptrace.PhaseData, -1)
		if !p.write(t, kData, -1, "DATA") {
			return
		}
	}
	p.until(func() bool { return t.dataDone || t.finished })
	if !t.dataReady || t.finished || p.lost != nil || p.closing != nil || t.ended {
		return
	}
	p.data(t)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// data streams t's message after a 354 and writes the end of the data; the
// reply is read later, possibly together with the next transaction's.
func (p *pipe) data(t *tx) {
	c := p.c
	dw := dataenc.NewDotWriter(c.w.DataWriter())
	dw.Strict7Bit = !c.ext.Has("8BITMIME")
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	var err error
	for {
		n, rerr := t.msg.Read(buf)
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
		if e := p.ctx.Err(); e != nil {
			err = context.Cause(p.ctx)
			break
		}
	}
	bufPool.Put(bp)
	if err == nil && p.outstanding() == 0 && c.w.Stale() {
		// Nothing is due, yet the server has spoken (or closed) while the
		// data was streaming: a reply now would be taken for the reply to
		// the end of the data. The end is not written, so nothing can be
		// delivered.
		err = &ProtocolError{Reason: "the server sent a reply or closed the connection before the end of the data"}
	}
	if err == nil {
		err = dw.Close()
	}
	t.bytes = dw.Bytes()
	smtptrace.Done(t.ctx, smtptrace.PhaseData, smtptrace.PhaseInfo{Index: -1, Command: "DATA", Bytes: t.bytes, Err: err})
	if err != nil {
		// The end of the data was not written: dropping the connection now
		// guarantees that nothing is delivered.
		p.abortBody(t, err, true)
		return
	}
	c.w.Note("<message data: %d bytes>", t.bytes)
	t.endWritten = true
	t.endPos = c.w.Written() + int64(c.w.Pending())
	smtptrace.Start(t.ctx, smtptrace.PhaseEndOfData, -1)
	p.push(kDot, t, -1)
}

// abortBody ends a transaction whose message could not be sent whole. With
// DATA the connection must be dropped; with BDAT, RSET discards the chunks
// already sent (RFC 3030 4.1) and the connection stays usable.
func (p *pipe) abortBody(t *tx, err error, drop bool) {
	c := p.c
	var ne *NotSupportedError
	switch {
	case errors.Is(err, dataenc.ErrEightBit):
		ne = &NotSupportedError{Extension: "8BITMIME", Detail: "the message has 8-bit content"}
		err = ne
	}
	if !drop && !isNetErr(err) && p.lost == nil {
		oe := c.cfg.opErr(OpData, err)
		outcome := TempFailed
		if ne != nil {
			outcome = PermFailed
		}
		t.failPending(outcome, nil, oe)
		t.failOpen(outcome, nil, oe)
		t.setErr(oe)
		t.finished = true
		t.ended = true
		p.write(t, kRset, -1, "RSET")
		return
	}
	if ne != nil {
		oe := c.cfg.opErr(OpData, ne)
		t.failPending(PermFailed, nil, oe)
		t.failOpen(PermFailed, nil, oe)
		t.setErr(oe)
		t.finished = true
	} else {
		t.lose(kData, wireErr(ctxErr(p.ctx, err)), -1)
	}
	p.fail(err)
}

// chunkState holds the buffers of BDAT transfers on one pipe.
type chunkState struct {
	br  *bufio.Reader
	raw []byte
	out bytes.Buffer
}

var chunkPool = sync.Pool{New: func() any {
	return &chunkState{br: bufio.NewReaderSize(nil, chunkSize), raw: make([]byte, chunkSize)}
}}

func (p *pipe) release() {
	p.c.qbuf = p.q[:0]
	if p.chunk != nil {
		p.chunk.br.Reset(nil)
		if p.chunk.out.Cap() > 4*chunkSize {
			p.chunk.out = bytes.Buffer{}
		}
		chunkPool.Put(p.chunk)
		p.chunk = nil
	}
}

// bdat sends t's message in BDAT chunks (RFC 3030), without waiting for the
// chunks' replies except to keep the number due bounded.
func (p *pipe) bdat(t *tx) {
	c := p.c
	if p.chunk == nil {
		p.chunk = chunkPool.Get().(*chunkState)
	}
	cs := p.chunk
	cs.br.Reset(t.msg)
	t.chunked = true
	binary := t.env.Body == envelope.BodyBinaryMIME
	var cw *dataenc.CRLFWriter
	if !binary {
		cw = dataenc.NewCRLFWriter(&cs.out)
		cw.Strict7Bit = !c.ext.Has("8BITMIME")
	}
	smtptrace.Start(t.ctx, smtptrace.PhaseData, -1)
	for {
		n, rerr := readChunk(p.ctx, cs.br, cs.raw)
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr == errChunkCancelled {
			p.bdatAbort(t, cw, context.Cause(p.ctx))
			return
		}
		if rerr != nil && !last {
			p.bdatAbort(t, cw, &MessageError{Err: rerr})
			return
		}
		if !last {
			if _, perr := cs.br.Peek(1); perr == io.EOF {
				last = true
			} else if perr != nil {
				p.bdatAbort(t, cw, &MessageError{Err: perr})
				return
			}
		}
		if err := p.ctx.Err(); err != nil {
			p.bdatAbort(t, cw, context.Cause(p.ctx))
			return
		}
		cs.out.Reset()
		if binary {
			cs.out.Write(cs.raw[:n])
		} else {
			var err error
			if _, err = cw.Write(cs.raw[:n]); err == nil {
				if last {
					err = cw.Close()
				} else {
					err = cw.Flush()
				}
			}
			if err != nil {
				p.bdatAbort(t, nil, err)
				return
			}
		}
		if t.finished || p.lost != nil {
			// A chunk was refused, or the connection failed: stop.
			if cw != nil {
				cw.Close()
			}
			return
		}
		line := "BDAT " + strconv.Itoa(cs.out.Len())
		k := kBdat
		if last {
			line += " LAST"
			k = kBdatLast
		}
		if !p.write(t, k, -1, line) {
			return
		}
		c.w.SetDeadline(timeoutDataBlock)
		c.w.DataWriter().Write(cs.out.Bytes())
		t.bytes += int64(cs.out.Len())
		if last {
			c.w.Note("<message data: %d bytes in BDAT chunks>", t.bytes)
			t.endWritten = true
			t.endPos = c.w.Written() + int64(c.w.Pending())
			smtptrace.Done(t.ctx, smtptrace.PhaseData, smtptrace.PhaseInfo{Index: -1, Command: "BDAT", Bytes: t.bytes})
			smtptrace.Start(t.ctx, smtptrace.PhaseEndOfData, -1)
			return
		}
		if !p.pipelining() {
			// RFC 3030 4.2: without PIPELINING, each chunk waits for the
			// reply to the one before.
			p.until(func() bool { return p.outstanding() == 0 })
		}
		for p.outstanding() > maxOutstanding/2 {
			if !p.flush() || !p.readOne() {
				break
			}
		}
	}
}

// errChunkCancelled is readChunk's report of a context that ended.
var errChunkCancelled = errors.New("transport: context ended while reading a chunk")

// readChunk fills buf from r as io.ReadFull does, but stops between reads
// once ctx has ended, so that a slow body does not hold a cancelled Send
// until a whole chunk is read.
func readChunk(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		if ctx.Err() != nil {
			return n, errChunkCancelled
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			if n == 0 {
				return 0, io.EOF
			}
			return n, io.ErrUnexpectedEOF
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (p *pipe) bdatAbort(t *tx, cw *dataenc.CRLFWriter, err error) {
	if cw != nil {
		cw.Close()
	}
	smtptrace.Done(t.ctx, smtptrace.PhaseData, smtptrace.PhaseInfo{Index: -1, Command: "BDAT", Bytes: t.bytes, Err: err})
	p.abortBody(t, err, isContextErr(err))
}
