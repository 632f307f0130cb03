//go:build linux

package testbench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/pcsc"
)

// fakeSimEnv makes the test binary act as a stand-in for cie-sim: it takes
// the same flags, plugs a FakeCard into --vpcd and answers "stats" and
// "args" on --control. StartCard is tested with it, independently of the
// real simulator.
const fakeSimEnv = "CIE_TESTBENCH_FAKESIM"

func TestMain(m *testing.M) {
	if os.Getenv(fakeSimEnv) == "1" {
		os.Exit(fakeSim(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeSim(args []string) int {
	fs := flag.NewFlagSet("fake-cie-sim", flag.ContinueOnError)
	vpcd := fs.String("vpcd", "", "vpcd HOST:PORT")
	control := fs.String("control", "", "control socket")
	family := fs.String("family", "gemalto", "chip family")
	state := fs.String("state", "", "state directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// "args" tells the test what StartCard passed.
	f, err := startFake(*vpcd, *control, FakeCard{}, func(req string) string {
		if req == "args" {
			// StartCard gives the card a private copy of testdata/sim.
			desc := *state
			if _, err := os.Stat(filepath.Join(*state, "state.json")); err == nil && strings.HasPrefix(*state, os.TempDir()) {
				desc = "private copy"
			}
			return fmt.Sprintf("family=%s vpcd=%s state=%s", *family, *vpcd, desc)
		}
		return ""
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("fake cie-sim: card plugged into", *vpcd)
	<-f.done
	return 0
}

func TestStartFindsVirtualReaders(t *testing.T) {
	b := Start(t, Options{})
	for slot, want := range []string{"Virtual PCD 00 00", "Virtual PCD 00 01"} {
		if got := b.ReaderName(slot); got != want {
			t.Errorf("ReaderName(%d) = %q, want %q", slot, got, want)
		}
		if !tcpListening(VPCDPort + slot) {
			t.Errorf("nothing listens on vpcd port %d", VPCDPort+slot)
		}
	}
	if fi, err := os.Stat(pcscdSocket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("pcscd socket %s: %v, %v", pcscdSocket, fi, err)
	}
	if b.started {
		daemon.mu.Lock()
		t.Logf("STARTED PID %d", daemon.pid) // read by TestPcscdStartedByBenchIsStopped
		daemon.mu.Unlock()
	}
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatalf("Establish after Start: %v", err)
	}
	defer pc.Release()
	names, err := pc.Readers()
	if err != nil {
		t.Fatal(err)
	}
	for slot := range Slots {
		if !strings.Contains(strings.Join(names, "\n"), b.ReaderName(slot)) {
			t.Errorf("pcsc readers %q lack %q", names, b.ReaderName(slot))
		}
	}
	if os.Getenv(crashEnv) == "1" {
		os.Exit(3) // a crash for TestPcscdStoppedAfterCrash: no cleanup runs
	}
}

const crashEnv = "CIE_TESTBENCH_CRASH"

func TestFakeCardAnswersThroughPCSC(t *testing.T) {
	b := Start(t, Options{})
	echo := func(cmd []byte) []byte { return append(bytes.Clone(cmd[1:]), 0x90, 0x00) }
	c := b.StartFakeCard(t, FakeCard{Handle: echo})
	if c.Reader() != b.ReaderName(c.Slot()) {
		t.Errorf("card reader %q, slot %d is %q", c.Reader(), c.Slot(), b.ReaderName(c.Slot()))
	}
	st, err := b.Status(c.Reader())
	if err != nil || !st.Present || !bytes.Equal(st.ATR, GemaltoATR) {
		t.Fatalf("Status = %v, %v; want present with ATR %X", st, err, GemaltoATR)
	}

	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	ctx := context.Background()
	conn, err := pc.Connect(ctx, c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	cmd := []byte{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00}
	rsp, err := conn.Transmit(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Clone(cmd[1:]), 0x90, 0x00); !bytes.Equal(rsp, want) {
		t.Errorf("response % X, want % X", rsp, want)
	}
	conn.Close()

	stats, err := c.Control("stats")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("apdus=1 sent=%d received=%d", len(cmd)+1, len(cmd)); !strings.HasPrefix(stats, want) {
		t.Errorf("stats %q, want prefix %q", stats, want)
	}
	if got, _ := c.Control("bogus"); !strings.HasPrefix(got, "error:") {
		t.Errorf("unknown control request answered %q", got)
	}

	c.Stop(t)
	if st, err := b.Status(c.Reader()); err != nil || st.Present {
		t.Errorf("after Stop: %v, %v; want the reader empty", st, err)
	}
	if _, err := c.Control("stats"); err == nil {
		t.Error("control socket still answers after Stop")
	}
	c.Stop(t) // idempotent
}

func TestTwoCardsUseBothReaders(t *testing.T) {
	b := Start(t, Options{})
	c1 := b.StartFakeCard(t, FakeCard{})
	c2 := b.StartFakeCard(t, FakeCard{ATR: []byte{0x3B, 0x80, 0x80, 0x01, 0x01}})
	if c1.Slot() == c2.Slot() {
		t.Fatalf("both cards in slot %d", c1.Slot())
	}
	st, err := b.Status(c2.Reader())
	if err != nil || !bytes.Equal(st.ATR, []byte{0x3B, 0x80, 0x80, 0x01, 0x01}) {
		t.Errorf("second card: %v, %v", st, err)
	}
	c1.Stop(t)
	if st, err := b.Status(c2.Reader()); err != nil || !st.Present {
		t.Errorf("removing the first card disturbed the second: %v, %v", st, err)
	}
}

func TestStartCardRunsSimulator(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIE_SIM_BIN", exe)
	t.Setenv(fakeSimEnv, "1")
	b := Start(t, Options{})
	c := b.StartCard(t, "--family", "stm3")
	got, err := c.Control("args")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("family=stm3 vpcd=127.0.0.1:%d state=%s", VPCDPort+c.Slot(), "private copy"); got != want {
		t.Errorf("simulator saw %q, want %q", got, want)
	}

	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	conn, err := pc.Connect(context.Background(), c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if rsp, err := conn.Transmit(context.Background(), []byte{0x00, 0x84, 0x00, 0x00, 0x08}); err != nil || !bytes.Equal(rsp, []byte{0x90, 0x00}) {
		t.Errorf("Transmit = % X, %v", rsp, err)
	}
	conn.Close()
	if s, _ := c.Control("stats"); !strings.HasPrefix(s, "apdus=1 ") {
		t.Errorf("stats %q", s)
	}

	pid := c.cmd.Process.Pid
	c.Stop(t)
	if name := processName(pid); name != "" {
		t.Errorf("simulator pid %d still running (%s) after Stop", pid, name)
	}
	if st, err := b.Status(c.Reader()); err != nil || st.Present {
		t.Errorf("after Stop: %v, %v", st, err)
	}
}

func TestStartCardReportsEarlyExit(t *testing.T) {
	// A simulator that exits at once (bad flags) must fail the test with
	// its log, not hang until the presence timeout.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIE_SIM_BIN", exe)
	t.Setenv(fakeSimEnv, "1")
	b := Start(t, Options{})
	ft := &fatalRecorder{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.StartCard(ft, "--no-such-flag")
	}()
	<-done
	if !ft.fatal || !strings.Contains(ft.msg, "exited before the card was seen") || !strings.Contains(ft.msg, "no-such-flag") {
		t.Errorf("StartCard with a failing simulator: fatal=%v msg=%q", ft.fatal, ft.msg)
	}
	if d := time.Since(start); d > presentTimeout/2 {
		t.Errorf("took %v to notice the exit", d)
	}
}

// fatalRecorder records a Fatal instead of failing the test, and runs the
// cleanups registered through it at once when the caller is done.
type fatalRecorder struct {
	testing.TB
	fatal bool
	msg   string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fatal = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.fatal = true
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalRecorder) Helper() {}

func TestBuildBinaryOncePerProcess(t *testing.T) {
	p1 := BuildBinary(t, "./internal/testbench/testdata/hello")
	fi1, err := os.Stat(p1)
	if err != nil {
		t.Fatal(err)
	}
	p2 := BuildBinary(t, "./internal/testbench/testdata/hello")
	fi2, err := os.Stat(p2)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Errorf("second build: %s (%v), first %s (%v)", p2, fi2.ModTime(), p1, fi1.ModTime())
	}
	t.Logf("BUILT %s", p1) // read by TestBuildBinaryDirRemovedAtExit
	if filepath.Base(p1) != "hello" {
		t.Errorf("binary named %q", filepath.Base(p1))
	}
	out, err := exec.Command(p1, "x").Output()
	if err != nil || string(out) != "hello x\n" {
		t.Errorf("running it: %q, %v", out, err)
	}
}

func TestBuildBinaryDirRemovedAtExit(t *testing.T) {
	// In a child test process: build, print the path, exit. The cleaner must
	// remove the directory once the child is gone.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestBuildBinaryOncePerProcess$", "-test.v")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "BUILT ")
	if !ok {
		t.Fatalf("helper printed no path:\n%s", out)
	}
	path := strings.Fields(after)[0]
	dir := filepath.Dir(filepath.Dir(path))
	if !waitFor(5*time.Second, func() bool { _, err := os.Stat(dir); return os.IsNotExist(err) }) {
		t.Errorf("binaries directory %s still exists after the process exited", dir)
	}
}

func TestPcscdStartedByBenchIsStopped(t *testing.T) {
	// A child test process starts a Bench and exits. If it started pcscd
	// and no other process uses pcscd, pcscd must be gone.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestStartFindsVirtualReaders$", "-test.v")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	checkPcscdGone(t, out)
}

func TestPcscdStoppedAfterCrash(t *testing.T) {
	// The child starts a Bench and exits without running any cleanup, as a
	// crash or a test timeout does: the watchdog must stop its pcscd.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestStartFindsVirtualReaders$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"=1")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("helper did not crash as asked: %v\n%s", err, out)
	}
	checkPcscdGone(t, out)
}

// checkPcscdGone checks that the pcscd a finished child test process
// started (it prints "STARTED PID n") is stopped, unless another test
// process still uses it.
func checkPcscdGone(t *testing.T, out []byte) {
	t.Helper()
	var pid int
	if _, after, ok := strings.Cut(string(out), "STARTED PID "); ok {
		fmt.Sscan(after, &pid)
	}
	if pid == 0 {
		t.Logf("pcscd was already running; the helper used it:\n%s", out)
		return
	}
	users, err := openLock("pcscd.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	// A pcscd left running with no user holding the lock is a leak; one
	// still running while another test process holds the lock is not. The
	// watchdog needs a moment after the child's exit.
	leaked := !waitFor(5*time.Second, func() bool {
		if processName(pid) != "pcscd" {
			return true
		}
		if tryLock(users, syscall.LOCK_EX) {
			syscall.Flock(int(users.Fd()), syscall.LOCK_UN)
			return false
		}
		return true
	})
	if leaked {
		t.Errorf("pcscd pid %d started by the helper still runs and nobody uses it", pid)
	}
}

func TestHasFlag(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"--family", "nxp"}, false},
		{[]string{"--state", "/x"}, true},
		{[]string{"-state", "/x"}, true},
		{[]string{"--state=/x"}, true},
		{[]string{"--statefile", "/x"}, false},
		{[]string{"--", "--state"}, false},
	}
	for _, tt := range tests {
		if got := hasFlag(tt.args, "state"); got != tt.want {
			t.Errorf("hasFlag(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

// TestStartCardWithCIESim runs the real simulator (./cmd/cie-sim, built
// once) through the bench: the family's ATR reaches PC/SC, APDUs reach the
// card and its control socket answers.
func TestStartCardWithCIESim(t *testing.T) {
	b := Start(t, Options{})
	c := b.StartCard(t, "--family", "stm3")
	stm3 := []byte{0x3B, 0x8B, 0x80, 0x01, 0x80, 0x66, 0x47, 0x50, 0x00, 0xB8, 0x00, 0x94, 0x82, 0x90, 0x00, 0xC5}
	st, err := b.Status(c.Reader())
	if err != nil || !st.Present || !bytes.Equal(st.ATR, stm3) {
		t.Fatalf("Status = %v, %v; want the STM3 ATR % X", st, err, stm3)
	}
	if got, err := c.Control("pin-tries"); err != nil || got != "pin=3 puk=10" {
		t.Errorf("pin-tries = %q, %v; want a fresh card", got, err)
	}

	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	conn, err := pc.Connect(context.Background(), c.Reader())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rsp, err := conn.Transmit(context.Background(), []byte{0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00})
	if err != nil || len(rsp) < 2 {
		t.Fatalf("SELECT MF = % X, %v", rsp, err)
	}
	if s, err := c.Control("stats"); err != nil || !strings.HasPrefix(s, "apdus=1 ") {
		t.Errorf("stats = %q, %v", s, err)
	}
}
