package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// Fault injection through the real stack (pcscd + vpcd + cie-sim) while
// the real module (driven by p11hard) and the real CLI work: the card
// pulled during a signature, reset by another application between login
// and signature, pcscd restarted, a bad MAC and unexpected status words.
// What must hold every time: a clean CK_RV or message, no crash, no hang
// (every call is bounded), no PIN try spent and no PIN resent by a
// recovery, and the card works again afterwards.

// simLogPath returns the log of the cie-sim that t started (with -v, it
// has one line per APDU: header, lengths and status word, never data).
// testbench writes it into one of the test's temporary directories.
func simLogPath(t *testing.T) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(t.TempDir()), "*", "cie-sim-slot*.log"))
	if len(matches) != 1 {
		t.Fatalf("want the log of exactly one cie-sim started by this test, found %q", matches)
	}
	return matches[0]
}

// verifyRE matches a VERIFY of the PIN (P2 81) or the PUK (82) in the
// simulator's log. Under secure messaging, a VERIFY without data (asking
// the tries left, no try spent) carries only the MAC object: 10 bytes.
var verifyRE = regexp.MustCompile(`cmd="([0-9A-F]{2}) 20 00 (8[12]) Nc=(\d+) `)

// pinVerify matches a VERIFY carrying the PIN under secure messaging.
var pinVerify = regexp.MustCompile(`cmd="0C 20 00 81 Nc=(1[1-9]|[2-9]\d) `)

// pinSent counts the VERIFY commands that carried a PIN or PUK.
func pinSent(t *testing.T, log string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range verifyRE.FindAllStringSubmatch(string(b), -1) {
		nc, _ := strconv.Atoi(m[3])
		if (m[1] == "0C" && nc > 10) || (m[1] == "00" && nc > 0) {
			n++
		}
	}
	return n
}

// wantTries fails unless the card reports these tries left.
func wantTries(t *testing.T, card *testbench.Card, want, when string) {
	t.Helper()
	got, err := card.Control("pin-tries")
	if err != nil || got != want {
		t.Fatalf("%s: the card reports %q (%v), want %q", when, got, err, want)
	}
}

func control(t *testing.T, card *testbench.Card, req string) {
	t.Helper()
	if ans, err := card.Control(req); err != nil || ans != "ok" {
		t.Fatalf("cie-sim control %q: %q %v", req, ans, err)
	}
}

