package wire

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// MaxCommandLen bounds a command line written by the client, CRLF excluded.
// RFC 5321 allows 512 octets plus extension parameters; RFC 4954 allows an
// AUTH line of 12288 octets.
const MaxCommandLen = 12288

// Conn is one client connection. It is not safe for concurrent use, except
// that the context bridge may interrupt it from another goroutine.
type Conn struct {
	nc net.Conn
	cw countingWriter
	r  *bufio.Reader
	w  *bufio.Writer
	tr *Transcript

	rep  Reply    // reused by ReadReply
	strs interner // recurring reply lines
	peek *peeker  // made by the first look at the socket

	mu     sync.Mutex
	stop   func() bool
	ctx    context.Context
	broken error
}

// NewConn wraps nc. debug, if not nil, receives the transcript.
func NewConn(nc net.Conn, debug io.Writer) *Conn {
	c := &Conn{nc: nc}
	c.cw.w = nc
	c.r = bufio.NewReaderSize(nc, 8<<10)
	c.w = bufio.NewWriterSize(&c.cw, 32<<10)
	if debug != nil {
		c.tr = &Transcript{w: debug}
	}
	return c
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Upgrade replaces the connection with nc (after a TLS handshake) and drops
// anything the server sent before it: bytes read in clear never count as
// replies on the encrypted connection.
func (c *Conn) Upgrade(nc net.Conn) {
	c.nc = nc
	c.cw.w = nc
	c.r = bufio.NewReaderSize(nc, 8<<10)
	c.w.Reset(&c.cw)
}

// Written returns the number of bytes the connection has accepted for
// sending so far (after the buffer), and Pending the number still buffered.
// Together they tell whether a given byte, such as the last of an
// end-of-data sequence, left the client before a write failed.
func (c *Conn) Written() int64 { return c.cw.n }

// Pending returns the number of bytes buffered and not yet written.
func (c *Conn) Pending() int { return c.w.Buffered() }

type countingWriter struct {
	w io.Writer
	n int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// Buffered returns the number of bytes the server sent that were read ahead
// and not yet consumed.
func (c *Conn) Buffered() int { return c.r.Buffered() }

// Peeked returns up to n of the bytes read ahead, without consuming them
// and without reading more.
func (c *Conn) Peeked(n int) []byte {
	n = min(n, c.r.Buffered())
	b, _ := c.r.Peek(n)
	return b
}

// Bind ties the connection's I/O to ctx until the returned function is
// called: cancelling ctx interrupts any blocked read or write at once. Only
// one context is bound at a time.
func (c *Conn) Bind(ctx context.Context) (unbind func()) {
	if ctx.Done() == nil {
		// A context that is never cancelled needs no watcher; its
		// deadline, if any, is applied by SetDeadline.
		c.mu.Lock()
		c.ctx = ctx
		c.mu.Unlock()
		return c.unbindPlain
	}
	c.mu.Lock()
	c.ctx = ctx
	c.stop = context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ctx == ctx {
			c.nc.SetDeadline(aLongTimeAgo)
		}
	})
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.stop != nil {
			c.stop()
		}
		c.stop = nil
		c.ctx = nil
		c.mu.Unlock()
	}
}

var aLongTimeAgo = time.Unix(1, 0)

func (c *Conn) unbindPlain() {
	c.mu.Lock()
	c.ctx = nil
	c.mu.Unlock()
}

// SetDeadline sets the read and write deadline to now+ceiling, or to the
// bound context's deadline if that is sooner (zero ceiling: the context's
// deadline alone). It keeps a cancelled context's interruption in force.
func (c *Conn) SetDeadline(ceiling time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Time
	if ceiling > 0 {
		d = time.Now().Add(ceiling)
	}
	if c.ctx != nil {
		if c.ctx.Err() != nil {
			c.nc.SetDeadline(aLongTimeAgo)
			return
		}
		if cd, ok := c.ctx.Deadline(); ok && (d.IsZero() || cd.Before(d)) {
			d = cd
		}
	}
	c.nc.SetDeadline(d)
}

// WriteCommand buffers one command line, appending CRLF. It is the single
// choke point for command lines: a line containing CR, LF or NUL, or longer
// than MaxCommandLen, is refused with ErrCommandInvalid and nothing at all is
// written. Call Flush to send.
func (c *Conn) WriteCommand(line string) error {
	return c.writeCommand(line, "")
}

// WriteSecretCommand is WriteCommand for a line that carries a credential
// (an AUTH command or a SASL response): the transcript shows shown instead,
// or "[redacted]" if shown is empty. An AUTH command line is shown as what
// it is: a bare "AUTH <mechanism>" (no initial response, as with LOGIN or
// CRAM-MD5, or one deferred to the first challenge) carries no secret and
// is shown verbatim whatever shown says; one with an initial response is
// shown as shown, or as "AUTH <mechanism> [redacted]" if shown is empty.
func (c *Conn) WriteSecretCommand(line, shown string) error {
	if mech, arg, ok := authLine(line); ok {
		switch {
		case !arg:
			shown = line
		case shown == "":
			shown = line[:len("AUTH ")] + mech + " [redacted]"
		}
	}
	if shown == "" {
		shown = "[redacted]"
	}
	return c.writeCommand(line, shown)
}

