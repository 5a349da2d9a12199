package envelope_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/envelope"
)

// addressTests are checked as the reverse-path and as a forward-path.
var addressTests = []struct {
	name string
	addr string
	want error // nil: valid
}{
	// Valid dot-strings and domains.
	{"simple", "a@x", nil},
	{"dots and plus", "first.last+tag@example.com", nil},
	{"all atext", "!#$%&'*+-/=?^_`{|}~@x.y", nil},
	{"digits and hyphens", "0@0-0.9a", nil},
	{"single label", "postmaster@localhost", nil},
	{"numeric labels", "a@1.2.3.4", nil},
	{"A-label", "a@xn--mnchen-3ya.de", nil},

	// Quoted local parts (RFC 5321 qtextSMTP and quoted-pairSMTP).
	{"quoted with space", `"john doe"@x`, nil},
	{"quoted with escaped quote", `"a\"b"@x`, nil},
	{"quoted with at", `"a@b"@x`, nil},
	{"quoted with escaped backslash", `"\\"@x`, nil},
	{"quoted empty", `""@x`, nil},
	{"quoted specials", `"<a>,[b];c:d"@x`, nil},
	{"quoted pair of a space", `"a\ b"@x`, nil},
	{"quoted non-ASCII", `"jö hn"@x`, nil},

	// Address literals.
	{"IPv4 literal", "a@[192.0.2.1]", nil},
	{"IPv4 literal zeros", "a@[0.0.0.0]", nil},
	{"IPv6 literal", "a@[IPv6:2001:db8::1]", nil},
	{"IPv6 tag any case", "a@[ipv6:::1]", nil},
	{"IPv6 full", "a@[IPv6:1:2:3:4:5:6:7:8]", nil},
	{"IPv6 six groups and ::", "a@[IPv6:1:2:3::4:5:6]", nil},
	{"IPv6 v4 full", "a@[IPv6:1:2:3:4:5:6:192.0.2.1]", nil},
	{"IPv6 v4 comp", "a@[IPv6:::ffff:192.0.2.1]", nil},
	{"IPv6 all zero", "a@[IPv6:::]", nil},

	// Non-ASCII (RFC 6531); the byte values matter, not the runes. U+010A,
	// U+010D, U+760A and U+760D have 0x0A or 0x0D as their low byte: a
	// conversion that truncated runes to bytes would make CR or LF of them.
	{"non-ASCII local", "jörg@x.de", nil},
	{"non-ASCII domain", "a@münchen.de", nil},
	{"CJK", "用户@例子.广告", nil},
	{"U+010A", "a\u010a@x", nil},
	{"U+010D", "a\u010d@x", nil},
	{"U+760A", "\u760a@\u760a.cn", nil},
	{"U+760D", "\u760d@x", nil},
	{"U+00A0 is not a control", "a\u00a0b@x", nil},

	// Injection: CR, LF, NUL, the rest of C0, DEL, C1, U+2028, U+2029.
	{"CRLF RCPT injection", "a@x>\r\nRCPT TO:<e@y>", envelope.ErrControlChar},
	{"CRLF DATA in quoted", "\"x\r\nDATA\"@y", envelope.ErrControlChar},
	{"LF in quoted", "\"x\nDATA\"@y", envelope.ErrControlChar},
	{"CR in quoted", "\"x\rDATA\"@y", envelope.ErrControlChar},
	{"LF CR", "a@x\n\rDATA", envelope.ErrControlChar},
	{"bare LF", "a@x\n", envelope.ErrControlChar},
	{"bare CR", "a\r@x", envelope.ErrControlChar},
	{"NUL", "a\x00@x", envelope.ErrControlChar},
	{"TAB", "a\t@x", envelope.ErrControlChar},
	{"TAB quoted", "\"a\tb\"@x", envelope.ErrControlChar},
	{"escaped TAB", "\"a\\\tb\"@x", envelope.ErrControlChar},
	{"ESC", "a\x1b@x", envelope.ErrControlChar},
	{"DEL", "a\x7f@x", envelope.ErrControlChar},
	{"C1 U+0080", "a\u0080@x", envelope.ErrControlChar},
	{"NEL U+0085", "a@x\u0085RCPT", envelope.ErrControlChar},
	{"C1 U+009F", "\"a\u009f\"@x", envelope.ErrControlChar},
	{"U+2028", "a\u2028@x", envelope.ErrControlChar},
	{"U+2029", "a@x\u2029", envelope.ErrControlChar},
	{"control wins over bad UTF-8", "a\xff\r@x", envelope.ErrControlChar},

	// Invalid UTF-8.
	{"invalid byte", "a\xff@x", envelope.ErrMalformed},
	{"lone 0x85", "a\x85@x", envelope.ErrMalformed},
	{"truncated sequence", "\xc4@x", envelope.ErrMalformed},
	{"overlong slash", "a@x\xc0\xaf", envelope.ErrMalformed},
	{"surrogate", "a\xed\xa0\x80@x", envelope.ErrMalformed},

	// Grammar.
	{"empty", "", envelope.ErrMalformed},
	{"no at", "a", envelope.ErrMalformed},
	{"no local", "@x", envelope.ErrMalformed},
	{"no domain", "a@", envelope.ErrMalformed},
	{"two ats", "a@b@c", envelope.ErrMalformed},
	{"double at", "a@@x", envelope.ErrMalformed},
	{"double dot", "a..b@x", envelope.ErrMalformed},
	{"leading dot", ".a@x", envelope.ErrMalformed},
	{"trailing dot local", "a.@x", envelope.ErrMalformed},
	{"trailing dot domain", "a@x.", envelope.ErrMalformed},
	{"leading dot domain", "a@.x", envelope.ErrMalformed},
	{"empty label", "a@x..y", envelope.ErrMalformed},
	{"leading hyphen", "a@-x.y", envelope.ErrMalformed},
	{"trailing hyphen", "a@x-.y", envelope.ErrMalformed},
	{"underscore in domain", "a@x_y.z", envelope.ErrMalformed},
	{"angle brackets", "<a@x>", envelope.ErrMalformed},
	{"null path spelled out", "<>", envelope.ErrMalformed},
	{"closing bracket", "a@x>", envelope.ErrMalformed},
	{"space", "a b@x", envelope.ErrMalformed},
	{"leading space", " a@x", envelope.ErrMalformed},
	{"trailing space", "a@x ", envelope.ErrMalformed},
	{"space after at", "a@ x", envelope.ErrMalformed},
	{"parameter smuggling", "a@x SIZE=1", envelope.ErrMalformed},
	{"source route", "@a,@b:c@d", envelope.ErrMalformed},
	{"source route one hop", "@a:c@d", envelope.ErrMalformed},
	{"comma", "a,b@x", envelope.ErrMalformed},
	{"backslash unquoted", `a\b@x`, envelope.ErrMalformed},
	{"unterminated quote", `"a@x`, envelope.ErrMalformed},
	{"text after quote", `"a"b@x`, envelope.ErrMalformed},
	{"quote inside atom", `a"b"@x`, envelope.ErrMalformed},
	{"dotted quoted words", `"a".b@x`, envelope.ErrMalformed},
	{"quoted pair of non-ASCII", `"a\é"@x`, envelope.ErrMalformed},
	{"trailing backslash in quote", `"a\"@x`, envelope.ErrMalformed},
	{"IPv4 three parts", "a@[1.2.3]", envelope.ErrMalformed},
	{"IPv4 out of range", "a@[1.2.3.256]", envelope.ErrMalformed},
	{"IPv4 four digits", "a@[1.2.3.0004]", envelope.ErrMalformed},
	{"IPv4 sign", "a@[1.2.3.+4]", envelope.ErrMalformed},
	{"IPv6 without tag", "a@[::1]", envelope.ErrMalformed},
	{"IPv6 seven groups", "a@[IPv6:1:2:3:4:5:6:7]", envelope.ErrMalformed},
	{"IPv6 nine groups", "a@[IPv6:1:2:3:4:5:6:7:8:9]", envelope.ErrMalformed},
	{"IPv6 seven groups and ::", "a@[IPv6:1:2:3:4:5:6:7::]", envelope.ErrMalformed},
	{"IPv6 two ::", "a@[IPv6:1::2::3]", envelope.ErrMalformed},
	{"IPv6 five hex digits", "a@[IPv6:12345::1]", envelope.ErrMalformed},
	{"IPv6 zone", "a@[IPv6:fe80::1%eth0]", envelope.ErrMalformed},
	{"IPv6 v4 too many groups", "a@[IPv6:1:2:3:4:5::6:1.2.3.4]", envelope.ErrMalformed},
	{"IPv6 bad v4", "a@[IPv6:::1.2.3]", envelope.ErrMalformed},
	{"general literal", "a@[x-tag:abc]", envelope.ErrMalformed},
	{"unterminated literal", "a@[1.2.3.4", envelope.ErrMalformed},
	{"literal with label", "a@[1.2.3.4].x", envelope.ErrMalformed},
	{"literal with space", "a@[ 1.2.3.4]", envelope.ErrMalformed},

	// Lengths (RFC 5321 section 4.5.3.1), in octets.
	{"local 64", strings.Repeat("l", 64) + "@x", nil},
	{"local 65", strings.Repeat("l", 65) + "@x", envelope.ErrTooLong},
	{"quoted local 64", `"` + strings.Repeat(" ", 62) + `"@x`, nil},
	{"quoted local 65", `"` + strings.Repeat(" ", 63) + `"@x`, envelope.ErrTooLong},
	{"non-ASCII local 64 octets", strings.Repeat("é", 32) + "@x", nil},
	{"non-ASCII local 65 octets", strings.Repeat("é", 32) + "l@x", envelope.ErrTooLong},
	{"path 256", "a@" + domainOfLen(252), nil},
	{"path 257", "a@" + domainOfLen(253), envelope.ErrTooLong},
	{"path 256 with long local", strings.Repeat("l", 64) + "@" + domainOfLen(189), nil},
	{"path 257 with long local", strings.Repeat("l", 64) + "@" + domainOfLen(190), envelope.ErrTooLong},
	// A 255-octet domain is within the domain limit, but no path can hold
	// it: see orcptTests for the domain limit alone.
	{"domain 255 in a path", "a@" + domainOfLen(255), envelope.ErrTooLong},
	{"domain 256 in a path", "a@" + domainOfLen(256), envelope.ErrTooLong},
	{"huge", strings.Repeat("a", 1<<20) + "@x", envelope.ErrTooLong},
}

