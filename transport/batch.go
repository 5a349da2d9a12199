package transport

import (
	"context"
	"io"
	"iter"

	"github.com/mailwire/mailwire/envelope"
)

// A Message is one message of a batch: its envelope and its content.
type Message struct {
	// Envelope is the message's envelope, as for Send.
	Envelope *envelope.Envelope
	// Body is the message's content, read once, as for Send.
	Body io.Reader
}

// BatchWindow is the number of transactions a batch keeps in flight on one
// connection when every command of a transaction can be written before its
// replies are read (BDAT with PIPELINING).
const BatchWindow = 32

// SendBatch sends messages over the session one transaction after another,
// pipelining across transactions (RFC 2920, RFC 3030): with DATA, a
// message's end of data travels with the next message's MAIL, RCPT and DATA
// commands, so that each message costs about one round trip; with BDAT,
// whole transactions are written ahead, up to BatchWindow of them, so that
// a message costs less than one. Outcomes are exactly those of Send.
//
// done is called once for each message, in order, with its index in msgs
// and the Result and error Send would have returned; by then the message's
// body has been read for the last time and may be closed. SendBatch reads
// each body while that message is being sent and keeps no body after its
// transaction. It stops early when ctx ends or the connection fails;
// messages not attempted get no done call. SendBatch returns nil when every
// message got its done call and the session is still usable, and otherwise
// the error that ended the session, even if every message had already been
// attempted (with BDAT, whole transactions travel ahead of their replies):
// after an error the Conn is not usable.
func (c *Conn) SendBatch(ctx context.Context, msgs iter.Seq[Message], done func(i int, res *Result, err error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next, stop := iter.Pull(msgs)
	defer stop()
	_, err := c.sendBatch(ctx, next, 0, done)
	return err
}

// sendBatch runs messages from next until it is exhausted or the session
// fails; first is the index of the first message. It returns how many
// messages it took from next.
func (c *Conn) sendBatch(ctx context.Context, next func() (Message, bool), first int, done func(int, *Result, error)) (int, error) {
	if err := c.usable(); err != nil {
		return 0, c.cfg.opErr(OpMail, err)
	}
	unbind := c.w.Bind(ctx)
	defer unbind()
	p := &pipe{c: c, ctx: ctx, q: c.qbuf[:0]}
	defer p.release()

	type item struct {
		i   int
		t   *tx
		err error // set for a message refused before any command
	}
	var inflight []item
	report := func(all bool) {
		for len(inflight) > 0 {
			it := inflight[0]
			if it.t != nil && !all && (!it.t.finished || it.t.expects > 0) {
				return
			}
			inflight = inflight[1:]
			if it.t == nil {
				done(it.i, nil, it.err)
				continue
			}
			if it.err != nil {
				done(it.i, it.t.res, it.err)
				continue
			}
			done(it.i, it.t.res, it.t.finalErr())
		}
	}
	var prev *tx
	taken := 0
	for {
		if !p.pipelining() {
			// Lock-step without PIPELINING: the previous transaction's
			// replies are all in before the next message is taken, so a
			// connection lost at its end leaves the next message to
			// another connection.
			p.finish()
			report(false)
		}
		if p.lost != nil || p.closing != nil {
			break
		}
		if err := ctx.Err(); err != nil {
			break
		}
		m, ok := next()
		if !ok {
			break
		}
		i := first + taken
		taken++
		t, err := c.newTx(ctx, m.Envelope, m.Body, false)
		if err != nil {
			inflight = append(inflight, item{i: i, t: t, err: err})
			report(false)
			continue
		}
		rset := c.dirty
		if prev != nil {
			rset = prev.needsReset()
		}
		p.start(t, rset)
		p.body(t)
		c.dirty = false
		prev = t
		inflight = append(inflight, item{i: i, t: t})
		report(false)
		for len(inflight) > BatchWindow && p.lost == nil && p.closing == nil {
			if !p.flush() || !p.readOne() {
				break
			}
			report(false)
		}
	}
	p.finish()
	for _, it := range inflight {
		if it.t != nil && it.err == nil {
			p.settle(it.t)
		}
	}
	report(true)
	if prev != nil {
		c.dirty = !prev.ended
	}
	if p.lost != nil {
		return taken, c.cfg.opErr(OpMail, p.lost)
	}
	if p.closing != nil {
		return taken, c.cfg.opErr(OpMail, p.closing)
	}
	if err := ctx.Err(); err != nil {
		return taken, context.Cause(ctx)
	}
	return taken, nil
}

// needsReset reports whether the server may still hold t's transaction
// open when the next transaction's commands are written.
func (t *tx) needsReset() bool {
	switch {
	case t.ended:
		return false
	case t.endWritten && !t.chunked:
		return false // the end of DATA ends the transaction, whatever the reply
	}
	return true
}

// SendBatch sends messages over pooled connections one after another,
// pipelining across transactions as [Conn.SendBatch] does. If a connection
// fails, the remaining messages continue on a new one; the messages whose
// transactions were cut report that (a message whose data was complete
// reports an unknown outcome and is never sent again). A pooled connection
// found dead by the first message taken on it, before any of its body was
// read, is replaced once and that message sent again, as Send does.
// Concurrent calls use separate connections, within Pool.MaxConns, as Sends
// do; with pooling disabled, each connection is closed once the batch is
// done with it.
//
// done is called once for each message taken from msgs, in order. When no
// connection can be had (the server cannot be reached, the context ended,
// or the transport was closed: ErrTransportClosed), the message that was
// waiting for one is reported failed and SendBatch returns that error
// without taking more messages from msgs: those got no call, and the error
// is their outcome (nothing of them was sent).
func (t *SMTP) SendBatch(ctx context.Context, msgs iter.Seq[Message], done func(i int, res *Result, err error)) error {
	return poolBatch(ctx, t.getPool(), msgs, done)
}

func poolBatch(ctx context.Context, p *pool, msgs iter.Seq[Message], done func(int, *Result, error)) error {
	next, stop := iter.Pull(msgs)
	defer stop()
	idx := 0
	var pending *Message
	pull := func() (Message, bool) {
		if pending != nil {
			m := *pending
			pending = nil
			return m, true
		}
		return next()
	}
	for {
		m, ok := pull()
		if !ok {
			return nil
		}
		pending = &m
		c, reused, err := p.get(ctx)
		if err != nil {
			// Report this message and give up: the server cannot be reached.
			pending = nil
			res, err := dialFailure(m.Envelope, err)
			done(idx, res, err)
			return err
		}
		report := done
		var (
			stale    *Message
			staleRes *Result
			staleErr error
		)
		if reused {
			// As for Send: a reused session found dead by the first
			// message, before any of its body was read, is replaced once
			// and the message sent again on the new one.
			first, cr := idx, &countingReader{r: m.Body}
			pending.Body = cr
			report = func(i int, res *Result, err error) {
				if i == first && cr.n == 0 && staleFailure(err, res) {
					stale, staleRes, staleErr = &Message{Envelope: m.Envelope, Body: cr}, res, err
					return
				}
				done(i, res, err)
			}
		}
		c.mu.Lock()
		n, berr := c.sendBatch(ctx, pull, idx, report)
		c.mu.Unlock()
		if stale != nil && n != 1 {
			done(idx, staleRes, staleErr) // not expected: report it as it came
		} else if stale != nil {
			if c, err = p.replace(ctx, c); err != nil {
				res, err := dialFailure(stale.Envelope, err)
				done(idx, res, err)
				return err
			}
			pending = stale
			c.mu.Lock()
			n, berr = c.sendBatch(ctx, pull, idx, done)
			c.mu.Unlock()
		}
		idx += n
		p.put(ctx, c)
		if berr != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			continue // a new connection for the rest
		}
	}
}

// SendBatch sends messages over pooled LMTP connections one after another,
// as [SMTP.SendBatch] does; each recipient of each message gets its own
// outcome.
func (t *LMTP) SendBatch(ctx context.Context, msgs iter.Seq[Message], done func(i int, res *Result, err error)) error {
	cfg, err := t.config()
	if err != nil {
		return &OpError{Op: OpDial, Addr: t.Addr, Err: err}
	}
	return poolBatch(ctx, t.getPool(cfg), msgs, done)
}
