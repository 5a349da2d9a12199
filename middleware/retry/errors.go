package retry

import "errors"

// Reasons the retry middleware stopped while recipients could still have
// been retried. The error of each such recipient, and the error Send
// returns, wrap the last attempt's error and one of these, so errors.Is
// matches both the reason and the original error ([transport.ErrTransient],
// or [transport.ErrNotAllAccepted] for a recipient an all-or-nothing
// transaction abandoned).
var (
	// ErrMaxAttempts reports that the maximum number of attempts was made.
	ErrMaxAttempts = errors.New("retry: attempts exhausted")

	// ErrMaxElapsed reports that the next attempt would have started after
	// the maximum elapsed time or after ctx's deadline, so it was not waited
	// for.
	ErrMaxElapsed = errors.New("retry: no time left for another attempt")

	// ErrNotRewindable reports that the message body was read by the failed
	// attempt and cannot be read again from its start: it is neither a
	// [Reopener] nor an io.Seeker, or reopening or seeking it failed (the
	// error then wraps that failure too).
	ErrNotRewindable = errors.New("retry: message body was read and cannot be rewound")
)

// giveUpError is the error of a recipient, or of a whole Send, that would
// have been retried but was not.
type giveUpError struct {
	err    error // the last attempt's error
	reason error // why retrying stopped
}

func (e *giveUpError) Error() string {
	if e.err == nil {
		return e.reason.Error()
	}
	return e.err.Error() + " (" + e.reason.Error() + ")"
}

func (e *giveUpError) Unwrap() []error { return []error{e.err, e.reason} }
