package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	mail "github.com/wneessen/go-mail"
)

// The benchmark message.
//
// Every client sends the same bytes. go-mail cannot send raw bytes (it renders
// its own Msg), so the canonical message is defined as what go-mail renders for
// a fixed Msg (fixed Date, Message-ID, From, To, Subject; its default
// quoted-printable text/plain body), and the body is plain 7-bit ASCII in
// lines of at most 72 characters with no '=' and no trailing white space, so
// that quoted-printable leaves it unchanged. The message contains one line that
// begins with "." so that every client's dot-stuffing is exercised. The
// verification pass checks, for every client, the SHA-256 of each message the
// server received against the canonical bytes.

const (
	benchSender = "sender@bench.example"
	benchHelo   = "bench.example"
	benchDate   = "2025-01-02T03:04:05Z"
	benchMsgID  = "mailwire-bench.1@bench.example"
	benchSubj   = "mailwire benchmark message"
	lineLen     = 72 // body line length without CRLF
)

// recipients returns n recipient addresses.
func recipients(n int) []string {
	r := make([]string, n)
	for i := range r {
		r[i] = "rcpt" + strconv.Itoa(i+1) + "@bench.example"
	}
	return r
}

// newGoMailMsg builds the go-mail Msg whose rendering is the canonical
// message, with body written by body. The To header carries the first
// recipient; the others are Bcc (go-mail does not write Bcc), so the header
// is the same for every recipient count.
func newGoMailMsg(rcpts []string, body func(io.Writer) (int64, error)) (*mail.Msg, error) {
	m := mail.NewMsg()
	if err := m.From(benchSender); err != nil {
		return nil, err
	}
	if err := m.To(rcpts[0]); err != nil {
		return nil, err
	}
	if len(rcpts) > 1 {
		if err := m.Bcc(rcpts[1:]...); err != nil {
			return nil, err
		}
	}
	m.Subject(benchSubj)
	d, _ := time.Parse(time.RFC3339, benchDate)
	m.SetDateWithValue(d)
	m.SetMessageIDWithValue(benchMsgID)
	m.SetBodyWriter(mail.TypeTextPlain, body)
	return m, nil
}

// canonicalHeader returns the header block (with the blank line) that go-mail
// renders for the benchmark Msg.
func canonicalHeader() ([]byte, error) {
	const probe = "probe\r\n"
	m, err := newGoMailMsg(recipients(1), func(w io.Writer) (int64, error) {
		n, err := io.WriteString(w, probe)
		return int64(n), err
	})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		return nil, err
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte("\r\n\r\n"+probe)) {
		return nil, fmt.Errorf("unexpected go-mail rendering: %q", out)
	}
	return out[:len(out)-len(probe)], nil
}

// bodyLine fills line (without CRLF) number i with deterministic text of
// exactly len(line) characters.
func bodyLine(line []byte, i int) {
	const text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "
	prefix := fmt.Sprintf("%08d ", i)
	if i == 2 {
		prefix = ".leading dot, stuffed on the wire " // dot-stuffing check
	}
	k := copy(line, prefix)
	for j := k; j < len(line); j++ {
		line[j] = text[(j-k+i)%len(text)]
	}
	if n := len(line); n > 0 && line[n-1] == ' ' {
		line[n-1] = '.'
	}
}

// writeBody writes a body of exactly size bytes (size >= 3): CRLF lines of
// lineLen characters, the last two sharing what is left.
func writeBody(w io.Writer, size int64) error {
	if size < 3 {
		return errors.New("body too small")
	}
	buf := make([]byte, lineLen+2)
	i := 0
	for size > 0 {
		n := int64(lineLen)
		switch {
		case size <= lineLen+2:
			n = size - 2 // the last line
		case size < 2*(lineLen+2):
			n = size/2 - 2 // the last two lines share the rest
		}
		line := buf[:n+2]
		bodyLine(line[:n], i)
		line[n], line[n+1] = '\r', '\n'
		if _, err := w.Write(line); err != nil {
			return err
		}
		size -= n + 2
		i++
	}
	return nil
}

