package envelope

import "strings"

// This file extracts the addr-specs of an RFC 5322 address-list (RFC 6532
// allows UTF-8 in it): mailboxes with or without display names, groups
// ("undisclosed-recipients:;"), comments, quoted local parts, empty list
// elements (obs-addr-list) and whitespace around dots (obs-local-part,
// obs-domain). Display names, encoded or not, are skipped, since only the
// addr-spec matters for the envelope. Source routes (obs-route) are rejected.
//
// net/mail is not used: it returns local parts unquoted (the quoting must be
// rebuilt to send them), rejects the RFC 5321 form "[IPv6:...]" of address
// literals, and fails a whole list on a display name in an unknown charset.
// This parser is a single linear pass: it tokenizes once, and backtracks at
// most over the tokens of one address.

type tokenKind uint8

const (
	tokAtom    tokenKind = iota // run of atext octets (no dots)
	tokQuoted                   // quoted-string, quotes included
	tokLiteral                  // domain-literal, brackets included
	tokSpecial                  // one of . < > , : ; @
)

type token struct {
	kind tokenKind
	text string
}

// tokenize splits an unfolded header field body into tokens, dropping
// whitespace and comments. It returns ErrControlChar for a control character
// outside a quoted string or literal and ErrMalformed for other syntax
// errors. Control characters inside a quoted string or literal are kept for
// the address checks to reject.
func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			depth := 0
			for ; i < len(s); i++ {
				switch s[i] {
				case '\\':
					i++
				case '(':
					depth++
				case ')':
					depth--
				}
				if depth == 0 {
					break
				}
			}
			if depth != 0 {
				return nil, ErrMalformed
			}
			i++
		case c == '"' || c == '[':
			end, ok := scanDelimited(s, i)
			if !ok {
				return nil, ErrMalformed
			}
			kind := tokQuoted
			if c == '[' {
				kind = tokLiteral
			}
			toks = append(toks, token{kind, s[i:end]})
			i = end
		case strings.IndexByte(".<>,:;@", c) >= 0:
			toks = append(toks, token{tokSpecial, s[i : i+1]})
			i++
		case isAtext(c):
			j := i + 1
			for j < len(s) && isAtext(s[j]) {
				j++
			}
			toks = append(toks, token{tokAtom, s[i:j]})
			i = j
		case c < 0x20 || c == 0x7f:
			return nil, ErrControlChar
		default:
			return nil, ErrMalformed
		}
	}
	return toks, nil
}

// scanDelimited returns the end of the quoted string or domain literal that
// starts at s[i] ('"' or '['), honouring backslash escapes.
func scanDelimited(s string, i int) (end int, ok bool) {
	closing := byte('"')
	if s[i] == '[' {
		closing = ']'
	}
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case closing:
			return j + 1, true
		case '[':
			if closing == ']' {
				return 0, false
			}
		}
	}
	return 0, false
}

// addrParser walks the tokens of one address-list.
type addrParser struct {
	toks []token
	pos  int
}

// parseAddressList returns the addr-specs of the address-list s, in order,
// with each local part in its minimally quoted form (RFC 5321 section 4.1.2).
// An empty or all-whitespace s is an empty list.
func parseAddressList(s string) ([]string, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	p := &addrParser{toks: toks}
	var addrs []string
	for {
		for p.special(',') {
			p.pos++
		}
		if p.eof() {
			return addrs, nil
		}
		got, ok := p.address(false)
		if !ok {
			return nil, ErrMalformed
		}
		addrs = append(addrs, got...)
		if !p.eof() && !p.special(',') {
			return nil, ErrMalformed
		}
	}
}

func (p *addrParser) eof() bool { return p.pos >= len(p.toks) }

// special reports whether the next token is the special c.
func (p *addrParser) special(c byte) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == tokSpecial && p.toks[p.pos].text[0] == c
}

// kind reports whether the next token is of kind k.
func (p *addrParser) kind(k tokenKind) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == k
}

// address parses a mailbox, or a group when inGroup is false, and returns its
// addr-specs. It leaves the next token a list delimiter or the end.
func (p *addrParser) address(inGroup bool) ([]string, bool) {
	start := p.pos
	// A bare addr-spec must be followed by a delimiter, otherwise it is the
	// start of a display name ("a.b <a@b>" reads "a.b" first).
	if spec, ok := p.addrSpec(); ok && (p.eof() || p.special(',') || inGroup && p.special(';')) {
		return []string{spec}, true
	}
	p.pos = start
	words := 0
	for p.kind(tokAtom) || p.kind(tokQuoted) || words > 0 && p.special('.') {
		p.pos++
		words++
	}
	switch {
	case p.special('<'):
		p.pos++
		spec, ok := p.addrSpec()
		if !ok || !p.special('>') {
			return nil, false
		}
		p.pos++
		return []string{spec}, true
	case !inGroup && words > 0 && p.special(':'):
		p.pos++
		var group []string
		for {
			for p.special(',') {
				p.pos++
			}
			if p.special(';') {
				p.pos++
				return group, true
			}
			if p.eof() {
				return nil, false
			}
			got, ok := p.address(true)
			if !ok {
				return nil, false
			}
			group = append(group, got...)
			if !p.special(',') && !p.special(';') {
				return nil, false
			}
		}
	}
	return nil, false
}

// addrSpec parses local-part "@" domain and returns it with the local part
// minimally quoted.
func (p *addrParser) addrSpec() (string, bool) {
	var words []token
	for {
		if !p.kind(tokAtom) && !p.kind(tokQuoted) {
			return "", false
		}
		words = append(words, p.toks[p.pos])
		p.pos++
		if !p.special('.') {
			break
		}
		p.pos++
	}
	if !p.special('@') {
		return "", false
	}
	p.pos++
	var b strings.Builder
	writeLocalPart(&b, words)
	b.WriteByte('@')
	if p.kind(tokLiteral) {
		b.WriteString(p.toks[p.pos].text)
		p.pos++
		return b.String(), true
	}
	for {
		if !p.kind(tokAtom) {
			return "", false
		}
		b.WriteString(p.toks[p.pos].text)
		p.pos++
		if !p.special('.') {
			return b.String(), true
		}
		b.WriteByte('.')
		p.pos++
	}
}

// writeLocalPart writes the local part made of words (atoms and quoted
// strings joined by dots) in the form RFC 5321 section 4.1.2 asks senders to
// use: unquoted when it is a valid Dot-string, otherwise one quoted string
// with only '"' and '\' escaped.
func writeLocalPart(b *strings.Builder, words []token) {
	if len(words) == 1 && words[0].kind == tokAtom {
		b.WriteString(words[0].text)
		return
	}
	var v strings.Builder
	for i, w := range words {
		if i > 0 {
			v.WriteByte('.')
		}
		if w.kind == tokAtom {
			v.WriteString(w.text)
			continue
		}
		q := w.text[1 : len(w.text)-1]
		for j := 0; j < len(q); j++ {
			if q[j] == '\\' && j+1 < len(q) {
				j++
			}
			v.WriteByte(q[j])
		}
	}
	s := v.String()
	if isDotString(s) {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}
