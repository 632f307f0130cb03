//go:build linux

package benchrun

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

// lockDir is where the processes of one machine coordinate; the same
// directory as internal/testbench's.
func lockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "cie-testbench")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("benchrun: creating the lock directory: %w", err)
	}
	_ = os.Chmod(dir, os.ModeSticky|0o777) // shared by root and non-root runs
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
		return nil, fmt.Errorf("benchrun: opening lock file: %w", err)
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

// lockWithin takes a flock, polling until d has passed or ctx ends.
func lockWithin(ctx context.Context, f *os.File, how int, d time.Duration) bool {
	return waitFor(ctx, d, func() bool { return tryLock(f, how) })
}

// tcpListening reports whether a TCP socket listens on port. It reads
// /proc/net/tcp{,6} instead of connecting: a connection to a vpcd port is
// a card insertion.
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

// processName returns the command name of a live process, "" when there
// is no such process or it is a zombie.
func processName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
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

// watchdog stops a pcscd started here that nobody uses once this process
// has exited, even by a crash, when Close did not run. It waits for EOF on
// a pipe whose write end only this process holds.
var watchdog struct {
	once sync.Once
	err  error
	w    *os.File // referenced for the process's life: never collected and closed
}

// watchdogScript is internal/testbench's: if no process holds pcscd.lock
// and the pid file names a live pcscd, stop it.
const watchdogScript = `read _
cd "$0" || exit 0
exec 9<pcscd.lock || exit 0
flock -n -x 9 || exit 0
pid=$(tr -d '\000\n' < pcscd.pid 2>/dev/null) || exit 0
[ -n "$pid" ] || exit 0
if [ "$(cat /proc/$pid/comm 2>/dev/null)" = pcscd ]; then kill -TERM "$pid"; fi
rm -f pcscd.pid`

func startWatchdog(dir string) error {
	watchdog.once.Do(func() {
		r, w, err := os.Pipe()
		if err != nil {
			watchdog.err = fmt.Errorf("benchrun: starting the pcscd watchdog: %w", err)
			return
		}
		cmd := exec.Command("/bin/sh", "-c", watchdogScript, dir)
		cmd.Stdin = r
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C must not reach it
		err = cmd.Start()
		r.Close()
		if err != nil {
			w.Close()
			watchdog.err = fmt.Errorf("benchrun: starting the pcscd watchdog: %w", err)
			return
		}
		go func() { _ = cmd.Wait() }()
		watchdog.w = w
	})
	return watchdog.err
}
