package transport

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-multierror"

	"github.com/mailwire/mailwire/envelope"
)

// Failover returns a Transport that tries the transports ts in order, a
// primary relay first and then its backups, and moves on to the next only
// when the message cannot have been delivered yet, so that nothing is ever
// sent twice. It panics if ts is empty or holds a nil Transport.
//
// Failover moves on from a member's failure only if all of these hold:
//
//   - the error is not a context error (the caller's cancellation or
//     deadline, which interrupted the member);
//   - the member reported no recipient Accepted and none Unknown (an
//     Unknown outcome means the server may have the message), and none
//     refused by a reply of its own;
//   - either the session could not be set up, nothing about the message
//     having been sent: the error is an *[OpError] at [OpDial],
//     [OpGreeting], [OpHello], [OpStartTLS] or [OpAuth], whatever its reply
//     or cause (a 421 or a 554 "no service" greeting, a refused EHLO, a TLS
//     or certificate failure, a refused login);
//   - or the transaction failed temporarily for every recipient: every
//     recipient is TempFailed and the error matches [ErrTransient] without
//     being an *OpError at [OpEndOfData] (a 4yz reply or a lost connection
//     at MAIL, RCPT or DATA, or 4yz replies to every RCPT);
//   - and the body can be given to the next member from its start: the
//     member did not call Read on it, or msg is an io.Seeker, the failure
//     is not an *OpError at [OpData] (the data transfer had not begun), and
//     msg could be sought back to the offset it had when Send was called.
//
// So Failover never moves on after a permanent failure of the message (a
// 5yz to MAIL, RCPT or the data, an envelope refused locally at
// [OpEnvelope]), after a partial success, after the end of the data or a
// failure during its transfer, or after an Unknown outcome. The one answer
// to the end of the data it moves on from is an LMTP server's 4yz for every
// recipient, with a body it could rewind: nobody has the message then. A
// TLS failure moves on because nothing was sent: each member still enforces
// its own TLS policy, so a backup never weakens it, and the failure stays in
// the error.
//
// The body rule matters with servers that offer CHUNKING and PIPELINING:
// the SMTP transport then sends the first chunk of the message before the
// replies to MAIL and RCPT arrive, so a 4yz to MAIL or RCPT comes after the
// body was read, and Failover moves on from it only with a seekable body (a
// *bytes.Reader, *strings.Reader or *os.File, for example). Failover never
// buffers the body.
//
// Failover calls no member once ctx is done. If ctx is done before a member
// is tried, that member's answer is an *[OpError] at [OpDial] wrapping
// context.Cause(ctx), with every recipient TempFailed.
//
// The Result is the last member's, with each recipient's Attempts summed
// over the members tried. The error is the last member's, unchanged, when
// only one member was tried or when the message was accepted for some
// recipients (it is then that member's [Result.Err]). When several members
// were tried and the message was accepted for none, the error is a
// *[FailoverError] listing what each answered; it is classified as the last
// answer, which decided the Result.
//
// The members get msg wrapped, to see whether they read it; the wrapper
// keeps io.Seeker. When env declares no Size and msg's size is known
// without reading it (a *bytes.Reader, *strings.Reader, *bytes.Buffer or
// regular *os.File), the members get a copy of env whose Size declares it,
// as the SMTP transport would have found from msg itself.
//
// The returned Transport implements [IdleCloser]: CloseIdleConnections
// calls [CloseIdleConnections] for every member. Its Unwrap() []Transport
// method returns the members. It is safe for concurrent use if the members
// are.
func Failover(ts ...Transport) Transport {
	if len(ts) == 0 {
		panic("transport: Failover called without transports")
	}
	for _, t := range ts {
		if t == nil {
			panic("transport: Failover called with a nil Transport")
		}
	}
	return &failover{ts: slices.Clone(ts)}
}

type failover struct {
	ts []Transport
}

var (
	_ Transport  = (*failover)(nil)
	_ IdleCloser = (*failover)(nil)
)

// Unwrap returns a copy of the members, in order.
func (f *failover) Unwrap() []Transport { return slices.Clone(f.ts) }

// CloseIdleConnections closes the idle connections of every member that
// keeps any, found as [CloseIdleConnections] finds them.
func (f *failover) CloseIdleConnections() {
	for _, t := range f.ts {
		CloseIdleConnections(t)
	}
}

