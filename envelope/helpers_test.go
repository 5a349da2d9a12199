package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/envelope"
)

// sentinels are the error kinds of the package.
var sentinels = []error{
	envelope.ErrControlChar,
	envelope.ErrTooLong,
	envelope.ErrMalformed,
	envelope.ErrNoRecipients,
	envelope.ErrInvalidParam,
	envelope.ErrMultipleResent,
	envelope.ErrHeaderTooLarge,
	envelope.ErrNoSender,
}

// checkErr fails t unless err is nil when want is nil, or else an
// *envelope.Error with the given Field wrapping want.
func checkErr(t *testing.T, what string, err, want error, wantField string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s = %v, want nil", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want an error wrapping %q", what, err, want)
		return
	}
	var e *envelope.Error
	if !errors.As(err, &e) {
		t.Errorf("%s = %v (%T), want an *envelope.Error", what, err, err)
		return
	}
	if e.Field != wantField {
		t.Errorf("%s Field = %q, want %q", what, e.Field, wantField)
	}
	if got, wantText := err.Error(), "envelope: "+wantField+": "+want.Error(); got != wantText {
		t.Errorf("%s text = %q, want %q", what, got, wantText)
	}
}

// kindOf returns the sentinel err wraps, or nil.
func kindOf(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// domainOfLen returns a valid domain name of exactly n octets (n >= 3),
// made of labels of at most 63 octets.
func domainOfLen(n int) string {
	var b strings.Builder
	for b.Len() < n {
		left := n - b.Len()
		if b.Len() > 0 {
			b.WriteByte('.')
			left--
		}
		l := min(left, 63)
		if left-l == 1 { // never leave room for an empty last label
			l--
		}
		b.WriteString(strings.Repeat("d", l))
	}
	return b.String()
}

func TestDomainOfLen(t *testing.T) {
	for _, n := range []int{3, 63, 64, 65, 127, 252, 253, 255, 256} {
		d := domainOfLen(n)
		if len(d) != n {
			t.Errorf("len(domainOfLen(%d)) = %d", n, len(d))
		}
		if err := envelope.New("", "a@"+d).Validate(); n <= 252 && err != nil {
			t.Errorf("domainOfLen(%d) is not valid: %v", n, err)
		}
	}
}
