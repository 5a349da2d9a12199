package envelope_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailwire/mailwire/envelope"
)

var xtextVectors = []struct {
	plain, encoded string
}{
	{"", ""},
	{"abc", "abc"},
	{"!~", "!~"},
	{"a+b", "a+2Bb"},
	{"a=b", "a+3Db"},
	{"a b", "a+20b"},
	{"\r\n", "+0D+0A"},
	{"\x00\x1f\x7f", "+00+1F+7F"},
	{"+=+", "+2B+3D+2B"},
	{"é", "+C3+A9"},
	{"\xff", "+FF"},
	{"QQ314159", "QQ314159"},
	{"<a@x>", "<a@x>"},
	{"\u760a", "+E7+98+8A"},
}

func TestXText(t *testing.T) {
	for _, tt := range xtextVectors {
		if got := envelope.XText(tt.plain); got != tt.encoded {
			t.Errorf("XText(%q) = %q, want %q", tt.plain, got, tt.encoded)
		}
		got, err := envelope.DecodeXText(tt.encoded)
		if err != nil || got != tt.plain {
			t.Errorf("DecodeXText(%q) = %q, %v, want %q, nil", tt.encoded, got, err, tt.plain)
		}
	}
}

func TestDecodeXText(t *testing.T) {
	tests := []struct {
		in   string
		want string // when ok
		ok   bool
	}{
		{"+41", "A", true}, // a hexchar may encode any octet
		{"a+2B", "a+", true},
		{"+", "", false},
		{"+2", "", false},
		{"a+2", "", false},
		{"+2b", "", false}, // lower case
		{"+G0", "", false},
		{"+-1", "", false},
		{"a=b", "", false},
		{"a b", "", false},
		{"a\r\nb", "", false},
		{"\x00", "", false},
		{"\x7f", "", false},
		{"é", "", false},
	}
	for _, tt := range tests {
		got, err := envelope.DecodeXText(tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("DecodeXText(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
			continue
		}
		checkErr(t, "DecodeXText("+strconv.Quote(tt.in)+")", err, envelope.ErrInvalidParam, "xtext")
		if got != "" {
			t.Errorf("DecodeXText(%q) = %q with an error, want \"\"", tt.in, got)
		}
	}
}

func TestXTextRoundTripAllOctets(t *testing.T) {
	var b strings.Builder
	for c := range 256 {
		b.WriteByte(byte(c))
	}
	all := b.String()
	enc := envelope.XText(all)
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; c < '!' || c > '~' || c == '=' {
			t.Fatalf("XText(all octets) holds %q at %d", c, i)
		}
	}
	if got, err := envelope.DecodeXText(enc); err != nil || got != all {
		t.Errorf("DecodeXText(XText(all octets)) = %q, %v", got, err)
	}
}

func TestORcptParam(t *testing.T) {
	tests := []struct {
		orcpt        string
		utf8, noUTF8 string
	}{
		{"", "", ""},
		{"a@x", "rfc822;a@x", "rfc822;a@x"},
		{"a+b=c@x", "rfc822;a+2Bb+3Dc@x", "rfc822;a+2Bb+3Dc@x"},
		{`"a b"@x`, "rfc822;\"a+20b\"@x", "rfc822;\"a+20b\"@x"},
		{"jörg@x", "utf-8;jörg@x", `utf-8;j\x{F6}rg@x`},
		{"a@münchen.de", "utf-8;a@münchen.de", `utf-8;a@m\x{FC}nchen.de`},
		{"\u010a@x", "utf-8;\u010a@x", `utf-8;\x{10A}@x`},
		{"\u760d@x", "utf-8;\u760d@x", `utf-8;\x{760D}@x`},
		{"😀@x", "utf-8;😀@x", `utf-8;\x{1F600}@x`},
		{"ü+=\\@x", `utf-8;ü\x{2B}\x{3D}\x{5C}@x`, `utf-8;\x{FC}\x{2B}\x{3D}\x{5C}@x`},
		{`"ü x"@y`, `utf-8;"ü\x{20}x"@y`, `utf-8;"\x{FC}\x{20}x"@y`},
		// Not valid envelopes, but the value stays one safe token.
		{"ü\r\n@x", `utf-8;ü\x{0D}\x{0A}@x`, `utf-8;\x{FC}\x{0D}\x{0A}@x`},
		{"ü\u2028\u0085@x", `utf-8;ü\x{2028}\x{85}@x`, `utf-8;\x{FC}\x{2028}\x{85}@x`},
		{"ü\xff@x", `utf-8;ü\x{FFFD}@x`, `utf-8;\x{FC}\x{FFFD}@x`},
		{"a\r\n@x", "rfc822;a+0D+0A@x", "rfc822;a+0D+0A@x"},
	}
	for _, tt := range tests {
		r := envelope.Recipient{Addr: "ignored@x", ORcpt: tt.orcpt}
		if got := r.ORcptParam(true); got != tt.utf8 {
			t.Errorf("Recipient{ORcpt: %q}.ORcptParam(true) = %q, want %q", tt.orcpt, got, tt.utf8)
		}
		got := r.ORcptParam(false)
		if got != tt.noUTF8 {
			t.Errorf("Recipient{ORcpt: %q}.ORcptParam(false) = %q, want %q", tt.orcpt, got, tt.noUTF8)
		}
		for i := 0; i < len(got); i++ {
			if got[i] >= utf8.RuneSelf {
				t.Errorf("ORcptParam(false) = %q is not ASCII", got)
				break
			}
		}
	}
}
