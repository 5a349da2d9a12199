// Package wire is mailwire's client-side SMTP and LMTP wire engine: bounded
// reply parsing with RFC 3463 enhanced codes (RFC 2034), EHLO keyword
// parsing, a single choke point for every command line written, a redacting
// transcript, and deadlines bridged from a context.
//
// It knows nothing of envelopes or results; package transport drives it.
package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits on what the client reads. RFC 5321 4.5.3.1.5 limits a reply line to
// 512 octets; servers exceed it in practice (long EHLO lines, verbose
// rejections), so the line limit is eight times that, and a whole reply is
// bounded in lines and bytes so that no server can make the client allocate
// without bound.
const (
	MaxLineLen    = 4096
	MaxReplyLines = 512
	MaxReplyBytes = 64 << 10
)

// Reply is one parsed server reply.
type Reply struct {
	Code     int    // basic code, 200-599
	Enhanced [3]int // RFC 3463 code of the first line; zero if none
	// Lines holds the text of each line with the code, separator and any
	// enhanced code removed; control characters are replaced with U+FFFD.
	Lines []string

	one [1]string // backing store for single-line replies
}

// Text returns the reply's lines joined with "\n".
func (r *Reply) Text() string { return strings.Join(r.Lines, "\n") }

// Positive reports whether the reply is 2yz.
func (r *Reply) Positive() bool { return r.Code >= 200 && r.Code < 300 }

// Intermediate reports whether the reply is 3yz.
func (r *Reply) Intermediate() bool { return r.Code >= 300 && r.Code < 400 }

// ProtocolError reports server bytes the client cannot accept.
type ProtocolError struct {
	Reason string
}

// Error returns "protocol error: " and the reason.
func (e *ProtocolError) Error() string { return "protocol error: " + e.Reason }

func protoErr(reason string) error { return &ProtocolError{Reason: reason} }

// ReadReply reads one complete reply from r, enforcing the limits above.
// LF-only line endings are accepted. A malformed reply, a reply whose lines
// disagree on the code, or one over a limit is a *ProtocolError; the
// connection must then be abandoned.
func ReadReply(r *bufio.Reader) (*Reply, error) {
	rep := new(Reply)
	if err := readReplyInto(r, rep, nil); err != nil {
		return nil, err
	}
	return rep, nil
}

// readReplyInto reads one reply into rep, reusing its storage; strs, if
// not nil, returns recurring line texts without allocating.
func readReplyInto(r *bufio.Reader, rep *Reply, strs *interner) error {
	*rep = Reply{}
	rep.Lines = rep.one[:0]
	var total int
	for n := 0; ; n++ {
		if n >= MaxReplyLines {
			return protoErr("reply has too many lines")
		}
		line, err := readLine(r, strs)
		if err != nil {
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		total += len(line) + 2
		if total > MaxReplyBytes {
			return protoErr("reply too large")
		}
		code, more, text, err := parseLine(line)
		if err != nil {
			return err
		}
		if n == 0 {
			rep.Code = code
		} else if code != rep.Code {
			return protoErr("multi-line reply with mixed codes")
		}
		enh, rest, ok := parseEnhanced(text, code)
		if ok {
			text = rest
			if n == 0 {
				rep.Enhanced = enh
			}
		}
		rep.Lines = append(rep.Lines, sanitize(text))
		if !more {
			return nil
		}
	}
}

// readLine reads one line without its line ending, at most MaxLineLen bytes.
func readLine(r *bufio.Reader, strs *interner) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineLen {
			return "", protoErr("reply line too long")
		}
		if err == nil {
			if buf == nil {
				buf = chunk
			} else {
				buf = append(buf, chunk...)
			}
			break
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
			continue
		}
		if err == io.EOF && len(buf)+len(chunk) > 0 {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	buf = buf[:len(buf)-1]
	if len(buf) > 0 && buf[len(buf)-1] == '\r' {
		buf = buf[:len(buf)-1]
	}
	return strs.str(buf), nil
}

// interner returns recurring reply lines ("250 2.0.0 Ok") as the same
// string, so that a busy connection does not allocate one per reply.
type interner struct {
	m map[string]string
}

const (
	maxInterned   = 64
	maxInternSize = 96
)

func (in *interner) str(b []byte) string {
	if in == nil || len(b) > maxInternSize {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

// parseLine splits "250-text", "250 text" or "250".
func parseLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", protoErr("reply line too short")
	}
	for i := 0; i < 3; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			return 0, false, "", protoErr("reply code is not numeric")
		}
		code = code*10 + int(c-'0')
	}
	if line[0] < '2' || line[0] > '5' || line[1] > '5' {
		return 0, false, "", protoErr("reply code out of range")
	}
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case ' ':
		return code, false, line[4:], nil
	case '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", protoErr("malformed reply line")
}

// parseEnhanced recognises an RFC 3463 code at the start of text whose class
// matches the basic code's first digit. A malformed or inconsistent code is
// left in the text.
func parseEnhanced(text string, code int) (enh [3]int, rest string, ok bool) {
	i := 0
	for part := 0; part < 3; part++ {
		start := i
		v := 0
		for i < len(text) && text[i] >= '0' && text[i] <= '9' && i-start < 3 {
			v = v*10 + int(text[i]-'0')
			i++
		}
		if i == start {
			return enh, text, false
		}
		if part == 0 && i-start != 1 {
			return enh, text, false
		}
		enh[part] = v
		if part < 2 {
			if i >= len(text) || text[i] != '.' {
				return enh, text, false
			}
			i++
		}
	}
	if i < len(text) && text[i] != ' ' {
		return [3]int{}, text, false
	}
	if enh[0] != code/100 || (enh[0] != 2 && enh[0] != 4 && enh[0] != 5) {
		return [3]int{}, text, false
	}
	rest = text[i:]
	if len(rest) > 0 {
		rest = rest[1:]
	}
	return enh, rest, true
}

// sanitize replaces control characters and invalid UTF-8 so that server text
// cannot forge log lines or terminal escapes when it is printed.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(utf8.RuneError)
		case r < 0x20 && r != '\t', r == 0x7f, r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// ErrCommandInvalid is returned for a command line that contains CR, LF or
// NUL, or exceeds MaxCommandLen; nothing is written.
var ErrCommandInvalid = errors.New("command line contains CR, LF or NUL, or is too long")
