package dataenc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// bufSize is the size of the internal buffer of both writers. Output reaches
// the underlying writer in pieces of at most bufSize bytes, except that a run
// of at least bufSize input bytes needing no change is passed on in one call.
const bufSize = 32 << 10

// bufPool holds the buffers of writers that were closed, so that a writer
// per message costs no large allocation.
var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

var (
	// ErrEightBit is returned by Write, and then by every later call, when
	// Strict7Bit is set and the content holds a byte of 0x80 or above.
	ErrEightBit = errors.New("dataenc: 8-bit byte in content sent as 7-bit")

	// ErrClosed is returned by Write and Flush after a successful Close.
	ErrClosed = errors.New("dataenc: write after close")
)

var (
	crlf       = []byte("\r\n")  // the line ending every writer produces
	terminator = []byte(".\r\n") // the last line of DATA
)

// encoder holds the state shared by DotWriter and CRLFWriter. The input is
// copied through unchanged except at these points: a CR is inserted before a
// bare LF, an LF is inserted after a bare CR, an LF that directly follows a CR
// from the previous Write is dropped (that CR was already written as CRLF),
// and, when stuffing, a "." is inserted before a "." that starts a line.
type encoder struct {
	w       io.Writer
	err     error // sticky; once set nothing more reaches w
	written int64 // bytes accepted by w
	n       int   // bytes used in buf
	has8    bool  // a byte >= 0x80 was seen
	cr      bool  // the last input byte was CR, already written as CRLF
	bol     bool  // the output is empty or ends in CRLF
	closed  bool
	buf     *[bufSize]byte // taken from bufPool on first use, returned by close
}

func (e *encoder) reset(w io.Writer) {
	e.w = w
	e.err = nil
	e.written = 0
	e.n = 0
	e.has8 = false
	e.cr = false
	e.bol = true
	e.closed = false
}

// write encodes p. With strict set, it stops before the first 8-bit byte and
// fails with ErrEightBit.
func (e *encoder) write(p []byte, stuff, strict bool) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.closed {
		return 0, ErrClosed
	}
	if e.buf == nil {
		e.buf = bufPool.Get().(*[bufSize]byte)
	}
	// Once an 8-bit byte was seen, and unless it must be rejected, there is
	// nothing more to learn from scanning.
	if !e.has8 || strict {
		if i := index8Bit(p); i >= 0 {
			e.has8 = true
			if strict {
				e.encode(p[:i], stuff)
				if e.err != nil {
					return 0, e.err
				}
				e.err = ErrEightBit
				return i, e.err
			}
		}
	}
	e.encode(p, stuff)
	if e.err != nil {
		return 0, e.err
	}
	return len(p), nil
}

func (e *encoder) encode(p []byte, stuff bool) {
	if len(p) == 0 {
		return
	}
	if e.cr {
		e.cr = false
		if p[0] == '\n' {
			// Second half of a CRLF split across two Writes: the CR was
			// already written as CRLF.
			p = p[1:]
			if len(p) == 0 {
				return
			}
		}
	}
	if stuff && e.bol && p[0] == '.' {
		e.putByte('.')
	}
	// start is the beginning of the run of input not yet copied out. lf and
	// cr are the positions of the next LF and CR at or after the current
	// point, len(p) when there is none; each is searched for again only
	// once the scan has passed it, so the whole of p is scanned at most
	// once for each byte value.
	start := 0
	lf := indexFrom(p, 0, '\n')
	cr := indexFrom(p, 0, '\r')
	for {
		j := min(lf, cr)
		if j == len(p) {
			break
		}
		var next int // start of the following line
		if j == lf {
			// A bare LF: any CR before it was handled as a pair below.
			e.put(p[start:j])
			e.put(crlf)
			start = j + 1
			next = j + 1
			lf = indexFrom(p, next, '\n')
		} else {
			if j+1 < len(p) && p[j+1] == '\n' {
				// CRLF already: the run goes on.
				next = j + 2
				lf = indexFrom(p, next, '\n')
			} else {
				// A bare CR, or a CR ending p: write CRLF now. If the next
				// Write starts with LF, that LF is dropped.
				e.put(p[start:j])
				e.put(crlf)
				start = j + 1
				next = j + 1
				if next == len(p) {
					e.cr = true
				}
			}
			cr = indexFrom(p, next, '\r')
		}
		if stuff && next < len(p) && p[next] == '.' {
			e.put(p[start:next])
			e.putByte('.')
			start = next
		}
	}
	e.put(p[start:])
	last := p[len(p)-1]
	e.bol = last == '\n' || last == '\r'
}

