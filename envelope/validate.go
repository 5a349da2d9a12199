package envelope

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits checked by Validate.
const (
	maxLocalPart = 64  // RFC 5321 section 4.5.3.1.1, in octets
	maxDomain    = 255 // RFC 5321 section 4.5.3.1.2, in octets
	maxPath      = 256 // RFC 5321 section 4.5.3.1.3, in octets, "<" and ">" included
	maxEnvID     = 100 // RFC 3461 section 4.4, in characters of the xtext-encoded value
	maxORcpt     = 500 // RFC 3461 section 4.2, in characters of the whole ORCPT value
)

// Validate reports whether e can be sent. It returns nil or an [*Error] whose
// Field names the culprit ("from", "to", "to[2]", "to[2].notify",
// "to[2].orcpt", "size", "body", "return", "envid") and whose Err is one of:
//
//   - [ErrNoRecipients]: To is empty.
//   - [ErrControlChar]: an address or parameter value contains a C0 control
//     character (CR, LF, NUL, TAB, ...), DEL, a C1 control (U+0080-U+009F),
//     U+2028 or U+2029.
//   - [ErrMalformed]: an address is empty (only From may be: the null
//     reverse-path), is not valid UTF-8, or does not follow the RFC 5321
//     Mailbox grammar as extended by RFC 6531: a dot-string or quoted-string
//     local part (no CR or LF in either), "@", and a domain made of
//     letter-digit-hyphen labels (labels holding non-ASCII bytes are taken as
//     U-labels) or an address literal "[192.0.2.1]" or "[IPv6:2001:db8::1]".
//     Angle brackets, source routes, spaces outside a quoted local part and
//     general address literals are rejected.
//   - [ErrTooLong]: a local part over 64 octets, a domain over 255 octets or
//     a path over 256 octets counting the angle brackets (RFC 5321 section
//     4.5.3.1). The path limit applies to From and To; ORcpt is not a path
//     and is held to the local-part and domain limits only.
//   - [ErrInvalidParam]: Size is negative; Body is not "", "7BIT",
//     "8BITMIME" or "BINARYMIME"; Return is not "", "FULL" or "HDRS"; EnvID
//     is not printable US-ASCII or its xtext form exceeds 100 characters;
//     Notify holds an unknown or repeated value, or NEVER with another
//     value; the ORCPT parameter value (see [Recipient.ORcptParam]) exceeds
//     500 characters (RFC 3461 sections 4.1, 4.2, 4.3 and 4.4).
//
// Parameter keywords must be spelled as the constants of this package (upper
// case); an empty Notify sends no NOTIFY parameter. Validate does not
// reject duplicate recipients. All checks run on the bytes of the strings as
// they will be sent.
func (e *Envelope) Validate() error {
	if e.From != "" {
		if err := checkMailbox(e.From, true); err != nil {
			return &Error{Field: "from", Err: err}
		}
	}
	if len(e.To) == 0 {
		return &Error{Field: "to", Err: ErrNoRecipients}
	}
	for i := range e.To {
		if err := e.To[i].validate("to[" + strconv.Itoa(i) + "]"); err != nil {
			return err
		}
	}
	if e.Size < 0 {
		return &Error{Field: "size", Err: ErrInvalidParam}
	}
	if err := checkKeyword(string(e.Body), Body7Bit, Body8BitMIME, BodyBinaryMIME); err != nil {
		return &Error{Field: "body", Err: err}
	}
	if err := checkKeyword(string(e.Return), ReturnFull, ReturnHeaders); err != nil {
		return &Error{Field: "return", Err: err}
	}
	if err := checkEnvID(e.EnvID); err != nil {
		return &Error{Field: "envid", Err: err}
	}
	return nil
}

// validate checks one recipient; field is its name, "to[i]".
func (r *Recipient) validate(field string) error {
	if err := checkMailbox(r.Addr, true); err != nil {
		return &Error{Field: field, Err: err}
	}
	if err := checkNotify(r.Notify); err != nil {
		return &Error{Field: field + ".notify", Err: err}
	}
	if r.ORcpt != "" {
		if err := checkMailbox(r.ORcpt, false); err != nil {
			return &Error{Field: field + ".orcpt", Err: err}
		}
		// A non-ASCII ORcpt implies SMTPUTF8 (NeedsUTF8), so the value
		// sent is always the utf8 == true form.
		if len(r.ORcptParam(true)) > maxORcpt {
			return &Error{Field: field + ".orcpt", Err: ErrInvalidParam}
		}
	}
	return nil
}

// CheckText reports whether s may go on a command line as text: it
// returns [ErrControlChar] if s contains a C0 control (CR, LF, NUL and TAB
// among them), DEL, a C1 control, U+2028 or U+2029, [ErrMalformed] if s is
// not valid UTF-8, and nil otherwise. Validate applies the same rule to
// every address and parameter; package transport applies it to raw
// commands and their arguments.
func CheckText(s string) error { return checkText(s) }

// checkText returns ErrControlChar if s contains a C0 control, DEL, a C1
// control, U+2028 or U+2029, ErrMalformed if s is not valid UTF-8, and nil
// otherwise.
func checkText(s string) error {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return ErrControlChar
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(s) {
		return ErrMalformed
	}
	for _, r := range s {
		if isControlRune(r) {
			return ErrControlChar
		}
	}
	return nil
}

// isControlRune reports whether r is a non-ASCII rune that ends or breaks
// lines somewhere: a C1 control (NEL is U+0085) or a Unicode line or
// paragraph separator.
func isControlRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029
}

