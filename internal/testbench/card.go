//go:build linux

package testbench

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Card is a virtual card plugged into one vpcd reader: a cie-sim process
// (StartCard) or an in-process fake (StartFakeCard). It is removed in the
// test's cleanup, or earlier by Stop.
type Card struct {
	bench   *Bench
	slot    int
	reader  string
	control string // the control socket's path
	tmp     string // directory of the control socket
	lock    *os.File

	// cie-sim
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string

	// fake
	fake *fakeCard

	stopOnce sync.Once
}

// Reader returns the PC/SC name of the card's reader.
func (c *Card) Reader() string { return c.reader }

// Slot returns the vpcd slot (0 or 1) the card is plugged into.
func (c *Card) Slot() int { return c.slot }

// Control sends one request line to the card's control socket and returns
// the answer line without its newline, e.g. "stats" → "apdus=12 sent=345
// received=678".
func (c *Card) Control(cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return "", fmt.Errorf("testbench: control request %q spans lines", cmd)
	}
	conn, err := net.DialTimeout("unix", c.control, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("testbench: connecting to the card's control socket: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("testbench: sending control request %q: %w", cmd, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("testbench: reading the answer to control request %q: %w", cmd, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// simBinary returns the cie-sim executable: $CIE_SIM_BIN, or ./cmd/cie-sim
// built once per test process.
func simBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CIE_SIM_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testbench: CIE_SIM_BIN: %v", err)
		}
		return p
	}
	return BuildBinary(t, "./cmd/cie-sim")
}

// StartCard runs the cie-sim simulator with args (e.g. "--family",
// "gemalto", "--state", dir) plus "--vpcd 127.0.0.1:PORT" for a free reader
// and "--control SOCKET", and waits until pcscd reports the card present.
// Without a --state in args the card gets a private copy of the module's
// testdata/sim (fresh PIN counters, no key generation, nothing written
// outside the test). It waits for a reader while other tests hold both
// (a test that holds one card while starting a second can therefore wait
// for another test process doing the same, until the 3-minute bound).
// The card is removed in t.Cleanup; its log is shown when the test failed.
func (b *Bench) StartCard(t testing.TB, args ...string) *Card {
	t.Helper()
	bin := simBinary(t)
	logDir := t.TempDir()
	if !hasFlag(args, "state") {
		state := filepath.Join(t.TempDir(), "state")
		if err := copyDir(filepath.Join(ModuleRoot(t), "testdata", "sim"), state); err != nil {
			t.Fatalf("testbench: %v", err)
		}
		args = append([]string{"--state", state}, args...)
	}
	c := b.newCard(t)
	c.logPath = filepath.Join(logDir, fmt.Sprintf("cie-sim-slot%d.log", c.slot))
	logf, err := os.Create(c.logPath)
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	full := append([]string{"--vpcd", fmt.Sprintf("127.0.0.1:%d", VPCDPort+c.slot), "--control", c.control}, args...)
	c.cmd = exec.Command(bin, full...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	killWithParent(c.cmd)
	err = c.cmd.Start()
	logf.Close()
	if err != nil {
		t.Fatalf("testbench: starting %s: %v", bin, err)
	}
	c.exited = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.exited) }()

	exitedEarly := func() bool {
		select {
		case <-c.exited:
			return true
		default:
			return false
		}
	}
	err = b.waitPresence(c.reader, true, presentTimeout, exitedEarly)
	if exitedEarly() {
		t.Fatalf("testbench: cie-sim %q exited before the card was seen (%v); its log:\n%s",
			full, c.cmd.ProcessState, tail(c.logPath, 40))
	}
	if err != nil {
		t.Fatalf("testbench: %v; cie-sim log:\n%s", err, tail(c.logPath, 40))
	}
	return c
}

// hasFlag reports whether args set the flag name, in any of the forms the
// flag package accepts (-name, --name, with or without =value).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// copyDir copies the regular files of src into a new directory dst,
// keeping their permissions. A missing src gives an empty dst.
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("creating card state directory: %w", err)
	}
	entries, err := os.ReadDir(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading card state template: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("copying card state: %w", err)
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return fmt.Errorf("copying card state: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, info.Mode().Perm()); err != nil {
			return fmt.Errorf("copying card state: %w", err)
		}
	}
	return nil
}

// FakeCard is an in-process virtual card for tests of the PC/SC layer:
// it answers the vpcd protocol with a fixed ATR and a function of the
// command. Its control socket answers "stats" with
// "apdus=N sent=N received=N resets=N" (APDUs answered, response and
// command bytes, resets seen).
type FakeCard struct {
	// ATR is the answer to reset; nil means the Gemalto CIE ATR
	// 3B 8F 80 01 80 31 80 65 B0 85 04 00 11 12 0F FF 82 90 00 8A.
	ATR []byte
	// Handle answers one command APDU with a response APDU (data and
	// SW1SW2); nil answers 90 00 to everything.
	Handle func(cmd []byte) []byte
}

// GemaltoATR is the ATR of the Gemalto CIE 3.0 chip.
var GemaltoATR = []byte{0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x00, 0x11, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00, 0x8A}

