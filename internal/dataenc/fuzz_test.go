package dataenc

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSeeds are added to both fuzz targets, on top of the vectors.
var fuzzSeeds = []struct {
	body, splits string
}{
	{"a\r\n.\r\nb", "\x03\x01"},
	{"\r\n.\r\n", "\x01"},
	{"x\r", "\x01\x00"},
	{"x\r\n.", "\x02\x01\x01"},
	{"\r\r\r\r\n\n\n", "\x01\x02"},
	{"\n.\n.\n.\n", "\x02"},
	{"..\r\n...\r\n", "\x00\x01\x05"},
	{"a\r.\rb\r.\r\n", "\x04"},
	{"\xff\xfe.\r\n", "\x01"},
	{"\x00.\x00\r\n.", "\x03\x00"},
	{"MAIL FROM:<a@b>\r\n.\r\nRCPT TO:<c@d>\n.\n", "\x11\x07\x01"},
}

func addSeeds(f *testing.F) {
	for _, v := range vectors {
		f.Add([]byte(v.in), []byte(nil))
		f.Add([]byte(v.in), []byte{1})
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s.body), []byte(s.splits))
	}
}

// FuzzDotWriter checks, for any content and any split into Writes, that the
// DotWriter output holds the DATA invariants, decodes to Normalize(content),
// equals the reference encoder and the one-shot output, and honours
// Strict7Bit. For content without CR it must also match
// net/textproto.DotWriter.
func FuzzDotWriter(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body, splits []byte) {
		one, d, err := dotEncode(body, nil)
		if err != nil {
			t.Fatalf("one-shot: %v", err)
		}
		if err := checkDataStream(one); err != nil {
			t.Fatalf("invariant: %v\nin  %q\nout %q", err, body, one)
		}
		if d.Bytes() != int64(len(one)) {
			t.Fatalf("Bytes() = %d, wrote %d", d.Bytes(), len(one))
		}
		if d.Has8Bit() != has8Bit(body) {
			t.Fatalf("Has8Bit() = %v", d.Has8Bit())
		}
		dec, err := Decode(one)
		if err != nil {
			t.Fatalf("Decode: %v\nout %q", err, one)
		}
		if norm := Normalize(body); !bytes.Equal(dec, norm) {
			t.Fatalf("round trip:\nin        %q\ndecoded   %q\nnormalize %q", body, dec, norm)
		}
		if ref := refDotEncode(body); !bytes.Equal(one, ref) {
			t.Fatalf("reference:\nin  %q\ngot %q\nref %q", body, one, ref)
		}

		sizes := splitsFromBytes(splits)
		chunked, _, err := dotEncode(body, sizes)
		if err != nil {
			t.Fatalf("chunked: %v", err)
		}
		if !bytes.Equal(chunked, one) {
			t.Fatalf("chunked %v differs:\nin      %q\nchunked %q\none     %q", sizes, body, chunked, one)
		}

		var sb bytes.Buffer
		sd := NewDotWriter(&sb)
		sd.Strict7Bit = true
		werr := writeSplit(sd, body, sizes, nil)
		cerr := sd.Close()
		if has8Bit(body) {
			if !errors.Is(werr, ErrEightBit) || !errors.Is(cerr, ErrEightBit) {
				t.Fatalf("Strict7Bit: Write error %v, Close error %v", werr, cerr)
			}
			if _, err := Decode(sb.Bytes()); err == nil {
				t.Fatalf("Strict7Bit: a complete message was written: %q", sb.Bytes())
			}
		} else if werr != nil || cerr != nil || !bytes.Equal(sb.Bytes(), one) {
			t.Fatalf("Strict7Bit on 7-bit content: %v, %v, %q", werr, cerr, sb.Bytes())
		}

		if len(body) > 0 && bytes.IndexByte(body, '\r') < 0 {
			if tp := textprotoEncode(body); !bytes.Equal(tp, one) {
				t.Fatalf("differs from textproto on CR-free content:\nin  %q\ngot %q\ntp  %q", body, one, tp)
			}
		}
	})
}

// FuzzCRLFWriter checks, for any content, any split into Writes and Flush
// calls between them, that the CRLFWriter output has only CRLF line endings,
// equals Normalize(content) and does not depend on the split.
func FuzzCRLFWriter(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body, splits []byte) {
		one, c, err := crlfEncode(body, nil, nil)
		if err != nil {
			t.Fatalf("one-shot: %v", err)
		}
		if err := checkCRLF(one); err != nil {
			t.Fatalf("%v\nin  %q\nout %q", err, body, one)
		}
		if norm := Normalize(body); !bytes.Equal(one, norm) {
			t.Fatalf("differs from Normalize:\nin   %q\ngot  %q\nnorm %q", body, one, norm)
		}
		if c.Bytes() != int64(len(one)) {
			t.Fatalf("Bytes() = %d, wrote %d", c.Bytes(), len(one))
		}
		if c.Has8Bit() != has8Bit(body) {
			t.Fatalf("Has8Bit() = %v", c.Has8Bit())
		}
		sizes := splitsFromBytes(splits)
		flushAt := func(i int) bool { return splits[i%len(splits)]&1 == 1 }
		if len(splits) == 0 {
			flushAt = nil
		}
		chunked, _, err := crlfEncode(body, sizes, flushAt)
		if err != nil {
			t.Fatalf("chunked: %v", err)
		}
		if !bytes.Equal(chunked, one) {
			t.Fatalf("chunked %v differs:\nin      %q\nchunked %q\none     %q", sizes, body, chunked, one)
		}
	})
}
