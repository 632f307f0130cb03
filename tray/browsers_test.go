package tray

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/ciedesktop/cie-desktop/internal/browser"
)

// browserHome gives the fixture's home a Firefox profile (open: its lock
// exists) and a Chromium NSS database made by certutil, as a user who
// has run both browsers has, and a system-wide Firefox policy file that
// does not exist yet in a writable directory. It returns the
// browser.Config that sees the same places.
func (f *fixture) browserHome() browser.Config {
	t := f.t
	t.Helper()
	s := &f.u.cfg.Browsers
	ff := filepath.Join(s.Home, ".mozilla", "firefox")
	profile := filepath.Join(ff, "abcd.default-release")
	mkdir(t, profile)
	writeHomeFile(t, filepath.Join(ff, "profiles.ini"),
		"[Profile0]\nName=default-release\nIsRelative=1\nPath=abcd.default-release\nDefault=1\n\n[General]\nStartWithLastProfile=1\n")
	if err := os.Symlink("127.0.0.1:+4242", filepath.Join(profile, "lock")); err != nil {
		t.Fatal(err)
	}
	// Chromium runs too: its lock names this host and a live process.
	chromium := filepath.Join(s.Home, ".config", "chromium")
	mkdir(t, chromium)
	host, _ := os.Hostname()
	if err := os.Symlink(fmt.Sprintf("%s-%d", host, os.Getpid()), filepath.Join(chromium, "SingletonLock")); err != nil {
		t.Fatal(err)
	}
	nssdb := filepath.Join(s.Home, ".pki", "nssdb")
	mkdir(t, nssdb)
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Fatal("certutil is missing: apt-get install libnss3-tools")
	}
	if out, err := exec.Command(certutil, "-N", "-d", "sql:"+nssdb, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, out)
	}
	s.PolicyFiles = []string{filepath.Join(t.TempDir(), "etc", "firefox", "policies", "policies.json")}
	return browser.Config{Home: s.Home, Module: s.Module, PolicyFiles: s.PolicyFiles}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func writeHomeFile(t *testing.T, p, s string) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// states returns what browser.Status says of each place, by kind and
// name, and fails on any error.
func states(t *testing.T, cfg browser.Config) map[string]browser.State {
	t.Helper()
	rs, err := browser.Status(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]browser.State{}
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("%s %s: %v", r.Kind, r.Name, r.Err)
		}
		m[r.Kind.String()+" "+r.Name] = r.State
	}
	return m
}

// expectStates checks the state of the three places; the policy file has
// policy.
func expectStates(t *testing.T, what string, cfg browser.Config, want, policy browser.State) {
	t.Helper()
	got := states(t, cfg)
	if len(got) != 3 {
		t.Fatalf("%s: %d places, want the Chromium database, the profile and the policy: %v", what, len(got), got)
	}
	for place, st := range got {
		if strings.HasPrefix(place, "Firefox policy ") && st != policy {
			t.Errorf("%s: %s is %v, want %v", what, place, st, policy)
		}
		if !strings.HasPrefix(place, "Firefox policy ") && st != want {
			t.Errorf("%s: %s is %v, want %v", what, place, st, want)
		}
	}
}

