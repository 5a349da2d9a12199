package wire

import (
	"strconv"
	"strings"
)

// Extensions are the service extensions a server advertised in its EHLO or
// LHLO reply: upper-case keyword to parameter string.
type Extensions map[string]string

// ParseEHLO parses the lines of a positive EHLO reply. The first line is the
// server's greeting name and is skipped. Keywords are case-insensitive and
// stored upper case; a keyword repeated keeps its first parameters, except
// AUTH, whose mechanism lists are merged (including the obsolete "AUTH="
// form).
func ParseEHLO(lines []string) Extensions {
	ext := make(Extensions)
	for i, line := range lines {
		if i == 0 {
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		kw, params, _ := strings.Cut(line, " ")
		if strings.HasPrefix(strings.ToUpper(kw), "AUTH=") {
			params = strings.TrimSpace(kw[5:] + " " + params)
			kw = "AUTH"
		}
		kw = strings.ToUpper(kw)
		if !validKeyword(kw) {
			continue
		}
		params = strings.TrimSpace(params)
		if old, ok := ext[kw]; ok {
			if kw == "AUTH" {
				ext[kw] = mergeMechs(old, params)
			}
			continue
		}
		if kw == "AUTH" {
			params = mergeMechs("", params)
		}
		ext[kw] = params
	}
	return ext
}

func validKeyword(kw string) bool {
	if kw == "" || len(kw) > 64 {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

func mergeMechs(a, b string) string {
	seen := map[string]bool{}
	var out []string
	for _, m := range strings.Fields(a + " " + b) {
		m = strings.ToUpper(m)
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return strings.Join(out, " ")
}

// Has reports whether the keyword was advertised.
func (e Extensions) Has(kw string) bool {
	_, ok := e[strings.ToUpper(kw)]
	return ok
}

// AuthMechanisms returns the advertised SASL mechanisms, upper case, in the
// server's order, without duplicates.
func (e Extensions) AuthMechanisms() []string {
	p, ok := e["AUTH"]
	if !ok {
		return nil
	}
	return strings.Fields(p)
}

// MaxSize returns the SIZE limit (RFC 1870): 0 if SIZE was advertised
// without a limit or not at all, and whether SIZE was advertised.
func (e Extensions) MaxSize() (int64, bool) {
	p, ok := e["SIZE"]
	if !ok {
		return 0, false
	}
	if p == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(p, 10, 64)
	if err != nil || n < 0 {
		return 0, true
	}
	return n, true
}
