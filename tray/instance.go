package tray

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// InstancePath returns the socket through which a second cie-tray asks the
// running one to open a window: $XDG_RUNTIME_DIR/cie-tray.sock, or
// cie-tray-<uid>/cie-tray.sock in the temporary directory (on Windows,
// whose temporary directory is the user's own, cie-tray\cie-tray.sock
// there).
func InstancePath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "cie-tray.sock")
	}
	if runtime.GOOS == "windows" {
		return filepath.Join(os.TempDir(), "cie-tray", "cie-tray.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("cie-tray-%d", os.Getuid()), "cie-tray.sock")
}

// ErrRunning: another instance answers on the socket.
var ErrRunning = errors.New("cie-tray is already running")

// ListenInstance claims the instance socket at path. It fails with
// ErrRunning when a running instance answers there; a socket left behind
// by a dead one is replaced.
func ListenInstance(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the instance socket: %w", err)
	}
	for range 2 {
		ln, err := net.Listen("unix", path)
		if err == nil {
			return ln, nil
		}
		// EADDRINUSE on Unix, WSAEADDRINUSE on Windows: whatever the
		// error, a socket file in the way is either a running instance
		// or a stale one.
		if _, serr := os.Lstat(path); serr != nil {
			return nil, fmt.Errorf("creating the instance socket: %w", err)
		}
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return nil, ErrRunning
		}
		_ = os.Remove(path) // stale: nobody listens
	}
	return nil, fmt.Errorf("creating the instance socket %s: %w", path, syscall.EADDRINUSE)
}

// SendInstance asks the instance listening at path to open the window name.
func SendInstance(path, name string) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("reaching the running cie-tray: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "open %s\n", name); err != nil {
		return fmt.Errorf("reaching the running cie-tray: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reaching the running cie-tray: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("the running cie-tray answered %q", line)
	}
	return nil
}

// ServeInstance answers "open NAME" requests on ln by calling open (which
// must hand the work to the UI goroutine) until ln is closed.
func ServeInstance(ln net.Listener, open func(name string) error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			name, ok := strings.CutPrefix(strings.TrimSpace(line), "open ")
			if !ok {
				fmt.Fprintln(c, "error: unknown request")
				return
			}
			if err := open(strings.TrimSpace(name)); err != nil {
				fmt.Fprintln(c, "error:", err)
				return
			}
			fmt.Fprintln(c, "ok")
		}()
	}
}
