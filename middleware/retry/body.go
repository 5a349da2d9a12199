package retry

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// A Reopener is a message body that can be read again from its start. Before
// an attempt that follows one that read the body, the retry middleware calls
// Reopen and gives the transport the reader it returns; if that reader is an
// io.Closer, it is closed when it is no longer needed, at the latest when
// Send returns. The Reopener itself is read by the first attempt and is
// never closed by the middleware.
//
// A Reopener is preferred to io.Seeker when a body is both.
type Reopener interface {
	Reopen() (io.Reader, error)
}

// ReopenFunc returns a message body that the retry middleware can rewind by
// calling open again. The body calls open on its first Read; the caller
// closes the body when Send has returned, which closes that first reader if
// it is an io.Closer. Use it for a body that is produced rather than stored
// in a seekable form, such as a rendered template or a download:
//
//	body := retry.ReopenFunc(func() (io.Reader, error) { return render(data) })
//	defer body.Close()
//	res, err := t.Send(ctx, env, body)
func ReopenFunc(open func() (io.Reader, error)) io.ReadCloser {
	return &reopenFunc{open: open}
}

type reopenFunc struct {
	open func() (io.Reader, error)
	r    io.Reader // opened by the first Read
	err  error     // from open
}

func (f *reopenFunc) Read(p []byte) (int, error) {
	if f.r == nil && f.err == nil {
		f.r, f.err = f.open()
		if f.r == nil && f.err == nil {
			f.err = errors.New("retry: ReopenFunc: open returned a nil reader")
		}
	}
	if f.err != nil {
		return 0, f.err
	}
	return f.r.Read(p)
}

func (f *reopenFunc) Reopen() (io.Reader, error) {
	r, err := f.open()
	if err == nil && r == nil {
		err = errors.New("retry: ReopenFunc: open returned a nil reader")
	}
	return r, err
}

func (f *reopenFunc) Close() error {
	if c, ok := f.r.(io.Closer); ok {
		f.r, f.err = nil, errors.New("retry: ReopenFunc: read after Close")
		return c.Close()
	}
	return nil
}

var errReadAfterAttempt = errors.New("retry: message body read after its attempt returned")

// body hands each attempt a reader positioned at the start of the message.
type body struct {
	msg    io.Reader
	reopen Reopener
	seeker io.Seeker
	offset int64 // msg's offset when Send was called, for seeker

	src    io.Reader // what the next attempt reads: msg or a reopened reader
	opened io.Closer // src if the middleware opened it and must close it
	last   *attemptReader
}

func newBody(msg io.Reader) *body {
	b := &body{msg: msg, src: msg}
	if r, ok := msg.(Reopener); ok {
		b.reopen = r
	} else if s, ok := msg.(io.Seeker); ok {
		// Probe: a pipe or a terminal is an *os.File that cannot seek.
		if off, err := s.Seek(0, io.SeekCurrent); err == nil {
			b.seeker, b.offset = s, off
		}
	}
	return b
}

// rewindable reports whether another attempt can read the message from its
// start.
func (b *body) rewindable() bool {
	return b.last == nil || b.last.n.Load() == 0 || b.reopen != nil || b.seeker != nil
}

// next returns the reader for the next attempt, rewinding the body if the
// previous attempt read some of it. The reader stops working when the
// attempt returns (done), so a transport that misbehaved and kept it cannot
// move the body under the next attempt.
func (b *body) next() (*attemptReader, error) {
	if b.last != nil {
		b.last.done()
		if b.last.n.Load() > 0 {
			switch {
			case b.reopen != nil:
				r, err := b.reopen.Reopen()
				if err != nil {
					return nil, fmt.Errorf("%w: reopen: %w", ErrNotRewindable, err)
				}
				b.close()
				b.src = r
				b.opened, _ = r.(io.Closer)
			case b.seeker != nil:
				if _, err := b.seeker.Seek(b.offset, io.SeekStart); err != nil {
					return nil, fmt.Errorf("%w: seek: %w", ErrNotRewindable, err)
				}
			default:
				return nil, ErrNotRewindable
			}
		}
	}
	b.last = &attemptReader{r: b.src}
	return b.last, nil
}

// close closes the reader the middleware opened, if any.
func (b *body) close() {
	if b.opened != nil {
		b.opened.Close()
		b.opened = nil
	}
}

// finish ends the last attempt's reader and closes what the middleware
// opened.
func (b *body) finish() {
	if b.last != nil {
		b.last.done()
	}
	b.close()
}

// attemptReader is the body as one attempt sees it. It counts the bytes read
// and refuses reads after the attempt.
type attemptReader struct {
	r    io.Reader
	n    atomic.Int64
	over atomic.Bool
}

func (a *attemptReader) Read(p []byte) (int, error) {
	if a.over.Load() {
		return 0, errReadAfterAttempt
	}
	n, err := a.r.Read(p)
	a.n.Add(int64(n))
	return n, err
}

func (a *attemptReader) done() { a.over.Store(true) }
