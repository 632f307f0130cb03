//go:build linux

package pcscdlock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dir returns the directory where the processes of one machine coordinate:
// the pcscd user count, the pcscd started by a test or bench, and the
// reader slots. It is created world-writable and sticky, because root and
// non-root runs share it.
func Dir() (string, error) {
	dir := filepath.Join(os.TempDir(), "cie-testbench")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("creating the lock directory: %w", err)
	}
	_ = os.Chmod(dir, os.ModeSticky|0o777)
	return dir, nil
}

// Open opens (creating) the lock file name in Dir.
func Open(name string) (*os.File, error) {
	dir, err := Dir()
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

// TryLock takes a flock (syscall.LOCK_SH or LOCK_EX) without waiting.
func TryLock(f *os.File, how int) bool {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == syscall.EINTR {
			continue
		}
		return err == nil
	}
}

// LockWithin takes a flock, polling until d has passed or ctx ends.
func LockWithin(ctx context.Context, f *os.File, how int, d time.Duration) bool {
	return WaitFor(ctx, d, func() bool { return TryLock(f, how) })
}

// WaitFor polls cond every 20 ms until it is true, d has passed or ctx ends.
func WaitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TCPListening reports whether a TCP socket listens on port (any address,
// IPv4 or IPv6). It reads /proc/net/tcp{,6} instead of connecting, because
// a connection to a vpcd port is a card insertion.
func TCPListening(port int) bool {
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

// ProcessName returns the command name of a live process, "" when there is
// no such process or it is a zombie.
func ProcessName(pid int) string {
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

// ReadPID reads a decimal PID file (pcscd's has a trailing NUL); 0 when
// absent or unreadable.
func ReadPID(path string) int {
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

// watchdog is the one watchdog of this process.
var watchdog struct {
	once sync.Once
	err  error
	w    *os.File // referenced for the process's life: never collected and closed
}

// watchdogScript runs when its starter is gone (EOF on stdin): if no
// process holds pcscd.lock (every user holds it shared) and the pid file
// names a live pcscd, stop it. It waits up to 2 s for the exclusive lock:
// a user's own check that it is the last one (Bench.stop) holds it
// exclusively for a moment, and giving up then would leave the pcscd to
// nobody. A user holding it shared for longer stops the pcscd itself.
const watchdogScript = `read _
cd "$0" || exit 0
exec 9<pcscd.lock || exit 0
flock -w 2 -x 9 || exit 0
pid=$(tr -d '\000\n' < pcscd.pid 2>/dev/null) || exit 0
[ -n "$pid" ] || exit 0
if [ "$(cat /proc/$pid/comm 2>/dev/null)" = pcscd ]; then kill -TERM "$pid"; fi
rm -f pcscd.pid`

// StartWatchdog starts, once per process, a shell that stops the pcscd
// recorded in dir when this process has exited — even by a crash or a
// timeout, when no cleanup ran — and nobody else uses that pcscd. It waits
// for EOF on a pipe whose write end only this process holds.
func StartWatchdog(dir string) error {
	watchdog.once.Do(func() {
		r, w, err := os.Pipe()
		if err != nil {
			watchdog.err = fmt.Errorf("starting the pcscd watchdog: %w", err)
			return
		}
		cmd := exec.Command("/bin/sh", "-c", watchdogScript, dir)
		cmd.Stdin = r
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C must not reach it
		err = cmd.Start()
		r.Close()
		if err != nil {
			w.Close()
			watchdog.err = fmt.Errorf("starting the pcscd watchdog: %w", err)
			return
		}
		go func() { _ = cmd.Wait() }()
		watchdog.w = w
	})
	return watchdog.err
}
