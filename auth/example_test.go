package auth_test

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/mailwire/mailwire/auth"
)

func ExampleConfig() {
	cfg := auth.Config{
		Credentials: auth.Credentials{
			Username: "alice@example.org",
			Password: "example-password", // read it from a file or the environment
			Host:     "smtp.example.org",
		},
		// Mechanisms: nil, so auth.DefaultPreference() applies.
	}

	// The transport fills ServerInfo after EHLO and STARTTLS.
	info := auth.ServerInfo{
		Host:       "smtp.example.org",
		Mechanisms: []string{"PLAIN", "LOGIN", "SCRAM-SHA-256"},
		TLS:        &tls.ConnectionState{},
	}
	client, err := cfg.Start(context.Background(), info)
	if err != nil {
		fmt.Println(err)
		return
	}
	mech, _, _ := client.Start()
	fmt.Println(mech)

	// Without TLS, nothing is sent.
	info.TLS = nil
	_, err = cfg.Start(context.Background(), info)
	fmt.Println(err)

	// The password never prints.
	fmt.Printf("%+v\n", cfg.Credentials)
	// Output:
	// SCRAM-SHA-256
	// auth: refusing to send credentials over an unencrypted connection (mechanism SCRAM-SHA-256)
	// {Identity: Username:alice@example.org Password:[redacted] Token:<nil> Host:smtp.example.org}
}

func ExampleConfig_oauth() {
	cfg := auth.Config{
		Credentials: auth.Credentials{
			Username: "alice@example.org",
			// Token is called once per connection: return a fresh access
			// token from your OAuth 2.0 client here.
			Token: func(ctx context.Context) (string, error) {
				return "example-access-token", nil
			},
		},
	}
	client, err := cfg.Start(context.Background(), auth.ServerInfo{
		Host:       "smtp.office365.com",
		Mechanisms: []string{"LOGIN", "XOAUTH2"},
		TLS:        &tls.ConnectionState{},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mech, _, _ := client.Start()
	fmt.Println(mech)
	// Output:
	// XOAUTH2
}

func ExampleNew() {
	a, err := auth.New("LOGIN", auth.Credentials{
		Username: "alice@example.org",
		Password: "example-password",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := a.Start(context.Background(), auth.ServerInfo{
		Host:       "smtp.example.org",
		Mechanisms: []string{"PLAIN", "LOGIN"},
		TLS:        &tls.ConnectionState{},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	mech, ir, _ := client.Start()
	fmt.Println(mech, ir == nil)
	user, _ := client.Next([]byte("Username:"))
	fmt.Println(string(user))

	// An unknown name fails when the Authenticator is built.
	_, err = auth.New("GSSAPI", auth.Credentials{})
	fmt.Println(err)
	// Output:
	// LOGIN true
	// alice@example.org
	// auth: unknown mechanism "GSSAPI" (forgotten import?)
}