// FailoverError is the error of a [Failover] that tried more than one member
// and had the message accepted for no recipient. Index and Err are the
// last member tried and its error, which decided the Result; Unwrap returns
// Err, so errors.Is and errors.As see that answer only and the error is
// classified like it. Previous holds what the members tried before
// answered, in order: a go-multierror aggregate of one *FailoverError per
// member, each with its Index and Err (and a nil Previous).
type FailoverError struct {
	Index    int               // position of the member in the list given to Failover, from 0
	Err      error             // the member's error
	Previous *multierror.Error // the earlier members' answers; nil if none
}

// Error lists every answer on one line: "transport: failover: #0:
// transport: dial mx1:25: ...; #1: transport: mail mx2:25: 421 ...". An
// element of Previous reads "#0: ...".
func (e *FailoverError) Error() string {
	var b strings.Builder
	if e.Previous != nil && len(e.Previous.Errors) > 0 {
		b.WriteString("transport: failover: ")
		b.WriteString(formatErrors(e.Previous.Errors))
		b.WriteString("; ")
	}
	b.WriteByte('#')
	b.WriteString(strconv.Itoa(e.Index))
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("<nil>")
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *FailoverError) Unwrap() error { return e.Err }

// Send tries the members in order; see [Failover].
func (f *failover) Send(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*Result, error) {
	if env == nil {
		return nil, &OpError{Op: OpEnvelope, Err: &envelope.Error{Field: "envelope", Err: envelope.ErrNoRecipients}}
	}
	sendEnv := env
	if env.Size == 0 {
		if n := wireSize(msg, env.Body == envelope.BodyBinaryMIME); n > 0 {
			sendEnv = env.Clone()
			sendEnv.Size = n
		}
	}
	body := trackReads(msg)
	defer body.close()

	var (
		prev     *multierror.Error
		attempts = make([]int, len(env.To))
		res      *Result
		err      error
		i        int
	)
	for i = 0; i < len(f.ts); i++ {
		if i > 0 {
			prev = multierror.Append(prev, &FailoverError{Index: i - 1, Err: err})
			prev.ErrorFormat = formatErrors
		}
		if cerr := ctx.Err(); cerr != nil {
			err = &OpError{Op: OpDial, Err: context.Cause(ctx)}
			res = newResult(env)
			setAll(res, TempFailed, err)
			for j := range attempts {
				attempts[j]++
			}
			break
		}
		mctx := ctx
		if _, seekable := body.(io.Seeker); !seekable && i < len(f.ts)-1 {
			// Keep the body unread until the envelope is accepted, so that a
			// refusal of the envelope can still move on to the next member.
			mctx = withHoldBody(ctx)
		}
		res, err = f.ts[i].Send(mctx, sendEnv, body)
		res = fixResult(env, res, err)
		for j := range res.Rcpts {
			attempts[j] += max(res.Rcpts[j].Attempts, 1)
		}
		if err == nil || !movesOn(ctx, res, err, body) {
			break
		}
	}
	if i == len(f.ts) {
		i-- // every member was tried and each allowed moving on
	}
	for j := range res.Rcpts {
		res.Rcpts[j].Attempts = attempts[j]
	}
	if err == nil || prev == nil || res.Count(Accepted) > 0 {
		return res, err
	}
	return res, &FailoverError{Index: i, Err: err, Previous: prev}
}

// movesOn reports whether a member's failure leaves the message certainly
// undelivered and not refused as such, so that the next member may try. If
// the member read the body, moving on also needs it rewound to its start;
// movesOn does that last. The caller's cancellation or deadline (ctx) ends
// the failover; a deadline of the member's own (a Timeout around it) is a
// failure like a lost connection.
func movesOn(ctx context.Context, res *Result, err error, body trackedBody) bool {
	own := false
	if isContextErr(err) {
		if ctx.Err() != nil {
			return false
		}
		own = true
	}
	var oe *OpError
	hasOp := errors.As(err, &oe)
	setup := isSetupErr(err)
	if !setup {
		if hasOp && (oe.Op == OpEnvelope || oe.Op == OpEndOfData) {
			return false
		}
		if !own && !errors.Is(err, ErrTransient) {
			return false
		}
	}
	for _, rr := range res.Rcpts {
		switch rr.Outcome {
		case TempFailed:
		case PermFailed:
			// A session refused as a whole (a 554 greeting) fails every
			// recipient permanently; a recipient refused by its own reply
			// ends the failover.
			if !setup || !isSetupErr(rr.Err) {
				return false
			}
		default: // Accepted, Unknown, or a broken Result
			return false
		}
	}
	if body.used() {
		// Only the start of the body can have gone out ahead of the
		// replies (a pipelined first BDAT chunk, or a middleware that
		// reads it first), unless the data phase itself failed.
		if hasOp && (oe.Op == OpData || oe.Op == OpEndOfData) {
			return false
		}
		return body.rewind()
	}
	return true
}

