package e2e

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the whole package, and every program it starts, a private
// configuration directory, so that certificate caches written by the tests
// never mix with the user's. HOME is left alone so the Go build cache stays.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cie-e2e-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: creating the configuration directory:", err)
		os.Exit(1)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	// The module's sign-on-demand dialog is for desktops; tests that want it
	// (browser_test.go) name their scripted pinentry explicitly.
	os.Setenv("CIE_PINENTRY", "none")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
