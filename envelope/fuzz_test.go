package envelope_test

import (
	"bytes"
	"errors"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailwire/mailwire/envelope"
)

var addressSeeds = []string{
	"", "a@x", "first.last+tag@example.com", `"john doe"@x`, `"a\"b"@x`, `""@x`,
	"a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "a@[IPv6:::ffff:192.0.2.1]",
	"jörg@münchen.de", "\u010a@x", "\u760d@x", "a\u2028@x", "a\u0085@x",
	"a@x>\r\nRCPT TO:<e@y>", "\"x\r\nDATA\"@y", "a..b@x", "a@x.", "<a@x>", "<>",
	"a b@x", "@a,@b:c@d", "a\xff@x", strings.Repeat("l", 64) + "@x",
	strings.Repeat("l", 65) + "@x", "a@" + domainOfLen(252), "a@" + domainOfLen(253),
	"a@" + domainOfLen(255), "a@[IPv6:1:2:3:4:5:6:7::]",
}

// FuzzValidate checks that every address Validate accepts is safe to put in
// a MAIL or RCPT command and within the RFC 5321 limits, and that From, To
// and ORcpt agree.
func FuzzValidate(f *testing.F) {
	for _, s := range addressSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		errFrom := envelope.New(addr, "ok@x").Validate()
		errTo := envelope.New("", addr).Validate()
		env := envelope.New("", "ok@x")
		env.To[0].ORcpt = addr
		errORcpt := env.Validate()

		for _, err := range []error{errFrom, errTo, errORcpt} {
			if err != nil && kindOf(err) == nil {
				t.Fatalf("Validate(%q) = %v, not one of the package's errors", addr, err)
			}
			var e *envelope.Error
			if err != nil && !errors.As(err, &e) {
				t.Fatalf("Validate(%q) = %T, want *envelope.Error", addr, err)
			}
		}
		if addr == "" {
			if errFrom != nil || errTo == nil {
				t.Fatalf("empty address: from %v, to %v; want only the reverse-path to accept it", errFrom, errTo)
			}
			return
		}
		if kindOf(errFrom) != kindOf(errTo) {
			t.Fatalf("Validate(%q): as From %v, as To %v", addr, errFrom, errTo)
		}
		if errTo == nil && errORcpt != nil && !errors.Is(errORcpt, envelope.ErrInvalidParam) {
			// ORcpt has no path limit, only the 500-character one.
			t.Fatalf("Validate(%q): valid path, but as ORcpt %v", addr, errORcpt)
		}
		if errORcpt == nil {
			checkAcceptedAddress(t, addr, false)
			r := envelope.Recipient{ORcpt: addr}
			for _, u := range []bool{true, false} {
				p := r.ORcptParam(u)
				checkParamValue(t, p)
				if got := decodeORcpt(t, p); got != addr {
					t.Fatalf("ORcptParam(%v) = %q decodes to %q, want %q", u, p, got, addr)
				}
			}
		}
		if errTo != nil {
			return
		}
		checkAcceptedAddress(t, addr, true)
		cmd := "RCPT TO:<" + addr + ">\r\n"
		if strings.Index(cmd, "\r") != len(cmd)-2 || strings.Index(cmd, "\n") != len(cmd)-1 {
			t.Fatalf("command %q is more than one line", cmd)
		}
		// net/mail accepts the unquoted, non-literal addresses we accept, as
		// they are.
		if !strings.ContainsAny(addr, `"[`) {
			a, err := mail.ParseAddress(addr)
			if err != nil || a.Address != addr {
				t.Fatalf("Validate accepts %q; net/mail.ParseAddress = %v, %v", addr, a, err)
			}
		}
	})
}

// checkAcceptedAddress checks the properties of an address Validate accepted.
func checkAcceptedAddress(t *testing.T, addr string, path bool) {
	t.Helper()
	if !utf8.ValidString(addr) {
		t.Fatalf("accepted %q: not UTF-8", addr)
	}
	for _, r := range addr {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029 {
			t.Fatalf("accepted %q: contains control %U", addr, r)
		}
	}
	if path && len(addr)+2 > 256 {
		t.Fatalf("accepted %q: path of %d octets", addr, len(addr)+2)
	}
	local, domain := addr, ""
	if addr[0] == '"' {
		end := 1
		for ; addr[end] != '"'; end++ {
			if addr[end] == '\\' {
				end++
			}
		}
		local, domain = addr[:end+1], addr[end+1:]
	} else {
		i := strings.IndexByte(addr, '@')
		local, domain = addr[:i], addr[i:]
	}
	if !strings.HasPrefix(domain, "@") || strings.Count(domain, "@") != 1 {
		t.Fatalf("accepted %q: domain part %q", addr, domain)
	}
	domain = domain[1:]
	if len(local) > 64 || len(domain) > 255 || domain == "" {
		t.Fatalf("accepted %q: local part %d, domain %d octets", addr, len(local), len(domain))
	}
	if local[0] != '"' && strings.ContainsAny(local, " <>()[]\\,;:\"") {
		t.Fatalf("accepted %q: special in unquoted local part", addr)
	}
	if strings.ContainsAny(domain, " <>()\\,;\"") {
		t.Fatalf("accepted %q: special in domain", addr)
	}
}

