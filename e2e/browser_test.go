package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/browser"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// Browser tests: a level-3 "Entra con CIE" login (TLS client
// authentication signed by the card) in headless Chromium and headless
// Firefox ESR, through libcie-pkcs11, pcscd + vpcd and cie-sim, with the
// module registered as `cie browser register` does it and the PIN given
// through the module's own dialog (a scripted pinentry: testdata/pinentry).
// They need root: pcscd, and a private mount namespace per browser run for
// the browser policies (/etc/chromium, Firefox's distribution directory)
// so that nothing of the machine's configuration changes.

const (
	browserTimeout = 90 * time.Second
	chromiumBin    = "chromium"
	firefoxBin     = "firefox-esr"
	// greenRGB is the colour of the greeting heading of cie-login-demo
	// (#0b6e2e); the refusal heading is red (#a31515).
	greenR, greenG, greenB = 0x0b, 0x6e, 0x2e
)

// browserEnv is one browser run's world: a home directory with the
// paired card's certificate cache and the registered module, the scripted
// pinentry with its answers and record, the module's log.
type browserEnv struct {
	t        *testing.T
	p        *p11
	card     *testbench.Card
	module   string
	pinentry string
	answers  string
	record   string // the scripted pinentry's JSON lines
}

func (b *browserEnv) env() []string {
	return append(b.p.env(),
		"CIE_PINENTRY="+b.pinentry,
		"CIE_TEST_PINENTRY_ANSWERS="+b.answers,
		"CIE_TEST_PINENTRY_LOG="+b.record,
		"LANG=C.UTF-8", "LC_ALL=", "LC_MESSAGES=",
		"DISPLAY=", "WAYLAND_DISPLAY=",
	)
}

// brDialog is one record of the scripted pinentry.
type brDialog struct {
	Request  string            `json:"request"`
	Desc     string            `json:"desc"`
	Error    string            `json:"error"`
	Options  map[string]string `json:"options"`
	Answered bool              `json:"answered"`
}

func (b *browserEnv) dialogs() []brDialog {
	data, err := os.ReadFile(b.record)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		b.t.Fatal(err)
	}
	var out []brDialog
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var d brDialog
		if err := json.Unmarshal(line, &d); err != nil {
			b.t.Fatalf("pinentry record %q: %v", line, err)
		}
		out = append(out, d)
	}
	return out
}

// brService is a running cie-login-demo.
type brService struct {
	url    string
	ca     string // the CA of its server certificate, for the browsers' trust
	logBuf *brBuffer
}

type brBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newBrBuffer() *brBuffer { return &brBuffer{mu: make(chan struct{}, 1)} }

