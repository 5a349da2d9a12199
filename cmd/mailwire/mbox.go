package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// mboxReader splits an mbox file into messages.
//
// A message starts with a "From " line at the start of the file or after an
// empty line; that line is the mbox's own, not part of the message. The
// empty line before it, which mbox writers add after every message, is
// dropped too, as is one at the end of the file. Lines the writer escaped,
// ">From ", ">>From " and so on, lose one ">" (mboxrd; for mboxo files,
// which escape only "From ", this restores the common case). Line endings
// are kept as they are; the transport sends CRLF.
type mboxReader struct {
	br      *bufio.Reader
	started bool
	eof     bool
	err     error
	count   int
	off     int64 // offset in the input of what readLine returns next
	start   int64 // offset of the current message's first line
	nextOff int64 // offset of the line after nextFrom

	// State of the current message.
	cur       *mboxMsg
	nextFrom  []byte // the separator line that ended the current message
	heldBlank []byte // an empty line that may precede a separator
}

func newMboxReader(r io.Reader) *mboxReader {
	return &mboxReader{br: bufio.NewReaderSize(r, 64<<10)}
}

var fromPrefix = []byte("From ")

// Next returns the reader of the next message and its "From " line, or
// io.EOF after the last message. The previous message is skipped if it
// was not read to its end.
func (m *mboxReader) Next() (io.Reader, string, error) {
	if m.cur != nil {
		if _, err := io.Copy(io.Discard, m.cur); err != nil {
			return nil, "", err
		}
		m.cur = nil
	}
	if m.err != nil {
		return nil, "", m.err
	}
	if !m.started {
		m.started = true
		line, err := m.readLine()
		if err != nil && err != io.EOF {
			return nil, "", err
		}
		if len(line) == 0 && err == io.EOF {
			return nil, "", io.EOF
		}
		if !bytes.HasPrefix(line, fromPrefix) {
			return nil, "", failf(exitDataErr, "not an mbox file: it does not start with a \"From \" line")
		}
		m.nextFrom = bytes.Clone(line)
		m.nextOff = m.off
	}
	if m.nextFrom == nil {
		return nil, "", io.EOF
	}
	from := string(bytes.TrimRight(m.nextFrom, "\r\n"))
	m.nextFrom = nil
	m.start = m.nextOff
	m.count++
	m.cur = &mboxMsg{m: m, atStart: true}
	return m.cur, from, nil
}

// readLine returns the next line with its line ending; a line longer than
// the buffer is returned in pieces, and only the first is at a line start.
func (m *mboxReader) readLine() ([]byte, error) {
	if m.eof {
		return nil, io.EOF
	}
	line, err := m.br.ReadSlice('\n')
	m.off += int64(len(line))
	switch err {
	case nil, bufio.ErrBufferFull:
		return line, nil
	case io.EOF:
		m.eof = true
		if len(line) == 0 {
			return nil, io.EOF
		}
		return line, nil
	}
	m.err = err
	return nil, err
}

// mboxMsg reads one message of an mbox.
type mboxMsg struct {
	m       *mboxReader
	buf     []byte // output of the last lines read
	pending []byte // the part of buf not yet returned
	atStart bool   // the next piece starts a line
	done    bool
}

func isBlank(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

func (r *mboxMsg) Read(p []byte) (int, error) {
	m := r.m
	if len(r.pending) == 0 {
		// r.buf is reused; pending never aliases the bufio buffer.
		r.buf = r.buf[:0]
	}
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		line, err := m.readLine()
		if err == io.EOF {
			// The end of the file ends the message; a held empty line
			// was the writer's separator.
			m.heldBlank = nil
			r.done = true
			continue
		}
		if err != nil {
			return 0, err
		}
		start := r.atStart
		r.atStart = line[len(line)-1] == '\n'
		if !start {
			r.buf = append(r.buf, line...) // the rest of a long line
			continue
		}
		if m.heldBlank != nil {
			if bytes.HasPrefix(line, fromPrefix) {
				// A separator: the message ends here.
				m.heldBlank = nil
				m.nextFrom = bytes.Clone(line)
				for !r.atStart {
					// An overlong separator line: skip the rest.
					rest, err := m.readLine()
					if err != nil {
						break
					}
					r.atStart = rest[len(rest)-1] == '\n'
				}
				m.nextOff = m.off
				r.done = true
				continue
			}
			r.buf = append(r.buf, m.heldBlank...)
			m.heldBlank = nil
		}
		if r.atStart && isBlank(line) {
			m.heldBlank = append(m.heldBlank[:0], line...)
			continue
		}
		if unescape(line) {
			line = line[1:]
		}
		r.buf = append(r.buf, line...)
	}
	if len(r.pending) == 0 {
		r.pending = r.buf
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// unescape reports whether line reads ">From ", ">>From " and so on, and
// so loses its first ">".
func unescape(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], fromPrefix)
}

