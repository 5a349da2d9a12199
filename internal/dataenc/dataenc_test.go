package dataenc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"testing"
)

type vector struct {
	name string
	in   string
	dot  string // DotWriter output
	crlf string // CRLFWriter output
}

// vectors cover catalogue cases A08-A10, B13 and B14.
var vectors = []vector{
	{"empty", "", ".\r\n", ""},
	{"lone dot", ".", "..\r\n.\r\n", ".\r\n"},
	{"two dots", "..", "...\r\n.\r\n", "..\r\n"},
	{"dot line", ".\r\n", "..\r\n.\r\n", ".\r\n"},
	{"leading dot", ".x\r\ny\r\n", "..x\r\ny\r\n.\r\n", ".x\r\ny\r\n"},
	{"leading dots on every line", ".a\r\n..b\r\n...\r\n", "..a\r\n...b\r\n....\r\n.\r\n", ".a\r\n..b\r\n...\r\n"},
	{"dot mid line", "a.b\r\nc .\r\n", "a.b\r\nc .\r\n.\r\n", "a.b\r\nc .\r\n"},
	{"terminator in the middle", "a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n"},
	{"double CRLF before dot", "a\r\n\r\n.\r\nb\r\n", "a\r\n\r\n..\r\nb\r\n.\r\n", "a\r\n\r\n.\r\nb\r\n"},
	{"lone dot after empty line at end", "a\r\n\r\n.", "a\r\n\r\n..\r\n.\r\n", "a\r\n\r\n.\r\n"},
	{"ends in terminator", "a\r\n.\r\n", "a\r\n..\r\n.\r\n", "a\r\n.\r\n"},
	{"bare LF dot", ".\n", "..\r\n.\r\n", ".\r\n"},
	{"LF dot LF", "\n.\n", "\r\n..\r\n.\r\n", "\r\n.\r\n"},
	{"LF dot CRLF smuggle", "a\n.\r\nMAIL FROM:<x@y>\r\n", "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
	{"CRLF dot LF smuggle", "a\r\n.\nMAIL FROM:<x@y>\n", "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n"},
	{"CR dot CR", "\r.\r", "\r\n..\r\n.\r\n", "\r\n.\r\n"},
	{"CRLF dot CR", "\r\n.\r", "\r\n..\r\n.\r\n", "\r\n.\r\n"},
	{"CR dot CRLF", "\r.\r\n", "\r\n..\r\n.\r\n", "\r\n.\r\n"},
	{"CR smuggle", "x\r.\rMAIL FROM:<x@y>\r\n", "x\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "x\r\n.\r\nMAIL FROM:<x@y>\r\n"},
	{"LF CR dot", "a\n\r.b", "a\r\n\r\n..b\r\n.\r\n", "a\r\n\r\n.b\r\n"},
	{"CR run", "\r\r\r\n", "\r\n\r\n\r\n.\r\n", "\r\n\r\n\r\n"},
	{"CR run then dot", "a\r\r\r\n.", "a\r\n\r\n\r\n..\r\n.\r\n", "a\r\n\r\n\r\n.\r\n"},
	{"LF run", "\n\n\n", "\r\n\r\n\r\n.\r\n", "\r\n\r\n\r\n"},
	{"LF CR pairs", "\n\r\n\r", "\r\n\r\n\r\n.\r\n", "\r\n\r\n\r\n"},
	{"no final line ending", "abc", "abc\r\n.\r\n", "abc\r\n"},
	{"ends in CR", "abc\r", "abc\r\n.\r\n", "abc\r\n"},
	{"ends in LF", "abc\n", "abc\r\n.\r\n", "abc\r\n"},
	{"only CRLF", "\r\n", "\r\n.\r\n", "\r\n"},
	{"only CR", "\r", "\r\n.\r\n", "\r\n"},
	{"only LF", "\n", "\r\n.\r\n", "\r\n"},
	{"NUL passes", "a\x00b\r\n\x00", "a\x00b\r\n\x00\r\n.\r\n", "a\x00b\r\n\x00\r\n"},
	{"UTF-8", "caf\u00e9 \u2028 \U0001F600\n", "caf\u00e9 \u2028 \U0001F600\r\n.\r\n", "caf\u00e9 \u2028 \U0001F600\r\n"},
	{"8-bit", "\x80\xff.\r\n.\xfe", "\x80\xff.\r\n..\xfe\r\n.\r\n", "\x80\xff.\r\n.\xfe\r\n"},
	{"line of 998", strings.Repeat("x", 998) + "\r\n", strings.Repeat("x", 998) + "\r\n.\r\n", strings.Repeat("x", 998) + "\r\n"},
	{"line of 1000", strings.Repeat("y", 1000) + "\r\n", strings.Repeat("y", 1000) + "\r\n.\r\n", strings.Repeat("y", 1000) + "\r\n"},
	{"dot line of 1000", "." + strings.Repeat("z", 999) + "\n", ".." + strings.Repeat("z", 999) + "\r\n.\r\n", "." + strings.Repeat("z", 999) + "\r\n"},
	{"line of 5000 no ending", strings.Repeat("w", 5000), strings.Repeat("w", 5000) + "\r\n.\r\n", strings.Repeat("w", 5000) + "\r\n"},
}

// splitVariants returns the ways each vector is written: one Write, one byte
// at a time, every split into two pieces, and random splits.
func splitVariants(n int, r *rand.Rand) [][]int {
	v := [][]int{nil, {1}, {0, 1}}
	if n <= 64 {
		for k := 0; k <= n; k++ {
			v = append(v, []int{k, n})
		}
	}
	for range 20 {
		v = append(v, randomSizes(r, 1+r.IntN(8), 1+n/3))
	}
	return v
}

func TestDotWriterVectors(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			for _, sizes := range splitVariants(len(in), r) {
				out, d, err := dotEncode(in, sizes)
				if err != nil {
					t.Fatalf("sizes %v: %v", sizes, err)
				}
				if string(out) != tc.dot {
					t.Fatalf("sizes %v:\n got %q\nwant %q", sizes, out, tc.dot)
				}
				if d.Bytes() != int64(len(out)) {
					t.Errorf("Bytes() = %d, wrote %d", d.Bytes(), len(out))
				}
				if d.Has8Bit() != has8Bit(in) {
					t.Errorf("Has8Bit() = %v", d.Has8Bit())
				}
			}
			out := []byte(tc.dot)
			if err := checkDataStream(out); err != nil {
				t.Errorf("expected output breaks an invariant: %v", err)
			}
			dec, err := Decode(out)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := Normalize(in); !bytes.Equal(dec, want) {
				t.Errorf("Decode = %q, Normalize = %q", dec, want)
			}
		})
	}
}

