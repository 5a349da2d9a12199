package dataenc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// checkDataStream reports the first way out violates the invariants every
// DATA stream written by DotWriter must hold. It scans the bytes itself and
// does not use Decode.
func checkDataStream(out []byte) error {
	for i, c := range out {
		switch c {
		case '\r':
			if i+1 == len(out) || out[i+1] != '\n' {
				return fmt.Errorf("CR not followed by LF at %d", i)
			}
		case '\n':
			if i == 0 || out[i-1] != '\r' {
				return fmt.Errorf("LF not preceded by CR at %d", i)
			}
		}
	}
	if !bytes.HasSuffix(out, []byte(".\r\n")) {
		return errors.New("does not end with .CRLF")
	}
	if len(out) > 3 && !bytes.HasSuffix(out, []byte("\r\n.\r\n")) {
		return errors.New("terminator is not on a line of its own")
	}
	if k := bytes.Index(out, []byte("\r\n.\r\n")); k >= 0 && k != len(out)-5 {
		return fmt.Errorf("CRLF.CRLF inside the data at %d", k)
	}
	// Every line but the last: none is "." alone, none starts with a
	// single dot.
	body := out[:len(out)-3]
	for start := 0; start < len(body); {
		end := bytes.Index(body[start:], []byte("\r\n"))
		if end < 0 {
			return fmt.Errorf("unterminated line at %d", start)
		}
		line := body[start : start+end]
		if len(line) > 0 && line[0] == '.' && (len(line) == 1 || line[1] != '.') {
			return fmt.Errorf("line at %d starts with a single dot: %q", start, line)
		}
		start += end + 2
	}
	return nil
}

// checkCRLF reports the first CR without LF or LF without CR in out.
func checkCRLF(out []byte) error {
	for i, c := range out {
		if c == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
			return fmt.Errorf("CR not followed by LF at %d", i)
		}
		if c == '\n' && (i == 0 || out[i-1] != '\r') {
			return fmt.Errorf("LF not preceded by CR at %d", i)
		}
	}
	return nil
}

// refDotEncode is a plain reference encoder written from the definition:
// normalise, then stuff line by line, then terminate.
func refDotEncode(in []byte) []byte {
	n := Normalize(in)
	var out []byte
	for len(n) > 0 {
		k := bytes.Index(n, []byte("\r\n"))
		if n[0] == '.' {
			out = append(out, '.')
		}
		out = append(out, n[:k+2]...)
		n = n[k+2:]
	}
	return append(out, ".\r\n"...)
}

// writeSplit writes p to w in pieces of the given sizes, cycling through
// them; a size of 0 makes an empty Write. flushAfter, if not nil, is called
// after every piece whose index it reports true for.
func writeSplit(w io.Writer, p []byte, sizes []int, flush func(i int) error) error {
	if len(sizes) == 0 {
		_, err := w.Write(p)
		return err
	}
	for i, moved := 0, false; len(p) > 0; i++ {
		s := sizes[i%len(sizes)]
		if s > 0 {
			moved = true
		}
		if i%len(sizes) == len(sizes)-1 {
			if !moved {
				s = len(p) // all sizes zero: finish in one piece
			}
			moved = false
		}
		s = min(s, len(p))
		n, err := w.Write(p[:s])
		if err != nil {
			return err
		}
		if n != s {
			return fmt.Errorf("Write returned %d for %d bytes", n, s)
		}
		p = p[s:]
		if flush != nil {
			if err := flush(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// dotEncode runs p through a DotWriter in pieces of the given sizes.
func dotEncode(p []byte, sizes []int) ([]byte, *DotWriter, error) {
	var buf bytes.Buffer
	d := NewDotWriter(&buf)
	if err := writeSplit(d, p, sizes, nil); err != nil {
		return nil, d, err
	}
	if err := d.Close(); err != nil {
		return nil, d, err
	}
	return buf.Bytes(), d, nil
}

// crlfEncode runs p through a CRLFWriter in pieces of the given sizes,
// flushing after the pieces flushAt reports true for.
func crlfEncode(p []byte, sizes []int, flushAt func(int) bool) ([]byte, *CRLFWriter, error) {
	var buf bytes.Buffer
	c := NewCRLFWriter(&buf)
	var flush func(int) error
	if flushAt != nil {
		flush = func(i int) error {
			if flushAt(i) {
				return c.Flush()
			}
			return nil
		}
	}
	if err := writeSplit(c, p, sizes, flush); err != nil {
		return nil, c, err
	}
	if err := c.Close(); err != nil {
		return nil, c, err
	}
	return buf.Bytes(), c, nil
}

// randomSizes returns split sizes between 0 and max.
func randomSizes(r *rand.Rand, n, max int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = r.IntN(max + 1)
	}
	return s
}

// splitsFromBytes turns fuzz input into split sizes.
func splitsFromBytes(b []byte) []int {
	s := make([]int, len(b))
	for i, c := range b {
		s[i] = int(c)
	}
	return s
}

func has8Bit(p []byte) bool {
	for _, c := range p {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// errWriter accepts limit bytes, then fails.
type errWriter struct {
	limit int
	got   []byte
	calls int
}

var errBroken = errors.New("broken pipe (test)")

func (w *errWriter) Write(p []byte) (int, error) {
	w.calls++
	if len(w.got)+len(p) > w.limit {
		n := w.limit - len(w.got)
		w.got = append(w.got, p[:n]...)
		return n, errBroken
	}
	w.got = append(w.got, p...)
	return len(p), nil
}

// countWriter counts calls and bytes and keeps nothing.
type countWriter struct {
	calls int
	n     int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.calls++
	w.n += len(p)
	return len(p), nil
}
