//go:build linux

package ciesim

import (
	"net"
	"syscall"
)

// quickAck sets TCP_QUICKACK on conn so that the kernel acknowledges the
// frame header at once instead of delaying the ACK by ~40 ms, which would
// hold a peer's Nagle-delayed frame body (testbench.md §1.5). Linux clears
// the flag again by itself, so it is set after every header.
func quickAck(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
