package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/mailwire/mailwire/auth"
)

func nopMech(context.Context, auth.Credentials, auth.ServerInfo) (sasl.Client, error) {
	return sasl.NewAnonymousClient(""), nil
}

func wantPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want %q", want)
		}
		if got, _ := r.(string); got != want {
			t.Fatalf("panic %q, want %q", r, want)
		}
	}()
	f()
}

func TestRegisterPanics(t *testing.T) {
	defer auth.ResetRegistry()()

	auth.Register("X-ONE", nopMech)
	wantPanic(t, "auth: Register called twice for mechanism X-ONE", func() { auth.Register("X-ONE", nopMech) })
	wantPanic(t, "auth: Register called twice for mechanism X-ONE", func() { auth.Register("x-one", nopMech) })
	wantPanic(t, "auth: Register of nil constructor for mechanism X-TWO", func() { auth.Register("X-TWO", nil) })
	for _, name := range []string{"", "HAS SPACE", "A23456789012345678901", "DOT.TED", "ÜMLAUT", "NUL\x00"} {
		wantPanic(t, `auth: invalid mechanism name `+quote(name), func() { auth.Register(name, nopMech) })
	}
	// 20 characters and every allowed character class are fine.
	auth.Register("A2345678901234567890", nopMech)
	auth.Register("lower_case-9", nopMech)
	if _, err := auth.Lookup("LOWER_CASE-9"); err != nil {
		t.Errorf("Lookup(LOWER_CASE-9) err = %v, want nil", err)
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteString(`"`)
	for _, r := range s {
		switch {
		case r == 0:
			b.WriteString(`\x00`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(`"`)
	return b.String()
}

func TestMechanismsSorted(t *testing.T) {
	defer auth.ResetRegistry()()
	for _, n := range []string{"ZED", "ALPHA", "mid"} {
		auth.Register(n, nopMech)
	}
	if got, want := auth.Mechanisms(), []string{"ALPHA", "MID", "ZED"}; !slices.Equal(got, want) {
		t.Errorf("Mechanisms() = %v, want %v", got, want)
	}
}

func TestBuiltinsRegistered(t *testing.T) {
	want := []string{"ANONYMOUS", "CRAM-MD5", "EXTERNAL", "LOGIN", "OAUTHBEARER", "PLAIN",
		"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
		"SCRAM-SHA-512", "SCRAM-SHA-512-PLUS", "XOAUTH2"}
	// X-DEMO-HMAC is registered by ExampleRegister's file.
	got := slices.DeleteFunc(auth.Mechanisms(), func(s string) bool { return strings.HasPrefix(s, "X-") })
	if !slices.Equal(got, want) {
		t.Errorf("Mechanisms() = %v, want %v", got, want)
	}
	for _, n := range auth.DefaultPreference() {
		if _, err := auth.Lookup(n); err != nil {
			t.Errorf("DefaultPreference() has %s: %v", n, err)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	for _, name := range []string{"X-NOPE", "bad name", ""} {
		_, err := auth.Lookup(name)
		if !errors.Is(err, auth.ErrUnknownMechanism) {
			t.Errorf("Lookup(%q) err = %v, want ErrUnknownMechanism", name, err)
			continue
		}
		if want := `auth: unknown mechanism "` + name + `" (forgotten import?)`; err.Error() != want {
			t.Errorf("Lookup(%q) err = %q, want %q", name, err, want)
		}
	}
	if _, err := auth.New("X-NOPE", auth.Credentials{}); !errors.Is(err, auth.ErrUnknownMechanism) {
		t.Errorf("New(X-NOPE) err = %v, want ErrUnknownMechanism", err)
	}
	if f, err := auth.Lookup("plain"); err != nil || f == nil {
		t.Errorf("Lookup(plain) = %v, %v; want the PLAIN constructor", f, err)
	}
}