// waitPresent waits until pcscd reports the card in or out.
func waitPresent(t *testing.T, bench *testbench.Bench, reader string, present bool) {
	t.Helper()
	for range 300 {
		if st, err := bench.Status(reader); err == nil && st.Present == present {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pcscd did not report present=%v in %q within 15 s", present, reader)
}

// armAfter injects a fault into the card as soon as its log shows the
// n-th APDU matching re, that is between that APDU and the next one. The
// card's latency must leave the time to do it (60 ms is plenty: the log is
// polled every 2 ms). The returned channel is closed once the fault is
// armed or the context ends.
func armAfter(ctx context.Context, t *testing.T, card *testbench.Card, log string, re *regexp.Regexp, n int, fault string) <-chan error {
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			b, _ := os.ReadFile(log)
			if len(re.FindAllIndex(b, -1)) >= n {
				ans, err := card.Control(fault)
				if err == nil && ans != "ok" {
					err = fmt.Errorf("control %q: %s", fault, ans)
				}
				done <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		done <- fmt.Errorf("the card never showed %d APDUs matching %q", n, re)
	}()
	return done
}

// TestFaults drives the module and the CLI through injected faults.
func TestFaults(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())
	harness := buildHardHarness(t)

	t.Run("card pulled during C_Sign", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "gemalto", "-v")
		log := simLogPath(t)
		p := newP11(t, module, card.Reader())
		r := startRepl(t, harness, module, p.env())
		r.must("init")
		r.must("slot " + card.Reader())
		r.must("open")
		r.must("login " + defaultPIN)
		verifies(t, "warm-up", r.must("sign warm-up").signature(t))
		sent := pinSent(t, log)

		// 300 ms per APDU: the signature (INTERNAL AUTHENTICATE, GET
		// RESPONSE) takes at least 600 ms; the card leaves after 450.
		control(t, card, "latency 300ms")
		r.send("sign pulled")
		r.expect("signing")
		time.Sleep(450 * time.Millisecond)
		control(t, card, "remove")
		rep := r.reply()
		control(t, card, "latency 0ms")
		t.Logf("C_Sign with the card pulled out: %s after %v", rvName(rep.rv), rep.took)
		switch rep.rv {
		case rvDeviceRemoved, rvTokenNotPresent, rvSessionClosed, rvSessionHandleInvalid:
		default:
			t.Fatalf("C_Sign with the card pulled out returned %s, want CKR_DEVICE_REMOVED or another card-gone RV\n%s",
				rvName(rep.rv), r.transcript())
		}
		waitPresent(t, bench, card.Reader(), false)
		rep = r.do("present")
		t.Logf("C_GetSlotList(tokenPresent) with the card out: %s, %s", rvName(rep.rv), rep.detail)
		if rep.rv != rvOK || rep.detail != "present 0" {
			t.Fatalf("with the card out: %s %q, want CKR_OK and no token", rvName(rep.rv), rep.detail)
		}
		rep = r.do("sign old session")
		t.Logf("C_Sign on the old session with the card out: %s", rvName(rep.rv))
		if rep.rv == rvOK {
			t.Fatal("the old session signed without the card")
		}
		wantTries(t, card, "pin=3 puk=10", "after the card was pulled")
		if n := pinSent(t, log); n != sent {
			t.Fatalf("the recovery sent the PIN %d more time(s)", n-sent)
		}

		control(t, card, "insert")
		waitPresent(t, bench, card.Reader(), true)
		rep = r.do("present")
		if rep.rv != rvOK || rep.detail != "present 1" {
			t.Fatalf("after re-insertion: %s %q, want the token back", rvName(rep.rv), rep.detail)
		}
		rep = r.do("sign old session")
		t.Logf("C_Sign on the old session after re-insertion: %s", rvName(rep.rv))
		if rep.rv == rvOK {
			t.Fatal("a session of the removed card signed on the re-inserted card without a login")
		}
		r.must("open")
		r.must("login " + defaultPIN)
		verifies(t, "after re-insertion", r.must("sign after re-insertion").signature(t))
		wantTries(t, card, "pin=3 puk=10", "after re-insertion")
		if n := pinSent(t, log); n != sent+1 {
			t.Fatalf("%d PIN VERIFYs since the card was pulled, want 1 (the new login)", n-sent)
		}
	})

	t.Run("card reset by another application between C_Login and C_Sign", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "bit4id2023", "-v")
		log := simLogPath(t)
		p := newP11(t, module, card.Reader())
		cli := testbench.BuildBinary(t, "./cmd/cie")
		r := startRepl(t, harness, module, p.env())
		r.must("init")
		r.must("slot " + card.Reader())
		r.must("open")
		for _, f := range []struct {
			name  string
			fault func()
		}{
			{"PC/SC reset (SCardReconnect with SCARD_RESET_CARD)", func() { resetThroughPCSC(t, card.Reader()) }},
			{"the card's own reset (cie-sim reset)", func() { control(t, card, "reset") }},
			{"another application's secure channel (cie status)", func() {
				runCIE(t, cli, card.Reader(), "", "status").expect(t, 0, "stdout", `PIN:\s+3 tries left`)
			}},
		} {
			r.must("login " + defaultPIN)
			sent := pinSent(t, log)
			f.fault()
			rep := r.do("sign after a reset")
			t.Logf("%s: C_Sign %s after %v", f.name, rvName(rep.rv), rep.took)
			switch rep.rv {
			case rvOK:
				verifies(t, "after a reset", rep.signature(t))
			case rvUserNotLoggedIn:
				if n := pinSent(t, log); n != sent {
					t.Fatalf("%s: the module resent the PIN (%d VERIFY with data) before saying 'log in again'", f.name, n-sent)
				}
				r.must("login " + defaultPIN)
				verifies(t, "after a new login", r.must("sign after a new login").signature(t))
			default:
				t.Fatalf("%s: C_Sign returned %s, want a signature or CKR_USER_NOT_LOGGED_IN\n%s", f.name, rvName(rep.rv), r.transcript())
			}
			wantTries(t, card, "pin=3 puk=10", f.name)
			r.do("logout")
		}
	})

	t.Run("bad MAC and unexpected status words during CLI commands", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "stm2", "-v")
		log := simLogPath(t)
		cli := testbench.BuildBinary(t, "./cmd/cie")
		reader := card.Reader()
		// 'cie cert' checks the PIN status (VERIFY without data under SM)
		// twice: when the card is opened (for the tries left) and again in
		// its transaction (cardsession.Session.Hold), just before the
		// VERIFY with the PIN.
		statusCheck := regexp.MustCompile(`cmd="0C 20 00 81 Nc=10 `)
		const wrongPIN = "11223344"
		// A broken secure channel (bad MAC, a bare status word) stops the
		// command: one line that says so and what to do.
		const smFailure = `^cie: [^\n]*secure messaging[^\n]*try again[^\n]*\n$`
		cases := []struct {
			name       string
			stdin      string
			args       []string
			fault      string
			before     *regexp.Regexp // arm after the n-th match; nil: arm before the command
			nth        int
			code       int
			message    string // stderr (or stdout for code 0)
			tries      string
			pinsSent   int // VERIFYs carrying a PIN in this command
			needsReset bool
		}{
			{name: "bad MAC in the handshake of cie status is repaired", args: []string{"status"}, fault: "badmac",
				code: 0, message: `PIN:\s+3 tries left`, tries: "pin=3 puk=10"},
			{name: "6F00 to the first command of cie status is repaired", args: []string{"status"}, fault: "sw 6F00",
				code: 0, message: `PIN:\s+3 tries left`, tries: "pin=3 puk=10"},
			{name: "bad MAC on the answer to the PIN", stdin: defaultPIN + "\n", args: []string{"--pin-stdin", "cert"},
				fault: "badmac", before: statusCheck, nth: 2,
				code: 1, message: smFailure, tries: "pin=3 puk=10", pinsSent: 1},
			{name: "bad MAC on the status check in the transaction is repaired", stdin: defaultPIN + "\n", args: []string{"--pin-stdin", "cert"},
				fault: "badmac", before: statusCheck, nth: 1,
				code: 0, message: `BEGIN CERTIFICATE`, tries: "pin=3 puk=10", pinsSent: 1},
			{name: "bad MAC on the answer to a wrong PIN", stdin: wrongPIN + "\n", args: []string{"--pin-stdin", "cert"},
				fault: "badmac", before: statusCheck, nth: 2,
				code: 1, message: smFailure, tries: "pin=2 puk=10", pinsSent: 1, needsReset: true},
			{name: "6F00 instead of the answer to the PIN", stdin: wrongPIN + "\n", args: []string{"--pin-stdin", "cert"},
				fault: "sw 6F00", before: statusCheck, nth: 2,
				code: 1, message: smFailure, tries: "pin=3 puk=10", pinsSent: 1},
			{name: "6982 to the certificate read after the PIN", stdin: defaultPIN + "\n", args: []string{"--pin-stdin", "cert"},
				fault: "sw 6982", before: pinVerify, nth: 1,
				code: 1, message: `^cie: the card asks for the PIN again \(it was reset\): repeat the operation\n$`, tries: "pin=3 puk=10", pinsSent: 1},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				control(t, card, "latency 60ms")
				defer control(t, card, "latency 0ms")
				sent := pinSent(t, log)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var armed <-chan error
				if tc.before == nil {
					control(t, card, tc.fault)
				} else {
					base := len(tc.before.FindAllString(readFile(t, log), -1))
					armed = armAfter(ctx, t, card, log, tc.before, base+tc.nth, tc.fault)
				}
				start := time.Now()
				res := runCIE(t, cli, reader, tc.stdin, tc.args...)
				took := time.Since(start)
				cancel()
				if armed != nil {
					if err := <-armed; err != nil {
						t.Fatalf("arming %q: %v", tc.fault, err)
					}
				}
				t.Logf("exit %d after %v: %s", res.code, took.Round(time.Millisecond), strings.TrimSpace(res.stderr))
				if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "panic") {
					t.Fatalf("the CLI crashed:\n%s", res.stderr)
				}
				// Safety first: the PIN went to the card once, no try was lost.
				if n := pinSent(t, log) - sent; n != tc.pinsSent {
					t.Fatalf("the PIN was sent %d times, want %d: a recovery resent it", n, tc.pinsSent)
				}
				wantTries(t, card, tc.tries, tc.name)
				// Then the message: what happened and what to do, not the error chain.
				out := res.stderr
				if tc.code == 0 {
					out = res.stdout
				}
				if res.code != tc.code || !regexp.MustCompile(tc.message).MatchString(out) {
					t.Errorf("cie %v with %q: exit %d (want %d), output does not match %q\nstdout:\n%s\nstderr:\n%s",
						tc.args, tc.fault, res.code, tc.code, tc.message, res.stdout, res.stderr)
				}
				for _, jargon := range []string{"error: cie:", "sm: ", "unprotecting", "bare status word"} {
					if strings.Contains(res.stderr, jargon) {
						t.Errorf("the message shows the error chain (%q) instead of saying what happened and what to do:\n%s", jargon, res.stderr)
					}
				}
				if tc.needsReset {
					// Put the counter back for the next case.
					runCIE(t, cli, reader, defaultPIN+"\n", "--pin-stdin", "cert").expect(t, 0, "stdout", `BEGIN CERTIFICATE`)
					wantTries(t, card, "pin=3 puk=10", "after a good PIN")
				}
			})
		}
	})

	t.Run("card pulled during cie sign", func(t *testing.T) {
		card := bench.StartCard(t, "--family", "nxp", "-v")
		log := simLogPath(t)
		cli := testbench.BuildBinary(t, "./cmd/cie")
		doc := filepath.Join(t.TempDir(), "lettera.txt")
		if err := os.WriteFile(doc, []byte("Egregio Sindaco,\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		control(t, card, "latency 100ms")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Out of the reader just after the PIN was verified.
		armed := armAfter(ctx, t, card, log, pinVerify, 1, "remove")
		start := time.Now()
		res := runCIE(t, cli, card.Reader(), defaultPIN+"\n", "--pin-stdin", "sign", doc)
		if err := <-armed; err != nil {
			t.Fatal(err)
		}
		t.Logf("exit %d after %v: %s", res.code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(res.stderr))
		res.expect(t, 4, "stderr", `^cie: the card was removed from the reader: put it back and try again\n$`)
		if _, err := os.Stat(doc + ".p7m"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a signed file was written without a signature: %v", err)
		}
		control(t, card, "latency 0ms")
		control(t, card, "insert")
		waitPresent(t, bench, card.Reader(), true)
		wantTries(t, card, "pin=3 puk=10", "after the card was pulled")
		runCIE(t, cli, card.Reader(), defaultPIN+"\n", "--pin-stdin", "sign", doc).expect(t, 0, "stdout", `Signed`)
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// resetThroughPCSC resets the card as another application can: a shared
// connection, then SCardReconnect with SCARD_RESET_CARD.
func resetThroughPCSC(t *testing.T, reader string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	c, err := pc.Connect(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Reconnect(ctx, true); err != nil {
		t.Fatalf("resetting the card: %v", err)
	}
}

// privatePCSCDEnv marks the re-executed test process that runs inside its
// own mount and network namespace with a private pcscd.
const privatePCSCDEnv = "CIE_E2E_PRIVATE_PCSCD"

// TestFaultPCSCDRestart restarts pcscd under the module: while it is down
// the module answers at once (no token, or a card-gone RV), and the first
// call after the restart finds the token again; a new login signs. The
// shared pcscd of the other tests must not be touched, so the test runs
// itself again in a private mount and network namespace (unshare) with its
// own pcscd, as testbench.md §1.7 describes.
func TestFaultPCSCDRestart(t *testing.T) {
	if os.Getenv(privatePCSCDEnv) == "1" {
		pcscdRestartInNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test runs pcscd in a private namespace (unshare --mount --net), which needs root; run the e2e tests as root, as CI does")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	module := buildModule(t, t.TempDir())
	env := append(os.Environ(), privatePCSCDEnv+"=1",
		"CIE_E2E_MODULE="+module,
		"CIE_E2E_HARNESS="+buildHardHarness(t),
		"CIE_SIM_BIN="+testbench.BuildBinary(t, "./cmd/cie-sim"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--net", "--fork", "--kill-child",
		os.Args[0], "-test.run=^TestFaultPCSCDRestart$", "-test.v", "-test.timeout=90s", "-test.count=1")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Logf("in the private namespace:\n%s", out)
	if ctx.Err() != nil {
		t.Fatal("the namespaced test hung and was killed after 100 s")
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFaultPCSCDRestart") {
		t.Fatalf("the namespaced test failed: %v", err)
	}
}

// pcscdRestartInNamespace is TestFaultPCSCDRestart inside the namespace:
// nothing of testbench (its locks and pid files are shared with the host's
// tests), its own pcscd and cie-sim.
func pcscdRestartInNamespace(t *testing.T) {
	module, harness, sim := os.Getenv("CIE_E2E_MODULE"), os.Getenv("CIE_E2E_HARNESS"), os.Getenv("CIE_SIM_BIN")
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	if err := os.MkdirAll("/run/pcscd", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", "/run/pcscd", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mounting a private /run/pcscd: %v", err)
	}
	dir := t.TempDir()
	pcscdBin, err := exec.LookPath("pcscd")
	if err != nil {
		pcscdBin = "/usr/sbin/pcscd"
	}
	startPCSCD := func(n int) *exec.Cmd {
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("pcscd-%d.log", n)))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command(pcscdBin, "--foreground")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(10 * time.Second)
		for {
			if fi, err := os.Stat("/run/pcscd/pcscd.comm"); err == nil && fi.Mode()&os.ModeSocket != 0 && listening(35963) {
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatalf("the private pcscd did not start; its log:\n%s", readFile(t, logf.Name()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	reader := "Virtual PCD 00 00"
	cardPresent := func() {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if pc, err := pcsc.Establish(); err == nil {
				st, err := pc.Status(context.Background(), reader)
				pc.Release()
				if err == nil && st.Present {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("the card did not appear in the private pcscd within 15 s")
	}

	daemon := startPCSCD(1)
	state := stateCopy(t)
	sock := filepath.Join(dir, "control.sock")
	simLog := filepath.Join(dir, "cie-sim.log")
	logf, err := os.Create(simLog)
	if err != nil {
		t.Fatal(err)
	}
	simCmd := exec.Command(sim, "--vpcd", "127.0.0.1:35963", "--control", sock, "--state", state, "--family", "actalis2023", "-v")
	simCmd.Stdout, simCmd.Stderr = logf, logf
	simCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := simCmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() { simCmd.Process.Kill(); simCmd.Wait() })
	cardPresent()

	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"CIE_PKCS11_LOG="+filepath.Join(home, "pkcs11.log"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("module log:\n%s", lastLines(readFile(t, filepath.Join(home, "pkcs11.log")), 40))
			t.Logf("cie-sim log:\n%s", lastLines(readFile(t, simLog), 20))
		}
	})
	r := startRepl(t, harness, module, env)
	r.must("init")
	r.must("slot " + reader)
	r.must("open")
	r.must("login " + defaultPIN)
	verifies(t, "before the restart", r.must("sign before the restart").signature(t))

	// pcscd goes away.
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()
	for _, c := range []string{"present", "token", "sign while pcscd is down"} {
		rep := r.do(c)
		t.Logf("pcscd down: %-26q → %s after %v %s", c, rvName(rep.rv), rep.took, rep.detail)
		if rep.took > 5*time.Second {
			t.Fatalf("%q took %v with pcscd down", c, rep.took)
		}
		if c == "present" && (rep.rv != rvOK || rep.detail != "present 0") {
			t.Fatalf("with pcscd down, C_GetSlotList(tokenPresent) = %s %q, want CKR_OK without the token", rvName(rep.rv), rep.detail)
		}
		if strings.HasPrefix(c, "sign") && rep.rv == rvOK {
			t.Fatal("signed with pcscd down")
		}
	}

	// pcscd is back, the card reconnects to its vpcd.
	startPCSCD(2)
	cardPresent()
	rep := r.do("present")
	t.Logf("pcscd restarted: the first call, C_GetSlotList(tokenPresent) → %s %s", rvName(rep.rv), rep.detail)
	if rep.rv != rvOK || rep.detail != "present 1" {
		t.Fatalf("after the restart the first call found %s %q, want the token", rvName(rep.rv), rep.detail)
	}
	rep = r.do("token")
	t.Logf("pcscd restarted: C_GetTokenInfo → %s %s", rvName(rep.rv), rep.detail)
	if rep.rv != rvOK {
		t.Fatalf("C_GetTokenInfo after the restart: %s", rvName(rep.rv))
	}
	rep = r.do("sign on the old session")
	t.Logf("pcscd restarted: C_Sign on the session of before → %s", rvName(rep.rv))
	if rep.rv == rvOK {
		t.Fatal("the session of before the restart signed without a login: the card was powered off meanwhile")
	}
	r.must("open")
	r.must("login " + defaultPIN)
	verifies(t, "after the restart", r.must("sign after the restart").signature(t))

	ans, err := exec.Command(sim, "--control", sock, "--send", "pin-tries").Output()
	if err != nil || strings.TrimSpace(string(ans)) != "pin=3 puk=10" {
		t.Fatalf("pin-tries after the restart: %q %v", ans, err)
	}
	if n := pinSent(t, simLog); n != 2 {
		t.Fatalf("%d VERIFYs with the PIN, want 2 (the login before and the one after the restart)", n)
	}
}

// listening reports whether a TCP socket listens on port in this network
// namespace.
func listening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, p := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(p)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
				return true
			}
		}
	}
	return false
}
