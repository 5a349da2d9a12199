package config_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailwire/mailwire/config"
	"github.com/mailwire/mailwire/envelope"
	"github.com/mailwire/mailwire/middleware"
	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func ExampleParse() {
	srv := smtptest.NewServer() // stands in for a relay
	defer srv.Close()

	yaml := `
default: relay
profiles:
  relay:
    transport:
      kind: smtp
      address: ` + srv.Addr + `
      security: none
    middleware:
      - name: retry
        with: {max_attempts: 3, base: 1s}
      - name: timeout
        with: {duration: 30s}
`
	cfg, err := config.Parse("mail.yaml", []byte(yaml))
	if err != nil {
		fmt.Println(err)
		return
	}
	tr, err := cfg.Transport("") // the default profile
	if err != nil {
		fmt.Println(err)
		return
	}
	defer transport.CloseIdleConnections(tr)
	res, err := tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader("Subject: hi\r\n\r\nHi\r\n"))
	fmt.Println(cfg.Profiles(), res.Accepted(), err)
	// Output: [relay] [b@example.org] <nil>
}

func ExampleParse_errors() {
	cfg, err := config.Parse("mail.yaml", []byte(`
profiles:
  relay:
    transport:
      kind: smtp
      adress: mail.example.org:25
`))
	if err == nil {
		// A profile's own keys are checked when it is built.
		_, err = cfg.Transport("relay")
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.File, ce.Line, ce.Key)
	}
	// Output: mail.yaml 6 profiles.relay.transport.adress
}

func ExampleRegisterMiddleware() {
	// A package of yours registers a middleware from its init function; a
	// configuration then selects it by name.
	var sent int
	config.RegisterMiddleware("example-count", func(p *config.Params) (middleware.Middleware, error) {
		return func(next transport.Transport) transport.Transport {
			return transport.Func(func(ctx context.Context, env *envelope.Envelope, msg io.Reader) (*transport.Result, error) {
				sent++
				return next.Send(ctx, env, msg)
			})
		}, nil
	})
	srv := smtptest.NewServer()
	defer srv.Close()
	cfg, err := config.Parse("mail.yaml", []byte(`
profiles:
  relay:
    transport: {kind: smtp, address: "`+srv.Addr+`", security: none}
    middleware:
      - name: example-count
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	tr, _ := cfg.Transport("relay")
	defer transport.CloseIdleConnections(tr)
	tr.Send(context.Background(), envelope.New("a@example.org", "b@example.org"), strings.NewReader("Subject: hi\r\n\r\nHi\r\n"))
	fmt.Println("sends counted:", sent)
	// Output: sends counted: 1
}