func TestCRLFWriterVectors(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			for _, sizes := range splitVariants(len(in), r) {
				flushAt := func(i int) bool { return i%2 == 0 }
				out, c, err := crlfEncode(in, sizes, flushAt)
				if err != nil {
					t.Fatalf("sizes %v: %v", sizes, err)
				}
				if string(out) != tc.crlf {
					t.Fatalf("sizes %v:\n got %q\nwant %q", sizes, out, tc.crlf)
				}
				if c.Bytes() != int64(len(out)) {
					t.Errorf("Bytes() = %d, wrote %d", c.Bytes(), len(out))
				}
				if c.Has8Bit() != has8Bit(in) {
					t.Errorf("Has8Bit() = %v", c.Has8Bit())
				}
			}
			if want := Normalize(in); string(want) != tc.crlf {
				t.Errorf("Normalize = %q, want %q", want, tc.crlf)
			}
		})
	}
}

// TestRandomAgainstReference writes large random content, with many line
// ending and dot combinations and with Writes larger than the internal
// buffer, and compares with the reference encoder.
func TestRandomAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("ab .\r\n\r\n.\x80")
	for iter := range 60 {
		n := r.IntN(3 * bufSize)
		if iter%3 == 0 {
			n = r.IntN(200)
		}
		in := make([]byte, n)
		for i := range in {
			in[i] = alphabet[r.IntN(len(alphabet))]
		}
		if iter%5 == 0 {
			// Long runs that need no change, to take the direct path.
			in = append(in, bytes.Repeat([]byte("abcdefgh\r\n"), bufSize/5)...)
			in = append(in, ".\n"...)
		}
		want := refDotEncode(in)
		var sizes []int
		switch iter % 4 {
		case 1:
			sizes = randomSizes(r, 5, 17)
		case 2:
			sizes = randomSizes(r, 3, 2*bufSize)
		case 3:
			sizes = []int{bufSize - 1, 1, bufSize + 1}
		}
		got, d, err := dotEncode(in, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("iter %d (len %d, sizes %v): output differs from the reference at byte %d",
				iter, len(in), sizes, firstDiff(got, want))
		}
		if err := checkDataStream(got); err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		if d.Bytes() != int64(len(got)) {
			t.Fatalf("Bytes() = %d, want %d", d.Bytes(), len(got))
		}
		gotC, _, err := crlfEncode(in, sizes, func(i int) bool { return i%3 == 1 })
		if err != nil {
			t.Fatal(err)
		}
		if wantC := Normalize(in); !bytes.Equal(gotC, wantC) {
			t.Fatalf("iter %d: CRLFWriter output differs from Normalize at byte %d", iter, firstDiff(gotC, wantC))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestHas8Bit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"plain ASCII\r\n\x00\x7f", false},
		{"\x80", true},
		{"\xff", true},
		{"r\u00e9sum\u00e9", true},
		{strings.Repeat("a", 100) + "\xc3\xa9" + strings.Repeat("b", 100), true},
		{strings.Repeat("a", 63) + "\x80", true},
	} {
		var buf bytes.Buffer
		d := NewDotWriter(&buf)
		if _, err := d.Write([]byte(tc.in)); err != nil {
			t.Fatal(err)
		}
		if d.Has8Bit() != tc.want {
			t.Errorf("%q: Has8Bit() = %v, want %v", tc.in, d.Has8Bit(), tc.want)
		}
		c := NewCRLFWriter(&buf)
		if _, err := c.Write([]byte(tc.in)); err != nil {
			t.Fatal(err)
		}
		if c.Has8Bit() != tc.want {
			t.Errorf("%q: CRLFWriter Has8Bit() = %v, want %v", tc.in, c.Has8Bit(), tc.want)
		}
	}
}

