//go:build package

package e2e

// The Debian package, installed for real: `go test -tags package -run
// TestDebPackage ./e2e` as root on a throw-away machine (the CI job does
// it). It installs the .deb with dpkg, checks p11-kit, Firefox's policy and
// a signature through p11-kit-proxy.so, purges it and checks that nothing
// is left. Whatever happens, the cleanup purges the package and puts the
// Firefox policy file back as it was. CIE_DEB names a prebuilt .deb (its
// .rpm beside it); otherwise scripts/dist.sh builds both. The .rpm's
// metadata is checked with rpm.

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

const (
	debName      = "cie-desktop"
	debModule    = "/usr/lib/x86_64-linux-gnu/pkcs11/libcie-pkcs11.so"
	p11KitProxy  = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
	firefoxPol   = "/etc/firefox/policies/policies.json"
	moduleInPol  = "CIE Desktop"
	otherModule  = "/usr/lib/other-pkcs11.so"
	seededPolicy = `{"policies":{"DisableTelemetry":true,"SecurityDevices":{"Add":{"Other":"` + otherModule + `"}}}}`
)

// debFiles are what the package installs; none may remain after purge.
var debFiles = []string{
	"/usr/bin/cie",
	"/usr/bin/cie-tray",
	debModule,
	"/usr/share/p11-kit/modules/cie-desktop.module",
	"/usr/share/applications/cie-desktop.desktop",
	"/etc/xdg/autostart/cie-tray.desktop",
	"/etc/xdg/autostart/cie-browser-register.desktop",
	"/usr/share/icons/hicolor/48x48/apps/cie-desktop.png",
}

// policyFile is the part of policies.json the test looks at.
type policyFile struct {
	Policies struct {
		DisableTelemetry bool
		SecurityDevices  struct {
			Add    map[string]string
			Delete []string
		}
	} `json:"policies"`
}

func readPolicyFile(t *testing.T) policyFile {
	t.Helper()
	b, err := os.ReadFile(firefoxPol)
	if err != nil {
		t.Fatalf("reading the Firefox policy: %v", err)
	}
	var p policyFile
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("parsing the Firefox policy: %v\n%s", err, b)
	}
	return p
}

func runCmd(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// buildPackages returns the .deb and the .rpm: CIE_DEB and the .rpm next
// to it, or both built with scripts/dist.sh.
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	dir := filepath.Dir(os.Getenv("CIE_DEB"))
	if os.Getenv("CIE_DEB") == "" {
		root := testbench.ModuleRoot(t)
		dir = t.TempDir()
		cmd := exec.Command(filepath.Join(root, "scripts", "dist.sh"))
		cmd.Dir = root
		// The Windows installer is TestWindowsMSI's (msi_test.go).
		cmd.Env = append(os.Environ(), "DIST_DIR="+dir, "DIST_WINDOWS=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/dist.sh: %v\n%s", err, out)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dir, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("%s holds %d .deb and %d .rpm files, want one of each", dir, len(debs), len(rpms))
	}
	return debs[0], rpms[0]
}

// checkRPM checks the .rpm's files, dependencies and scriptlets with rpm
// (it cannot be installed on Debian).
func checkRPM(t *testing.T, rpm string) {
	t.Helper()
	files, err := runCmd(t, nil, "rpm", "-qlp", rpm)
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, files)
	}
	for _, f := range []string{"/usr/bin/cie", "/usr/bin/cie-tray", "/usr/lib64/pkcs11/libcie-pkcs11.so",
		"/usr/share/p11-kit/modules/cie-desktop.module", "/etc/xdg/autostart/cie-browser-register.desktop",
		"/etc/xdg/autostart/cie-tray.desktop"} {
		if !strings.Contains(files, f+"\n") {
			t.Errorf("the rpm lacks %s:\n%s", f, files)
		}
	}
	if strings.Contains(files, "x86_64-linux-gnu") {
		t.Errorf("the rpm uses Debian's library directory:\n%s", files)
	}
	if req, _ := runCmd(t, nil, "rpm", "-qRp", rpm); !strings.Contains(req, "pcsc-lite\n") {
		t.Errorf("the rpm does not require pcsc-lite:\n%s", req)
	}
	if sc, _ := runCmd(t, nil, "rpm", "-qp", "--scripts", rpm); !strings.Contains(sc, "cie browser register --system") || !strings.Contains(sc, "cie browser unregister --system") {
		t.Errorf("the rpm scriptlets do not (un)register the module:\n%s", sc)
	}
}

// saveFile returns a function that puts path back as it was (absent, or with its bytes), and
// removes the directories the test created for it.
func saveFile(t *testing.T, path string) func() {
	t.Helper()
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reading %s: %v", path, err)
	}
	var created []string
	for d := filepath.Dir(path); d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			created = append(created, d)
		}
	}
	return func() {
		if existed {
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Errorf("restoring %s: %v", path, err)
			}
			return
		}
		os.Remove(path)
		for _, d := range created {
			os.Remove(d)
		}
	}
}

func TestDebPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the package test installs a .deb: run it as root on a throw-away machine")
	}
	if out, err := runCmd(t, nil, "dpkg-query", "-W", "-f=${Status}", debName); err == nil && strings.Contains(out, "installed") {
		t.Fatalf("%s is already installed (%s): the test would remove it", debName, out)
	}
	deb, rpm := buildPackages(t)
	checkRPM(t, rpm)

	// dpkg's maintainer scripts run `cie browser register --system`, which
	// also touches the caller's home: give them a private one.
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))

	// An existing policy with somebody else's settings, which must survive.
	t.Cleanup(saveFile(t, firefoxPol))
	if err := os.MkdirAll(filepath.Dir(firefoxPol), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(firefoxPol, []byte(seededPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := runCmd(t, env, "dpkg-query", "-W", "-f=${Status}", debName); err == nil && strings.Contains(out, "installed") {
			if out, err := runCmd(t, env, "dpkg", "--purge", debName); err != nil {
				t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
			}
		}
	})

	if out, err := runCmd(t, env, "dpkg", "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	for _, f := range debFiles {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed package: %v", err)
		}
	}
	if out, _ := runCmd(t, nil, "dpkg-deb", "-f", deb, "Depends"); !strings.Contains(out, "pcscd") {
		t.Errorf("Depends does not name pcscd: %q", out)
	}

	// p11-kit finds the module through the module file.
	out, err := runCmd(t, env, "p11-kit", "list-modules")
	if err != nil {
		t.Fatalf("p11-kit list-modules: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^cie-desktop: .*libcie-pkcs11\.so\n\s+library-description: `).MatchString(out) {
		t.Fatalf("p11-kit list-modules does not list the module:\n%s", out)
	}

	// Firefox's policy: ours added, the rest kept.
	pol := readPolicyFile(t)
	if got := pol.Policies.SecurityDevices.Add[moduleInPol]; got != debModule {
		t.Errorf("Firefox policy after install: %q = %q, want %q", moduleInPol, got, debModule)
	}
	if !pol.Policies.DisableTelemetry || pol.Policies.SecurityDevices.Add["Other"] != otherModule {
		t.Errorf("Firefox policy after install lost the existing policies: %+v", pol)
	}

	// A signature through p11-kit's proxy, as p11-kit-aware programs make it.
	bench := testbench.Start(t, testbench.Options{})
	card := bench.StartCard(t, "--family", "gemalto")
	p := newP11(t, p11KitProxy, card.Reader())
	data := p.file("data.txt", []byte("Firmato tramite p11-kit\n"))
	sig := filepath.Join(p.home, "data.sig")
	p.tool("--login", "--pin", defaultPIN, "--sign", "-m", "SHA256-RSA-PKCS", "--input-file", data, "--output-file", sig)
	sigBytes, err := os.ReadFile(sig)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("Firmato tramite p11-kit\n"))
	holder := stateCertificate(t)
	if err := rsa.VerifyPKCS1v15(holder.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sigBytes); err != nil {
		t.Fatalf("the signature made through p11-kit-proxy does not verify with the card's certificate: %v", err)
	}
	card.Stop(t)

	// Purge: nothing left.
	if out, err := runCmd(t, env, "dpkg", "--purge", debName); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	for _, f := range debFiles {
		if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after purge %s is still there (%v)", f, err)
		}
	}
	if out, _ := runCmd(t, nil, "dpkg-query", "-W", "-f=${Status}", debName); strings.Contains(out, "installed") || strings.Contains(out, "config-files") {
		t.Errorf("after purge dpkg still knows the package: %q", out)
	}
	if out, _ := runCmd(t, env, "p11-kit", "list-modules"); strings.Contains(out, "libcie-pkcs11") {
		t.Errorf("after purge p11-kit still lists the module:\n%s", out)
	}
	if out, _ := runCmd(t, nil, "update-alternatives", "--get-selections"); strings.Contains(out, "cie") {
		t.Errorf("after purge an alternative remains:\n%s", out)
	}
	// The policy: ours out of Add (and in Delete, so that Firefox removes
	// it from the profiles it was added to), everything else as it was.
	pol = readPolicyFile(t)
	if _, ok := pol.Policies.SecurityDevices.Add[moduleInPol]; ok {
		t.Errorf("after purge the Firefox policy still adds the module: %+v", pol)
	}
	if !pol.Policies.DisableTelemetry || pol.Policies.SecurityDevices.Add["Other"] != otherModule {
		t.Errorf("after purge the Firefox policy lost the existing policies: %+v", pol)
	}
	if d := pol.Policies.SecurityDevices.Delete; len(d) != 1 || d[0] != moduleInPol {
		t.Errorf("after purge the Firefox policy's Delete = %q, want [%q]", d, moduleInPol)
	}
}