// authLine reports whether line is an AUTH command, its mechanism name and
// whether anything at all follows the name. The name must be a SASL
// mechanism name (RFC 4422 3.1: letters, digits, "-" and "_"), so that a
// line whose credential is joined to the name by something other than a
// space is not taken for a bare one. A SASL response line is base64 or "*"
// and never contains a space, so it is never taken for an AUTH command.
func authLine(line string) (mech string, arg, ok bool) {
	const verb = "AUTH "
	if len(line) <= len(verb) || !strings.EqualFold(line[:len(verb)], verb) {
		return "", false, false
	}
	rest := line[len(verb):]
	n := 0
	for n < len(rest) && isMechChar(rest[n]) {
		n++
	}
	if n == 0 || n < len(rest) && rest[n] != ' ' {
		return "", false, false
	}
	return rest[:n], n < len(rest), true
}

func isMechChar(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

func (c *Conn) writeCommand(line, shown string) error {
	if err := CheckCommand(line); err != nil {
		return err
	}
	if c.broken != nil {
		return c.broken
	}
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if c.tr != nil {
		if shown == "" {
			shown = line
		}
		c.tr.line("C: ", shown)
	}
	return nil
}

// CheckCommand reports whether line may be written as a command line.
func CheckCommand(line string) error {
	if len(line) > MaxCommandLen {
		return ErrCommandInvalid
	}
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\r', '\n', 0:
			return ErrCommandInvalid
		}
	}
	return nil
}

// Flush writes buffered commands and data to the server.
func (c *Conn) Flush() error {
	if err := c.w.Flush(); err != nil {
		c.broken = err
		return err
	}
	return nil
}

// DataWriter returns the buffered writer for message content; content
// written to it bypasses the command choke point, so only the DATA and
// BDAT encoders may use it.
func (c *Conn) DataWriter() *bufio.Writer { return c.w }

// ReadReply reads one reply and records it in the transcript. The reply
// is valid until the next call: callers copy what they keep.
func (c *Conn) ReadReply() (*Reply, error) {
	rep := &c.rep
	if err := readReplyInto(c.r, rep, &c.strs); err != nil {
		return nil, err
	}
	if c.tr != nil {
		c.tr.reply(rep)
	}
	return rep, nil
}

// Note writes a comment line into the transcript, such as a summary of the
// message data written.
func (c *Conn) Note(format string, args ...any) {
	if c.tr != nil {
		c.tr.line("C: ", fmt.Sprintf(format, args...))
	}
}

// RedactReplies makes the transcript hide the text of the following
// intermediate (334) replies until called with false; SASL challenges can
// carry data derived from credentials.
func (c *Conn) RedactReplies(on bool) {
	if c.tr != nil {
		c.tr.redact334 = on
	}
}

// SetScrub makes the transcript pass every reply line through f (nil to
// stop): during an AUTH exchange, the session removes from replies any
// credential a server might echo.
func (c *Conn) SetScrub(f func(string) string) {
	if c.tr != nil {
		c.tr.scrub = f
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Transcript writes the session's lines to a debug writer. Each line is
// prefixed with "C: " or "S: "; non-printable bytes are escaped.
type Transcript struct {
	w         io.Writer
	redact334 bool
	scrub     func(string) string
}

func (t *Transcript) line(prefix, s string) {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(escape(s))
	b.WriteByte('\n')
	io.WriteString(t.w, b.String())
}

func (t *Transcript) reply(r *Reply) {
	var b strings.Builder
	for i, l := range r.Lines {
		sep := byte(' ')
		if i < len(r.Lines)-1 {
			sep = '-'
		}
		b.WriteString("S: ")
		fmt.Fprintf(&b, "%d%c", r.Code, sep)
		if i == 0 && r.Enhanced != ([3]int{}) {
			fmt.Fprintf(&b, "%d.%d.%d ", r.Enhanced[0], r.Enhanced[1], r.Enhanced[2])
		}
		switch {
		case t.redact334 && r.Code == 334:
			b.WriteString("[redacted]")
		case t.scrub != nil:
			b.WriteString(escape(t.scrub(l)))
		default:
			b.WriteString(escape(l))
		}
		b.WriteByte('\n')
	}
	io.WriteString(t.w, b.String())
}

func escape(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			q := fmt.Sprintf("%q", s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// Stale reports whether an idle connection can no longer be used: the server
// sent something unsolicited (such as a 421 before closing) or closed it.
// It does not block.
func (c *Conn) Stale() bool {
	if c.r.Buffered() > 0 {
		return true
	}
	return c.peerSpoke()
}