// mboxSource is a msgSource over an mbox file.
type mboxSource struct {
	name  string
	f     io.Closer
	mr    *mboxReader
	total int
	first io.Reader // the first message, found by openMbox when not counted
	// fi describes the mbox when it is a regular file, whose messages can
	// be read again (see reopenableBody); nil otherwise.
	fi os.FileInfo
}

// mboxError names the mbox in an error of its reader.
func mboxError(name string, err error) error {
	var xe *exitError
	if errors.As(err, &xe) {
		return failf(xe.code, "%s: %v", name, xe.err)
	}
	return failf(exitIOErr, "%s: %v", name, err)
}

// openMbox opens an mbox file ("-" for stdin) and counts its messages when
// it is a regular file. An mbox without messages is refused (EX_NOINPUT),
// before any connection, as a directory without .eml files is.
func openMbox(path string, stdin io.Reader) (msgSource, error) {
	if path == "-" {
		return peekMbox(&mboxSource{name: "stdin", mr: newMboxReader(stdin), total: -1})
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, failf(exitNoInput, "%v", err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		// A pipe or a device: read once, not counted.
		s, err := peekMbox(&mboxSource{name: path, f: f, mr: newMboxReader(f), total: -1})
		if err != nil {
			f.Close()
		}
		return s, err
	}
	n, err := countMbox(f)
	if err != nil {
		f.Close()
		return nil, mboxError(path, err)
	}
	if n == 0 {
		f.Close()
		return nil, emptyMbox(path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, failf(exitIOErr, "%s: %v", path, err)
	}
	return &mboxSource{name: path, f: f, mr: newMboxReader(f), total: n, fi: fi}, nil
}

func emptyMbox(name string) error {
	return failf(exitNoInput, "%s: empty mbox: no messages to send", name)
}

// peekMbox finds the first message of an mbox that cannot be counted
// beforehand, so that an empty one is refused before connecting.
func peekMbox(s *mboxSource) (msgSource, error) {
	r, _, err := s.mr.Next()
	switch {
	case err == io.EOF:
		return nil, emptyMbox(s.name)
	case err != nil:
		return nil, mboxError(s.name, err)
	}
	s.first = r
	return s, nil
}

// countMbox returns the number of messages in r.
func countMbox(r io.Reader) (int, error) {
	mr := newMboxReader(r)
	for {
		_, _, err := mr.Next()
		if err == io.EOF {
			return mr.count, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func (s *mboxSource) Total() int { return s.total }

func (s *mboxSource) Next() (*sourceMsg, error) {
	r := s.first
	s.first = nil
	if r == nil {
		var err error
		if r, _, err = s.mr.Next(); err != nil {
			return nil, err
		}
	}
	return &sourceMsg{name: fmt.Sprintf("%s#%d", s.name, s.mr.count), r: r, reopen: s.opener(s.mr.start)}, nil
}

// opener returns an opener of the message whose first line (after its
// "From " line) is at offset start of the mbox file; nil when the mbox is
// not a regular file.
func (s *mboxSource) opener(start int64) opener {
	if s.fi == nil {
		return nil
	}
	return func() (io.ReadCloser, error) {
		f, err := os.Open(s.name)
		if err != nil {
			return nil, err
		}
		if err := unchanged(f, s.name, s.fi); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		// A reader in the state it had after the "From " line.
		mr := newMboxReader(f)
		mr.started, mr.nextFrom, mr.nextOff = true, fromPrefix, start
		r, _, err := mr.Next()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &readCloser{Reader: r, Closer: f}, nil
	}
}

func (s *mboxSource) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
