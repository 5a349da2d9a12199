package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every profile of the three files sends through the embedded server,
// with STARTTLS and the mechanism the file names, and no credential shows
// in the output.
func TestSubmission(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"== gmail.yaml, profile gmail\n  bob@example.org: accepted\n  C: STARTTLS\n  C: AUTH XOAUTH2 [redacted]\n",
		"== office365.yaml, profile oauth\n  bob@example.org: accepted\n  C: STARTTLS\n  C: AUTH XOAUTH2 [redacted]\n",
		"== office365.yaml, profile basic\n  bob@example.org: accepted\n  C: STARTTLS\n  C: AUTH LOGIN\n",
		"== ses.yaml, profile ses\n  bob@example.org: accepted\n  C: STARTTLS\n  C: AUTH PLAIN [redacted]\n",
		"the server authenticated SES-SMTP-USER-EXAMPLE over TLS: true",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, d := range demo {
		if strings.Contains(got, d.secret) {
			t.Errorf("output shows the secret of %s", d.env)
		}
	}
}

// One profile of one file, chosen by flags.
func TestSubmissionOneProfile(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, []string{"-config", "office365.yaml", "-profile", "basic"}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if got := out.String(); strings.Count(got, "==") != 1 || !strings.Contains(got, "AUTH LOGIN") {
		t.Errorf("output:\n%s", got)
	}
}