// TestBrowsersWindowRegistersAndRemoves: the window lists the Chromium
// database, the Firefox profile and the policy as not registered;
// Register puts the module in all three (browser.Status agrees) and says
// what changed and that the open Firefox must be restarted; a second
// Register changes nothing and says so; Remove takes it out again.
func TestBrowsersWindowRegistersAndRemoves(t *testing.T) {
	f := newFixture(t, "gemalto")
	cfg := f.browserHome()
	w := f.openWin(WinBrowsers)
	v := f.u.windows[WinBrowsers].v.(*browsersView)
	c := w.Canvas()
	if w.Title() != "Browsers — CIE Desktop" || c.Focused() != v.close {
		t.Errorf("title %q, focus %v", w.Title(), c.Focused())
	}
	mustContain(t, "the browsers window", texts(c.Content()),
		"CIE module", "/opt/libcie-pkcs11.so", "Chromium/Chrome ~/.pki/nssdb", "Firefox profile “default-release”",
		"~/.mozilla/firefox/abcd.default-release — not registered; in use: Firefox is open with this profile",
		"Firefox policy "+cfg.PolicyFiles[0], "not registered (no policy file yet: Register creates it)",
		"Registered in 0 of 3 places.", "[Register]", "[Remove]")
	if v.register.Disabled() || v.unregister.Disabled() {
		t.Fatal("Register or Remove disabled with the module found")
	}
	expectStates(t, "before", cfg, browser.NotRegistered, browser.Absent)

	test.Tap(v.register)
	f.wait()
	expectStates(t, "after Register", cfg, browser.Registered, browser.Registered)
	res, _ := f.rec.last("result", WinBrowsers)
	mustContain(t, "the Register result", res.Message,
		"Registered in 3 places: Chromium/Chrome ~/.pki/nssdb, Firefox profile “default-release”, Firefox policy",
		"Firefox is open: restart it", "Chromium or Chrome is open: restart it")
	if !res.OK {
		t.Fatalf("Register reported a failure: %+v", res)
	}
	text := texts(c.Content())
	mustContain(t, "the window after Register", text, "Registered in 3 places",
		"~/.mozilla/firefox/abcd.default-release — registered; in use: Firefox is open with this profile")
	mustNotContain(t, "the window after Register", text, "not registered")

	test.Tap(v.register)
	f.wait()
	res, _ = f.rec.last("result", WinBrowsers)
	if !res.OK || !strings.HasPrefix(res.Message, "The module was already registered everywhere: nothing changed.\n") {
		t.Fatalf("second Register: %+v", res)
	}
	mustNotContain(t, "the second Register", res.Message, "restart")

	test.Tap(v.unregister)
	f.wait()
	expectStates(t, "after Remove", cfg, browser.NotRegistered, browser.NotRegistered)
	res, _ = f.rec.last("result", WinBrowsers)
	if !res.OK {
		t.Fatalf("Remove reported a failure: %+v", res)
	}
	mustContain(t, "the Remove result", res.Message, "Removed from 3 places", "Firefox is open: restart it")
	mustContain(t, "the window after Remove", texts(c.Content()), "Removed from 3 places")
}

// TestBrowsersFromTheTrayMenu: the submenu's Register and Remove work
// without the window open first, and show their outcome in it.
func TestBrowsersFromTheTrayMenu(t *testing.T) {
	f := newFixture(t, "gemalto")
	cfg := f.browserHome()
	item := func(label string) func() {
		for _, it := range f.u.trayMenu().Items {
			if it.ChildMenu == nil {
				continue
			}
			for _, c := range it.ChildMenu.Items {
				if c.Label == label {
					return c.Action
				}
			}
		}
		t.Fatalf("no %q in the tray menu", label)
		return nil
	}
	item("Register in all browsers")()
	f.wait()
	expectStates(t, "after the menu's Register", cfg, browser.Registered, browser.Registered)
	if res, _ := f.rec.last("result", WinBrowsers); !res.OK || !strings.HasPrefix(res.Message, "Registered in 3 places") {
		t.Fatalf("the menu's Register: %+v", res)
	}
	w := f.u.window(WinBrowsers)
	if w == nil {
		t.Fatal("the menu's Register did not open the browsers window")
	}
	item("Remove from all browsers")()
	f.wait()
	expectStates(t, "after the menu's Remove", cfg, browser.NotRegistered, browser.NotRegistered)
	mustContain(t, "the window after the menu's Remove", texts(w.Canvas().Content()), "Removed from 3 places")
}

// TestBrowsersWithoutTheModule: no module, no Register; the window says
// where it was looked for; Remove still works.
func TestBrowsersWithoutTheModule(t *testing.T) {
	t.Run("not installed", func(t *testing.T) {
		exe := filepath.Join(t.TempDir(), "bin", "cie-tray")
		if m, err := browser.FindModule(exe); err == nil {
			t.Skipf("this machine has the module installed (%s): it cannot be missing", m)
		}
		f := newFixture(t, "gemalto")
		f.browserHome()
		f.u.cfg.Browsers.Module, f.u.cfg.Browsers.Executable = "", exe
		w := f.openWin(WinBrowsers)
		v := f.u.windows[WinBrowsers].v.(*browsersView)
		mustContain(t, "the window without a module", texts(w.Canvas().Content()),
			"CIE module", "not found, so it cannot be registered (libcie-pkcs11.so not found next to "+exe+" nor in the system's PKCS#11 directories")
		if !v.register.Disabled() || v.unregister.Disabled() {
			t.Fatalf("without a module: Register disabled %v, Remove disabled %v", v.register.Disabled(), v.unregister.Disabled())
		}
		f.u.browsersAction(browsersRegister) // the tray menu does not know
		f.wait()
		res, _ := f.rec.last("result", WinBrowsers)
		if res.OK || !strings.HasPrefix(res.Message, "The CIE module was not found, so it cannot be registered (libcie-pkcs11.so not found next to "+exe) {
			t.Fatalf("Register without a module: %+v", res)
		}
		test.Tap(v.unregister)
		f.wait()
		if res, _ := f.rec.last("result", WinBrowsers); !res.OK || !strings.HasPrefix(res.Message, "The module was not registered anywhere: nothing changed.") {
			t.Fatalf("Remove without a module: %+v", res)
		}
	})
	t.Run("wrong path", func(t *testing.T) {
		f := newFixture(t, "gemalto")
		missing := filepath.Join(t.TempDir(), "libcie-pkcs11.so")
		f.u.cfg.Browsers.Module = missing
		w := f.openWin(WinBrowsers)
		mustContain(t, "the window with a wrong module path", texts(w.Canvas().Content()),
			"not found, so it cannot be registered (opening the module: open "+missing+": no such file or directory)")
	})
}