func TestIndex8Bit(t *testing.T) {
	for n := range 80 {
		p := bytes.Repeat([]byte{'a'}, n)
		if i := index8Bit(p); i != -1 {
			t.Fatalf("len %d: got %d for ASCII", n, i)
		}
		for k := range n {
			p[k] = 0x80 | byte(k)
			if i := index8Bit(p); i != k {
				t.Fatalf("len %d: got %d, want %d", n, i, k)
			}
			p[k] = 'a'
		}
	}
}

func TestStrict7Bit(t *testing.T) {
	var buf bytes.Buffer
	d := NewDotWriter(&buf)
	d.Strict7Bit = true
	if _, err := d.Write([]byte("Subject: x\r\n\r\n.ok\n")); err != nil {
		t.Fatalf("7-bit content refused: %v", err)
	}
	n, err := d.Write([]byte("abc\xe9def"))
	if !errors.Is(err, ErrEightBit) {
		t.Fatalf("Write error = %v, want ErrEightBit", err)
	}
	if n != 3 {
		t.Errorf("n = %d, want 3 (index of the 8-bit byte)", n)
	}
	if !d.Has8Bit() {
		t.Error("Has8Bit() = false after an 8-bit byte")
	}
	if _, err := d.Write([]byte("more")); !errors.Is(err, ErrEightBit) {
		t.Errorf("later Write error = %v, want ErrEightBit", err)
	}
	if err := d.Close(); !errors.Is(err, ErrEightBit) {
		t.Errorf("Close error = %v, want ErrEightBit", err)
	}
	if buf.Len() != 0 || d.Bytes() != 0 {
		t.Errorf("a message refused under Strict7Bit reached the writer: %q", buf.Bytes())
	}

	// Without Strict7Bit the same content goes through.
	d.Reset(&buf)
	d.Strict7Bit = false
	if _, err := d.Write([]byte("abc\xe9def")); err != nil {
		t.Fatal(err)
	}
	// Turning it on mid-stream still catches the next 8-bit byte.
	d.Strict7Bit = true
	if _, err := d.Write([]byte("x\xff")); !errors.Is(err, ErrEightBit) {
		t.Errorf("Write error = %v, want ErrEightBit", err)
	}

	// A failure of the underlying writer before the 8-bit byte is reported
	// as such.
	d = NewDotWriter(&errWriter{})
	d.Strict7Bit = true
	big := append(bytes.Repeat([]byte("abc\n"), bufSize), 0x80)
	if _, err := d.Write(big); !errors.Is(err, errBroken) {
		t.Errorf("Write error = %v, want errBroken", err)
	}

	var cbuf bytes.Buffer
	c := NewCRLFWriter(&cbuf)
	c.Strict7Bit = true
	if n, err := c.Write([]byte("\x80")); n != 0 || !errors.Is(err, ErrEightBit) {
		t.Errorf("CRLFWriter Write = %d, %v; want 0, ErrEightBit", n, err)
	}
	if err := c.Flush(); !errors.Is(err, ErrEightBit) {
		t.Errorf("Flush error = %v, want ErrEightBit", err)
	}
	if err := c.Close(); !errors.Is(err, ErrEightBit) {
		t.Errorf("Close error = %v, want ErrEightBit", err)
	}
}