func TestValidateAddress(t *testing.T) {
	for _, tt := range addressTests {
		t.Run(tt.name, func(t *testing.T) {
			env := envelope.New(tt.addr, "ok@x")
			wantFrom := tt.want
			if tt.addr == "" {
				wantFrom = nil // the null reverse-path
			}
			checkErr(t, "Validate(From: "+quote(tt.addr)+")", env.Validate(), wantFrom, "from")

			env = envelope.New("", "ok@x", "ok2@x", tt.addr)
			checkErr(t, "Validate(To[2]: "+quote(tt.addr)+")", env.Validate(), tt.want, "to[2]")
		})
	}
}

// quote shortens an address for messages.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:20] + "..." + s[len(s)-20:]
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r", `\r`), "\n", `\n`)
}

// ORcpt is an address but not a path: only the local-part and domain limits
// apply, plus RFC 3461's 500 characters for the whole ORCPT value.
var orcptTests = []struct {
	name  string
	orcpt string
	want  error
}{
	{"empty means none", "", nil},
	{"simple", "a@x", nil},
	{"non-ASCII", "jörg@münchen.de", nil},
	{"domain 255", "a@" + domainOfLen(255), nil},
	{"domain 256", "a@" + domainOfLen(256), envelope.ErrTooLong},
	{"local 64 domain 255", strings.Repeat("l", 64) + "@" + domainOfLen(255), nil},
	{"local 65", strings.Repeat("l", 65) + "@x", envelope.ErrTooLong},
	{"CRLF", "a@x\r\nDATA", envelope.ErrControlChar},
	{"U+2028", "a\u2028@x", envelope.ErrControlChar},
	{"type prefix is not an address", "rfc822;a@x", envelope.ErrMalformed},
	{"malformed", "a..b@x", envelope.ErrMalformed},
	{"invalid UTF-8", "a\xff@x", envelope.ErrMalformed},
	// `"é` + 60 spaces + `"` is a 64-octet local part; every space becomes
	// the 6-character "\x{20}" in the utf-8 form.
	{"ORCPT value 372 characters", `"é` + strings.Repeat(" ", 60) + `"@x`, nil},
	{"ORCPT value over 500 characters", `"é` + strings.Repeat(" ", 60) + `"@` + domainOfLen(255), envelope.ErrInvalidParam},
}

