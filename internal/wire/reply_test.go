package wire

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Reply
	}{
		{"single", "250 OK\r\n", &Reply{Code: 250, Lines: []string{"OK"}}},
		{"code only", "250\r\n", &Reply{Code: 250, Lines: []string{""}}},
		{"code space", "451 \r\n", &Reply{Code: 451, Lines: []string{""}}},
		{"lf only", "220 hi\n", &Reply{Code: 220, Lines: []string{"hi"}}},
		{"enhanced", "550 5.1.1 no such user\r\n", &Reply{Code: 550, Enhanced: [3]int{5, 1, 1}, Lines: []string{"no such user"}}},
		{"enhanced only", "250 2.0.0\r\n", &Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Lines: []string{""}}},
		{"enhanced class mismatch kept", "450 5.1.1 odd\r\n", &Reply{Code: 450, Lines: []string{"5.1.1 odd"}}},
		{"enhanced malformed kept", "550 5.0 short\r\n", &Reply{Code: 550, Lines: []string{"5.0 short"}}},
		{"enhanced four parts kept", "550 5.1.1.1 x\r\n", &Reply{Code: 550, Lines: []string{"5.1.1.1 x"}}},
		{"enhanced big parts", "550 5.123.456 x\r\n", &Reply{Code: 550, Enhanced: [3]int{5, 123, 456}, Lines: []string{"x"}}},
		{"enhanced too big kept", "550 5.1234.1 x\r\n", &Reply{Code: 550, Lines: []string{"5.1234.1 x"}}},
		{"multi", "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n", &Reply{Code: 250, Lines: []string{"mx.example", "PIPELINING", "SIZE 100"}}},
		{"multi enhanced each line", "550-5.7.1 first\r\n550 5.7.1 second\r\n", &Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Lines: []string{"first", "second"}}},
		{"control chars sanitised", "250 a\x1b[31mb\r\n", &Reply{Code: 250, Lines: []string{"a\uFFFD[31mb"}}},
		{"invalid utf8 sanitised", "250 a\xffb\r\n", &Reply{Code: 250, Lines: []string{"a\uFFFDb"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)))
			if err != nil {
				t.Fatalf("ReadReply(%q) err = %v", tt.in, err)
			}
			if !sameReply(got, tt.want) {
				t.Errorf("ReadReply(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestReadReplyErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		proto bool
		want  error
	}{
		{"empty", "", false, io.EOF},
		{"cut mid line", "250 O", false, io.ErrUnexpectedEOF},
		{"cut mid multi", "250-a\r\n", false, io.ErrUnexpectedEOF},
		{"short", "25\r\n", true, nil},
		{"letters", "abc\r\n", true, nil},
		{"out of range", "600 x\r\n", true, nil},
		{"1yz", "100 x\r\n", true, nil},
		{"bad separator", "250x\r\n", true, nil},
		{"mixed codes", "250-a\r\n251 b\r\n", true, nil},
		{"too long", "250 " + strings.Repeat("a", MaxLineLen) + "\r\n", true, nil},
		{"too many lines", strings.Repeat("250-a\r\n", MaxReplyLines+1) + "250 b\r\n", true, nil},
		{"too large", strings.Repeat("250-"+strings.Repeat("a", 1000)+"\r\n", 70) + "250 b\r\n", true, nil},
		{"tls record", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\r\n", true, nil},
		{"nul code", "2\x0050 x\r\n", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)))
			var pe *ProtocolError
			if tt.proto {
				if !errors.As(err, &pe) {
					t.Fatalf("ReadReply(%.40q) err = %v, want *ProtocolError", tt.in, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadReply(%.40q) err = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestReadReplyStopsAtEnd checks that the parser never consumes bytes past
// the reply it returns: STARTTLS injection detection depends on it.
func TestReadReplyStopsAtEnd(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"))
	rep, err := ReadReply(r)
	if err != nil || rep.Code != 220 {
		t.Fatalf("ReadReply = %+v, %v", rep, err)
	}
	if got, want := r.Buffered(), len("250-evil\r\n250 AUTH PLAIN\r\n"); got != want {
		t.Errorf("Buffered after first reply = %d, want %d", got, want)
	}
}

func TestReadReplyByteAtATime(t *testing.T) {
	in := "250-mx\r\n250-8BITMIME\r\n250 2.0.0 SIZE 10\r\n"
	r := bufio.NewReaderSize(io.LimitReader(oneByte{strings.NewReader(in)}, int64(len(in))), 16)
	got, err := ReadReply(r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ReadReply(bufio.NewReader(strings.NewReader(in)))
	if !sameReply(got, want) {
		t.Errorf("byte-at-a-time = %+v, want %+v", got, want)
	}
}

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "250\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\r\n", "450 5.1.1 x\r\n",
		"220 hi\n", "250-a\r\n251 b\r\n", "25\r\n", "abc\r\n", "600 x\r\n", "250x\r\n",
		"\x16\x03\x01\x00", "250 a\x00b\r\n", "250 " + strings.Repeat("a", 5000) + "\r\n",
		"334 \r\n", "235 2.7.0 ok\r\n250 extra\r\n", "421 4.3.2 bye\r\n", "250-\r\n250 \r\n",
		"550-5.7.1 a\r\n550-5.7.1 b\r\n550 5.7.1 c\r\n", "250 2.0.0 Ok: queued as ABC\r\n",
		"999 x\r\n", "250 5.5.5.5\r\n", "250 2.1.0\r\n", "220-a\r\n220-b\r\n", "\r\n", "\n\n\n",
		"500 \xff\xfe\r\n", "250 \u2028x\r\n", "354 go\r\n", "221 bye\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytesReader(in), 4096)
		for i := 0; i < 100; i++ {
			before := r.Buffered()
			_ = before
			rep, err := ReadReply(r)
			if err != nil {
				return
			}
			if rep.Code < 200 || rep.Code > 599 {
				t.Fatalf("code %d out of range", rep.Code)
			}
			if len(rep.Lines) == 0 || len(rep.Lines) > MaxReplyLines {
				t.Fatalf("lines = %d", len(rep.Lines))
			}
			for _, l := range rep.Lines {
				if strings.ContainsAny(l, "\r\n\x00") {
					t.Fatalf("line %q contains CR, LF or NUL", l)
				}
			}
			if e := rep.Enhanced; e != ([3]int{}) && e[0] != rep.Code/100 {
				t.Fatalf("enhanced %v inconsistent with %d", e, rep.Code)
			}
		}
	})
}

func bytesReader(b []byte) io.Reader { return strings.NewReader(string(b)) }

func sameReply(a, b *Reply) bool {
	return a.Code == b.Code && a.Enhanced == b.Enhanced && reflect.DeepEqual(a.Lines, b.Lines)
}
