//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package wire

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerSpoke reports whether the peer sent anything or closed its side of
// nc, without blocking and without consuming anything.
func peerSpoke(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	spoke := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR:
		case rerr != nil:
			spoke = true // reset or another error: the connection is dead
		case n >= 0:
			spoke = true // data (an unsolicited reply) or EOF (n == 0)
		}
		return true // never wait for readiness
	})
	return spoke || err != nil
}
