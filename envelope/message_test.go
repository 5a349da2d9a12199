package envelope_test

import (
	"bytes"
	"errors"
	"io"
	"net/mail"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/envelope"
)

const body = "Hello.\r\n\r\nBcc: not a header@x\r\n"

var fromMessageTests = []struct {
	name     string
	msg      string
	from     string
	to       []string
	utf8     bool
	bodyType envelope.BodyType
	out      string // the expected output; "" means msg unchanged
}{
	{
		name: "From and To",
		msg:  "From: a@x\r\nTo: b@y\r\nSubject: s\r\n\r\n" + body,
		from: "a@x", to: []string{"b@y"},
	},
	{
		name: "Sender over From",
		msg:  "From: a@x\r\nSender: s@x\r\nTo: b@y\r\n\r\n" + body,
		from: "s@x", to: []string{"b@y"},
	},
	{
		name: "first of several From mailboxes",
		msg:  "From: Ann <a@x>, Cid <c@x>\r\nTo: b@y\r\n\r\n" + body,
		from: "a@x", to: []string{"b@y"},
	},
	{
		name: "empty Sender counts as absent",
		msg:  "Sender:\r\nFrom: a@x\r\nTo: b@y\r\n\r\n" + body,
		from: "a@x", to: []string{"b@y"},
	},
	{
		name: "To then Cc then Bcc, duplicates dropped",
		msg:  "Bcc: e@y, c@y\r\nCc: d@y, b@Y\r\nFrom: a@x\r\nTo: b@y, c@y\r\nSubject: s\r\n\r\n" + body,
		from: "a@x", to: []string{"b@y", "c@y", "d@y", "e@y"},
		out: "Cc: d@y, b@Y\r\nFrom: a@x\r\nTo: b@y, c@y\r\nSubject: s\r\n\r\n" + body,
	},
	{
		name: "local parts are case-sensitive",
		msg:  "From: a@x\r\nTo: B@y, b@y\r\n\r\n",
		from: "a@x", to: []string{"B@y", "b@y"},
	},
	{
		name: "every To field",
		msg:  "From: a@x\r\nTo: b@y\r\nCc: c@y\r\nTo: d@y\r\n\r\n",
		from: "a@x", to: []string{"b@y", "d@y", "c@y"},
	},
	{
		name: "one Resent block overrides",
		msg: "Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nResent-From: r@x\r\nResent-To: n@y\r\n" +
			"Resent-Cc: m@y\r\nResent-Bcc: hidden@y\r\nResent-Message-ID: <1@x>\r\n" +
			"From: a@x\r\nSender: s@x\r\nTo: b@y\r\nBcc: old@y\r\n\r\n" + body,
		from: "r@x", to: []string{"n@y", "m@y", "hidden@y"},
		out: "Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nResent-From: r@x\r\nResent-To: n@y\r\n" +
			"Resent-Cc: m@y\r\nResent-Message-ID: <1@x>\r\n" +
			"From: a@x\r\nSender: s@x\r\nTo: b@y\r\n\r\n" + body,
	},
	{
		name: "Resent-Sender over Resent-From",
		msg:  "Resent-From: r@x\r\nResent-Sender: rs@x\r\nResent-To: n@y\r\nFrom: a@x\r\nTo: b@y\r\n\r\n",
		from: "rs@x", to: []string{"n@y"},
	},
	{
		name: "Resent block without Resent-Date",
		msg:  "resent-from: r@x\r\nRESENT-TO: n@y\r\nFrom: a@x\r\nTo: b@y\r\n\r\n",
		from: "r@x", to: []string{"n@y"},
	},
	{
		name: "Bcc with continuation lines",
		msg:  "From: a@x\r\nTo: b@y\r\nBcc: c@y,\r\n d@y,\r\n\tE <e@y>\r\nSubject: x\r\n folded\r\n\r\n" + body,
		from: "a@x", to: []string{"b@y", "c@y", "d@y", "e@y"},
		out: "From: a@x\r\nTo: b@y\r\nSubject: x\r\n folded\r\n\r\n" + body,
	},
	{
		name: "Bcc spellings",
		msg:  "From: a@x\r\nTo: b@y\r\nBCC : c@y\r\nbcc:\r\nX-Bcc: kept\r\nBccc: kept\r\n\r\n",
		from: "a@x", to: []string{"b@y", "c@y"},
		out: "From: a@x\r\nTo: b@y\r\nX-Bcc: kept\r\nBccc: kept\r\n\r\n",
	},
	{
		name: "Bcc stripped in a Resent message too",
		msg:  "RESENT-FROM: r@x\r\nResent-To: n@y\r\nresent-bcc \t: d@y,\r\n  e@y\r\nFrom: a@x\r\nTo: b@y\r\nBcc: c@y\r\n\r\n",
		from: "r@x", to: []string{"n@y", "d@y", "e@y"},
		out: "RESENT-FROM: r@x\r\nResent-To: n@y\r\nFrom: a@x\r\nTo: b@y\r\n\r\n",
	},
	{
		name: "empty Bcc last",
		msg:  "From: a@x\r\nTo: b@y\r\nBcc:\r\n\r\n" + body,
		from: "a@x", to: []string{"b@y"},
		out: "From: a@x\r\nTo: b@y\r\n\r\n" + body,
	},
	{
		name: "groups",
		msg:  "From: a@x\r\nTo: undisclosed-recipients:;\r\nCc: Friends: f@y, \"G\" <g@y>;, h@y, Empty: ;\r\nBcc: i@y\r\n\r\n",
		from: "a@x", to: []string{"f@y", "g@y", "h@y", "i@y"},
		out: "From: a@x\r\nTo: undisclosed-recipients:;\r\nCc: Friends: f@y, \"G\" <g@y>;, h@y, Empty: ;\r\n\r\n",
	},
	{
		name: "display names and comments",
		msg: "From: \"Doe, Ann\" <a@x> (work)\r\n" +
			"To: Jane (the boss) <jane@y>, bob@y (Bob), John Q. Public <jqp@y>, <c@y>,, (x) d@y (y),\r\n" +
			"Cc: =?utf-8?q?J=C3=B6rg?= <joerg@y>, =?x-unknown?b?AAAA?= <z@y>, \"=?utf-8?q?x?=\" <q@y>\r\n\r\n",
		from: "a@x", to: []string{"jane@y", "bob@y", "jqp@y", "c@y", "d@y", "joerg@y", "z@y", "q@y"},
	},
	{
		name: "quoted local parts, minimally quoted",
		msg:  "From: \"a\"@x\r\nTo: \"john doe\"@y, \"plain\"@y, \"a\\\"b\"@y, \"a\\b\"@y, \"x\".\"y\"@y, \"a@b\"@y\r\n\r\n",
		from: "a@x", to: []string{`"john doe"@y`, "plain@y", `"a\"b"@y`, "ab@y", "x.y@y", `"a@b"@y`},
	},
	{
		name: "address literals",
		msg:  "From: a@[192.0.2.1]\r\nTo: <b@[IPv6:2001:db8::1]>\r\n\r\n",
		from: "a@[192.0.2.1]", to: []string{"b@[IPv6:2001:db8::1]"},
	},
	{
		name: "whitespace around dots",
		msg:  "From: a . b @ x . y\r\nTo: c@y\r\n\r\n",
		from: "a.b@x.y", to: []string{"c@y"},
	},
	{
		name: "folded address fields",
		msg:  "From:\r\n a@x\r\nTo: b@y,\r\n c@y\r\n\r\n",
		from: "a@x", to: []string{"b@y", "c@y"},
	},
	{
		name: "bare LF",
		msg:  "From: a@x\nTo: b@y\nBcc: c@y,\n d@y\nSubject: s\n\nbody\nBcc: x@y\n",
		from: "a@x", to: []string{"b@y", "c@y", "d@y"},
		out: "From: a@x\nTo: b@y\nSubject: s\n\nbody\nBcc: x@y\n",
	},
	{
		name: "mixed line endings",
		msg:  "From: a@x\nTo: b@y\r\nBcc: c@y\n\r\nbody\n",
		from: "a@x", to: []string{"b@y", "c@y"},
		out: "From: a@x\nTo: b@y\r\n\r\nbody\n",
	},
	{
		name: "no body",
		msg:  "From: a@x\r\nTo: b@y\r\n",
		from: "a@x", to: []string{"b@y"},
	},
	{
		name: "no body, Bcc last without line break",
		msg:  "From: a@x\r\nTo: b@y\r\nBcc: c@y",
		from: "a@x", to: []string{"b@y", "c@y"},
		out: "From: a@x\r\nTo: b@y\r\n",
	},
	{
		name: "lines that are not fields are kept",
		msg:  "From a@x Mon Jan  1 00:00:00 2024\r\n continuation\r\nFrom: a@x\r\nnot a field\r\n Bcc: c@y\r\nTo: b@y\r\n\r\n",
		from: "a@x", to: []string{"b@y"},
	},
	{
		name: "non-ASCII addresses",
		msg:  "From: Jörg <jörg@x.de>\r\nTo: b@münchen.de, c@y\r\n\r\n",
		from: "jörg@x.de", to: []string{"b@münchen.de", "c@y"},
		utf8: true, bodyType: envelope.Body8BitMIME,
	},
	{
		name: "non-ASCII Bcc address",
		msg:  "From: a@x\r\nTo: b@y\r\nBcc: 用户@例子.广告\r\n\r\n",
		from: "a@x", to: []string{"b@y", "用户@例子.广告"},
		utf8: true, bodyType: envelope.Body8BitMIME,
		out: "From: a@x\r\nTo: b@y\r\n\r\n",
	},
	{
		name: "8-bit header, ASCII addresses",
		msg:  "From: Jörg <j@x>\r\nTo: b@y\r\n\r\n",
		from: "j@x", to: []string{"b@y"},
		bodyType: envelope.Body8BitMIME,
	},
	{
		name: "8-bit body only",
		msg:  "From: a@x\r\nTo: b@y\r\n\r\nJörg\r\n",
		from: "a@x", to: []string{"b@y"},
	},
	{
		name: "encoded display name stays 7-bit",
		msg:  "From: =?utf-8?q?J=C3=B6rg?= <j@x>\r\nTo: b@y\r\n\r\n",
		from: "j@x", to: []string{"b@y"},
	},
	{
		name: "CTE 8bit",
		msg:  "From: a@x\r\nTo: b@y\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		from: "a@x", to: []string{"b@y"}, bodyType: envelope.Body8BitMIME,
	},
	{
		name: "CTE binary with comment",
		msg:  "From: a@x\r\nTo: b@y\r\ncontent-transfer-encoding:  BINARY (raw)\r\n\r\n",
		from: "a@x", to: []string{"b@y"}, bodyType: envelope.BodyBinaryMIME,
	},
	{
		name: "CTE binary beats 8-bit header",
		msg:  "From: Jörg <j@x>\r\nTo: b@y\r\nContent-Transfer-Encoding: binary\r\n\r\n",
		from: "j@x", to: []string{"b@y"}, bodyType: envelope.BodyBinaryMIME,
	},
	{
		name: "CTE 7bit and base64",
		msg:  "From: a@x\r\nTo: b@y\r\nContent-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		from: "a@x", to: []string{"b@y"},
	},
}

