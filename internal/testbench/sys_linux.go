//go:build linux

package testbench

import (
	"context"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/pcscdlock"
)

// The lock files, /proc readers and the pcscd watchdog are shared with
// internal/benchrun through package pcscdlock.
var (
	lockDir       = pcscdlock.Dir
	openLock      = pcscdlock.Open
	tryLock       = pcscdlock.TryLock
	tcpListening  = pcscdlock.TCPListening
	processName   = pcscdlock.ProcessName
	readPID       = pcscdlock.ReadPID
	startWatchdog = pcscdlock.StartWatchdog
)

// lockWithin takes a flock, polling until d has passed.
func lockWithin(f *os.File, how int, d time.Duration) bool {
	return pcscdlock.LockWithin(context.Background(), f, how, d)
}

// waitFor polls cond every 20 ms until it is true or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	return pcscdlock.WaitFor(context.Background(), d, cond)
}

// killWithParent makes the kernel kill the child when the test process
// dies, so that a crashed or timed-out test leaves no card behind.
func killWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// ownProcessGroup keeps the terminal's Ctrl-C away from a helper process
// that must outlive the test process by a moment.
func ownProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// quickAck sets TCP_QUICKACK. Debian's vpcd (0.8) sends a message's 2-byte
// length and its body in two send() calls without TCP_NODELAY; Nagle then
// holds the body until the length is acknowledged, and a delayed ACK costs
// about 44 ms per message (testbench.md §1.5). The kernel clears the flag
// again after a while, so it is set after every header read.
func quickAck(c *net.TCPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