// msgFiles are the forms of one benchmark message on disk.
type msgFiles struct {
	Name    string
	Size    int64  // total message size
	EML     string // canonical message, CRLF line endings
	LF      string // the same with LF line endings, for smtp-source -F
	Wire    string // dot-stuffed CRLF form, as on the wire before ".\r\n" (raw baseline)
	BodyOff int64  // offset of the body in EML
	SHA256  [32]byte
	// SHA256CRLF is the hash of the message followed by one more CRLF:
	// smtp-source -F always sends that (its source says "smtp_fputs() will
	// append another \r\n but we don't care").
	SHA256CRLF [32]byte
}

// buildMessage writes the canonical message of total size bytes, and its LF
// and wire forms, into dir, and checks that go-mail renders exactly the
// canonical bytes.
func buildMessage(dir, name string, size int64) (*msgFiles, error) {
	hdr, err := canonicalHeader()
	if err != nil {
		return nil, err
	}
	mf := &msgFiles{
		Name:    name,
		Size:    size,
		EML:     filepath.Join(dir, name+".eml"),
		LF:      filepath.Join(dir, name+".lf"),
		Wire:    filepath.Join(dir, name+".wire"),
		BodyOff: int64(len(hdr)),
	}
	bodySize := size - int64(len(hdr))
	if bodySize < 3 {
		return nil, fmt.Errorf("message size %d is smaller than the header (%d)", size, len(hdr))
	}
	// Canonical form.
	f, err := os.Create(mf.EML)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 256<<10)
	bw.Write(hdr)
	if err := writeBody(bw, bodySize); err != nil {
		f.Close()
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	copy(mf.SHA256[:], h.Sum(nil))
	h.Write([]byte("\r\n"))
	copy(mf.SHA256CRLF[:], h.Sum(nil))

	// LF and wire forms, derived line by line.
	if err := deriveForms(mf); err != nil {
		return nil, err
	}

	// go-mail must render the same bytes.
	rh := sha256.New()
	var rn countWriter
	m, err := newGoMailMsg(recipients(1), bodyFromFile(mf))
	if err != nil {
		return nil, err
	}
	if _, err := m.WriteTo(io.MultiWriter(rh, &rn)); err != nil {
		return nil, err
	}
	var got [32]byte
	copy(got[:], rh.Sum(nil))
	if got != mf.SHA256 || int64(rn) != size {
		return nil, fmt.Errorf("go-mail renders %d bytes that differ from the canonical %d-byte message", rn, size)
	}
	return mf, nil
}

func deriveForms(mf *msgFiles) error {
	in, err := os.Open(mf.EML)
	if err != nil {
		return err
	}
	defer in.Close()
	lf, err := os.Create(mf.LF)
	if err != nil {
		return err
	}
	defer lf.Close()
	wire, err := os.Create(mf.Wire)
	if err != nil {
		return err
	}
	defer wire.Close()
	br := bufio.NewReaderSize(in, 256<<10)
	lw := bufio.NewWriterSize(lf, 256<<10)
	ww := bufio.NewWriterSize(wire, 256<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if !bytes.HasSuffix(line, []byte("\r\n")) {
				return errors.New("canonical message has a line without CRLF")
			}
			if line[0] == '.' {
				ww.WriteByte('.')
			}
			ww.Write(line)
			lw.Write(line[:len(line)-2])
			lw.WriteByte('\n')
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	return ww.Flush()
}

// bodyFromFile returns a go-mail body writer that streams the body of the
// canonical message from its file.
func bodyFromFile(mf *msgFiles) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		f, err := os.Open(mf.EML)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		return io.Copy(w, io.NewSectionReader(f, mf.BodyOff, mf.Size-mf.BodyOff))
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
