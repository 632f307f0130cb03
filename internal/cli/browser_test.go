package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/browser"
)

// runBrowser runs `cie browser ARGS` with HOME set to home and returns
// standard output.
func runBrowser(t *testing.T, home string, args ...string) (string, error) {
	t.Helper()
	t.Setenv("HOME", home)
	var out bytes.Buffer
	a := &app{env: Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard}, log: slog.New(slog.DiscardHandler)}
	err := a.browser(context.Background(), args)
	return out.String(), err
}

func TestBrowserCommand(t *testing.T) {
	home := t.TempDir()
	module := filepath.Join(t.TempDir(), "libcie-pkcs11.so")
	if err := os.WriteFile(module, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runBrowser(t, home, "register", "--module", module)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Chromium         ~/.pki/nssdb",
		"Chromium         ~/.local/share/pki/nssdb",
		"registered (" + module + "), changed now",
		"Restart the browsers",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("register output lacks %q:\n%s", want, out)
		}
	}
	out, err = runBrowser(t, home, "register", "--module", module)
	if err != nil || strings.Contains(out, "changed now") || strings.Contains(out, "Restart") {
		t.Fatalf("the second register changed something (%v):\n%s", err, out)
	}
	out, err = runBrowser(t, home, "status", "--module", module)
	if err != nil || strings.Count(out, "registered ("+module+")") != 2 {
		t.Fatalf("status (%v):\n%s", err, out)
	}
	out, err = runBrowser(t, home, "unregister")
	if err != nil || strings.Count(out, "not registered, changed now") != 2 {
		t.Fatalf("unregister (%v):\n%s", err, out)
	}
	// A registration whose library is gone says so.
	if _, err := runBrowser(t, home, "register", "--module", module); err != nil {
		t.Fatal(err)
	}
	os.Remove(module)
	out, _ = runBrowser(t, home, "status")
	if !strings.Contains(out, "that file is missing") {
		t.Fatalf("status with the library gone:\n%s", out)
	}
}

func TestBrowserCommandErrors(t *testing.T) {
	home := t.TempDir()
	var usage *usageError
	for _, args := range [][]string{nil, {"frobnicate"}, {"unregister", "--module", "x"}, {"status", "--system"}, {"register", "extra"}} {
		if _, err := runBrowser(t, home, args...); !errors.As(err, &usage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	_, err := runBrowser(t, home, "register", "--module", filepath.Join(home, "missing.so"))
	if err == nil || errors.As(err, &usage) || !strings.Contains(err.Error(), "opening the module") {
		t.Fatalf("a missing module: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, ".pki")); err == nil {
		t.Fatal("a failed register wrote a database")
	}
}

func TestBrowserSystemPolicy(t *testing.T) {
	home := t.TempDir()
	module := filepath.Join(t.TempDir(), "libcie-pkcs11.so")
	os.WriteFile(module, []byte("\x7fELF"), 0o755)
	policy := filepath.Join(t.TempDir(), "policies.json")
	saved := browser.DefaultPolicyFiles
	browser.DefaultPolicyFiles = []string{policy}
	defer func() { browser.DefaultPolicyFiles = saved }()
	out, err := runBrowser(t, home, "register", "--module", module, "--system")
	if os.Geteuid() != 0 {
		var usage *usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), "root") {
			t.Fatalf("--system as a user: %v", err)
		}
		return
	}
	if err != nil || !strings.Contains(out, "Firefox policy   "+policy) {
		t.Fatalf("%v:\n%s", err, out)
	}
	b, _ := os.ReadFile(policy)
	if !strings.Contains(string(b), `"CIE Desktop": "`+module+`"`) {
		t.Fatalf("policy:\n%s", b)
	}
}