func (s *brBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *brBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// startLoginService runs cie-login-demo on a free port with the
// simulator's CA as the client CA.
func startLoginService(t *testing.T, tls13 bool) *brService {
	t.Helper()
	bin := testbench.BuildBinary(t, "./cmd/cie-login-demo")
	dir := t.TempDir()
	ls := &brService{ca: filepath.Join(dir, "server-ca.pem"), logBuf: newBrBuffer()}
	args := []string{"--listen", "127.0.0.1:0", "--ca", filepath.Join(testbench.ModuleRoot(t), "testdata", "sim", "ca-cert.pem"),
		"--server-cert", filepath.Join(dir, "server.pem"), "--server-key", filepath.Join(dir, "server.key"), "--server-ca", ls.ca}
	if tls13 {
		args = append(args, "--tls13")
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = ls.logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("cie-login-demo log:\n%s", ls.logBuf.String())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		ls.url = regexp.MustCompile(`https://\S+/`).FindString(line)
	case <-time.After(30 * time.Second):
	}
	if ls.url == "" {
		t.Fatalf("cie-login-demo did not start:\n%s", ls.logBuf.String())
	}
	return ls
}

// logins returns the service's "login" log lines of a browser (a
// substring of its user agent).
func (ls *brService) logins(agent string) []string {
	var out []string
	for _, line := range strings.Split(ls.logBuf.String(), "\n") {
		if strings.Contains(line, "msg=login ") && strings.Contains(line, agent) {
			out = append(out, line)
		}
	}
	return out
}

// newBrowserEnv puts a fresh simulated card in a reader, pairs it (a first
// login with pkcs11-tool caches its certificate in a private home) and
// registers the module in that home as `cie browser register` does.
func newBrowserEnv(t *testing.T, bench *testbench.Bench, module, pinentry string, family string) *browserEnv {
	t.Helper()
	card := bench.StartCard(t, "--family", family)
	p := newP11(t, module, card.Reader())
	p.pair()
	reports, err := browser.Register(browser.Config{Home: p.home, Module: module})
	if err != nil {
		t.Fatalf("registering the module: %v", err)
	}
	for _, r := range reports {
		if r.Kind == browser.ChromiumDB && r.State != browser.Registered {
			t.Fatalf("%s %s: %v", r.Kind, r.Name, r.State)
		}
	}
	return &browserEnv{t: t, p: p, card: card, module: module, pinentry: pinentry, answers: defaultPIN,
		record: filepath.Join(p.home, "pinentry.jsonl")}
}

// trustInNSS adds the login service's CA to the home's Chromium databases.
func (b *browserEnv) trustInNSS(ca string) {
	b.t.Helper()
	for _, db := range []string{".pki/nssdb", ".local/share/pki/nssdb"} {
		b.p.mustRun("certutil", "-A", "-d", "sql:"+filepath.Join(b.p.home, db), "-n", "cie-login-demo CA", "-t", "C,,", "-i", ca)
	}
}

// brRunGroup runs a browser in its own session and mount namespace (sh
// binds dirs over system directories first), bounded by browserTimeout;
// the whole process group is killed at the end. stop, if not nil, is
// polled and ends the run early when it returns true (Firefox does not
// exit after --screenshot).
func brRunGroup(t *testing.T, env []string, binds [][2]string, stdout io.Writer, stop func() bool, name string, args ...string) (time.Duration, error) {
	t.Helper()
	script := ""
	var shArgs []string
	for i, b := range binds {
		script += fmt.Sprintf(`mount --bind "$%d" "$%d" || exit 97; `, 2*i+1, 2*i+2)
		shArgs = append(shArgs, b[0], b[1])
	}
	script += fmt.Sprintf(`shift %d; exec "$@"`, 2*len(binds))
	full := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh"}, shArgs...)
	full = append(full, name)
	full = append(full, args...)
	cmd := exec.Command("unshare", full...)
	cmd.Env = env
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	pgid := cmd.Process.Pid
	defer syscall.Kill(-pgid, syscall.SIGKILL) // children left behind (renderers, zygote)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(browserTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			wall := time.Since(start)
			if cmd.ProcessState.ExitCode() == 97 {
				t.Fatalf("binding the browser's configuration (root needed): %s", stderr.String())
			}
			return wall, err
		case <-tick.C:
			if stop != nil && stop() {
				wall := time.Since(start)
				syscall.Kill(-pgid, syscall.SIGKILL)
				<-done
				return wall, nil
			}
		case <-deadline:
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			t.Fatalf("%s did not finish within %v; stderr:\n%s", name, browserTimeout, lastLines(stderr.String(), 30))
		}
	}
}