// TestBrowsersShowErrors: a place that cannot be written is reported with
// its error, the others are still registered.
func TestBrowsersShowErrors(t *testing.T) {
	f := newFixture(t, "gemalto")
	cfg := f.browserHome()
	// NSS's module list is a directory here: it cannot be read, whoever runs the test.
	list := filepath.Join(cfg.Home, ".pki", "nssdb", "pkcs11.txt")
	if err := os.Remove(list); err != nil {
		t.Fatal(err)
	}
	mkdir(t, list)
	w := f.openWin(WinBrowsers)
	v := f.u.windows[WinBrowsers].v.(*browsersView)
	mustContain(t, "the window with a broken database", texts(w.Canvas().Content()),
		"error: reading the NSS module list: read "+filepath.Join(cfg.Home, ".pki/nssdb/pkcs11.txt")+": is a directory")
	test.Tap(v.register)
	f.wait()
	res, _ := f.rec.last("result", WinBrowsers)
	if res.OK {
		t.Fatalf("Register with a broken database reported success: %+v", res)
	}
	mustContain(t, "the failed Register", res.Message, "Registered in 2 places",
		"Not everything could be done: Chromium/Chrome ~/.pki/nssdb: registering in Chromium ~/.pki/nssdb: reading the NSS module list")
	mustContain(t, "the window after the failed Register", texts(w.Canvas().Content()), "Not everything could be done")
}

// TestDiagnosticsShowTheRegistration: the diagnostics (window, copy and
// support bundle) list the module and its state in every place.
func TestDiagnosticsShowTheRegistration(t *testing.T) {
	f := newFixture(t, "gemalto")
	cfg := f.browserHome()
	cfg.Module = f.u.cfg.Browsers.Module
	if _, err := browser.Register(browser.Config{Home: cfg.Home, Module: cfg.Module}); err != nil {
		t.Fatal(err)
	}
	w := f.openWin(WinDiagnostics)
	text := texts(w.Canvas().Content())
	mustContain(t, "the diagnostics", text,
		"CIE module: ~/opt/libcie-pkcs11.so",
		"Browsers: Registered in 2 of 3 places.",
		"Chromium/Chrome ~/.pki/nssdb — registered",
		"Firefox profile “default-release” (~/.mozilla/firefox/abcd.default-release) — registered; in use: Firefox is open with this profile",
		"Firefox policy "+cfg.PolicyFiles[0]+" — not registered (no policy file yet",
		"PIN: 3 tries left")
	mustNotContain(t, "the diagnostics", text, cfg.Home)

	v := f.u.windows[WinDiagnostics].v.(*diagView)
	var buf bytes.Buffer
	if err := v.writeBundle(&buf); err != nil {
		t.Fatal(err)
	}
	z, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range z.File {
		r, _ := zf.Open()
		b, _ := io.ReadAll(r)
		switch zf.Name {
		case "diagnostics.txt":
			mustContain(t, "the bundle's diagnostics", string(b), "Chromium/Chrome ~/.pki/nssdb — registered")
		case "diagnostics.json":
			mustContain(t, "the bundle's JSON", string(b), `"pkcs11_module": "~/opt/libcie-pkcs11.so"`,
				`"kind": "Firefox profile"`, `"state": "registered"`, `"in_use": true`)
			mustNotContain(t, "the bundle's JSON", string(b), cfg.Home)
		}
	}

	// In Italian.
	f.u.SetLanguage("it")
	mustContain(t, "the diagnostics in Italian", texts(w.Canvas().Content()),
		"Modulo CIE: ~/opt/libcie-pkcs11.so", "Browser: Registrato in 2 posizioni su 3.",
		"Profilo di Firefox “default-release” (~/.mozilla/firefox/abcd.default-release) — registrato; in uso")
}