// checkMailbox checks s against the RFC 5321 (RFC 6531) Mailbox grammar and
// length limits; path adds the 256-octet path limit.
func checkMailbox(s string, path bool) error {
	if s == "" {
		return ErrMalformed
	}
	if err := checkText(s); err != nil {
		return err
	}
	if path && len(s)+2 > maxPath {
		return ErrTooLong
	}
	local, domain, ok := splitMailbox(s)
	if !ok {
		return ErrMalformed
	}
	if len(local) > maxLocalPart || len(domain) > maxDomain {
		return ErrTooLong
	}
	if !validLocalPart(local) || !validDomain(domain) {
		return ErrMalformed
	}
	return nil
}

// splitMailbox splits s at the "@" that ends its local part: the first "@"
// after a leading quoted string, or the first "@" otherwise. It returns
// ok == false if there is none.
func splitMailbox(s string) (local, domain string, ok bool) {
	end := -1
	if s[0] == '"' {
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++ // skip the quoted character
				continue
			}
			if s[i] == '"' {
				end = i + 1
				break
			}
		}
	} else {
		end = strings.IndexByte(s, '@')
	}
	if end < 0 || end >= len(s) || s[end] != '@' {
		return "", "", false
	}
	return s[:end], s[end+1:], true
}

// validLocalPart reports whether s is a Dot-string or a Quoted-string
// (RFC 5321 section 4.1.2, with RFC 6531's UTF8-non-ascii). s holds no
// control characters and is valid UTF-8.
func validLocalPart(s string) bool {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		q := s[1 : len(s)-1]
		for i := 0; i < len(q); i++ {
			switch c := q[i]; {
			case c == '\\':
				// quoted-pairSMTP: backslash and one of %d32-126.
				i++
				if i == len(q) || q[i] < 0x20 || q[i] > 0x7e {
					return false
				}
			case c == '"':
				return false
			case c >= 0x20 && c <= 0x7e, c >= 0x80:
				// qtextSMTP: %d32-33 / %d35-91 / %d93-126 / UTF8-non-ascii.
			default:
				return false
			}
		}
		return true
	}
	return isDotString(s)
}

// isDotString reports whether s is Atom *("." Atom).
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if s[i-1] == '.' {
				return false
			}
			continue
		}
		if !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports whether c is an RFC 5322 atext octet, or part of a
// non-ASCII UTF-8 sequence (RFC 6531).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain reports whether s is a Domain or an address-literal.
func validDomain(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '[' {
		return validAddressLiteral(s)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c >= 0x80) {
				return false
			}
		}
	}
	return true
}

// validAddressLiteral reports whether s is "[" IPv4-address-literal "]" or
// "[IPv6:" IPv6-addr "]" (RFC 5321 section 4.1.3). General address literals
// have no registered tags and are rejected.
func validAddressLiteral(s string) bool {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	s = s[1 : len(s)-1]
	if len(s) >= 5 && strings.EqualFold(s[:5], "IPv6:") {
		return validIPv6(s[5:])
	}
	return validIPv4(s)
}

// validIPv4 reports whether s is Snum 3("." Snum), each Snum 1-3 digits with
// a value up to 255.
func validIPv4(s string) bool {
	n := 0
	for part := range strings.SplitSeq(s, ".") {
		n++
		if len(part) == 0 || len(part) > 3 {
			return false
		}
		v := 0
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
			v = v*10 + int(part[i]-'0')
		}
		if v > 255 {
			return false
		}
	}
	return n == 4
}

// validIPv6 reports whether s is an RFC 5321 IPv6-addr: eight groups, or up
// to six groups around "::", where a trailing IPv4 address counts as two
// groups.
func validIPv6(s string) bool {
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], '.') >= 0 {
		if !validIPv4(s[i+1:]) {
			return false
		}
		s = s[:i+1] + "0:0"
	}
	if i := strings.Index(s, "::"); i >= 0 {
		n := 0
		for _, side := range []string{s[:i], s[i+2:]} {
			if side == "" {
				continue
			}
			for g := range strings.SplitSeq(side, ":") {
				if !isIPv6Hex(g) {
					return false
				}
				n++
			}
		}
		return n <= 6
	}
	n := 0
	for g := range strings.SplitSeq(s, ":") {
		if !isIPv6Hex(g) {
			return false
		}
		n++
	}
	return n == 8
}

// isIPv6Hex reports whether s is 1*4HEXDIG.
func isIPv6Hex(s string) bool {
	if len(s) == 0 || len(s) > 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// checkKeyword checks an ESMTP keyword parameter: "" (not sent) or one of
// values, spelled exactly.
func checkKeyword[T ~string](s string, values ...T) error {
	if err := checkText(s); err == ErrControlChar {
		return err
	}
	if s == "" {
		return nil
	}
	for _, v := range values {
		if s == string(v) {
			return nil
		}
	}
	return ErrInvalidParam
}

// checkNotify checks a NOTIFY list (RFC 3461 section 4.1).
func checkNotify(ns []DSNNotify) error {
	var seen [4]bool
	for _, n := range ns {
		if err := checkText(string(n)); err == ErrControlChar {
			return err
		}
		i := -1
		switch n {
		case NotifyNever:
			i = 0
		case NotifySuccess:
			i = 1
		case NotifyFailure:
			i = 2
		case NotifyDelay:
			i = 3
		}
		if i < 0 || seen[i] {
			return ErrInvalidParam
		}
		seen[i] = true
	}
	if seen[0] && len(ns) > 1 {
		return ErrInvalidParam
	}
	return nil
}

// checkEnvID checks an ENVID value (RFC 3461 section 4.4): printable US-ASCII
// (space included), at most 100 characters once xtext-encoded.
func checkEnvID(s string) error {
	if err := checkText(s); err == ErrControlChar {
		return err
	}
	if !isASCII(s) || len(s) > maxEnvID || len(XText(s)) > maxEnvID {
		return ErrInvalidParam
	}
	return nil
}
