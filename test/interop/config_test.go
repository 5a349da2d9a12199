package interop_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/internal/interoptest"
)

// TestReadmeConfig sends through every profile of the configuration the
// README tells a new user to use, and finds each message delivered.
func TestReadmeConfig(t *testing.T) {
	env := interoptest.Env(t)
	alice, ok := env.User("alice")
	if !ok {
		t.Fatal("no user alice in the interop environment")
	}
	t.Setenv("ALICE_PASSWORD", alice.Password)
	cfg, err := config.Load("../../scripts/interop/mailwire.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, profile := range cfg.Profiles() {
		t.Run(profile, func(t *testing.T) {
			tr, err := cfg.Transport(profile)
			if err != nil {
				t.Fatal(err)
			}
			marker := interoptest.Marker(t)
			to := "alice@" + env.Domain
			dir := env.VirtualMaildir("alice")
			if profile == "lmtp" {
				to = "alice@" + env.LMTPDomain
				dir = env.DovecotMaildir(env.LMTPDomain, "alice")
			}
			msg := "From: me@example.org\r\nTo: " + to + "\r\nSubject: readme\r\nX-Test-ID: " + marker + "\r\n\r\nIt works.\r\n"
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := tr.Send(ctx, envelope.New("me@example.org", to), strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			got := interoptest.WaitMaildir(t, dir, marker, 10*time.Second)
			if !strings.Contains(string(got), "It works.") {
				t.Errorf("delivered %q", got)
			}
		})
	}
}
