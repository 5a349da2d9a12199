package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mailwire/mailwire/config"
)

func TestCustomAuth(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := `S: 250-AUTH X-DEMO-TOKEN
C: AUTH X-DEMO-TOKEN [redacted]
S: 334 [redacted]
C: [redacted]
S: 235 2.0.0 Authentication succeeded
delivered for bob@example.org, authenticated as alice with X-DEMO-TOKEN
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(out.String(), demoToken) {
		t.Error("the output shows the token")
	}
}

// The error custom-auth.yaml quotes for a program that does not import
// demotoken is the one it gets, for a mechanism nobody registered.
func TestUnregisteredMechanism(t *testing.T) {
	t.Setenv("DEMO_TOKEN", demoToken)
	data := bytes.ReplaceAll(customAuthYAML, []byte("mechanism: X-DEMO-TOKEN"), []byte("mechanism: X-NOT-REGISTERED"))
	_, err := config.Parse("custom-auth.yaml", data)
	want := `custom-auth.yaml:13: profiles.demo.transport.auth.mechanism: unknown mechanism "X-NOT-REGISTERED" (forgotten import?)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	if !bytes.Contains(customAuthYAML, []byte(strings.ReplaceAll(want, "X-NOT-REGISTERED", "X-DEMO-TOKEN"))) {
		t.Error("custom-auth.yaml quotes another error")
	}
}