// chromiumPolicyDir is a copy of /etc/chromium with the managed policy
// that selects the CIE certificate for the service without asking (a
// headless Chromium cannot show its certificate selector).
func chromiumPolicyDir(t *testing.T, serviceURL string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("/etc/chromium")
	if err != nil {
		t.Fatalf("/etc/chromium: %v (is the chromium package installed? scripts/install-deps.sh installs it)", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, _ := os.ReadFile(filepath.Join("/etc/chromium", e.Name()))
			os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(testbench.ModuleRoot(t), "testdata", "sim", "ca-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	origin := strings.TrimSuffix(serviceURL, "/")
	rule, _ := json.Marshal(map[string]any{"pattern": origin, "filter": map[string]any{"ISSUER": map[string]string{"CN": ca.Subject.CommonName}}})
	policy, _ := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(rule)}})
	managed := filepath.Join(dir, "policies", "managed")
	os.MkdirAll(managed, 0o755)
	if err := os.WriteFile(filepath.Join(managed, "cie-test.json"), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium loads url in headless Chromium and returns the DOM it
// rendered, the run's wall time and its net log.
func (b *browserEnv) chromium(url string, extra ...string) (dom string, wall time.Duration, netlog string) {
	b.t.Helper()
	if _, err := exec.LookPath(chromiumBin); err != nil {
		b.t.Fatalf("chromium is not installed (scripts/install-deps.sh installs it): %v", err)
	}
	netlog = filepath.Join(b.t.TempDir(), "netlog.json")
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(b.t.TempDir(), "profile"), "--log-net-log=" + netlog}, extra...)
	args = append(args, "--dump-dom", url)
	var out bytes.Buffer
	wall, err := brRunGroup(b.t, b.env(), [][2]string{{chromiumPolicyDir(b.t, url), "/etc/chromium"}}, &out, nil, chromiumBin, args...)
	if err != nil {
		b.t.Logf("chromium exited: %v", err)
	}
	nl, _ := os.ReadFile(netlog)
	return out.String(), wall, string(nl)
}

// brNetErrors returns the net errors named in a Chromium net log.
func brNetErrors(t *testing.T, netlog string) map[string]bool {
	t.Helper()
	var log struct {
		Constants struct {
			NetError map[string]int `json:"netError"`
		} `json:"constants"`
		Events []struct {
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(netlog), &log); err != nil {
		t.Fatalf("reading the net log: %v", err)
	}
	names := map[int]string{}
	for n, v := range log.Constants.NetError {
		names[v] = n
	}
	seen := map[string]bool{}
	for _, e := range log.Events {
		if v, ok := e.Params["net_error"].(float64); ok {
			seen[names[int(v)]] = true
		}
	}
	return seen
}

// firefox loads the service's page in headless Firefox ESR, a fresh
// profile choosing the client certificate automatically, and returns the
// screenshot of the page, the wall time and the card's APDU counter for
// the browser run. The module comes from the
// SecurityDevices policy (viaPolicy: as `cie browser register --system`
// writes it; Firefox adds it without FRIENDLY) or from the profile's own
// NSS database (as `cie browser register` writes it for each profile in
// profiles.ini, FRIENDLY).
func (b *browserEnv) firefox(ls *brService, viaPolicy bool) (shot string, wall time.Duration, stats string) {
	b.t.Helper()
	t := b.t
	if _, err := exec.LookPath(firefoxBin); err != nil {
		t.Fatalf("firefox-esr is not installed (scripts/install-deps.sh installs it): %v", err)
	}
	profile := filepath.Join(t.TempDir(), "profile")
	os.MkdirAll(profile, 0o700)
	var binds [][2]string
	if viaPolicy {
		dist := t.TempDir()
		policy := filepath.Join(dist, "policies.json")
		if _, err := browser.Register(browser.Config{Home: b.p.home, Module: b.module, PolicyFiles: []string{policy}}); err != nil {
			t.Fatal(err)
		}
		var doc map[string]map[string]any
		raw, _ := os.ReadFile(policy)
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if dev, _ := doc["policies"]["SecurityDevices"].(map[string]any)["Add"].(map[string]any)[browser.ModuleName].(string); dev != b.module {
			t.Fatalf("the policy does not add the module:\n%s", raw)
		}
		doc["policies"]["Certificates"] = map[string]any{"Install": []string{ls.ca}}
		raw, _ = json.Marshal(doc)
		os.WriteFile(policy, raw, 0o644)
		binds = append(binds, [2]string{dist, "/usr/lib/firefox-esr/distribution"})
		if _, err := os.Stat("/etc/firefox/policies"); err == nil {
			binds = append(binds, [2]string{dist, "/etc/firefox/policies"}) // it would take precedence
		}
	} else {
		ini := filepath.Join(b.p.home, ".mozilla", "firefox", "profiles.ini")
		os.MkdirAll(filepath.Dir(ini), 0o700)
		os.WriteFile(ini, []byte("[Profile0]\nName=browser-test\nIsRelative=0\nPath="+profile+"\nDefault=1\n"), 0o600)
		reports, err := browser.Register(browser.Config{Home: b.p.home, Module: b.module})
		if err != nil {
			t.Fatal(err)
		}
		registered := false
		for _, r := range reports {
			registered = registered || r.Kind == browser.FirefoxProfile && r.Path == profile && r.State == browser.Registered
		}
		if !registered {
			t.Fatalf("the profile was not registered: %+v", reports)
		}
		b.p.mustRun("certutil", "-A", "-d", "sql:"+profile, "-n", "cie-login-demo CA", "-t", "C,,", "-i", ls.ca)
	}

	os.WriteFile(filepath.Join(profile, "user.js"), []byte(strings.Join([]string{
		`user_pref("security.default_personal_cert", "Select Automatically");`,
		`user_pref("toolkit.startup.max_resumed_crashes", -1);`,
		`user_pref("browser.sessionstore.resume_from_crash", false);`,
		`user_pref("browser.shell.checkDefaultBrowser", false);`,
		`user_pref("datareporting.policy.dataSubmissionEnabled", false);`,
		`user_pref("app.update.enabled", false);`,
	}, "\n")+"\n"), 0o600)
	shot = filepath.Join(t.TempDir(), "firefox.png")
	last, stable := int64(-1), 0
	done := func() bool { // the screenshot is written and no longer grows
		fi, err := os.Stat(shot)
		if err != nil || fi.Size() == 0 {
			return false
		}
		if fi.Size() == last {
			stable++
		} else {
			last, stable = fi.Size(), 0
		}
		return stable >= 3
	}
	env := append(b.env(), "MOZ_DISABLE_CONTENT_SANDBOX=1", "MOZ_CRASHREPORTER_DISABLE=1")
	b.card.Control("stats reset")
	wall, _ = brRunGroup(t, env, binds, io.Discard, done, firefoxBin,
		"--headless", "--no-remote", "--profile", profile, "--screenshot", shot, ls.url)
	stats, _ = b.card.Control("stats")
	if !done() {
		t.Fatalf("firefox wrote no screenshot")
	}
	return shot, wall, stats
}

// brGreenPixels counts the pixels of the greeting's colour in a screenshot.
func brGreenPixels(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding the screenshot: %v", err)
	}
	n := 0
	r := img.Bounds()
	near := func(a uint32, b int) bool { d := int(a>>8) - b; return d > -12 && d < 12 }
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if near(cr, greenR) && near(cg, greenG) && near(cb, greenB) {
				n++
			}
		}
	}
	return n
}