// TestWriteErrorIsSticky checks that after the underlying writer fails
// nothing more is written, and above all no terminator.
func TestWriteErrorIsSticky(t *testing.T) {
	big := bytes.Repeat([]byte("line\n"), bufSize/2) // more than one buffer
	for _, limit := range []int{0, 1, 100, bufSize - 1, bufSize, bufSize + 7} {
		w := &errWriter{limit: limit}
		d := NewDotWriter(w)
		_, err := d.Write(big)
		if !errors.Is(err, errBroken) {
			t.Fatalf("limit %d: Write error = %v, want errBroken", limit, err)
		}
		calls := w.calls
		if _, err := d.Write([]byte("x")); !errors.Is(err, errBroken) {
			t.Errorf("limit %d: later Write error = %v", limit, err)
		}
		if err := d.Close(); !errors.Is(err, errBroken) {
			t.Errorf("limit %d: Close error = %v", limit, err)
		}
		if err := d.Close(); !errors.Is(err, errBroken) {
			t.Errorf("limit %d: second Close error = %v", limit, err)
		}
		if w.calls != calls {
			t.Errorf("limit %d: %d writes after the failure", limit, w.calls-calls)
		}
		if bytes.Contains(w.got, []byte("\r\n.\r\n")) {
			t.Errorf("limit %d: terminator written after a failure", limit)
		}
		if d.Bytes() != int64(len(w.got)) {
			t.Errorf("limit %d: Bytes() = %d, writer accepted %d", limit, d.Bytes(), len(w.got))
		}
	}

	// A failure during Close.
	w := &errWriter{limit: 3}
	d := NewDotWriter(w)
	if _, err := d.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, errBroken) {
		t.Errorf("Close error = %v, want errBroken", err)
	}

	// The same for CRLFWriter, through Flush.
	w = &errWriter{limit: 2}
	c := NewCRLFWriter(w)
	if _, err := c.Write([]byte("abc\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); !errors.Is(err, errBroken) {
		t.Errorf("Flush error = %v, want errBroken", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, errBroken) {
		t.Errorf("Write after failed Flush = %v", err)
	}
	if err := c.Close(); !errors.Is(err, errBroken) {
		t.Errorf("Close error = %v", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestShortWrite(t *testing.T) {
	d := NewDotWriter(shortWriter{})
	if _, err := d.Write([]byte("abcd\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Close error = %v, want io.ErrShortWrite", err)
	}
}

func TestCloseTwiceAndWriteAfterClose(t *testing.T) {
	var buf bytes.Buffer
	d := NewDotWriter(&buf)
	if _, err := d.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if got := buf.String(); got != "a\r\n.\r\n" {
		t.Errorf("output %q: terminator written twice?", got)
	}
	if _, err := d.Write([]byte("b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}

	c := NewCRLFWriter(&buf)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := c.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

func TestReset(t *testing.T) {
	var a, b bytes.Buffer
	d := NewDotWriter(&a)
	d.Write([]byte("\xff"))
	d.Write([]byte("x\r"))
	d.Reset(&b)
	if d.Has8Bit() || d.Bytes() != 0 {
		t.Error("Reset kept the counters")
	}
	// A pending CR must not survive Reset: the LF below is a bare LF.
	d.Write([]byte("\n.a"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Len() != 0 {
		t.Errorf("old writer got %q", a.Bytes())
	}
	if got, want := b.String(), "\r\n..a\r\n.\r\n"; got != want {
		t.Errorf("after Reset got %q, want %q", got, want)
	}

	// Reset also clears a sticky error and the closed state.
	d.Reset(&errWriter{})
	d.Write([]byte("x"))
	d.Close()
	b.Reset()
	d.Reset(&b)
	d.Write([]byte("y"))
	if err := d.Close(); err != nil || b.String() != "y\r\n.\r\n" {
		t.Errorf("after Reset from an error: %q, %v", b.String(), err)
	}

	var cb bytes.Buffer
	c := NewCRLFWriter(&errWriter{})
	c.Write([]byte("a\r"))
	c.Close()
	c.Reset(&cb)
	c.Write([]byte("\nb"))
	if err := c.Close(); err != nil || cb.String() != "\r\nb\r\n" {
		t.Errorf("CRLFWriter after Reset: %q, %v", cb.String(), err)
	}
}

// TestFewWrites checks that the underlying writer gets large pieces, not
// one call per line or per byte.
func TestFewWrites(t *testing.T) {
	const size = 1 << 20
	for _, ending := range []string{"\r\n", "\n", "\r"} {
		text := typicalText(size, ending)
		for _, sizes := range [][]int{nil, {1}, {100}, {4096}} {
			var w countWriter
			d := NewDotWriter(&w)
			if err := writeSplit(d, text, sizes, nil); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			maxCalls := w.n/bufSize + 2
			if w.calls > maxCalls {
				t.Errorf("ending %q, sizes %v: %d writes for %d bytes, want at most %d",
					ending, sizes, w.calls, w.n, maxCalls)
			}
		}
	}
}

func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	text := typicalText(64<<10, "\n")
	d := NewDotWriter(io.Discard)
	c := NewCRLFWriter(io.Discard)
	allocs := testing.AllocsPerRun(20, func() {
		d.Reset(io.Discard)
		d.Write(text[:1000])
		d.Write(text[1000:])
		d.Close()
		c.Reset(io.Discard)
		c.Write(text)
		c.Flush()
		c.Close()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message, want 0", allocs)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"abc",
		"abc\r\n",
		"abc\r\n.",
		"abc\r\n.\r",
		"abc\n.\r\n",
		"abc\r\n.\n",
		"a\rb\r\n.\r\n",
		"\r.\r\n",
		".x\r\n.\r\n",
		".\r\n.\r\n",
		"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
		"a\r\n.\r\n.\r\n",
	} {
		if out, err := Decode([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %q, %v; want ErrMalformed", in, out, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{".\r\n", ""},
		{"\r\n.\r\n", "\r\n"},
		{"..\r\n.\r\n", ".\r\n"},
		{"a\r\n...b\r\n.\r\n", "a\r\n..b\r\n"},
	} {
		out, err := Decode([]byte(tc.in))
		if err != nil || string(out) != tc.want {
			t.Errorf("Decode(%q) = %q, %v; want %q", tc.in, out, err, tc.want)
		}
	}
}

func TestNormalizeDoesNotAlias(t *testing.T) {
	in := []byte("abc\r\n")
	out := Normalize(in)
	out[0] = 'X'
	if in[0] != 'a' {
		t.Error("Normalize returned memory shared with its input")
	}
}

// TestTextprotoDifference records why textproto.DotWriter is not used
// (catalogue case A10): on bare-CR input it leaves a bare CR before an
// unstuffed dot, where DotWriter yields a stream that passes the invariant
// check.
func TestTextprotoDifference(t *testing.T) {
	for _, in := range []string{"x\r.\rMAIL FROM:<x@y>\r\n", "\r\n.\r", "a\r.\r\n"} {
		out, _, err := dotEncode([]byte(in), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkDataStream(out); err != nil {
			t.Errorf("DotWriter(%q): %v", in, err)
		}
		tp := textprotoEncode([]byte(in))
		if err := checkDataStream(tp); err != nil {
			t.Logf("textproto.DotWriter(%q) = %q: %v", in, tp, err)
		}
	}
}

func textprotoEncode(in []byte) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	tw := textproto.NewWriter(bw).DotWriter()
	tw.Write(in)
	tw.Close()
	return buf.Bytes()
}

// typicalText returns about size bytes of mail-like text: lines of 20 to 78
// characters, some empty, about one in 40 starting with a dot.
func typicalText(size int, ending string) []byte {
	r := rand.New(rand.NewPCG(7, 8))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while mail servers " +
		"relay messages between hosts and clients wait for replies to each command")
	var b []byte
	for len(b) < size {
		switch r.IntN(40) {
		case 0:
			b = append(b, '.')
		case 1:
			b = append(b, ending...)
			continue
		}
		n := 20 + r.IntN(59)
		for l := 0; l < n; {
			w := words[r.IntN(len(words))]
			b = append(b, w...)
			b = append(b, ' ')
			l += len(w) + 1
		}
		b = append(b, ending...)
	}
	return b[:size]
}

// TestBufferBoundary puts line endings and stuffed dots at every position
// around the end of the internal buffer.
func TestBufferBoundary(t *testing.T) {
	for _, tail := range []string{"\n.", "\r.", "\r\n.", ".\r\n", "\r", "\n\n.\r\r."} {
		for k := bufSize - 6; k <= bufSize+2; k++ {
			in := append(bytes.Repeat([]byte{'a'}, k), tail...)
			want := refDotEncode(in)
			for _, sizes := range [][]int{nil, {k}, {k + 1, 1}, {bufSize - 1, 3}} {
				got, _, err := dotEncode(in, sizes)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("k %d, tail %q, sizes %v: differs at byte %d", k, tail, sizes, firstDiff(got, want))
				}
			}
			// A failure on the flush that a stuffed dot causes.
			w := &errWriter{limit: 10}
			d := NewDotWriter(w)
			if _, err := d.Write(in); err != nil && !errors.Is(err, errBroken) {
				t.Fatalf("k %d, tail %q: Write error = %v", k, tail, err)
			}
			if err := d.Close(); !errors.Is(err, errBroken) {
				t.Fatalf("k %d, tail %q: Close error = %v", k, tail, err)
			}
		}
	}
}

// Scan's size is what the writers send, without stuffing and the final
// dot, for any content and any chunking of the writes.
func TestScanMatchesTheWriters(t *testing.T) {
	for _, body := range []string{
		"", "a", "a\r\n", "a\n", "a\r", "\r\n", "\n\n", "\r\r", "\r\n\r\n", "a\rb\nc\r\nd",
		"caf\xe9\n", ".leading dot\n.\n", "no newline at end", "\r", "x\r\n\ny\r",
	} {
		var out bytes.Buffer
		w := NewCRLFWriter(&out)
		for i := 0; i < len(body); i++ { // one byte per write: the hardest chunking
			if _, err := w.Write([]byte{body[i]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		size, eight, err := Scan(strings.NewReader(body), make([]byte, 1))
		if err != nil || size != int64(out.Len()) {
			t.Errorf("Scan(%q) = %d, %v; the writer sent %d bytes", body, size, err, out.Len())
		}
		if want := strings.ContainsFunc(body, func(r rune) bool { return r >= 0x80 }); eight != want {
			t.Errorf("Scan(%q) 8-bit = %v, want %v", body, eight, want)
		}
	}
}
