//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package wire

import (
	"crypto/tls"
	"net"
	"syscall"
)

// A peeker looks at a socket without blocking and without consuming
// anything. It is made once per connection, so that a look costs one
// system call and no allocation.
type peeker struct {
	rc    syscall.RawConn
	nc    net.Conn // the connection rc belongs to
	spoke bool
	buf   [1]byte
	look  func(fd uintptr) bool
}

// peerSpoke reports whether the peer sent anything or closed its side of
// nc.
func (c *Conn) peerSpoke() bool {
	nc := socketOf(c.nc)
	if nc == nil {
		return false
	}
	p := c.peek
	if p == nil || p.nc != nc {
		sc := nc.(syscall.Conn)
		rc, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		p = &peeker{rc: rc, nc: nc}
		p.look = p.recv
		c.peek = p
	}
	p.spoke = false
	err := p.rc.Read(p.look)
	return p.spoke || err != nil
}

// socketOf returns the connection under nc that holds the socket: nc
// itself, or what a TLS connection or a wrapper with a NetConn method (the
// way crypto/tls exposes it) wraps; nil if there is none.
func socketOf(nc net.Conn) net.Conn {
	for range 8 {
		switch v := nc.(type) {
		case syscall.Conn:
			return nc
		case *tls.Conn:
			nc = v.NetConn()
		case interface{ NetConn() net.Conn }:
			nc = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func (p *peeker) recv(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
	case err != nil:
		p.spoke = true // reset or another error: the connection is dead
	case n >= 0:
		p.spoke = true // data (an unsolicited reply) or EOF (n == 0)
	}
	return true // never wait for readiness
}
