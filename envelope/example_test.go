package envelope_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailwire/mailwire/envelope"
)

func ExampleNew() {
	env := envelope.New("alice@example.com", "bob@example.com", "carol@example.net")
	env.Body = envelope.Body8BitMIME
	env.To[1].Notify = []envelope.DSNNotify{envelope.NotifyFailure, envelope.NotifyDelay}
	if err := env.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range env.To {
		fmt.Println(r.Addr, r.Notify)
	}
	// Output:
	// bob@example.com []
	// carol@example.net [FAILURE DELAY]
}

func ExampleEnvelope_Validate() {
	env := envelope.New("alice@example.com", "bob@example.com>\r\nRCPT TO:<mallory@example.net")
	err := env.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, envelope.ErrControlChar))

	var e *envelope.Error
	if errors.As(err, &e) {
		fmt.Println("field:", e.Field)
	}
	// Output:
	// envelope: to[0]: contains CR, LF, NUL or another control character
	// true
	// field: to[0]
}

func ExampleFromMessage() {
	msg := strings.NewReader("From: Alice <alice@example.com>\r\n" +
		"To: Bob <bob@example.com>, undisclosed-recipients:;\r\n" +
		"Bcc: carol@example.net,\r\n" +
		"  Dave <dave@example.net>\r\n" +
		"Subject: Lunch\r\n" +
		"\r\n" +
		"Noon?\r\n")

	env, r, err := envelope.FromMessage(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("MAIL FROM:", env.From)
	for _, rcpt := range env.To {
		fmt.Println("RCPT TO:", rcpt.Addr)
	}
	data, err := io.ReadAll(r) // a transport would stream r instead
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(strings.ReplaceAll(string(data), "\r\n", "\n"))
	// Output:
	// MAIL FROM: alice@example.com
	// RCPT TO: bob@example.com
	// RCPT TO: carol@example.net
	// RCPT TO: dave@example.net
	// From: Alice <alice@example.com>
	// To: Bob <bob@example.com>, undisclosed-recipients:;
	// Subject: Lunch
	//
	// Noon?
}

func ExampleRecipient_ORcptParam() {
	for _, r := range []envelope.Recipient{
		{Addr: "bob@example.com", ORcpt: "bob+lists@example.com"},
		{Addr: "jörg@example.de", ORcpt: "jörg@example.de"},
	} {
		fmt.Println(r.ORcptParam(true))
		fmt.Println(r.ORcptParam(false))
	}
	// Output:
	// rfc822;bob+2Blists@example.com
	// rfc822;bob+2Blists@example.com
	// utf-8;jörg@example.de
	// utf-8;j\x{F6}rg@example.de
}

func ExampleXText() {
	enc := envelope.XText("QQ314159 a+b=c")
	fmt.Println(enc)
	dec, err := envelope.DecodeXText(enc)
	fmt.Println(dec, err)
	// Output:
	// QQ314159+20a+2Bb+3Dc
	// QQ314159 a+b=c <nil>
}