// isSetupErr reports whether err is the failure of a session before any
// transaction began: dial, greeting, hello, TLS or authentication.
func isSetupErr(err error) bool {
	var oe *OpError
	if !errors.As(err, &oe) {
		return false
	}
	switch oe.Op {
	case OpDial, OpGreeting, OpHello, OpStartTLS, OpAuth:
		return true
	}
	return false
}

// fixResult returns res, or, if a member broke the contract by returning no
// Result or one of the wrong length, a Result derived from err.
func fixResult(env *envelope.Envelope, res *Result, err error) *Result {
	if res != nil && len(res.Rcpts) == len(env.To) {
		return res
	}
	res = newResult(env)
	o := Accepted
	switch {
	case err == nil:
	case errors.Is(err, ErrTransient):
		o = TempFailed
	case errors.Is(err, ErrPermanent):
		o = PermFailed
	default:
		o = Unknown // it may have been delivered
	}
	if o == Accepted {
		err = nil
	}
	setAll(res, o, err)
	return res
}

// setAll gives every recipient of res the outcome o, the error err, no
// reply and one attempt.
func setAll(res *Result, o Outcome, err error) {
	for j := range res.Rcpts {
		rr := &res.Rcpts[j]
		rr.Outcome, rr.Reply, rr.Err, rr.Attempts = o, nil, err, 1
	}
}

// trackedBody is the message as the members see it: it records whether
// Read was called and can rewind the message to where it was when Send was
// called, if it is an io.Seeker, or read it again from its start, if it can
// be reopened (see reopener).
type trackedBody interface {
	io.Reader
	used() bool
	rewind() bool
	close()
}

// reopener is a body that can be read again from its start, such as the
// bodies of the retry middleware (retry.Reopener, which has this method).
type reopener interface {
	Reopen() (io.Reader, error)
}

type readTracker struct {
	r      io.Reader
	s      io.Seeker // nil if r cannot be rewound
	start  int64
	ro     reopener  // nil if the body cannot be reopened
	opened io.Closer // a reader rewind reopened, closed by close
	read   atomic.Bool
}

func (t *readTracker) Read(p []byte) (int, error) {
	t.read.Store(true)
	return t.r.Read(p)
}

func (t *readTracker) used() bool { return t.read.Load() }

func (t *readTracker) rewind() bool {
	switch {
	case t.s != nil:
		if _, err := t.s.Seek(t.start, io.SeekStart); err != nil {
			return false
		}
	case t.ro != nil:
		r, err := t.ro.Reopen()
		if err != nil || r == nil {
			return false
		}
		t.close()
		t.r = r
		t.opened, _ = r.(io.Closer)
	default:
		return false
	}
	t.read.Store(false)
	return true
}

func (t *readTracker) close() {
	if t.opened != nil {
		t.opened.Close()
		t.opened = nil
	}
}

// reopenTracker is a readTracker that keeps its body's Reopen method, for
// members that reopen the body themselves (a retry middleware).
type reopenTracker struct {
	*readTracker
}

// Reopen reopens the body for a member; the body counts as read.
func (t reopenTracker) Reopen() (io.Reader, error) {
	t.read.Store(true)
	return t.ro.Reopen()
}

// seekTracker is a readTracker that keeps its reader's Seek method, for
// members that rewind the body themselves.
type seekTracker struct {
	*readTracker
}

func (t seekTracker) Seek(offset int64, whence int) (int64, error) {
	return t.s.Seek(offset, whence)
}

func trackReads(r io.Reader) trackedBody {
	t := &readTracker{r: r}
	if ro, ok := r.(reopener); ok {
		t.ro = ro
		return reopenTracker{t}
	}
	if s, ok := r.(io.Seeker); ok {
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			t.s, t.start = s, off
			return seekTracker{t}
		}
	}
	return t
}
