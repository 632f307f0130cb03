//go:build linux

package testbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/pcsc"
)

// Facts of the Debian vsmartcard-vpcd package (/etc/reader.conf.d/vpcd):
// one reader entry with two slots listening on CHANNELID and CHANNELID+1.
const (
	// VPCDPort is the TCP port of slot 0; slot n listens on VPCDPort+n.
	VPCDPort = 35963
	// Slots is the number of vpcd readers.
	Slots = 2
	// readerPrefix is the FRIENDLYNAME of the vpcd reader entry.
	readerPrefix = "Virtual PCD "
	// pcscdSocket is where pcscd 1.9.9 always puts its socket.
	pcscdSocket = "/run/pcscd/pcscd.comm"
)

// Bounds of the waits. They are generous for a busy 2-core CI machine; all
// of them are normally over in well under a second.
const (
	readyTimeout   = 10 * time.Second // pcscd up, ports listening, readers listed
	presentTimeout = 15 * time.Second // pcscd's presence poll runs every ~0.4 s
	lockTimeout    = 60 * time.Second // another process starting or stopping pcscd
	slotTimeout    = 3 * time.Minute  // other test processes holding both readers
)

// Options configures Start.
type Options struct {
	// Debug runs a pcscd started here with --debug --apdu (also set by the
	// environment variable CIE_PCSCD_DEBUG=1) and logs where its log is.
	// It has no effect on a pcscd that is already running.
	Debug bool
}

// Bench is a running pcscd with the vpcd readers, ready for cards. A Bench
// belongs to the test that started it; its methods are safe for concurrent
// use by that test's goroutines and subtests.
type Bench struct {
	readers [Slots]string
	started bool   // this Bench started pcscd
	logDir  string // t.TempDir() of the test
	logPath string // pcscd's log when started here

	mu sync.Mutex
	pc *pcsc.Context
}

// daemon is the pcscd this process started, if any. Its exit is reaped by a
// goroutine, whoever stops it.
var daemon struct {
	mu     sync.Mutex
	pid    int
	exited chan struct{}
}

// Start returns a Bench on a running pcscd with the vpcd readers. It uses
// pcscd if it already runs and answers; otherwise, as root, it starts
// `pcscd --foreground` with its log in t.TempDir(), and the last test
// process using it stops it with SIGTERM in t.Cleanup. As non-root with no
// pcscd running, it fails the test with instructions.
func Start(t testing.TB, opts Options) *Bench {
	t.Helper()
	if os.Getenv("CIE_PCSCD_DEBUG") == "1" {
		opts.Debug = true
	}
	// Every user of pcscd holds a shared lock on pcscd.lock; whoever can
	// take it exclusively at cleanup is the last user and stops a pcscd
	// that a test started.
	users, err := openLock("pcscd.lock")
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	if !lockWithin(users, syscall.LOCK_SH, lockTimeout) {
		users.Close()
		t.Fatalf("testbench: another test process kept pcscd locked for %v while stopping it", lockTimeout)
	}
	// The log directory is made before the cleanup is registered, so that
	// it still exists when the cleanup shows the log of a failed test.
	b := &Bench{logDir: t.TempDir()}
	t.Cleanup(func() { b.stop(t, users) })

	starting, err := openLock("start.lock")
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	defer starting.Close() // closing releases the lock
	if !lockWithin(starting, syscall.LOCK_EX, lockTimeout) {
		t.Fatalf("testbench: another test process kept starting pcscd for %v", lockTimeout)
	}

	pc, err := pcsc.Establish()
	switch {
	case errors.Is(err, pcsc.ErrNoService):
		if os.Geteuid() != 0 {
			t.Fatal(notRunningMessage())
		}
		b.startDaemon(t, opts.Debug)
		pc = b.establish(t)
	case err != nil:
		t.Fatalf("testbench: connecting to pcscd: %v", err)
	}
	b.pc = pc
	b.findReaders(t)
	for slot := range Slots {
		if !waitFor(readyTimeout, func() bool { return tcpListening(VPCDPort + slot) }) {
			t.Fatalf("testbench: pcscd has reader %q but nothing listens on TCP port %d; is pcscd using the vsmartcard-vpcd reader.conf?", b.readers[slot], VPCDPort+slot)
		}
	}
	if opts.Debug {
		if b.started {
			t.Logf("testbench: pcscd log (--debug --apdu): %s", b.logPath)
		} else {
			t.Logf("testbench: pcscd was already running, so Debug has no effect: see that pcscd's own log")
		}
	}
	return b
}