// StartFakeCard plugs an in-process FakeCard into a free reader and waits
// until pcscd reports it present. Stop (or the test's cleanup) removes it
// by closing its connection, as pulling a card out of a reader would.
func (b *Bench) StartFakeCard(t testing.TB, fc FakeCard) *Card {
	t.Helper()
	c := b.newCard(t)
	f, err := startFake(fmt.Sprintf("127.0.0.1:%d", VPCDPort+c.slot), c.control, fc, nil)
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	c.fake = f
	if err := b.waitPresence(c.reader, true, presentTimeout, f.isDone); err != nil {
		t.Fatalf("testbench: %v", err)
	}
	if f.isDone() {
		t.Fatalf("testbench: the fake card's connection ended before pcscd saw it: %v", f.err())
	}
	return c
}

// newCard reserves a free reader and the control socket's directory, and
// registers the card's removal in t.Cleanup.
func (b *Bench) newCard(t testing.TB) *Card {
	t.Helper()
	slot, lock := b.acquireSlot(t)
	// Unix socket paths are limited to 108 bytes: t.TempDir() paths,
	// which carry the test name, can be longer.
	tmp, err := os.MkdirTemp("", "cie-card-")
	if err != nil {
		lock.Close()
		t.Fatalf("testbench: %v", err)
	}
	c := &Card{bench: b, slot: slot, reader: b.readers[slot], lock: lock, tmp: tmp,
		control: filepath.Join(tmp, "control.sock")}
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// acquireSlot locks a vpcd reader that no other test holds and pcscd
// reports empty (a developer's own card may sit in one).
func (b *Bench) acquireSlot(t testing.TB) (int, *os.File) {
	t.Helper()
	deadline := time.Now().Add(slotTimeout)
	logged := false
	for {
		for slot := range Slots {
			f, err := openLock(fmt.Sprintf("slot-%d.lock", slot))
			if err != nil {
				t.Fatalf("testbench: %v", err)
			}
			if !tryLock(f, syscall.LOCK_EX) {
				f.Close()
				continue
			}
			if st, err := b.Status(b.readers[slot]); err == nil && !st.Present {
				return slot, f
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("testbench: no free virtual reader within %v: other tests (or cards not started by tests) hold %q and %q",
				slotTimeout, b.readers[0], b.readers[1])
		}
		if !logged {
			t.Logf("testbench: both virtual readers are busy; waiting up to %v", slotTimeout)
			logged = true
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop removes the card: it kills cie-sim (or closes the fake card's
// connection), waits until pcscd reports the reader empty and frees the
// reader. Calling it again is a no-op.
func (c *Card) Stop(t testing.TB) {
	t.Helper()
	c.stopOnce.Do(func() {
		defer c.lock.Close() // frees the reader for other tests
		defer os.RemoveAll(c.tmp)
		if c.cmd != nil {
			_ = c.cmd.Process.Kill()
			select {
			case <-c.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("testbench: cie-sim (pid %d) did not exit 10 s after SIGKILL", c.cmd.Process.Pid)
			}
			if t.Failed() {
				t.Logf("testbench: end of the cie-sim log %s:\n%s", c.logPath, tail(c.logPath, 40))
			}
		}
		if c.fake != nil {
			c.fake.close()
		}
		if err := c.bench.waitPresence(c.reader, false, presentTimeout, nil); err != nil {
			t.Errorf("testbench: removing the card: %v", err)
		}
	})
}

// fakeCard is the running state of a FakeCard.
type fakeCard struct {
	spec  FakeCard
	more  func(req string) string
	conn  *net.TCPConn
	ln    net.Listener
	wg    sync.WaitGroup
	done  chan struct{}
	mu    sync.Mutex
	cause error

	apdus, sent, received, resets atomic.Int64
}

// startFake connects a FakeCard to vpcd at addr and serves its control
// socket; more, if not nil, answers control requests the fake does not know
// (an empty answer means unknown).
func startFake(addr, control string, spec FakeCard, more func(req string) string) (*fakeCard, error) {
	if spec.ATR == nil {
		spec.ATR = GemaltoATR
	}
	if spec.Handle == nil {
		spec.Handle = func([]byte) []byte { return []byte{0x90, 0x00} }
	}
	ln, err := net.Listen("unix", control)
	if err != nil {
		return nil, fmt.Errorf("listening on the control socket: %w", err)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("connecting the fake card to vpcd at %s: %w", addr, err)
	}
	f := &fakeCard{spec: spec, more: more, conn: conn.(*net.TCPConn), ln: ln, done: make(chan struct{})}
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		defer close(f.done)
		err := serveVPCD(f.conn, f)
		f.mu.Lock()
		f.cause = err
		f.mu.Unlock()
	}()
	go func() {
		defer f.wg.Done()
		serveControl(ln, f.controlAnswer)
	}()
	return f, nil
}

func (f *fakeCard) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *fakeCard) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cause
}

func (f *fakeCard) close() {
	f.conn.Close()
	f.ln.Close()
	f.wg.Wait()
}

func (f *fakeCard) atr() []byte { return f.spec.ATR }

func (f *fakeCard) reset() { f.resets.Add(1) }

func (f *fakeCard) apdu(cmd []byte) []byte {
	f.apdus.Add(1)
	f.received.Add(int64(len(cmd)))
	rsp := f.spec.Handle(cmd)
	f.sent.Add(int64(len(rsp)))
	return rsp
}

func (f *fakeCard) controlAnswer(req string) string {
	switch req {
	case "stats":
		return fmt.Sprintf("apdus=%d sent=%d received=%d resets=%d",
			f.apdus.Load(), f.sent.Load(), f.received.Load(), f.resets.Load())
	}
	if f.more != nil {
		if a := f.more(req); a != "" {
			return a
		}
	}
	return fmt.Sprintf("error: unknown request %q", req)
}
