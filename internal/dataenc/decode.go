package dataenc

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error Decode returns.
var ErrMalformed = errors.New("dataenc: malformed DATA stream")

// Decode reverses the DATA encoding: it checks that enc is one complete,
// well-formed DATA stream and returns the content a server stores for it,
// every line ending in CRLF and stuffed dots removed.
//
// Decode is stricter than RFC 5321 asks of a server, since it checks what
// DotWriter produces: it fails, with an error wrapping ErrMalformed, on a
// CR not followed by LF, an LF not preceded by CR, a line that starts with
// a single "." other than the terminator, a missing terminator, and any
// byte after the terminator. It is meant for tests and fuzzing; a server
// would stop at the first terminator.
func Decode(enc []byte) ([]byte, error) {
	out := make([]byte, 0, len(enc))
	i := 0
	for i < len(enc) {
		j := i
		for j < len(enc) && enc[j] != '\r' && enc[j] != '\n' {
			j++
		}
		switch {
		case j == len(enc):
			return nil, fmt.Errorf("%w: last line at offset %d has no line ending", ErrMalformed, i)
		case enc[j] == '\n':
			return nil, fmt.Errorf("%w: bare LF at offset %d", ErrMalformed, j)
		case j+1 == len(enc) || enc[j+1] != '\n':
			return nil, fmt.Errorf("%w: bare CR at offset %d", ErrMalformed, j)
		}
		line := enc[i:j]
		next := j + 2
		if len(line) > 0 && line[0] == '.' {
			if len(line) == 1 {
				if next != len(enc) {
					return nil, fmt.Errorf("%w: %d bytes after the terminator", ErrMalformed, len(enc)-next)
				}
				return out, nil
			}
			if line[1] != '.' {
				return nil, fmt.Errorf("%w: line at offset %d starts with a single dot", ErrMalformed, i)
			}
			line = line[1:]
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
		i = next
	}
	return nil, fmt.Errorf("%w: no terminator", ErrMalformed)
}

// Normalize returns the canonical form of message content: every bare LF and
// every bare CR becomes CRLF, and CRLF is added at the end if b is not empty
// and does not end with a line ending. This is what a server stores for b
// sent through DotWriter or CRLFWriter, so Decode(encoded) equals
// Normalize(b). The result never shares memory with b.
func Normalize(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32+2)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}