func TestValidateORcpt(t *testing.T) {
	for _, tt := range orcptTests {
		t.Run(tt.name, func(t *testing.T) {
			env := envelope.New("a@x", "ok@x", "ok@y")
			env.To[1].ORcpt = tt.orcpt
			checkErr(t, "Validate(ORcpt: "+quote(tt.orcpt)+")", env.Validate(), tt.want, "to[1].orcpt")
		})
	}
}

func TestValidateParams(t *testing.T) {
	notify := func(n ...envelope.DSNNotify) func(*envelope.Envelope) {
		return func(e *envelope.Envelope) { e.To[0].Notify = n }
	}
	tests := []struct {
		name  string
		edit  func(*envelope.Envelope)
		want  error
		field string
	}{
		{"defaults", func(*envelope.Envelope) {}, nil, ""},
		{"everything set", func(e *envelope.Envelope) {
			e.Size, e.Body, e.UTF8, e.RequireTLS = 1<<40, envelope.BodyBinaryMIME, true, true
			e.Return, e.EnvID = envelope.ReturnHeaders, "QQ314159"
			e.To[0].Notify = []envelope.DSNNotify{envelope.NotifySuccess, envelope.NotifyFailure, envelope.NotifyDelay}
			e.To[0].ORcpt = "b@y"
		}, nil, ""},

		{"size -1", func(e *envelope.Envelope) { e.Size = -1 }, envelope.ErrInvalidParam, "size"},

		{"body 7BIT", func(e *envelope.Envelope) { e.Body = envelope.Body7Bit }, nil, ""},
		{"body 8BITMIME", func(e *envelope.Envelope) { e.Body = envelope.Body8BitMIME }, nil, ""},
		{"body lower case", func(e *envelope.Envelope) { e.Body = "8bitmime" }, envelope.ErrInvalidParam, "body"},
		{"body unknown", func(e *envelope.Envelope) { e.Body = "BASE64" }, envelope.ErrInvalidParam, "body"},
		{"body CRLF", func(e *envelope.Envelope) { e.Body = "8BITMIME\r\nRSET" }, envelope.ErrControlChar, "body"},
		{"body space", func(e *envelope.Envelope) { e.Body = "8BITMIME SMTPUTF8" }, envelope.ErrInvalidParam, "body"},

		{"return FULL", func(e *envelope.Envelope) { e.Return = envelope.ReturnFull }, nil, ""},
		{"return lower case", func(e *envelope.Envelope) { e.Return = "full" }, envelope.ErrInvalidParam, "return"},
		{"return unknown", func(e *envelope.Envelope) { e.Return = "NONE" }, envelope.ErrInvalidParam, "return"},
		{"return LF", func(e *envelope.Envelope) { e.Return = "HDRS\n" }, envelope.ErrControlChar, "return"},

		{"envid 100", func(e *envelope.Envelope) { e.EnvID = strings.Repeat("e", 100) }, nil, ""},
		{"envid 101", func(e *envelope.Envelope) { e.EnvID = strings.Repeat("e", 101) }, envelope.ErrInvalidParam, "envid"},
		{"envid printable", func(e *envelope.Envelope) { e.EnvID = "a b+c=d~!" }, nil, ""},
		{"envid xtext over 100", func(e *envelope.Envelope) { e.EnvID = strings.Repeat("e", 98) + "+" }, envelope.ErrInvalidParam, "envid"},
		{"envid CRLF", func(e *envelope.Envelope) { e.EnvID = "x\r\nRCPT TO:<e@y>" }, envelope.ErrControlChar, "envid"},
		{"envid NUL", func(e *envelope.Envelope) { e.EnvID = "x\x00" }, envelope.ErrControlChar, "envid"},
		{"envid TAB", func(e *envelope.Envelope) { e.EnvID = "x\ty" }, envelope.ErrControlChar, "envid"},
		{"envid NEL", func(e *envelope.Envelope) { e.EnvID = "x\u0085y" }, envelope.ErrControlChar, "envid"},
		{"envid non-ASCII", func(e *envelope.Envelope) { e.EnvID = "é" }, envelope.ErrInvalidParam, "envid"},
		{"envid invalid UTF-8", func(e *envelope.Envelope) { e.EnvID = "\xff" }, envelope.ErrInvalidParam, "envid"},

		{"notify nil", notify(), nil, ""},
		{"notify empty", func(e *envelope.Envelope) { e.To[0].Notify = []envelope.DSNNotify{} }, nil, ""},
		{"notify never", notify(envelope.NotifyNever), nil, ""},
		{"notify delay failure", notify(envelope.NotifyDelay, envelope.NotifyFailure), nil, ""},
		{"notify never and success", notify(envelope.NotifyNever, envelope.NotifySuccess), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify success and never", notify(envelope.NotifySuccess, envelope.NotifyNever), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify never twice", notify(envelope.NotifyNever, envelope.NotifyNever), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify duplicate", notify(envelope.NotifySuccess, envelope.NotifyFailure, envelope.NotifySuccess), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify lower case", notify("success"), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify unknown", notify("ALWAYS"), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify empty value", notify(""), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify comma inside", notify("SUCCESS,FAILURE"), envelope.ErrInvalidParam, "to[0].notify"},
		{"notify CRLF", notify("SUCCESS\r\nDATA"), envelope.ErrControlChar, "to[0].notify"},

		{"no recipients", func(e *envelope.Envelope) { e.To = nil }, envelope.ErrNoRecipients, "to"},
		{"empty recipients", func(e *envelope.Envelope) { e.To = []envelope.Recipient{} }, envelope.ErrNoRecipients, "to"},
		{"empty recipient", func(e *envelope.Envelope) { e.To = append(e.To, envelope.Recipient{}) }, envelope.ErrMalformed, "to[1]"},
		{"null reverse-path", func(e *envelope.Envelope) { e.From = "" }, nil, ""},
		{"from first", func(e *envelope.Envelope) { e.From = "bad"; e.To = nil }, envelope.ErrMalformed, "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := envelope.New("a@x", "b@x")
			tt.edit(env)
			before := env.Clone()
			checkErr(t, "Validate()", env.Validate(), tt.want, tt.field)
			if !reflect.DeepEqual(env, before) {
				t.Errorf("Validate modified the envelope: %+v, was %+v", env, before)
			}
		})
	}
}

func TestValidateZero(t *testing.T) {
	checkErr(t, "(&Envelope{}).Validate()", (&envelope.Envelope{}).Validate(), envelope.ErrNoRecipients, "to")
}
