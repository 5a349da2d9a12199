package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/transport"
)

// A msgSource yields the messages of a batch one at a time.
type msgSource interface {
	// Next returns the next message, or io.EOF after the last. A message
	// that cannot be read has err set. The reader of a message is valid
	// until the next call.
	Next() (*sourceMsg, error)
	// Total returns the number of messages, or -1 if it is not known.
	Total() int
	Close() error
}

// sourceMsg is one message of a batch.
type sourceMsg struct {
	name string    // file name, or mbox name and index
	r    io.Reader // the message
	size int64     // its size if known, else 0
	err  error     // why it cannot be read
	// reopen opens the message again from its start, for a retry; nil
	// when it cannot be read twice.
	reopen opener
}

// A batchSender sends a sequence of messages and reports each outcome, in
// order; the shape is transport.SMTP's SendBatch.
type batchSender interface {
	SendBatch(ctx context.Context, msgs iter.Seq[transport.Message], done func(i int, res *transport.Result, err error)) error
}

// newBatchSender returns how a batch reaches tgt. It is the one place that
// decides how the messages of a batch share connections.
//
// SMTP and LMTP targets send through their own SendBatch: pooled
// connections with pipelining across transactions, a new connection when
// one breaks. A transport a configuration wrapped in middleware gets one
// Send per message; the pooled transport inside reuses its connections.
func newBatchSender(tgt *target) batchSender {
	switch {
	case tgt.wrapped:
	case tgt.smtp != nil:
		return tgt.smtp
	case tgt.lmtp != nil:
		return tgt.lmtp
	}
	return sendEach{tgt.tr}
}

// sendEach sends a batch with one Send per message.
type sendEach struct{ tr transport.Transport }

func (s sendEach) SendBatch(ctx context.Context, msgs iter.Seq[transport.Message], done func(int, *transport.Result, error)) error {
	i := 0
	for m := range msgs {
		res, err := s.tr.Send(ctx, m.Envelope, m.Body)
		done(i, res, err)
		i++
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	return nil
}

// batch sends the messages of a source and reports on each.
type batch struct {
	tgt      *target
	spec     envSpec
	src      msgSource
	timeout  time.Duration
	stdout   io.Writer
	stderr   io.Writer
	quiet    bool
	progress bool

	start time.Time
	// total is the number of messages of the source, -1 if unknown; read
	// those taken from it so far; done those reported on, each counted
	// once in sent, partial, failed or unknown.
	total, read, done              int
	sent, partial, failed, unknown int
	status                         int
	barShown                       bool
}

// errStalled cancels a batch in which no message completed for --timeout.
var errStalled = errors.New("no message completed within --timeout")

// run sends every message and returns the batch's exit status: that of its
// worst message.
func (b *batch) run(ctx context.Context) int {
	b.start = time.Now()
	b.total = b.src.Total()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// --timeout bounds each message: the batch stops when none completes
	// for that long.
	watchdog := time.AfterFunc(b.timeout, func() { cancel(errStalled) })
	defer watchdog.Stop()

	var (
		names    []string
		prepErrs = map[int]error{}
		srcErr   error
	)
	msgs := func(yield func(transport.Message) bool) {
		for ctx.Err() == nil {
			sm, err := b.src.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				srcErr = err
				return
			}
			i := len(names)
			names = append(names, sm.name)
			b.read = len(names)
			m := transport.Message{Envelope: &envelope.Envelope{}, Body: strings.NewReader("")}
			if sm.err != nil {
				prepErrs[i] = sm.err
			} else if pm, err := prepareMessage(sm.r, b.spec); err != nil {
				// Sent as an empty envelope that the transport refuses
				// before any command, so that the report stays in order.
				prepErrs[i] = err
			} else {
				pm.env.Size = sm.size
				m = transport.Message{Envelope: pm.env, Body: reopenable(pm.body, sm.reopen, b.spec)}
			}
			if !yield(m) {
				return
			}
		}
	}
	b.draw()
	err := newBatchSender(b.tgt).SendBatch(ctx, msgs, func(i int, res *transport.Result, err error) {
		watchdog.Reset(b.timeout)
		if pe := prepErrs[i]; pe != nil {
			res, err = nil, pe
		}
		b.status = worse(b.status, b.one(names[i], res, err))
	})
	transport.CloseIdleConnections(b.tgt.tr)
	b.clearBar()
	stopped := ""
	switch {
	case srcErr != nil:
		fmt.Fprintf(b.stderr, "%s: %s\n", prog, oneLine(srcErr.Error()))
		b.status = worse(b.status, statusOf(srcErr))
		stopped = "unreadable input"
	case context.Cause(ctx) == errStalled:
		fmt.Fprintf(b.stderr, "%s: stopping: %v\n", prog, errStalled)
		b.status = worse(b.status, exitTempFail)
		stopped = "timeout"
	case ctx.Err() != nil:
		b.status = worse(b.status, exitTempFail)
		stopped = "interrupted"
	case err != nil:
		fmt.Fprintf(b.stderr, "%s: stopping: %s\n", prog, oneLine(err.Error()))
		b.status = worse(b.status, exitCode(nil, err))
		stopped = "cannot connect"
	}
	elapsed := time.Since(b.start)
	fmt.Fprintln(b.stdout, b.summary(elapsed, stopped))
	if b.unknown > 0 {
		fmt.Fprintf(b.stderr, "%s: warning: the connection was lost after %d %s sent (outcome unknown): %s may have been delivered; check before sending %s again\n",
			prog, b.unknown, plural(b.unknown, "message was", "messages were"), plural(b.unknown, "it", "they"), plural(b.unknown, "it", "them"))
	}
	return b.status
}

