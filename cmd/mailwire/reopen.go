package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mailwire/mailwire/middleware/retry"
)

// An opener opens the raw text of a message again, from its start: the
// file it was read from, or its place in an mbox file.
type opener func() (io.ReadCloser, error)

// reopenableBody is the body of a message read from a regular file, as the
// transport gets it. The first attempt reads the body prepared when the
// message was first read; when the retry middleware needs the message again
// (a recipient failed transiently after the data was read), Reopen opens
// the file again and prepares the message the same way: the same envelope
// specification, so the same Bcc fields are removed. Nothing is buffered
// but the header, so memory does not grow with the size of the message.
//
// A message read from standard input has no such body: it cannot be read
// twice.
type reopenableBody struct {
	io.Reader
	open opener
	spec envSpec
}

var _ retry.Reopener = (*reopenableBody)(nil)

// reopenable returns body as one the retry middleware can read again with
// open; body itself when open is nil.
func reopenable(body io.Reader, open opener, spec envSpec) io.Reader {
	if open == nil {
		return body
	}
	return &reopenableBody{Reader: body, open: open, spec: spec}
}

// Reopen returns the message from its start, prepared as the first time;
// closing it closes the file.
func (b *reopenableBody) Reopen() (io.Reader, error) {
	rc, err := b.open()
	if err != nil {
		return nil, err
	}
	m, err := prepareMessage(rc, b.spec)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &readCloser{Reader: m.body, Closer: rc}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// fileOpener returns an opener of the regular file name, which fi
// describes as it was when the message was first read; nil when the file
// is not a regular file (a pipe, a terminal, a device), which cannot be
// read twice. The opener refuses a file that changed since: the retry
// would send another message.
func fileOpener(name string, fi os.FileInfo) opener {
	if fi == nil || !fi.Mode().IsRegular() {
		return nil
	}
	return func() (io.ReadCloser, error) {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		if err := unchanged(f, name, fi); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

// unchanged checks that f is still the file fi describes.
func unchanged(f *os.File, name string, fi os.FileInfo) error {
	now, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(fi, now) || now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
		return fmt.Errorf("%s changed since the message was first read", name)
	}
	return nil
}