func notRunningMessage() string {
	who := strconv.Itoa(os.Geteuid())
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return fmt.Sprintf("testbench: the smart card service pcscd is not running, and this test runs as %q, "+
		"who cannot start it. Start it as root, with the vsmartcard-vpcd package installed, and run the tests again:\n"+
		"\tsudo pcscd --foreground --debug --apdu > /tmp/pcscd.log 2>&1 &\n"+
		"or on a systemd desktop: sudo systemctl start pcscd.socket\n"+
		"(or run the tests as root: they then start and stop pcscd themselves)", who)
}

// startDaemon starts pcscd in the foreground and waits until its socket
// exists and the vpcd ports listen.
func (b *Bench) startDaemon(t testing.TB, debug bool) {
	t.Helper()
	bin, err := exec.LookPath("pcscd")
	if err != nil {
		bin = "/usr/sbin/pcscd" // root's PATH without sbin
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("testbench: pcscd is not installed (apt-get install pcscd vsmartcard-vpcd): %v", err)
		}
	}
	args := []string{"--foreground"}
	if debug {
		args = append(args, "--debug", "--apdu")
	}
	b.logPath = filepath.Join(b.logDir, "pcscd.log")
	logf, err := os.Create(b.logPath)
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close() // pcscd has its own descriptor
	if err != nil {
		t.Fatalf("testbench: starting pcscd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	daemon.mu.Lock()
	daemon.pid, daemon.exited = cmd.Process.Pid, exited
	daemon.mu.Unlock()
	b.started = true

	dir, err := lockDir()
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pcscd.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o666); err != nil {
		t.Fatalf("testbench: %v", err)
	}
	if err := startWatchdog(dir); err != nil {
		t.Logf("testbench: %v; a crash of this test process would leave pcscd running", err)
	}
	ready := waitFor(readyTimeout, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		fi, err := os.Stat(pcscdSocket)
		return err == nil && fi.Mode()&os.ModeSocket != 0 && tcpListening(VPCDPort) && tcpListening(VPCDPort+Slots-1)
	})
	select {
	case <-exited:
		t.Fatalf("testbench: pcscd exited at start (%v); its log:\n%s", cmd.ProcessState, tail(b.logPath, 40))
	default:
	}
	if !ready {
		t.Fatalf("testbench: pcscd not ready (socket %s, TCP ports %d-%d) after %v; its log:\n%s",
			pcscdSocket, VPCDPort, VPCDPort+Slots-1, readyTimeout, tail(b.logPath, 40))
	}
}

// establish connects to a pcscd that was just started; a stale socket file
// left by a killed pcscd can make the first attempts fail.
func (b *Bench) establish(t testing.TB) *pcsc.Context {
	t.Helper()
	var pc *pcsc.Context
	var err error
	waitFor(readyTimeout, func() bool {
		pc, err = pcsc.Establish()
		return err == nil
	})
	if err != nil {
		t.Fatalf("testbench: connecting to the pcscd just started: %v; its log:\n%s", err, tail(b.logPath, 40))
	}
	return pc
}

