package wire

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEHLO(t *testing.T) {
	lines := []string{"mx.example greets you", "PIPELINING", "size 10240000", "AUTH PLAIN LOGIN", "AUTH=LOGIN CRAM-MD5",
		"8BITMIME", "STARTTLS", "x-bad_kw", "ENHANCEDSTATUSCODES", "", "  DSN  "}
	ext := ParseEHLO(lines)
	for _, kw := range []string{"PIPELINING", "SIZE", "AUTH", "8BITMIME", "STARTTLS", "ENHANCEDSTATUSCODES", "DSN"} {
		if !ext.Has(kw) || !ext.Has(strings.ToLower(kw)) {
			t.Errorf("Has(%q) = false", kw)
		}
	}
	if ext.Has("MX.EXAMPLE") {
		t.Error("greeting line parsed as a keyword")
	}
	if ext.Has("X-BAD_KW") {
		t.Error("invalid keyword accepted")
	}
	if got, want := ext.AuthMechanisms(), []string{"PLAIN", "LOGIN", "CRAM-MD5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("AuthMechanisms = %v, want %v", got, want)
	}
	if n, ok := ext.MaxSize(); !ok || n != 10240000 {
		t.Errorf("MaxSize = %d, %v", n, ok)
	}
}

func TestMaxSize(t *testing.T) {
	for _, tt := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{"SIZE", 0, true}, {"SIZE 0", 0, true}, {"SIZE 99999999999999999999999", 0, true},
		{"SIZE -5", 0, true}, {"SIZE abc", 0, true}, {"NOSIZE", 0, false}, {"SIZE 52428800", 52428800, true},
	} {
		n, ok := ParseEHLO([]string{"x", tt.line}).MaxSize()
		if n != tt.n || ok != tt.ok {
			t.Errorf("%q: MaxSize = %d, %v; want %d, %v", tt.line, n, ok, tt.n, tt.ok)
		}
	}
}

func FuzzParseEHLO(f *testing.F) {
	for _, s := range []string{
		"mx\nPIPELINING\nSIZE 100\nAUTH PLAIN LOGIN", "mx\nAUTH=PLAIN\nAUTH LOGIN PLAIN", "mx\nSIZE 99999999999999999999",
		"mx\n\n\n", "mx\n8bitmime\nsmtputf8", "mx\nCHUNKING\nBINARYMIME", "x\n-bad\nGOOD-1", "x\nSIZE -1",
		"x\nAUTH", "x\nAUTH plain PLAIN Plain", "x\n\x00\xff", "x\nSTARTTLS\nSTARTTLS", "", "x\n" + strings.Repeat("A", 100),
		"x\nDSN\nREQUIRETLS\nENHANCEDSTATUSCODES",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		ext := ParseEHLO(lines)
		for kw := range ext {
			if kw != strings.ToUpper(kw) || !validKeyword(kw) {
				t.Fatalf("keyword %q not canonical", kw)
			}
		}
		seen := map[string]bool{}
		for _, m := range ext.AuthMechanisms() {
			if seen[m] || m != strings.ToUpper(m) {
				t.Fatalf("mechanism %q duplicated or not upper case", m)
			}
			seen[m] = true
		}
		if n, _ := ext.MaxSize(); n < 0 {
			t.Fatalf("MaxSize %d < 0", n)
		}
		// Rendering and re-parsing is stable.
		out := []string{"x"}
		for kw, p := range ext {
			out = append(out, strings.TrimSpace(kw+" "+p))
		}
		again := ParseEHLO(out)
		if len(again) != len(ext) {
			t.Fatalf("re-parse: %v != %v", again, ext)
		}
		for kw, p := range ext {
			if again[kw] != p {
				t.Fatalf("re-parse %q: %q != %q", kw, again[kw], p)
			}
		}
	})
}

func TestCheckCommand(t *testing.T) {
	for _, bad := range []string{"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>", "x\ry", "x\ny", "x\x00y", strings.Repeat("a", MaxCommandLen+1)} {
		if CheckCommand(bad) == nil {
			t.Errorf("CheckCommand(%.30q) = nil", bad)
		}
	}
	for _, ok := range []string{"", "NOOP", "MAIL FROM:<ü@example.org> SMTPUTF8", strings.Repeat("a", MaxCommandLen)} {
		if err := CheckCommand(ok); err != nil {
			t.Errorf("CheckCommand(%.30q) = %v", ok, err)
		}
	}
}
