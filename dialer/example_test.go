package dialer_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"net/url"

	"github.com/mailwire/mailwire/dialer"
)

// Fixed sends every connection to one address: here a local listener stands
// in for a relay, while the caller keeps asking for the real host name.
func ExampleFixed() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "220 relay.example.org ESMTP\r\n")
	}()

	d := dialer.Fixed("tcp", ln.Addr().String(), nil)
	c, err := d.DialContext(context.Background(), "tcp", "smtp.example.org:587")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(greeting)
	// Output: 220 relay.example.org ESMTP
}

// Proxy dials through a SOCKS5 proxy. The forward dialer reaches the proxy;
// here it binds a source address.
func ExampleProxy() {
	u, err := url.Parse("socks5h://user:password@proxy.example.org:1080")
	if err != nil {
		log.Fatal(err)
	}
	forward := dialer.Default()
	forward.LocalAddr = &net.TCPAddr{IP: net.ParseIP("192.0.2.10")}
	d, err := dialer.Proxy(u, forward)
	if err != nil {
		log.Fatal(err)
	}
	// Pass d as the Dialer of a transport, or dial directly:
	c, err := d.DialContext(context.Background(), "tcp", "smtp.example.org:587")
	if err != nil {
		log.Print(err)
		return
	}
	c.Close()
}

// Default is a *net.Dialer: set its fields, such as the source address, and
// pass it on.
func ExampleDefault() {
	d := dialer.Default()
	d.LocalAddr = &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}
	fmt.Println(d.Timeout)
	// Output: 30s
}
