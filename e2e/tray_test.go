package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/bits"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/browser"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// TestTrayUnderXvfb runs the real cie-tray on an X server (Xvfb) with a
// private D-Bus session on which the test plays the desktop: a tray host
// (StatusNotifierWatcher) and a notification server. The virtual CIE sits
// in a vpcd reader of pcscd. Through the tray menu (D-Bus, as a panel
// does) it opens every window and saves a screenshot of each under
// $CIE_ARTIFACTS (default: a temporary directory); with the keyboard
// (xdotool, as a user) it changes the PIN, blocks it with wrong PINs and
// unblocks it with the PUK, checking the card's counters each time; it
// registers the PKCS#11 module in a Firefox profile, a Chromium NSS
// database and a Firefox policy of its home, and removes it, from the tray
// menu (browser.Status checks the files); it checks the tray's tooltip,
// icon, menu and notifications, and the `cie-tray pinentry` dialog.
func TestTrayUnderXvfb(t *testing.T) {
	for _, tool := range []string{"Xvfb", "xdotool", "xwd", "dbus-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install xvfb xdotool x11-apps dbus-daemon (scripts/install-deps.sh)", tool)
		}
	}
	artifacts := os.Getenv("CIE_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", artifacts)

	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie-tray")
	card := bench.StartCard(t, "--family", "gemalto", "--state", stateCopy(t))
	reader := card.Reader()

	tmp := t.TempDir()
	display := startXvfb(t)
	busAddr := startBus(t, tmp)
	desk := newFakeDesktop(t, busAddr)

	home := filepath.Join(tmp, "home")
	run := filepath.Join(tmp, "run")
	trust := filepath.Join(home, ".config", "cie-desktop", "trust")
	for _, d := range []string{home, run, trust} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The verify window trusts the simulator's CA, as a citizen's would the CIE's.
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: st.CACert.Raw})
	if err := os.WriteFile(filepath.Join(trust, "cie-sim-ca.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The browsers of the user: a Firefox profile that is open (its lock
	// exists) and Chromium's NSS database; a system-wide Firefox policy
	// file that does not exist yet, in a directory the user may write; the
	// module, a file that passes browser.CheckModule (registering only
	// writes its path; browser_test.go loads the real one in browsers).
	browsers := trayBrowsers(t, home, tmp)
	env := append(os.Environ(),
		"DISPLAY="+display,
		"DBUS_SESSION_BUS_ADDRESS="+busAddr,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_RUNTIME_DIR="+run,
		"LANG=it_IT.UTF-8", "LANGUAGE=", "LC_ALL=", "LC_MESSAGES=",
	)
	x := &xsession{t: t, display: display, artifacts: artifacts}

	// The tray app.
	events := newEventLog(t, filepath.Join(tmp, "tray-events.jsonl"))
	trayCmd := exec.Command(bin, "--reader", reader, "--module", browsers.Module, "--firefox-policy", browsers.PolicyFiles[0])
	trayCmd.Env = append(env, "CIE_TRAY_EVENTS="+events.path)
	var trayOut bytes.Buffer
	trayCmd.Stdout, trayCmd.Stderr = &trayOut, &trayOut
	trayCmd.WaitDelay = 2 * time.Second
	if err := trayCmd.Start(); err != nil {
		t.Fatal(err)
	}
	trayExited := make(chan struct{})
	var trayErr error
	go func() { trayErr = trayCmd.Wait(); close(trayExited) }()
	t.Cleanup(func() {
		select {
		case <-trayExited:
		default:
			_ = trayCmd.Process.Kill()
			<-trayExited
		}
		if t.Failed() {
			t.Logf("cie-tray output:\n%s\nevents:\n%s", trayOut.String(), events.dump())
		}
	})

	// The tray registers with the host, shows the card and its PIN state.
	item := desk.waitItem(t, 20*time.Second)
	events.wait("the CIE in the tray", 20*time.Second, func(e trayEvent) bool {
		return e.Event == "status" && e.Title == "cie"
	})
	tip := desk.tooltip(t, item)
	if tip != "CIE Desktop — CIE pronta: PIN, 3 tentativi rimasti" {
		t.Fatalf("tray tooltip %q", tip)
	}
	desk.expectIconColour(t, item, "green")
	menu := desk.menu(t, item)
	for _, want := range []string{"CIE pronta: PIN, 3 tentativi rimasti", "Stato della carta…", "Cambia PIN…", "Sblocca PIN…",
		"Firma un file…", "Verifica una firma…", "Browser", "Registra in tutti i browser", "Rimuovi da tutti i browser",
		"Mostra i browser…", "Diagnostica…", "Impostazioni…", "Informazioni su CIE Desktop", "Esci"} {
		if _, ok := menu[want]; !ok {
			t.Fatalf("the tray menu lacks %q; it has %v", want, menuLabels(menu))
		}
	}

	// open clicks a menu item and waits for the window's event of kind ready.
	open := func(label, name, ready string) trayEvent {
		t.Helper()
		n := events.count()
		desk.click(t, item, desk.menu(t, item)[label])
		return events.waitFrom(n, name+" "+ready, 15*time.Second, func(e trayEvent) bool { return e.Event == ready && e.Window == name })
	}
	// closeWin presses Escape in the window and waits until it is gone.
	closeWin := func(title, name string) {
		t.Helper()
		n := events.count()
		x.key(title, "Escape")
		events.waitFrom(n, name+" closed", 10*time.Second, func(e trayEvent) bool { return e.Event == "closed" && e.Window == name })
	}
	// submit types the lines into the window and returns the result.
	submit := func(title, name string, lines ...string) trayEvent {
		t.Helper()
		n := events.count()
		x.typeLines(title, lines...)
		return events.waitFrom(n, name+" result", 20*time.Second, func(e trayEvent) bool { return e.Event == "result" && e.Window == name })
	}

	// Every window, opened from the tray menu, with a screenshot.
	for _, w := range []struct{ label, name, title, ready string }{
		{"Stato della carta…", "status", "Stato della carta — CIE Desktop", "result"},
		{"Mostra i browser…", "browsers", "Browser — CIE Desktop", "result"},
		{"Diagnostica…", "diagnostics", "Diagnostica — CIE Desktop", "result"},
		{"Impostazioni…", "settings", "Impostazioni — CIE Desktop", "window"},
		{"Informazioni su CIE Desktop", "about", "Informazioni — CIE Desktop", "window"},
	} {
		ev := open(w.label, w.name, w.ready)
		switch w.name {
		case "status":
			for _, s := range []string{"CIE 3.0, chip Gemalto", "PIN: 3 tentativi rimasti", "PUK: 10 tentativi rimasti", "Lettore: " + reader} {
				if !strings.Contains(ev.Message, s) {
					t.Errorf("the status window does not show %q:\n%s", s, ev.Message)
				}
			}
		case "diagnostics":
			for _, s := range []string{"Servizio smart card (pcscd): attivo", "CIE, chip Gemalto", "Modulo CIE: " + browsers.Module,
				"Browser: Registrato in 0 posizioni su 3.", "Chromium/Chrome ~/.pki/nssdb — non registrato",
				"Profilo di Firefox “default-release” (~/.mozilla/firefox/abcd.default-release) — non registrato; in uso"} {
				if !strings.Contains(ev.Message, s) {
					t.Errorf("the diagnostics do not show %q:\n%s", s, ev.Message)
				}
			}
		case "browsers":
			for _, s := range []string{"Registrato in 0 posizioni su 3.", "Modulo CIE: " + browsers.Module,
				"Chromium/Chrome ~/.pki/nssdb — non registrato", "Criteri di Firefox " + browsers.PolicyFiles[0] + " — non registrato"} {
				if !strings.Contains(ev.Message, s) {
					t.Errorf("the browsers window does not show %q:\n%s", s, ev.Message)
				}
			}
		}
		x.shot(w.title, w.name)
		closeWin(w.title, w.name)
	}

	// The module in the browsers, from the tray menu: Register and Remove
	// open the browsers window and say there what they changed.
	const browsersTitle = "Browser — CIE Desktop"
	// act clicks a menu item and waits for the browsers window's result
	// that starts with prefix (opening the window shows the state first).
	act := func(label, prefix string) trayEvent {
		t.Helper()
		n := events.count()
		desk.click(t, item, desk.menu(t, item)[label])
		return events.waitFrom(n, "the browsers window saying "+prefix, 30*time.Second, func(e trayEvent) bool {
			return e.Event == "result" && e.Window == "browsers" && strings.HasPrefix(e.Message, prefix)
		})
	}
	res := act("Registra in tutti i browser", "Registrato in 3 posizioni:")
	for _, s := range []string{"Registrato in 3 posizioni: Chromium/Chrome ~/.pki/nssdb, Profilo di Firefox “default-release”, Criteri di Firefox",
		"Firefox è aperto: riavvialo", "Chromium o Chrome è aperto: riavvialo", "— registrato; in uso"} {
		if !res.OK || !strings.Contains(res.Message, s) {
			t.Errorf("registering from the tray menu does not say %q: %+v", s, res)
		}
	}
	expectRegistration(t, browsers, browser.Registered)
	x.shot(browsersTitle, "browsers-registered")
	res = act("Rimuovi da tutti i browser", "Rimosso da 3 posizioni")
	if !res.OK || !strings.Contains(res.Message, "Firefox è aperto: riavvialo") {
		t.Errorf("removing from the tray menu: %+v", res)
	}
	expectRegistration(t, browsers, browser.NotRegistered)
	x.shot(browsersTitle, "browsers-removed")
	closeWin(browsersTitle, "browsers")

	// PIN change with the keyboard.
	const newPIN, unblockedPIN = "24681357", "13572468"
	const changeTitle = "Cambia PIN — CIE Desktop"
	open("Cambia PIN…", "change-pin", "ready")
	x.shot(changeTitle, "change-pin")
	res = submit(changeTitle, "change-pin", defaultPIN, newPIN, newPIN)
	if !res.OK || !strings.HasPrefix(res.Message, "PIN cambiato.") {
		t.Fatalf("PIN change through the window: %+v", res)
	}
	x.shot(changeTitle, "change-pin-done")
	expectTries(t, card, "pin=3 puk=10")
	verifyThroughPCSC(t, reader, newPIN)
	closeWin(changeTitle, "change-pin")

	// Three wrong PINs through the same window block the PIN: the window,
	// the tray and a notification say so.
	open("Cambia PIN…", "change-pin", "ready")
	for i, want := range []string{
		"PIN errato: 2 tentativi rimasti.",
		"PIN errato: 1 tentativo rimasto. Un altro PIN errato lo blocca",
		"Il PIN è bloccato: sbloccalo con il PUK.",
	} {
		res := submit(changeTitle, "change-pin", fmt.Sprintf("1111222%d", i), "86420975", "86420975")
		if res.OK || !strings.HasPrefix(res.Message, want) {
			t.Fatalf("wrong PIN %d: %q; want %q…", i+1, res.Message, want)
		}
		if i == 1 {
			x.shot(changeTitle, "change-pin-last-try")
		}
	}
	x.shot(changeTitle, "change-pin-blocked")
	expectTries(t, card, "pin=0 puk=10")
	desk.waitNotification(t, "PIN bloccato", 10*time.Second)
	if tip := desk.tooltip(t, item); tip != "CIE Desktop — CIE pronta: PIN bloccato" {
		t.Errorf("tooltip with the PIN blocked: %q", tip)
	}
	desk.expectIconColour(t, item, "red")
	closeWin(changeTitle, "change-pin")

	// Unblock with the PUK, with the keyboard.
	const unblockTitle = "Sblocca PIN — CIE Desktop"
	open("Sblocca PIN…", "unblock-pin", "ready")
	x.shot(unblockTitle, "unblock-pin")
	res = submit(unblockTitle, "unblock-pin", defaultPUK, unblockedPIN, unblockedPIN)
	if !res.OK || res.Message != "PIN sbloccato e sostituito dal nuovo PIN." {
		t.Fatalf("unblock through the window: %+v", res)
	}
	x.shot(unblockTitle, "unblock-pin-done")
	expectTries(t, card, "pin=3 puk=10")
	verifyThroughPCSC(t, reader, unblockedPIN)
	closeWin(unblockTitle, "unblock-pin")
	desk.expectIconColour(t, item, "green")

	// Sign a PDF with the card through the sign window, then verify it in
	// the verify window (trusting the simulator's CA).
	pdf := filepath.Join(tmp, "contratto.pdf")
	if err := os.WriteFile(pdf, onePagePDF(), 0o600); err != nil {
		t.Fatal(err)
	}
	const signTitle, verifyTitle = "Firma un file — CIE Desktop", "Verifica una firma — CIE Desktop"
	open("Firma un file…", "sign", "ready")
	x.typeLines(signTitle, pdf)
	x.shot(signTitle, "sign")
	res = submit(signTitle, "sign", "", unblockedPIN)
	signedPDF := filepath.Join(tmp, "contratto_firmato.pdf")
	if !res.OK || !strings.Contains(res.Message, signedPDF) {
		t.Fatalf("signing through the window: %+v", res)
	}
	x.shot(signTitle, "sign-done")
	closeWin(signTitle, "sign")
	open("Verifica una firma…", "verify", "window")
	res = submit(verifyTitle, "verify", signedPDF)
	if !res.OK || !strings.HasPrefix(res.Message, "La firma è valida.") || !strings.Contains(res.Message, "Firma 1: valida") {
		t.Fatalf("verifying through the window: %+v", res)
	}
	x.shot(verifyTitle, "verify-done")
	closeWin(verifyTitle, "verify")
	expectTries(t, card, "pin=3 puk=10")

	// Removal and insertion: notifications and the tray state.
	if _, err := card.Control("remove"); err != nil {
		t.Fatal(err)
	}
	desk.waitNotification(t, "Carta rimossa", 15*time.Second)
	if tip := desk.tooltip(t, item); tip != "CIE Desktop — Nessuna carta sul lettore" {
		t.Errorf("tooltip without the card: %q", tip)
	}
	if _, err := card.Control("insert"); err != nil {
		t.Fatal(err)
	}
	desk.waitNotification(t, "CIE inserita", 15*time.Second)

	// The PIN dialog of `cie-tray pinentry`, as the PKCS#11 module runs it.
	pinentryDialog(t, bin, env, x, filepath.Join(tmp, "pinentry-events.jsonl"))

	// Quit from the menu.
	desk.click(t, item, desk.menu(t, item)["Esci"])
	select {
	case <-trayExited:
		if trayErr != nil {
			t.Fatalf("cie-tray exited with %v", trayErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cie-tray did not quit from the menu")
	}
}

// trayBrowsers makes the browsers of home: a Firefox profile that is open
// and Chromium's NSS database (certutil), with the module (a fake that
// passes browser.CheckModule) and a policy file to be, both under dir.
func trayBrowsers(t *testing.T, home, dir string) browser.Config {
	t.Helper()
	ff := filepath.Join(home, ".mozilla", "firefox")
	profile := filepath.Join(ff, "abcd.default-release")
	nssdb := filepath.Join(home, ".pki", "nssdb")
	for _, d := range []string{profile, nssdb, filepath.Join(dir, "lib")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ff, "profiles.ini"),
		[]byte("[Profile0]\nName=default-release\nIsRelative=1\nPath=abcd.default-release\nDefault=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("127.0.0.1:+4242", filepath.Join(profile, "lock")); err != nil {
		t.Fatal(err)
	}
	// Chromium runs too: its lock names this host and a live process.
	host, _ := os.Hostname()
	if err := os.MkdirAll(filepath.Join(home, ".config", "chromium"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fmt.Sprintf("%s-%d", host, os.Getpid()), filepath.Join(home, ".config", "chromium", "SingletonLock")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("certutil", "-N", "-d", "sql:"+nssdb, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N (apt-get install libnss3-tools): %v\n%s", err, out)
	}
	module := filepath.Join(dir, "lib", browser.LibraryName)
	if err := os.WriteFile(module, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	return browser.Config{Home: home, Module: module, PolicyFiles: []string{filepath.Join(dir, "etc", "firefox", "policies", "policies.json")}}
}

// expectRegistration checks with browser.Status that every place of cfg
// is in state want.
func expectRegistration(t *testing.T, cfg browser.Config, want browser.State) {
	t.Helper()
	rs, err := browser.Status(cfg)
	if err != nil || len(rs) != 3 {
		t.Fatalf("browser status: %d places, %v", len(rs), err)
	}
	for _, r := range rs {
		if r.State != want || r.Err != nil {
			t.Errorf("%s %s: %v (%v), want %v", r.Kind, r.Name, r.State, r.Err, want)
		}
	}
}

// pinentryDialog drives `cie-tray pinentry` over Assuan and types the PIN
// into its window.
func pinentryDialog(t *testing.T, bin string, env []string, x *xsession, eventsPath string) {
	events := newEventLog(t, eventsPath)
	cmd := exec.Command(bin, "pinentry")
	cmd.Env = append(env, "CIE_TRAY_EVENTS="+eventsPath)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("cie-tray pinentry did not exit after BYE; stderr:\n%s", stderr.String())
		}
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if l != want {
				t.Fatalf("pinentry said %q, want %q; stderr:\n%s", l, want, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("pinentry did not say %q", want)
		}
	}
	send := func(l string) { fmt.Fprintln(stdin, l) }
	expect("OK Pleased to meet you")
	for _, l := range []string{
		"OPTION cie-holder=Mario Rossi",
		"OPTION cie-tries-left=1",
		"SETDESC Firma del file contratto.pdf con la CIE di Mario Rossi.%0A1 tentativo rimasto.",
		"SETOK _Firma",
	} {
		send(l)
		expect("OK")
	}
	send("GETPIN")
	ev := events.wait("the PIN dialog", 20*time.Second, func(e trayEvent) bool { return e.Event == "window" && e.Window == "pin" })
	x.shot(ev.Title, "pinentry")
	x.typeLines(ev.Title, "1234")
	events.wait("the 8-digit refusal", 10*time.Second, func(e trayEvent) bool { return e.Event == "result" && e.Window == "pin" })
	x.shot(ev.Title, "pinentry-refused")
	x.typeLines(ev.Title, "12345678")
	expect("D 12345678")
	expect("OK")
	send("BYE")
	expect("OK closing connection")
	stdin.Close()
}

// expectTries checks the card's own counters.
func expectTries(t *testing.T, card *testbench.Card, want string) {
	t.Helper()
	got, err := card.Control("pin-tries")
	if err != nil || got != want {
		t.Fatalf("the card's counters: %q (%v); want %q", got, err, want)
	}
}

// verifyThroughPCSC checks that pin is the card's PIN now.
func verifyThroughPCSC(t *testing.T, reader, pin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	conn, err := pc.Connect(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	atr, err := conn.ATR()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cie.Open(ctx, conn, atr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.VerifyPIN(ctx, []byte(pin)); err != nil {
		t.Fatalf("the PIN set through the window does not verify: %v", err)
	}
}

// startXvfb starts an X server on a free display and returns ":N".
func startXvfb(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Xvfb: %v", err)
	}
	w.Close()
	stopOnCleanup(t, cmd)
	num := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		num <- strings.TrimSpace(line)
	}()
	select {
	case n := <-num:
		if _, err := strconv.Atoi(n); err != nil {
			t.Fatalf("Xvfb did not give its display: %q\n%s", n, out.String())
		}
		return ":" + n
	case <-time.After(15 * time.Second):
		t.Fatalf("Xvfb did not start:\n%s", out.String())
	}
	return ""
}

// startBus starts a private D-Bus session daemon and returns its address.
func startBus(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "bus")
	addr := "unix:path=" + sock
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--nopidfile", "--address="+addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	stopOnCleanup(t, cmd)
	// The socket file appears at bind(), before the daemon listens: the
	// bus is up when a connection is accepted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbus-daemon did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stopOnCleanup(t *testing.T, cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
}

// fakeDesktop plays a desktop's tray host and notification server on the
// session bus.
type fakeDesktop struct {
	conn  *dbus.Conn
	mu    sync.Mutex
	items []string // registered StatusNotifierItem services
	notes []string // "summary: body"
}

func newFakeDesktop(t *testing.T, addr string) *fakeDesktop {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connecting to the test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	d := &fakeDesktop{conn: conn}
	if err := conn.Export(watcher{d}, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(notifier{d}, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"org.kde.StatusNotifierWatcher", "org.freedesktop.Notifications"} {
		if r, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("owning %s on the test bus: %v %v", name, r, err)
		}
	}
	return d
}

type watcher struct{ d *fakeDesktop }

// RegisterStatusNotifierItem is what a tray item calls on the host.
func (w watcher) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if strings.HasPrefix(service, "/") { // a path: the item is the sender
		service = string(sender)
	}
	w.d.items = append(w.d.items, service)
	return nil
}

type notifier struct{ d *fakeDesktop }

// Notify is org.freedesktop.Notifications.Notify.
func (n notifier) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	n.d.notes = append(n.d.notes, summary+": "+body)
	return uint32(len(n.d.notes)), nil
}

func (d *fakeDesktop) waitItem(t *testing.T, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		n := len(d.items)
		d.mu.Unlock()
		if n > 0 {
			return d.items[n-1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("cie-tray did not register a tray icon with the tray host")
	return ""
}

func (d *fakeDesktop) waitNotification(t *testing.T, summary string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		for _, n := range d.notes {
			if strings.HasPrefix(n, summary+":") {
				d.mu.Unlock()
				return
			}
		}
		d.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t.Fatalf("no notification %q; got %q", summary, d.notes)
}

func (d *fakeDesktop) item(service string) dbus.BusObject {
	return d.conn.Object(service, "/StatusNotifierItem")
}

func (d *fakeDesktop) tooltip(t *testing.T, service string) string {
	t.Helper()
	v, err := d.item(service).GetProperty("org.kde.StatusNotifierItem.ToolTip")
	if err != nil {
		t.Fatalf("reading the tray tooltip: %v", err)
	}
	var tip struct {
		Name  string
		Icons []struct {
			W, H int32
			Pix  []byte
		}
		Title, Text string
	}
	if err := dbus.Store([]any{v.Value()}, &tip); err != nil {
		t.Fatalf("tooltip %v: %v", v, err)
	}
	return tip.Title
}

// expectIconColour waits until the tray icon's badge is green or red.
func (d *fakeDesktop) expectIconColour(t *testing.T, service, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v, err := d.item(service).GetProperty("org.kde.StatusNotifierItem.IconPixmap")
		if err != nil {
			t.Fatalf("reading the tray icon: %v", err)
		}
		var pix []struct {
			W, H int32
			Pix  []byte
		}
		if err := dbus.Store([]any{v.Value()}, &pix); err != nil || len(pix) == 0 {
			t.Fatalf("tray icon %v: %v", v, err)
		}
		p := pix[0]
		// The badge ring at (47, 36) of the 64-pixel design; ARGB, big-endian.
		x, y := int(47*p.W/64), int(36*p.H/64)
		o := (y*int(p.W) + x) * 4
		r, g := p.Pix[o+1], p.Pix[o+2]
		switch {
		case g > 0x80 && r < 0x60:
			got = "green"
		case r > 0xB0 && g < 0x60:
			got = "red"
		default:
			got = fmt.Sprintf("#%02X%02X%02X", r, g, p.Pix[o+3])
		}
		if got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("tray icon badge is %s, want %s", got, want)
}

// menu reads the tray menu (com.canonical.dbusmenu) as label → item id.
func (d *fakeDesktop) menu(t *testing.T, service string) map[string]int32 {
	t.Helper()
	var rev uint32
	var layout menuNode
	call := d.conn.Object(service, "/StatusNotifierMenu").Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		t.Fatalf("reading the tray menu: %v", call.Err)
	}
	if err := call.Store(&rev, &layout); err != nil {
		t.Fatalf("tray menu layout: %v", err)
	}
	out := map[string]int32{}
	var walk func(n menuNode)
	walk = func(n menuNode) {
		if l, ok := n.Props["label"]; ok {
			if s, ok := l.Value().(string); ok && s != "" {
				out[s] = n.ID
			}
		}
		for _, c := range n.Children {
			var child menuNode
			if err := dbus.Store([]any{c.Value()}, &child); err == nil {
				walk(child)
			}
		}
	}
	walk(layout)
	return out
}

type menuNode struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

func menuLabels(m map[string]int32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// click activates a tray menu item, as a panel does.
func (d *fakeDesktop) click(t *testing.T, service string, id int32) {
	t.Helper()
	if id == 0 {
		t.Fatal("clicking a menu item that does not exist")
	}
	call := d.conn.Object(service, "/StatusNotifierMenu").Call("com.canonical.dbusmenu.Event", 0,
		id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
	if call.Err != nil {
		t.Fatalf("clicking menu item %d: %v", id, call.Err)
	}
}

// trayEvent is a line of CIE_TRAY_EVENTS.
type trayEvent struct {
	Event   string `json:"event"`
	Window  string `json:"window"`
	Title   string `json:"title"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// eventLog reads the events cie-tray appends to a file.
type eventLog struct {
	t    *testing.T
	path string
}

func newEventLog(t *testing.T, path string) *eventLog { return &eventLog{t: t, path: path} }

func (l *eventLog) all() []trayEvent {
	b, _ := os.ReadFile(l.path)
	var out []trayEvent
	for _, line := range strings.Split(string(b), "\n") {
		var e trayEvent
		if json.Unmarshal([]byte(line), &e) == nil && e.Event != "" {
			out = append(out, e)
		}
	}
	return out
}

func (l *eventLog) count() int { return len(l.all()) }

func (l *eventLog) dump() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// wait returns the first event that matches, waiting for it.
func (l *eventLog) wait(what string, within time.Duration, match func(trayEvent) bool) trayEvent {
	l.t.Helper()
	return l.waitFrom(0, what, within, match)
}

// waitFrom is wait for events after the first n.
func (l *eventLog) waitFrom(n int, what string, within time.Duration, match func(trayEvent) bool) trayEvent {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		all := l.all()
		for i := n; i < len(all); i++ {
			if match(all[i]) {
				return all[i]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("waiting for %s: not in the events:\n%s", what, l.dump())
	return trayEvent{}
}

// xsession types into windows and photographs them on the X display.
type xsession struct {
	t         *testing.T
	display   string
	artifacts string
	shots     int
}

func (x *xsession) run(args ...string) string {
	x.t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "DISPLAY="+x.display)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		x.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// window returns the X window id of the visible window titled title.
func (x *xsession) window(title string) string {
	x.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command("xdotool", "search", "--name", "^"+regexpQuote(title)+"$")
		cmd.Env = append(os.Environ(), "DISPLAY="+x.display)
		out, _ := cmd.Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			return ids[len(ids)-1]
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("no window titled %q on %s", title, x.display)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// regexpQuote quotes s for xdotool's regular expression; characters
// outside ASCII match anything or nothing, as xdotool matches the legacy
// WM_NAME, where they may be lost.
func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r > 0x7E:
			b.WriteString(".?")
		case strings.ContainsRune(`\.+*?()|[]{}^$`, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// typeLines focuses the window and types each line followed by Return,
// as a keyboard-only user fills a form.
func (x *xsession) typeLines(title string, lines ...string) {
	x.t.Helper()
	id := x.window(title)
	x.run("xdotool", "windowfocus", "--sync", id)
	for _, l := range lines {
		if l != "" {
			x.run("xdotool", "type", "--delay", "15", l)
		}
		x.run("xdotool", "key", "Return")
	}
}

func (x *xsession) key(title, key string) {
	x.t.Helper()
	id := x.window(title)
	x.run("xdotool", "windowfocus", "--sync", id)
	x.run("xdotool", "key", key)
}

// shot saves the window as artifacts/NN-name.png (xwd, decoded here). It
// waits for two identical captures in a row, so that the window has
// finished drawing.
func (x *xsession) shot(title, name string) {
	x.t.Helper()
	id := x.window(title)
	var last []byte
	var img image.Image
	for range 20 {
		time.Sleep(150 * time.Millisecond)
		cmd := exec.Command("xwd", "-silent", "-id", id)
		cmd.Env = append(os.Environ(), "DISPLAY="+x.display)
		raw, err := cmd.Output()
		if err != nil {
			x.t.Fatalf("xwd of %q: %v", title, err)
		}
		if img, err = decodeXWD(raw); err != nil {
			x.t.Fatalf("xwd of %q: %v", title, err)
		}
		if bytes.Equal(raw, last) && !uniform(img) {
			break
		}
		last = raw
	}
	if uniform(img) {
		x.t.Fatalf("the window %q is blank", title)
	}
	x.shots++
	path := filepath.Join(x.artifacts, fmt.Sprintf("%02d-%s.png", x.shots, name))
	f, err := os.Create(path)
	if err != nil {
		x.t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		x.t.Fatal(err)
	}
}

// decodeXWD decodes an X Window Dump of a 24/32-bit TrueColor window.
func decodeXWD(b []byte) (image.Image, error) {
	if len(b) < 100 {
		return nil, io.ErrUnexpectedEOF
	}
	h := make([]uint32, 25)
	for i := range h {
		h[i] = binary.BigEndian.Uint32(b[i*4:])
	}
	headerSize, width, height := h[0], int(h[4]), int(h[5])
	byteOrder, bpp, bpl := h[7], h[11], int(h[12])
	rm, gm, bm, ncolors := h[14], h[15], h[16], h[19]
	if h[1] != 7 || bpp != 32 || rm == 0 || gm == 0 || bm == 0 {
		return nil, fmt.Errorf("unsupported XWD: version %d, %d bits per pixel", h[1], bpp)
	}
	off := int(headerSize) + int(ncolors)*12
	if off+bpl*height > len(b) {
		return nil, io.ErrUnexpectedEOF
	}
	px := b[off:]
	ch := func(v, m uint32) uint8 { return uint8((v & m) >> bits.TrailingZeros32(m)) }
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			o := y*bpl + x*4
			var v uint32
			if byteOrder == 0 {
				v = binary.LittleEndian.Uint32(px[o:])
			} else {
				v = binary.BigEndian.Uint32(px[o:])
			}
			img.SetRGBA(x, y, color.RGBA{ch(v, rm), ch(v, gm), ch(v, bm), 0xFF})
		}
	}
	return img, nil
}

func uniform(img image.Image) bool {
	if img == nil {
		return true
	}
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if img.At(x, y) != first {
				return false
			}
		}
	}
	return true
}

// onePagePDF is a minimal one-page A4 PDF with a correct xref table.
func onePagePDF() []byte {
	var b strings.Builder
	b.WriteString("%PDF-1.4\n")
	content := "BT /F1 24 Tf 72 720 Td (Contratto di prova) Tj ET"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R " +
			"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
	}
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return []byte(b.String())
}