// indexFrom returns the index of the first c in p at or after i, or len(p).
func indexFrom(p []byte, i int, c byte) int {
	if i >= len(p) {
		return len(p)
	}
	if k := bytes.IndexByte(p[i:], c); k >= 0 {
		return i + k
	}
	return len(p)
}

// index8Bit returns the index of the first byte >= 0x80 in p, or -1.
func index8Bit(p []byte) int {
	const high = 0x8080808080808080
	i := 0
	for ; i+32 <= len(p); i += 32 {
		a := binary.LittleEndian.Uint64(p[i:])
		b := binary.LittleEndian.Uint64(p[i+8:])
		c := binary.LittleEndian.Uint64(p[i+16:])
		d := binary.LittleEndian.Uint64(p[i+24:])
		if (a|b|c|d)&high != 0 {
			break
		}
	}
	for ; i+8 <= len(p); i += 8 {
		if binary.LittleEndian.Uint64(p[i:])&high != 0 {
			break
		}
	}
	for ; i < len(p); i++ {
		if p[i] >= 0x80 {
			return i
		}
	}
	return -1
}

// put appends b to the output.
func (e *encoder) put(b []byte) {
	if len(b) <= bufSize-e.n {
		e.n += copy(e.buf[e.n:], b)
		return
	}
	e.putSlow(b)
}

func (e *encoder) putSlow(b []byte) {
	if e.err != nil {
		return
	}
	if len(b) >= bufSize {
		// A long unchanged run: pass it on without copying it.
		e.flush()
		if e.err == nil {
			e.out(b)
		}
		return
	}
	k := copy(e.buf[e.n:], b)
	e.n += k
	e.flush()
	if e.err == nil {
		e.n = copy(e.buf[:], b[k:])
	}
}

func (e *encoder) putByte(c byte) {
	if e.n == bufSize {
		e.flush() // after an error this only empties the buffer
	}
	e.buf[e.n] = c
	e.n++
}

// flush passes the buffered output to w. After a failure the buffer is
// dropped: nothing more may reach w.
func (e *encoder) flush() {
	if e.n > 0 && e.err == nil {
		e.out(e.buf[:e.n])
	}
	e.n = 0
}

func (e *encoder) out(b []byte) {
	n, err := e.w.Write(b)
	if n > 0 {
		e.written += int64(n)
	}
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		e.err = err
	}
}

// close finishes the content with CRLF if it did not end with a line ending,
// adds the terminator if term is set, and flushes.
func (e *encoder) close(term bool) error {
	if e.closed {
		return e.err
	}
	e.closed = true
	defer e.release()
	if e.err != nil {
		return e.err
	}
	if e.buf == nil {
		e.buf = bufPool.Get().(*[bufSize]byte)
	}
	if !e.bol {
		e.put(crlf)
		e.bol = true
	}
	if term {
		e.put(terminator)
	}
	e.flush()
	return e.err
}

// release returns the buffer to the pool.
func (e *encoder) release() {
	if e.buf != nil {
		bufPool.Put(e.buf)
		e.buf = nil
	}
	e.n = 0
}

// DotWriter encodes message content for the SMTP DATA command (RFC 5321
// section 4.5.2). It turns every bare LF and bare CR into CRLF, doubles a "."
// at the start of every line and, on Close, ends the data with ".\r\n",
// preceded by CRLF if the content did not end with a line ending.
//
// A CR at the end of one Write and an LF at the start of the next form one
// line ending; the output is the same however the content is split into
// Writes. NUL bytes pass through unchanged: MIME (RFC 2045) allows them
// only in binary content, but refusing them is a content policy for the
// caller, not an encoding step. Lines are not wrapped, whatever their length
// (RFC 5321 section 4.5.3.1.6 limits them to 1000 octets; enforcing that is
// also left to the caller).
//
// Output is collected in a 32 KiB buffer and passed to the underlying
// writer when the buffer is full and on Close; a run of content of 32 KiB or
// more that needs no change is passed on directly. Nothing is written byte
// by byte. The buffer comes from a pool shared by all writers on the first
// Write and goes back to it on Close, so a new writer per message costs no
// large allocation.
//
// Errors are sticky: after a Write fails, every later Write and Close return
// the same error, and Close does not write the terminator, so an
// interrupted message can never be taken as complete. The caller must then
// drop the connection. The same applies when reading the content fails: the
// caller must not call Close, since the terminator would make the server
// accept a truncated message.
//
// A DotWriter is not safe for concurrent use.
type DotWriter struct {
	// Strict7Bit makes Write fail with ErrEightBit at the first byte of
	// 0x80 or above. Set it when the server did not announce 8BITMIME.
	// Like any other error this one is sticky and Close then writes no
	// terminator; since the server is already reading data, the caller
	// must drop the connection.
	Strict7Bit bool

	e encoder
}