// checkParamValue checks that an ESMTP parameter value is one token.
func checkParamValue(t *testing.T, v string) {
	t.Helper()
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f {
			t.Fatalf("parameter value %q holds %q", v, c)
		}
	}
}

// decodeORcpt decodes an ORCPT value made by ORcptParam.
func decodeORcpt(t *testing.T, v string) string {
	t.Helper()
	if rest, ok := strings.CutPrefix(v, "rfc822;"); ok {
		s, err := envelope.DecodeXText(rest)
		if err != nil {
			t.Fatalf("ORCPT %q: %v", v, err)
		}
		return s
	}
	rest, ok := strings.CutPrefix(v, "utf-8;")
	if !ok {
		t.Fatalf("ORCPT %q has no known type", v)
	}
	var b strings.Builder
	for rest != "" {
		if strings.HasPrefix(rest, `\x{`) {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				t.Fatalf("ORCPT %q: unterminated escape", v)
			}
			hex := rest[3:end]
			if len(hex) < 2 || len(hex) > 6 || len(hex) > 2 && hex[0] == '0' || strings.ToUpper(hex) != hex {
				t.Fatalf("ORCPT %q: bad HEXPOINT %q", v, hex)
			}
			n, err := strconv.ParseUint(hex, 16, 32)
			if err != nil {
				t.Fatalf("ORCPT %q: %v", v, err)
			}
			b.WriteRune(rune(n))
			rest = rest[end+1:]
			continue
		}
		switch rest[0] {
		case '+', '=', '\\':
			t.Fatalf("ORCPT %q: unescaped %q", v, rest[0])
		}
		b.WriteByte(rest[0])
		rest = rest[1:]
	}
	return b.String()
}