// summary is the last line of a batch: "3 sent, 1 partial, 1 failed (5
// messages) in 212ms, 18.9 msgs/s". Messages whose outcome is unknown and
// messages not attempted are counted only when there are some. The rate
// counts the messages delivered (sent or partial), and is left out when
// none was.
func (b *batch) summary(elapsed time.Duration, stopped string) string {
	s := fmt.Sprintf("%d sent, %d partial, %d failed", b.sent, b.partial, b.failed)
	if b.unknown > 0 {
		s += fmt.Sprintf(", %d unknown", b.unknown)
	}
	messages := b.total
	if messages < 0 {
		// Not counted beforehand (an mbox on standard input): those read.
		messages = b.read
	}
	if n := messages - b.done; n > 0 {
		s += fmt.Sprintf(", %d not attempted", n)
	}
	s += fmt.Sprintf(" (%d %s) in %s", messages, plural(messages, "message", "messages"), roundDuration(elapsed))
	if rate, ok := b.rate(elapsed); ok {
		s += fmt.Sprintf(", %.1f msgs/s", rate)
	}
	if stopped != "" {
		s += "; stopped: " + stopped
	}
	return s
}

// rate is the number of messages delivered (sent or partial) per second;
// ok is false when none was.
func (b *batch) rate(elapsed time.Duration) (rate float64, ok bool) {
	delivered := b.sent + b.partial
	if delivered == 0 || elapsed <= 0 {
		return 0, false
	}
	return float64(delivered) / elapsed.Seconds(), true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// unknownWarning follows the line of a message whose outcome is unknown,
// as the single send's warning does.
const unknownWarning = "the connection was lost after the message was sent: it may have been delivered; check before sending it again"

// one prints the line of one message and returns its status.
func (b *batch) one(name string, res *transport.Result, err error) int {
	b.done++
	accepted := res.Count(transport.Accepted)
	refused := func() string {
		var r []string
		for _, rr := range res.Rcpts {
			if rr.Outcome != transport.Accepted {
				r = append(r, describeRcpt(rr))
			}
		}
		return fmt.Sprintf("%d/%d recipients accepted; refused %s", accepted, len(res.Rcpts), strings.Join(r, "; "))
	}
	switch {
	case err == nil:
		b.sent++
		b.line("ok", name, strings.TrimPrefix(acceptedSummary(res), "sent: "), false)
	case outcomeUnknown(res, err):
		// The server may have the message: whoever sends the batch again
		// must know, as with one message.
		b.unknown++
		text := oneLine(err.Error())
		if accepted > 0 {
			text = refused()
		}
		b.line("unknown", name, text+"; "+unknownWarning, true)
	case accepted > 0:
		b.partial++
		b.line("partial", name, refused(), true)
	default:
		b.failed++
		b.line("failed", name, oneLine(err.Error()), true)
	}
	return exitCode(res, err)
}

// outcomeUnknown reports whether the server may have delivered a message
// although the send failed: the connection was lost after its end.
func outcomeUnknown(res *transport.Result, err error) bool {
	return err != nil && (errors.Is(err, transport.ErrUnknownOutcome) || res.Count(transport.Unknown) > 0)
}

// line prints one message's result, above the progress bar.
func (b *batch) line(kind, name, text string, problem bool) {
	if b.quiet && !problem {
		b.draw()
		return
	}
	b.clearBar()
	fmt.Fprintf(b.stdout, "%-7s %s: %s\n", kind, name, text)
	b.draw()
}

// draw shows the progress bar on the terminal.
func (b *batch) draw() {
	if !b.progress {
		return
	}
	width := 80
	if f, ok := b.stderr.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			width = w
		}
	}
	counts := fmt.Sprintf("  ok %d  partial %d  failed %d", b.sent, b.partial, b.failed)
	if b.unknown > 0 {
		counts += fmt.Sprintf("  unknown %d", b.unknown)
	}
	if rate, ok := b.rate(time.Since(b.start)); ok {
		counts += fmt.Sprintf("  %.1f msgs/s", rate)
	}
	var head string
	if b.total > 0 {
		pct := b.done * 100 / b.total
		head = fmt.Sprintf(" %d/%d %3d%%", b.done, b.total, pct)
		barWidth := width - len(head) - len(counts) - 3
		if barWidth > 40 {
			barWidth = 40
		}
		if barWidth >= 10 {
			filled := barWidth * b.done / b.total
			head = "[" + strings.Repeat("#", filled) + strings.Repeat("-", barWidth-filled) + "]" + head
		}
	} else {
		head = fmt.Sprintf("[%d so far]", b.done)
	}
	text := head + counts
	if len(text) > width-1 {
		text = text[:width-1]
	}
	fmt.Fprint(b.stderr, "\r\x1b[K"+text)
	b.barShown = true
}

// clearBar erases the progress bar before other output.
func (b *batch) clearBar() {
	if b.barShown {
		fmt.Fprint(b.stderr, "\r\x1b[K")
		b.barShown = false
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d > time.Minute:
		return d.Round(time.Second)
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