// holdOtherReader plugs a card that is not a CIE into the other reader for
// the whole test: the browsers see every reader of pcscd, and another test
// process's simulated CIE (the same test holder and keys) must not answer
// in this test's place.
func holdOtherReader(t *testing.T, bench *testbench.Bench) {
	t.Helper()
	bench.StartFakeCard(t, testbench.FakeCard{
		ATR:    []byte{0x3B, 0x02, 0x14, 0x50}, // a memory card, not a CIE
		Handle: func([]byte) []byte { return []byte{0x6A, 0x82} },
	})
}

func TestBrowserLogin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the browser tests need root: pcscd, and a private mount namespace for the browser policies (run them as CI does, as root)")
	}
	bench := testbench.Start(t, testbench.Options{})
	holdOtherReader(t, bench)
	module := buildModule(t, t.TempDir())
	pinentry := testbench.BuildBinary(t, "./e2e/testdata/pinentry")
	holder := stateCertificate(t)

	t.Run("Chromium", func(t *testing.T) {
		ls := startLoginService(t, false)
		b := newBrowserEnv(t, bench, module, pinentry, "gemalto")
		b.trustInNSS(ls.ca)
		b.card.Control("stats reset")
		dom, wall, _ := b.chromium(ls.url)
		stats, _ := b.card.Control("stats")
		for _, want := range []string{
			`<h1 id="greeting">Benvenuto, MARIO ROSSI!</h1>`,
			`<dd id="fiscal-code">RSSMRA80A01H501U</dd>`,
			`<dd id="card-serial">` + strings.SplitN(holder.Subject.CommonName, "/", 2)[1] + `</dd>`,
			`TLS 1.2`,
		} {
			if !strings.Contains(dom, want) {
				t.Fatalf("the page lacks %q:\n%s", want, dom)
			}
		}
		ds := b.dialogs()
		if len(ds) != 1 || !ds[0].Answered {
			t.Fatalf("%d PIN dialogs, want one: %+v", len(ds), ds)
		}
		for _, want := range []string{"Chromium wants to sign with the CIE of MARIO ROSSI", "all 8 digits", "3 tries left."} {
			if !strings.Contains(ds[0].Desc, want) {
				t.Errorf("the dialog did not say %q:\n%s", want, ds[0].Desc)
			}
		}
		if ds[0].Options["cie-tries-left"] != "3" || ds[0].Options["cie-holder"] != "MARIO ROSSI" {
			t.Errorf("dialog options %v", ds[0].Options)
		}
		if tries, _ := b.card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after the login: %s", tries)
		}
		handshake := regexp.MustCompile(`handshake \d+ ms`).FindString(dom)
		t.Logf("Chromium login: %v wall time (browser start to page), %s of the TLS connection that logged in, card: %s", wall.Round(time.Millisecond), handshake, stats)
	})

	t.Run("Chromium, wrong PIN", func(t *testing.T) {
		ls := startLoginService(t, false)
		b := newBrowserEnv(t, bench, module, pinentry, "nxp")
		b.trustInNSS(ls.ca)
		// A wrong PIN, then the user cancels; on the next visit the right PIN.
		b.answers = "11112222,cancel," + defaultPIN
		dom, _, _ := b.chromium(ls.url)
		if strings.Contains(dom, "Benvenuto") {
			t.Fatalf("logged in without the PIN:\n%s", dom)
		}
		if tries, _ := b.card.Control("pin-tries"); tries != "pin=2 puk=10" {
			t.Fatalf("after one wrong PIN and a cancel: %s, want pin=2 (the wrong PIN spent once, never resent)", tries)
		}
		ds := b.dialogs()
		if len(ds) != 2 {
			t.Fatalf("%d dialogs, want 2 (the wrong PIN, then the one the user cancelled): %+v", len(ds), ds)
		}
		if ds[1].Error != "Wrong PIN: 2 tries left." || !strings.Contains(ds[1].Desc, "2 tries left.") || ds[1].Options["cie-tries-left"] != "2" {
			t.Fatalf("the second dialog did not show the tries left: %+v", ds[1])
		}
		dom, _, _ = b.chromium(ls.url)
		if !strings.Contains(dom, `<h1 id="greeting">Benvenuto, MARIO ROSSI!</h1>`) {
			t.Fatalf("the right PIN did not log in:\n%s", dom)
		}
		if ds := b.dialogs(); len(ds) != 3 || !strings.Contains(ds[2].Desc, "2 tries left.") {
			t.Fatalf("dialogs: %+v", ds)
		}
		if tries, _ := b.card.Control("pin-tries"); tries != "pin=3 puk=10" {
			t.Fatalf("after the right PIN: %s", tries)
		}
	})

	t.Run("Chromium, server offers TLS 1.3", func(t *testing.T) {
		ls := startLoginService(t, true)
		b := newBrowserEnv(t, bench, module, pinentry, "stm3")
		b.trustInNSS(ls.ca)
		b.card.Control("stats reset")
		dom, _, netlog := b.chromium(ls.url)
		stats, _ := b.card.Control("stats")
		t.Logf("Chromium without a login (the module opens the card, no signature): card: %s", stats)
		if strings.Contains(dom, "Benvenuto") {
			t.Fatalf("logged in over TLS 1.3 with a PKCS#1-only key:\n%s", dom)
		}
		// Chromium negotiates TLS 1.3, finds no signature scheme the key
		// can do (TLS 1.3 allows only RSA-PSS for RSA keys, the module
		// offers none) and gives up: no fallback to TLS 1.2, no PIN asked.
		if errs := brNetErrors(t, netlog); !errs["ERR_SSL_CLIENT_AUTH_NO_COMMON_ALGORITHMS"] {
			t.Fatalf("net errors %v, want ERR_SSL_CLIENT_AUTH_NO_COMMON_ALGORITHMS", errs)
		}
		if ds := b.dialogs(); len(ds) != 0 {
			t.Fatalf("the PIN was asked for a login that could not succeed: %+v", ds)
		}
	})

	firefoxLogin := func(t *testing.T, family string, viaPolicy bool) {
		ls := startLoginService(t, false)
		b := newBrowserEnv(t, bench, module, pinentry, family)
		shot, wall, stats := b.firefox(ls, viaPolicy)
		logins := ls.logins("Firefox/")
		if len(logins) == 0 || !strings.Contains(logins[0], `status=200 holder="MARIO ROSSI" fiscal_code=RSSMRA80A01H501U`) || !strings.Contains(logins[0], `tls="TLS 1.2"`) {
			t.Fatalf("the service did not log Firefox in: %q", logins)
		}
		if n := brGreenPixels(t, shot); n < 500 {
			t.Fatalf("the screenshot shows no greeting (%d pixels of its colour)", n)
		}
		ds := b.dialogs()
		if len(ds) != 1 || !strings.Contains(ds[0].Desc, "Firefox wants to sign with the CIE of MARIO ROSSI") {
			t.Fatalf("dialogs: %+v", ds)
		}
		t.Logf("Firefox login: %v wall time (browser start to screenshot), card: %s", wall.Round(time.Millisecond), stats)
	}
	t.Run("Firefox, module added by policy", func(t *testing.T) { firefoxLogin(t, "actalis", true) })
	t.Run("Firefox, module in the profile", func(t *testing.T) { firefoxLogin(t, "bit4id2023", false) })

	t.Run("Firefox, server offers TLS 1.3", func(t *testing.T) {
		ls := startLoginService(t, true)
		b := newBrowserEnv(t, bench, module, pinentry, "bit4id")
		shot, _, _ := b.firefox(ls, true)
		// Firefox negotiates TLS 1.3, cannot sign RSA-PSS with the key, and
		// sends no certificate: the service shows its "No certificate" page.
		logins := ls.logins("Firefox/")
		if len(logins) == 0 || !strings.Contains(logins[0], `status=401`) || !strings.Contains(logins[0], `tls="TLS 1.3"`) {
			t.Fatalf("service log: %q", logins)
		}
		if n := brGreenPixels(t, shot); n > 0 {
			t.Fatalf("the screenshot shows the greeting colour (%d pixels)", n)
		}
		if ds := b.dialogs(); len(ds) != 0 {
			t.Fatalf("the PIN was asked for a login that could not succeed: %+v", ds)
		}
	})

	t.Run("pkcs11-tool with the module's dialog", func(t *testing.T) {
		b := newBrowserEnv(t, bench, module, pinentry, "gemalto2")
		run := func(args ...string) string {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "pkcs11-tool", append([]string{"--module", module, "--slot-description", b.card.Reader()}, args...)...)
			cmd.Env = b.env()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pkcs11-tool %q: %v\n%s", args, err, out)
			}
			return string(out)
		}
		out := run("-L")
		mustMatch(t, "-L", out, `token flags\s+: PIN pad present, token initialized, PIN initialized\n`)
		// Every object without a login, the private key included.
		mustMatch(t, "-O", run("-O"), `Private Key Object; RSA`)
		// --login without --pin: C_Login(NULL), the module's dialog.
		data := b.p.file("data.txt", []byte("sign me"))
		run("--login", "--sign", "-m", "SHA256-RSA-PKCS", "--input-file", data, "--output-file", filepath.Join(b.p.home, "sig"))
		if ds := b.dialogs(); len(ds) != 1 || !ds[0].Answered {
			t.Fatalf("dialogs after pkcs11-tool --login: %+v", ds)
		}
		// --login --pin: C_Login with the PIN, no brDialog.
		run("--login", "--pin", defaultPIN, "--sign", "-m", "SHA256-RSA-PKCS", "--input-file", data, "--output-file", filepath.Join(b.p.home, "sig2"))
		if ds := b.dialogs(); len(ds) != 1 {
			t.Fatalf("pkcs11-tool --pin opened the brDialog: %+v", ds)
		}
	})
}
