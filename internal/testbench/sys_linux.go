//go:build linux

package testbench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockDir is where the processes of one machine coordinate: the pcscd user
// count, the pcscd started by a test, and the reader slots.
func lockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "cie-testbench")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("creating lock directory: %w", err)
	}
	_ = os.Chmod(dir, os.ModeSticky|0o777) // shared by root and non-root test runs
	return dir, nil
}

// openLock opens (creating) a lock file in lockDir.
func openLock(name string) (*os.File, error) {
	dir, err := lockDir()
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(p) // flock works on a read-only descriptor too
	}
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	_ = f.Chmod(0o666)
	return f, nil
}

// tryLock takes a flock (syscall.LOCK_SH or LOCK_EX) without waiting.
func tryLock(f *os.File, how int) bool {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == syscall.EINTR {
			continue
		}
		return err == nil
	}
}

// lockWithin takes a flock, polling until the deadline.
func lockWithin(f *os.File, how int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if tryLock(f, how) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpListening reports whether a TCP socket listens on port (any address,
// IPv4 or IPv6). It reads /proc/net/tcp{,6} instead of connecting, because
// a connection to a vpcd port is a card insertion.
func tcpListening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, p := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st …; st 0A is LISTEN.
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// processName returns the command name of a live process, "" when there is
// no such process or it is a zombie.
func processName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state …; comm may contain spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return ""
	}
	if st := s[end+2]; st == 'Z' || st == 'X' {
		return ""
	}
	return s[open+1 : end]
}

// readPID reads a decimal PID file; 0 when absent or unreadable.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.Trim(string(b), "\x00")))
	if err != nil {
		return 0
	}
	return pid
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
