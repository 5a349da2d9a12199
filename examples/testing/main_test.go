package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/mailwire/mailwire/transport"
	"github.com/mailwire/mailwire/transport/smtptest"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatal(err)
	}
	want := "ann@example.org: sent\nbo@example.org: sent\nwelcome@example.org -> [ann@example.org]: 155 bytes\nwelcome@example.org -> [bo@example.org]: 151 bytes\n"
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

func TestAfterSignUp(t *testing.T) {
	for _, tt := range []struct {
		reply *transport.ReplyError
		want  string
	}{
		{nil, "sent"},
		{&transport.ReplyError{Code: 451, EnhancedCode: transport.EnhancedCode{4, 7, 1}, Message: "greylisted"}, "queued for a later attempt"},
		{&transport.ReplyError{Code: 550, EnhancedCode: transport.EnhancedCode{5, 1, 1}, Message: "no such user"}, "refused: ask the user to check the address"},
	} {
		srv := smtptest.NewUnstartedServer()
		if tt.reply != nil {
			srv.Rcpt = func(string, smtptest.RcptOptions) error { return tt.reply }
		}
		srv.Start()
		w := &Welcomer{Transport: srv.Transport(), From: "welcome@example.org"}
		if got := afterSignUp(w.Welcome(context.Background(), "Ann", "ann@example.org")); got != tt.want {
			t.Errorf("afterSignUp(%v) = %q, want %q", tt.reply, got, tt.want)
		}
		srv.Close()
	}
	if got := afterSignUp(ErrBadName); got != "not sent: "+ErrBadName.Error() {
		t.Errorf("afterSignUp(ErrBadName) = %q", got)
	}
}