func TestFromMessage(t *testing.T) {
	for _, tt := range fromMessageTests {
		t.Run(tt.name, func(t *testing.T) {
			env, r, err := envelope.FromMessage(strings.NewReader(tt.msg))
			if err != nil {
				t.Fatalf("FromMessage() err = %v", err)
			}
			var to []string
			for _, rc := range env.To {
				to = append(to, rc.Addr)
				if rc.Notify != nil || rc.ORcpt != "" {
					t.Errorf("recipient %q has parameters: %+v", rc.Addr, rc)
				}
			}
			if env.From != tt.from || !reflect.DeepEqual(to, tt.to) {
				t.Errorf("FromMessage() = from %q to %q, want from %q to %q", env.From, to, tt.from, tt.to)
			}
			if env.UTF8 != tt.utf8 || env.Body != tt.bodyType {
				t.Errorf("FromMessage() UTF8 = %v, Body = %q, want %v, %q", env.UTF8, env.Body, tt.utf8, tt.bodyType)
			}
			if env.Size != 0 || env.Return != "" || env.EnvID != "" || env.RequireTLS {
				t.Errorf("FromMessage() set parameters it cannot know: %+v", env)
			}
			if err := env.Validate(); err != nil {
				t.Errorf("FromMessage() envelope does not validate: %v", err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("reading the message: %v", err)
			}
			want := tt.out
			if want == "" {
				want = tt.msg
			}
			if string(got) != want {
				t.Errorf("message =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestFromMessageErrors(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		want  error
		field string
	}{
		{"empty", "", envelope.ErrNoSender, "From"},
		{"only a body", "\r\nFrom: a@x\r\nTo: b@y\r\n", envelope.ErrNoSender, "From"},
		{"no From", "To: b@y\r\n\r\n", envelope.ErrNoSender, "From"},
		{"From is a group", "From: Team:;\r\nTo: b@y\r\n\r\n", envelope.ErrNoSender, "From"},
		{"no recipients", "From: a@x\r\nSubject: s\r\n\r\n", envelope.ErrNoRecipients, "To"},
		{"only an empty group", "From: a@x\r\nTo: undisclosed-recipients:;\r\n\r\n", envelope.ErrNoRecipients, "To"},
		{"recipients only after the header", "From: a@x\r\n\r\nTo: b@y\r\n", envelope.ErrNoRecipients, "To"},
		{"two Resent blocks", "Resent-Date: 1\r\nResent-From: r@x\r\nResent-To: n@y\r\nResent-Date: 2\r\nResent-From: q@x\r\nResent-To: m@y\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrMultipleResent, "Resent-Date"},
		{"two Resent-Date only", "Resent-Date: 1\r\nresent-date: 2\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrMultipleResent, "Resent-Date"},
		{"repeated Resent-To", "Resent-From: r@x\r\nResent-To: n@y\r\nResent-To: m@y\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrMultipleResent, "Resent-To"},
		{"Resent block without sender", "Resent-Date: 1\r\nResent-To: n@y\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrNoSender, "Resent-From"},
		{"Resent block without recipients", "Resent-Date: 1\r\nResent-From: r@x\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrNoRecipients, "Resent-To"},
		{"malformed To", "From: a@x\r\nTo: b@y>\r\n\r\n", envelope.ErrMalformed, "To"},
		{"malformed Bcc", "From: a@x\r\nTo: b@y\r\nBcc: a..b@y\r\n\r\n", envelope.ErrMalformed, "Bcc"},
		{"malformed Sender is not skipped", "Sender: nobody\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrMalformed, "Sender"},
		{"malformed Resent-Cc", "Resent-From: r@x\r\nResent-To: n@y\r\nResent-Cc: <>\r\nFrom: a@x\r\nTo: b@y\r\n\r\n", envelope.ErrMalformed, "Resent-Cc"},
		{"missing comma", "From: a@x\r\nTo: b@y c@y\r\n\r\n", envelope.ErrMalformed, "To"},
		{"source route", "From: a@x\r\nTo: <@r:b@y>\r\n\r\n", envelope.ErrMalformed, "To"},
		{"unclosed angle", "From: a@x\r\nTo: B <b@y\r\n\r\n", envelope.ErrMalformed, "To"},
		{"unclosed quote", "From: \"a@x\r\nTo: b@y\r\n\r\n", envelope.ErrMalformed, "From"},
		{"unclosed comment", "From: a@x (me\r\nTo: b@y\r\n\r\n", envelope.ErrMalformed, "From"},
		{"unclosed group", "From: a@x\r\nTo: G: b@y\r\n\r\n", envelope.ErrMalformed, "To"},
		{"nested group", "From: a@x\r\nTo: G: H: b@y;;\r\n\r\n", envelope.ErrMalformed, "To"},
		{"IPv6 literal without tag", "From: a@x\r\nTo: b@[::1]\r\n\r\n", envelope.ErrMalformed, "To"},
		{"invalid UTF-8", "From: a@x\r\nTo: b\xff@y\r\n\r\n", envelope.ErrMalformed, "To"},
		{"local part 65", "From: a@x\r\nTo: " + strings.Repeat("l", 65) + "@y\r\n\r\n", envelope.ErrTooLong, "To"},
		{"path 257", "From: a@x\r\nCc: b@" + domainOfLen(253) + "\r\nTo: c@y\r\n\r\n", envelope.ErrTooLong, "Cc"},
		{"TAB in quoted local part", "From: a@x\r\nTo: \"b\tc\"@y\r\n\r\n", envelope.ErrControlChar, "To"},
		{"control in atom", "From: a@x\r\nTo: b\x01@y\r\n\r\n", envelope.ErrControlChar, "To"},
		{"U+2028", "From: a@x\r\nTo: b\u2028@y\r\n\r\n", envelope.ErrControlChar, "To"},
		{"NEL", "From: a@x\r\nTo: \"b\u0085DATA\"@y\r\n\r\n", envelope.ErrControlChar, "To"},
		{"bare CR hiding a Bcc", "From: a@x\r\nTo: b@y\rBcc: secret@y\r\n\r\n", envelope.ErrControlChar, "header"},
		{"bare CR at the end", "From: a@x\r\nTo: b@y\r", envelope.ErrControlChar, "header"},
		{"CR CR LF", "From: a@x\r\r\nTo: b@y\r\n\r\n", envelope.ErrControlChar, "header"},
		{"NUL", "From: a@x\r\nX: \x00\r\nTo: b@y\r\n\r\n", envelope.ErrControlChar, "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, r, err := envelope.FromMessage(strings.NewReader(tt.msg))
			checkErr(t, "FromMessage()", err, tt.want, tt.field)
			if env != nil || r != nil {
				t.Errorf("FromMessage() = %+v, %v with an error, want nil, nil", env, r)
			}
		})
	}
}

func TestFromMessageHeaderLimit(t *testing.T) {
	hdr := "From: a@x\r\nTo: b@y\r\nSubject: " + strings.Repeat("s", 67) + "\r\n\r\n" // 100 octets
	if len(hdr) != 100 {
		t.Fatalf("test header is %d octets", len(hdr))
	}
	bigBody := strings.Repeat("body line\r\n", 1000)
	tests := []struct {
		name  string
		msg   string
		limit int
		ok    bool
	}{
		{"header at the limit", hdr + bigBody, 100, true},
		{"header over the limit", hdr + bigBody, 99, false},
		{"separator over the limit", hdr, 98, false},
		{"limit 0 means the default", hdr + bigBody, 0, true},
		{"negative limit means the default", hdr, -1, true},
		{"no separator, short", "From: a@x\r\nTo: b@y\r\n", 21, true},
		{"no separator, long", "From: a@x\r\nTo: b@y\r\n" + bigBody, 5000, false},
		{"one long line", "From: a@x\r\nTo: b@y\r\nX: " + strings.Repeat("x", 10000) + "\r\n\r\n", 10000, false},
		{"long line within the limit", "From: a@x\r\nTo: b@y\r\nX: " + strings.Repeat("x", 10000) + "\r\n\r\n", 10100, true},
		{"default limit", "From: a@x\r\nTo: b@y\r\nX: " + strings.Repeat("x", envelope.DefaultMaxHeader) + "\r\n\r\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r, err := envelope.FromMessageLimit(strings.NewReader(tt.msg), tt.limit)
			if !tt.ok {
				checkErr(t, "FromMessageLimit()", err, envelope.ErrHeaderTooLarge, "header")
				return
			}
			if err != nil {
				t.Fatalf("FromMessageLimit() err = %v", err)
			}
			got, err := io.ReadAll(r)
			if err != nil || string(got) != tt.msg {
				t.Errorf("message = %d octets, %v; want the %d octets of the input", len(got), err, len(tt.msg))
			}
		})
	}
}

// The default limit is exactly DefaultMaxHeader octets.
func TestFromMessageDefaultLimitBoundary(t *testing.T) {
	start := "From: a@x\r\nTo: b@y\r\nX: "
	pad := envelope.DefaultMaxHeader - len(start) - len("\r\n\r\n")
	msg := start + strings.Repeat("x", pad) + "\r\n\r\nbody"
	if _, _, err := envelope.FromMessage(strings.NewReader(msg)); err != nil {
		t.Errorf("FromMessage(header of DefaultMaxHeader octets) err = %v", err)
	}
	msg = start + strings.Repeat("x", pad+1) + "\r\n\r\nbody"
	_, _, err := envelope.FromMessage(strings.NewReader(msg))
	checkErr(t, "FromMessage(header of DefaultMaxHeader+1 octets)", err, envelope.ErrHeaderTooLarge, "header")
}

var errReadTooFar = errors.New("read past the end of the test body")

// limitedBody yields n octets of 'b' and then fails: reading it further than
// a test allows is an error.
type limitedBody struct{ n int }

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, errReadTooFar
	}
	n := min(len(p), l.n)
	for i := range p[:n] {
		p[i] = 'b'
	}
	l.n -= n
	return n, nil
}

// countingReader counts the octets read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FromMessage reads the header and only a little of the body; the rest is
// read when, and as far as, the returned reader is read.
func TestFromMessageReadsOnlyTheHeader(t *testing.T) {
	hdr := "From: a@x\r\nTo: b@y\r\nBcc: c@y\r\n\r\n"
	const bodyLen = 100000
	src := &countingReader{r: io.MultiReader(strings.NewReader(hdr), &limitedBody{n: bodyLen})}
	env, r, err := envelope.FromMessage(src)
	if err != nil {
		t.Fatalf("FromMessage() err = %v (it read past the header?)", err)
	}
	if len(env.To) != 2 {
		t.Errorf("FromMessage() To = %+v, want 2 recipients", env.To)
	}
	if max := len(hdr) + 4096; src.n > max {
		t.Errorf("FromMessage read %d octets of a %d-octet header; want at most %d", src.n, len(hdr), max)
	}

	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "From: a@x\r" {
		t.Errorf("first octets = %q", buf)
	}
	got, err := io.ReadAll(r)
	if !errors.Is(err, errReadTooFar) {
		t.Errorf("reading to the end: err = %v, want the body's error", err)
	}
	want := len("From: a@x\r\nTo: b@y\r\n\r\n") - 10 + bodyLen
	if len(got) != want {
		t.Errorf("read %d octets after the first 10, want %d", len(got), want)
	}
}

// patternBody yields n octets of message text without allocating.
type patternBody struct{ n int64 }

func (p *patternBody) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	const line = "The quick brown fox jumps over the lazy dog 0123456789.\r\n"
	n := int(min(int64(len(b)), p.n))
	for i := 0; i < n; {
		i += copy(b[i:n], line)
	}
	p.n -= int64(n)
	return n, nil
}

// A 50 MiB body streams through with memory that does not grow with it.
func TestFromMessageStreamsLargeBody(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB body")
	}
	const bodyLen = 50 << 20
	hdr := "From: a@x\r\nTo: b@y\r\nBcc: c@y\r\n\r\n"
	src := io.MultiReader(strings.NewReader(hdr), &patternBody{n: bodyLen})

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, r, err := envelope.FromMessage(src)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("From: a@x\r\nTo: b@y\r\n\r\n") + bodyLen); n != want {
		t.Errorf("copied %d octets, want %d", n, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("streaming a %d-octet body allocated %d octets; want under 1 MiB", bodyLen, alloc)
	}
}

// FromMessage does not consume more of a bufio-sized source than it must
// even when the source returns short reads.
func TestFromMessageOneByteReads(t *testing.T) {
	msg := "From: a@x\r\nTo: b@y\r\nBcc: c@y,\r\n d@y\r\n\r\nbody\r\n"
	env, r, err := envelope.FromMessage(&oneByteReader{s: msg})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.To) != 3 {
		t.Errorf("To = %+v, want 3 recipients", env.To)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "From: a@x\r\nTo: b@y\r\n\r\nbody\r\n" {
		t.Errorf("message = %q, %v", got, err)
	}
}

type oneByteReader struct{ s string }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

func TestFromMessageReadError(t *testing.T) {
	broken := errors.New("disk on fire")
	src := io.MultiReader(strings.NewReader("From: a@x\r\nTo: b"), &errReader{broken})
	env, r, err := envelope.FromMessage(src)
	if !errors.Is(err, broken) || env != nil || r != nil {
		t.Errorf("FromMessage(failing reader) = %v, %v, %v; want nil, nil, an error wrapping %v", env, r, err, broken)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// The address-list parser agrees with net/mail on the forms both accept.
func TestAddressListMatchesNetMail(t *testing.T) {
	lists := []string{
		"b@y",
		"B <b@y>",
		"\"Doe, John\" <john@y>, jane@y (Jane)",
		"Jane (the boss) <jane@y>, bob@y",
		"undisclosed-recipients:;",
		"Friends: f@y, \"G\" <g@y>;, h@y",
		"=?utf-8?q?J=C3=B6rg?= <joerg@y>",
		"jörg@münchen.de, \"x y\" <用户@例子.广告>",
		"a@[192.0.2.1]",
		"b@y,, c@y,",
		"John Q. Public <jqp@y>",
		"\"quoted name\"@y",
	}
	for _, list := range lists {
		want, err := mail.ParseAddressList(list)
		if err != nil {
			t.Fatalf("net/mail cannot parse %q: %v", list, err)
		}
		env, _, err := envelope.FromMessage(strings.NewReader("From: a@x\r\nTo: " + list + "\r\nBcc: z@z\r\n\r\n"))
		if err != nil {
			t.Errorf("FromMessage(To: %s) err = %v", list, err)
			continue
		}
		var got []string
		for _, r := range env.To[:len(env.To)-1] {
			got = append(got, r.Addr)
		}
		var wantAddrs []string
		for _, a := range want {
			// net/mail returns local parts unquoted.
			local, domain, _ := strings.Cut(a.Address, "@")
			if strings.ContainsAny(local, " \"\\") {
				local = `"` + local + `"`
			}
			wantAddrs = append(wantAddrs, local+"@"+domain)
		}
		if !reflect.DeepEqual(got, wantAddrs) {
			t.Errorf("FromMessage(To: %s) = %q, net/mail says %q", list, got, wantAddrs)
		}
	}
}

// bytesOut reads r fully, for the fuzz target.
func bytesOut(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		t.Fatalf("reading the message: %v", err)
	}
	return b.Bytes()
}

// Pathological headers near the default limit parse in linear time; a
// quadratic path would take minutes here and hit the test timeout.
func TestFromMessageLargeHeaders(t *testing.T) {
	n := envelope.DefaultMaxHeader/4 - 100
	if raceEnabled || testing.Short() {
		n /= 16 // still far too big for a quadratic path
	}
	tests := []struct {
		name string
		to   string
		want error
	}{
		{"many recipients", strings.Repeat("b@y, ", n/5*4/4), nil},
		{"many display-name words", strings.Repeat("w ", n*2) + "<b@y>", nil},
		{"many empty elements", strings.Repeat(",", n*4) + "b@y", nil},
		{"many comments", strings.Repeat("(c)", n) + "b@y", nil},
		{"deep comment", strings.Repeat("(", n*2) + strings.Repeat(")", n*2) + "b@y", nil},
		{"unclosed comments", strings.Repeat("(", n*4), envelope.ErrMalformed},
		{"many dotted words", strings.Repeat("a.", n*2) + "a <b@y>", nil},
		{"long dotted local part", strings.Repeat("a.", n*2) + "a@y", envelope.ErrTooLong},
		{"many groups", strings.Repeat("g: b@y;, ", n/3), nil},
		{"many quoted words", strings.Repeat(`"q" `, n) + "<b@y>", nil},
		{"many angle brackets", strings.Repeat("<", n*4), envelope.ErrMalformed},
		{"many at signs", strings.Repeat("a@", n*2), envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := "From: a@x\r\nTo: " + tt.to + "\r\n\r\n"
			if len(msg) > envelope.DefaultMaxHeader {
				t.Fatalf("test header of %d octets is over the limit", len(msg))
			}
			env, _, err := envelope.FromMessage(strings.NewReader(msg))
			if tt.want != nil {
				checkErr(t, "FromMessage()", err, tt.want, "To")
				return
			}
			if err != nil || len(env.To) == 0 {
				t.Fatalf("FromMessage() = %v, %v", env, err)
			}
		})
	}
}

// A message that can seek gives a reader that can be reopened: the same
// stripped bytes again, from the start.
func TestFromMessageReopen(t *testing.T) {
	const msg = "From: a@example.org\r\nTo: b@example.org\r\nBcc: c@example.org\r\nSubject: x\r\n\r\nline one\r\nline two\r\n"
	const want = "From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nline one\r\nline two\r\n"
	_, r, err := envelope.FromMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	ro, ok := r.(interface{ Reopen() (io.Reader, error) })
	if !ok {
		t.Fatal("the reader of a seekable message has no Reopen")
	}
	first := make([]byte, 30)
	if _, err := io.ReadFull(r, first); err != nil { // part of it, as a failed attempt would
		t.Fatal(err)
	}
	for i := range 2 {
		again, err := ro.Reopen()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(again)
		if err != nil || string(got) != want {
			t.Errorf("reopen %d: %q, %v; want %q", i, got, err, want)
		}
	}
	// A message that cannot seek gives a plain reader.
	_, r, err = envelope.FromMessage(io.MultiReader(strings.NewReader(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(interface{ Reopen() (io.Reader, error) }); ok {
		t.Error("the reader of a message that cannot seek claims to reopen")
	}
}
