package scripted

import "strings"

// Capabilities are the service extensions of an EHLO or LHLO reply, one
// per line, each a keyword with optional parameters ("SIZE 1000",
// "AUTH PLAIN LOGIN").
type Capabilities []string

// Caps returns the capabilities given.
func Caps(caps ...string) Capabilities { return Capabilities(caps) }

func keyword(c string) string {
	kw, _, _ := strings.Cut(strings.TrimSpace(c), " ")
	kw, _, _ = strings.Cut(kw, "=") // "AUTH=LOGIN", the obsolete form
	return strings.ToUpper(kw)
}

// Without returns c without the capabilities whose keyword is one of
// keywords (case-insensitively): a STARTTLS or AUTH stripped by a man in
// the middle.
func (c Capabilities) Without(keywords ...string) Capabilities {
	var out Capabilities
outer:
	for _, cap := range c {
		for _, k := range keywords {
			if keyword(cap) == strings.ToUpper(k) {
				continue outer
			}
		}
		out = append(out, cap)
	}
	return out
}

// With returns c with caps appended.
func (c Capabilities) With(caps ...string) Capabilities {
	out := append(Capabilities(nil), c...)
	return append(out, caps...)
}

// Has reports whether c holds a capability with the keyword.
func (c Capabilities) Has(kw string) bool {
	for _, cap := range c {
		if keyword(cap) == strings.ToUpper(kw) {
			return true
		}
	}
	return false
}

// Lines returns the reply lines of a positive EHLO reply naming domain:
// "250-domain", "250-CAP", ..., the last with "250 ".
func (c Capabilities) Lines(domain string) []string {
	all := append([]string{domain}, c...)
	lines := make([]string, len(all))
	for i, l := range all {
		sep := "-"
		if i == len(all)-1 {
			sep = " "
		}
		lines[i] = "250" + sep + l
	}
	return lines
}

// Text returns the reply as one string with CRLF line endings.
func (c Capabilities) Text(domain string) string {
	return joinReply(c.Lines(domain))
}

// Reply returns a step that writes the EHLO reply in one write.
func (c Capabilities) Reply(domain string) Step {
	return Reply(c.Lines(domain)...)
}