// findReaders waits until pcsc lists the vpcd readers and records their
// names by slot.
func (b *Bench) findReaders(t testing.TB) {
	t.Helper()
	var names []string
	var err error
	found := waitFor(readyTimeout, func() bool {
		names, err = b.pc.Readers()
		if err != nil {
			return false
		}
		for slot := range Slots {
			b.readers[slot] = ""
			suffix := fmt.Sprintf(" %02X", slot)
			for _, n := range names {
				if strings.HasPrefix(n, readerPrefix) && strings.HasSuffix(n, suffix) {
					b.readers[slot] = n
					break
				}
			}
			if b.readers[slot] == "" {
				return false
			}
		}
		return true
	})
	if !found {
		t.Fatalf("testbench: pcscd does not list the vpcd readers %q… (readers %q, err %v); is vsmartcard-vpcd installed?",
			readerPrefix, names, err)
	}
}

// ReaderName returns the PC/SC name of a vpcd reader: "Virtual PCD 00 00"
// for slot 0, "Virtual PCD 00 01" for slot 1, as pcscd lists them.
func (b *Bench) ReaderName(slot int) string {
	if slot < 0 || slot >= Slots {
		panic(fmt.Sprintf("testbench: slot %d out of range 0..%d", slot, Slots-1))
	}
	return b.readers[slot]
}

// Status returns pcscd's view of a reader.
func (b *Bench) Status(reader string) (pcsc.ReaderStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pc == nil {
		return pcsc.ReaderStatus{}, errors.New("testbench: bench stopped")
	}
	return b.pc.Status(context.Background(), reader)
}

// waitPresence waits until the reader's card presence is want, or until
// abort returns true.
func (b *Bench) waitPresence(reader string, want bool, d time.Duration, abort func() bool) error {
	var last error
	ok := waitFor(d, func() bool {
		if abort != nil && abort() {
			return true
		}
		st, err := b.Status(reader)
		last = err
		return err == nil && st.Present == want
	})
	if !ok {
		state := map[bool]string{true: "a card present", false: "the reader empty"}[want]
		if last != nil {
			return fmt.Errorf("pcscd did not report %s in %q within %v: %w", state, reader, d, last)
		}
		return fmt.Errorf("pcscd did not report %s in %q within %v", state, reader, d)
	}
	return nil
}

// stop releases the Bench; the last user of a pcscd started by a test stops
// it.
func (b *Bench) stop(t testing.TB, users *os.File) {
	b.mu.Lock()
	if b.pc != nil {
		_ = b.pc.Release()
		b.pc = nil
	}
	b.mu.Unlock()
	if t.Failed() && b.logPath != "" {
		t.Logf("testbench: end of the pcscd log %s:\n%s", b.logPath, tail(b.logPath, 40))
	}
	defer users.Close()
	if !tryLock(users, syscall.LOCK_EX) { // converting drops our shared lock
		return // another process still uses pcscd; the last one stops it
	}
	dir, err := lockDir()
	if err != nil {
		t.Errorf("testbench: %v", err)
		return
	}
	pidFile := filepath.Join(dir, "pcscd.pid")
	pid := readPID(pidFile)
	if pid == 0 {
		return // not started by a test: leave it alone
	}
	defer os.Remove(pidFile)
	if processName(pid) != "pcscd" {
		return // already gone
	}
	if err := stopProcess(pid, 10*time.Second); err != nil {
		t.Errorf("testbench: stopping pcscd: %v", err)
	}
}

// stopProcess sends SIGTERM and waits for the process to exit, then
// SIGKILL.
func stopProcess(pid int, d time.Duration) error {
	daemon.mu.Lock()
	var exited chan struct{}
	if daemon.pid == pid {
		exited = daemon.exited
	}
	daemon.mu.Unlock()
	gone := func() bool {
		if exited != nil {
			select {
			case <-exited:
				return true
			default:
				return false
			}
		}
		return processName(pid) == ""
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitFor(d, gone) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitFor(5*time.Second, gone) {
		return fmt.Errorf("pid %d ignored SIGTERM for %v and was killed", pid, d)
	}
	return fmt.Errorf("pid %d survived SIGKILL", pid)
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
