package envelope

import (
	"strings"
	"unicode/utf8"
)

const upperHex = "0123456789ABCDEF"

// XText returns s encoded as xtext (RFC 3461 section 4): every octet outside
// "!" (0x21) to "~" (0x7E), and every "+" and "=", becomes "+" followed by two
// upper-case hexadecimal digits; other octets are kept. It works on octets, so
// a non-ASCII character becomes one hexchar per UTF-8 byte. The result never
// contains a space or a control character. ENVID and the rfc822 form of ORCPT
// are sent this way.
func XText(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if xtextHex(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if xtextHex(c) {
			b = append(b, '+', upperHex[c>>4], upperHex[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// xtextHex reports whether c must be sent as a hexchar in xtext.
func xtextHex(c byte) bool {
	return c < '!' || c > '~' || c == '+' || c == '='
}

// DecodeXText decodes the xtext s (RFC 3461 section 4). It is strict: "+"
// must be followed by two upper-case hexadecimal digits, and every other octet
// must be "!" to "~" other than "=". Otherwise it returns an [*Error] with
// Field "xtext" wrapping [ErrInvalidParam]. The result may hold any octets,
// including ones that are not UTF-8.
func DecodeXText(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", xtextError()
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return "", xtextError()
			}
			if b == nil {
				b = make([]byte, 0, len(s))
				b = append(b, s[:i]...)
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		case xtextHex(c):
			return "", xtextError()
		case b != nil:
			b = append(b, c)
		}
	}
	if b == nil {
		return s, nil
	}
	return string(b), nil
}

// xtextError returns the error of DecodeXText for malformed input.
func xtextError() error { return &Error{Field: "xtext", Err: ErrInvalidParam} }

// unhex returns the value of the upper-case hexadecimal digit c, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ORcptParam returns the value to send after "ORCPT=" for r, or "" when
// r.ORcpt is empty. utf8 says whether the transaction uses SMTPUTF8.
//
//   - An ASCII address is sent as "rfc822;" followed by its xtext
//     ([XText]), whatever utf8 is.
//   - A non-ASCII address with utf8 true is sent as "utf-8;" followed by its
//     RFC 6533 utf-8-addr-unitext form: non-ASCII characters are kept as
//     UTF-8, and space, "+", "=", "\" and control characters become
//     "\x{HEX}" escapes.
//   - A non-ASCII address with utf8 false is sent as "utf-8;" followed by the
//     7-bit utf-8-addr-xtext form, which RFC 6533 allows without SMTPUTF8:
//     like the above, but every non-ASCII character is escaped too, so the
//     value is pure US-ASCII.
//
// Bytes that are not valid UTF-8 are escaped as "\x{FFFD}". The result never
// contains a space or a control character, whatever r.ORcpt holds; it follows
// the RFC 3461 and RFC 6533 grammar when r.ORcpt passes [Envelope.Validate].
func (r Recipient) ORcptParam(utf8 bool) string {
	if r.ORcpt == "" {
		return ""
	}
	if isASCII(r.ORcpt) {
		return "rfc822;" + XText(r.ORcpt)
	}
	return "utf-8;" + utf8AddrText(r.ORcpt, utf8)
}

// utf8AddrText encodes s as RFC 6533 utf-8-addr-unitext (unitext true) or
// utf-8-addr-xtext (unitext false).
func utf8AddrText(s string, unitext bool) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			// QCHAR: %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e.
			if c > 0x20 && c < 0x7f && c != '+' && c != '=' && c != '\\' {
				b.WriteByte(c)
			} else {
				writeEmbedded(&b, rune(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unitext && size > 1 && !isControlRune(r) {
			b.WriteString(s[i : i+size])
		} else {
			writeEmbedded(&b, r) // RuneError (U+FFFD) for invalid bytes
		}
		i += size
	}
	return b.String()
}

// writeEmbedded writes the RFC 6533 EmbeddedUnicodeChar "\x{HEX}" for r:
// upper-case hexadecimal, at least two digits, no other leading zeros.
func writeEmbedded(b *strings.Builder, r rune) {
	var digits [8]byte
	n := len(digits)
	for v := uint32(r); v > 0 || n > len(digits)-2; v >>= 4 {
		n--
		digits[n] = upperHex[v&0xf]
	}
	b.WriteString(`\x{`)
	b.Write(digits[n:])
	b.WriteByte('}')
}