// NewDotWriter returns a DotWriter that writes the encoded content to w.
// A bufio.Writer around the connection is the expected w.
func NewDotWriter(w io.Writer) *DotWriter {
	d := new(DotWriter)
	d.e.reset(w)
	return d
}

// Reset discards the state of d, including a sticky error, and makes it
// write to w as if it were new. Strict7Bit keeps its value.
func (d *DotWriter) Reset(w io.Writer) {
	d.e.reset(w)
}

// Write encodes p and returns len(p) and nil, or an error. With Strict7Bit
// set and an 8-bit byte in p, it returns the index of that byte and
// ErrEightBit; when the underlying writer fails, 0 and that writer's error.
func (d *DotWriter) Write(p []byte) (int, error) {
	return d.e.write(p, true, d.Strict7Bit)
}

// Close ends the data: it adds CRLF if the content did not end with a line
// ending, then ".\r\n", and flushes everything to the underlying writer.
// It does not close the underlying writer, nor flush it if that is a
// bufio.Writer. If an earlier call failed, Close writes nothing and returns
// that error. Calling Close again returns the result of the first call.
func (d *DotWriter) Close() error {
	return d.e.close(true)
}

// Bytes returns the number of encoded bytes the underlying writer has
// accepted. Bytes still in the internal buffer are not counted until they
// are flushed; after a successful Close the count covers the whole encoded
// message, terminator included.
func (d *DotWriter) Bytes() int64 {
	return d.e.written
}

// Has8Bit reports whether any byte of 0x80 or above was written so far,
// including one that made Write fail under Strict7Bit.
func (d *DotWriter) Has8Bit() bool {
	return d.e.has8
}

// CRLFWriter turns every bare LF and bare CR in message content into CRLF,
// without dot-stuffing and without a terminator. It is meant for content of
// type 7BIT or 8BITMIME sent with BDAT (RFC 3030); BINARYMIME content is sent
// unchanged.
//
// One CRLFWriter covers a whole message: a CR at the end of one Write and an
// LF at the start of the next form one line ending, and Close adds CRLF if
// the content did not end with a line ending, so that a message sent with
// BDAT is stored exactly as the same message sent with DATA (see
// Normalize). Use Flush, not Close, at the end of each BDAT chunk.
//
// Buffering, error stickiness, Strict7Bit and the counters work as for
// DotWriter. A CRLFWriter is not safe for concurrent use.
type CRLFWriter struct {
	// Strict7Bit makes Write fail with ErrEightBit at the first byte of
	// 0x80 or above. Set it for content declared 7BIT.
	Strict7Bit bool

	e encoder
}

// NewCRLFWriter returns a CRLFWriter that writes the normalised content to
// w.
func NewCRLFWriter(w io.Writer) *CRLFWriter {
	c := new(CRLFWriter)
	c.e.reset(w)
	return c
}

// Reset discards the state of c, including a sticky error, and makes it
// write to w as if it were new. Strict7Bit keeps its value.
func (c *CRLFWriter) Reset(w io.Writer) {
	c.e.reset(w)
}

// Write normalises the line endings of p. Its results are those of
// DotWriter.Write.
func (c *CRLFWriter) Write(p []byte) (int, error) {
	return c.e.write(p, false, c.Strict7Bit)
}

// Flush passes all buffered output to the underlying writer. A CR that
// ended the last Write is already part of that output, as CRLF; if the next
// Write starts with LF, that LF is taken as the rest of the same line ending
// and dropped. Flush returns the sticky error if there is one, and
// ErrClosed after Close.
func (c *CRLFWriter) Flush() error {
	if c.e.err != nil {
		return c.e.err
	}
	if c.e.closed {
		return ErrClosed
	}
	c.e.flush()
	return c.e.err
}

// Close adds CRLF if the content was not empty and did not end with a line
// ending, and flushes. It does not close the underlying writer. If an
// earlier call failed, Close writes nothing and returns that error. Calling
// Close again returns the result of the first call.
func (c *CRLFWriter) Close() error {
	return c.e.close(false)
}

// Bytes returns the number of normalised bytes the underlying writer has
// accepted. Bytes still in the internal buffer are not counted until they
// are flushed.
func (c *CRLFWriter) Bytes() int64 {
	return c.e.written
}

// Has8Bit reports whether any byte of 0x80 or above was written so far,
// including one that made Write fail under Strict7Bit.
func (c *CRLFWriter) Has8Bit() bool {
	return c.e.has8
}

var (
	_ io.WriteCloser = (*DotWriter)(nil)
	_ io.WriteCloser = (*CRLFWriter)(nil)
)
