//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package wire

// peeker is unused on this system.
type peeker struct{}

// peerSpoke cannot look at the socket on this system; stale connections
// are then found by the first reply.
func (c *Conn) peerSpoke() bool { return false }