// FuzzXText checks that XText and DecodeXText round-trip, that DecodeXText
// is strict, and that ORcptParam always gives one safe token.
func FuzzXText(f *testing.F) {
	for _, v := range xtextVectors {
		f.Add(v.plain)
		f.Add(v.encoded)
	}
	for _, s := range []string{"+", "+2", "+2b", "+GG", "a=b", "jörg@münchen.de", "\u760a\r\n", "\xff\xfe", `\x{41}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := envelope.XText(s)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c < '!' || c > '~' || c == '=' || c == '+' && (i+2 >= len(enc) || !isUpperHex(enc[i+1]) || !isUpperHex(enc[i+2])) {
				t.Fatalf("XText(%q) = %q: bad octet at %d", s, enc, i)
			}
		}
		if dec, err := envelope.DecodeXText(enc); err != nil || dec != s {
			t.Fatalf("DecodeXText(XText(%q)) = %q, %v", s, dec, err)
		}

		dec, err := envelope.DecodeXText(s)
		if err == nil {
			if again, err := envelope.DecodeXText(envelope.XText(dec)); err != nil || again != dec {
				t.Fatalf("DecodeXText(%q) = %q does not round-trip: %q, %v", s, dec, again, err)
			}
			if strings.ContainsAny(s, " =\r\n\x00") {
				t.Fatalf("DecodeXText accepted %q", s)
			}
		} else if kindOf(err) != envelope.ErrInvalidParam || dec != "" {
			t.Fatalf("DecodeXText(%q) = %q, %v", s, dec, err)
		}

		r := envelope.Recipient{ORcpt: s}
		for _, u := range []bool{true, false} {
			p := r.ORcptParam(u)
			if s == "" {
				if p != "" {
					t.Fatalf("empty ORcpt: ORcptParam(%v) = %q", u, p)
				}
				continue
			}
			checkParamValue(t, p)
			if !u && strings.IndexFunc(p, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
				t.Fatalf("ORcptParam(false) = %q is not ASCII", p)
			}
			if utf8.ValidString(s) {
				if got := decodeORcpt(t, p); got != s {
					t.Fatalf("ORcptParam(%v) of %q = %q decodes to %q", u, s, p, got)
				}
			}
		}
	})
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

var messageSeeds = []string{
	"From: a@x\r\nTo: b@y\r\n\r\nbody\r\n",
	"From: a@x\r\nSender: s@x\r\nTo: b@y\r\nCc: c@y\r\nBcc: d@y\r\n\r\n",
	"From: a@x\nTo: b@y\nBcc: c@y,\n d@y\n\nbody\n",
	"From: a@x\r\nTo: b@y\r\nBcc: c@y",
	"Resent-Date: 1\r\nResent-From: r@x\r\nResent-To: n@y\r\nResent-Bcc: h@y\r\nFrom: a@x\r\nTo: b@y\r\nBcc: o@y\r\n\r\n",
	"Resent-Date: 1\r\nResent-From: r@x\r\nResent-Date: 2\r\nResent-From: q@x\r\nFrom: a@x\r\nTo: b@y\r\n\r\n",
	"From: a@x\r\nTo: undisclosed-recipients:;\r\nCc: G: f@y, \"H\" <h@y>;\r\n\r\n",
	"From: \"Doe, Ann\" <a@x> (work)\r\nTo: Jane (boss) <j@y>, =?utf-8?q?J=C3=B6rg?= <k@y>\r\n\r\n",
	"From: \"a b\"@x\r\nTo: \"x\".\"y\"@y, \"a\\\"b\"@y\r\n\r\n",
	"From: Jörg <jörg@x.de>\r\nTo: 用户@例子.广告\r\n\r\n",
	"From: a@x\r\nTo: b@y\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\xff",
	"From: a@x\r\nTo: b@y\rBcc: s@y\r\n\r\n",
	"From: a@x\r\nTo: b@y>\r\nRCPT TO:<e@y>\r\n\r\n",
	"From: a@x\r\nBCC : c@y\r\n continued@y\r\nbcc:\r\nTo: b@y\r\n\r\n",
	"From a@x Mon Jan  1 00:00:00 2024\r\n Bcc: c@y\r\nFrom: a@x\r\nTo: b@[IPv6:::1]\r\n\r\n",
	"\r\nFrom: a@x\r\nTo: b@y\r\n",
	"",
	"From: a@x\r\nTo: (((((((((((((((\r\n\r\n",
}

// FuzzFromMessage checks that FromMessage never panics, stays within its
// header limit, never lets a Bcc or Resent-Bcc field through, only removes
// whole lines, and only returns addresses that pass Validate.
func FuzzFromMessage(f *testing.F) {
	for _, s := range messageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 2048
		env, r, err := envelope.FromMessageLimit(bytes.NewReader(data), limit)
		if err != nil {
			var e *envelope.Error
			if !errors.As(err, &e) || kindOf(err) == nil || env != nil || r != nil {
				t.Fatalf("FromMessageLimit() = %v, %v, %v", env, r, err)
			}
			return
		}
		out := bytesOut(t, r)
		if len(out) > len(data) {
			t.Fatalf("output %d octets from %d", len(out), len(data))
		}
		if !bytes.Contains(bytes.ToLower(data), []byte("bcc")) && !bytes.Equal(out, data) {
			t.Fatalf("no Bcc in %q, but the output differs: %q", data, out)
		}
		checkLinesRemoved(t, data, out)
		checkNoBcc(t, out)

		if env.From == "" || len(env.To) == 0 {
			t.Fatalf("FromMessage() = %+v without error", env)
		}
		if err := env.Validate(); err != nil {
			t.Fatalf("FromMessage() envelope %+v: Validate() = %v", env, err)
		}
		ascii := true
		seen := make(map[string]bool)
		for _, a := range append([]string{env.From}, addrs(env)...) {
			if err := envelope.New(a, "ok@x").Validate(); err != nil {
				t.Fatalf("extracted address %q: %v", a, err)
			}
			ascii = ascii && strings.IndexFunc(a, func(r rune) bool { return r >= utf8.RuneSelf }) < 0
		}
		for _, a := range addrs(env) {
			if seen[a] {
				t.Fatalf("recipient %q twice", a)
			}
			seen[a] = true
		}
		if env.UTF8 == ascii {
			t.Fatalf("UTF8 = %v with addresses %q, %q", env.UTF8, env.From, addrs(env))
		}

		// Without a limit, the result is the same.
		env2, r2, err := envelope.FromMessage(bytes.NewReader(data))
		if err != nil || env2.From != env.From || strings.Join(addrs(env2), " ") != strings.Join(addrs(env), " ") {
			t.Fatalf("FromMessage() = %+v, %v; FromMessageLimit() = %+v", env2, err, env)
		}
		if out2 := bytesOut(t, r2); !bytes.Equal(out2, out) {
			t.Fatalf("FromMessage() output differs from FromMessageLimit()")
		}
	})
}

func addrs(env *envelope.Envelope) []string {
	var s []string
	for _, r := range env.To {
		s = append(s, r.Addr)
	}
	return s
}

// lines splits b after every CR, LF or CRLF.
func lines(b []byte) [][]byte {
	var ls [][]byte
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			return append(ls, b)
		}
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		ls = append(ls, b[:i+1])
		b = b[i+1:]
	}
	return ls
}

// checkLinesRemoved checks that out is in with some whole lines removed.
func checkLinesRemoved(t *testing.T, in, out []byte) {
	t.Helper()
	il, ol := lines(in), lines(out)
	j := 0
	for _, l := range il {
		if j < len(ol) && bytes.Equal(l, ol[j]) {
			j++
		}
	}
	if j != len(ol) {
		t.Fatalf("output is not the input minus whole lines:\nin  %q\nout %q", in, out)
	}
}

// checkNoBcc checks that the header of msg has no Bcc or Resent-Bcc field,
// taking any of CR, LF or CRLF to end a line and the first empty line to end
// the header.
func checkNoBcc(t *testing.T, msg []byte) {
	t.Helper()
	for _, l := range lines(msg) {
		if l[0] == '\r' || l[0] == '\n' {
			return
		}
		name, _, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		if bytes.EqualFold(name, []byte("Bcc")) || bytes.EqualFold(name, []byte("Resent-Bcc")) {
			t.Fatalf("output header has %q:\n%q", l, msg)
		}
	}
}
