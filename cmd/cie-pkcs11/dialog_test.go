package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFindWindowsProgram checks the Windows choice of the PIN dialog:
// $CIE_PINENTRY, then cie-tray.exe next to the DLL, then on PATH.
func TestFindWindowsProgram(t *testing.T) {
	withTray := t.TempDir()
	if err := os.WriteFile(filepath.Join(withTray, trayExe), []byte("MZ"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	onPath := `C:\Tools\cie-tray.exe`
	found := func(string) (string, error) { return onPath, nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "CIE_PINENTRY" {
				return v
			}
			return "" // no DISPLAY: pinentry.Find alone would give up
		}
	}
	tests := []struct {
		name     string
		dir      string
		env      string
		lookPath func(string) (string, error)
		wantOK   bool
		wantPath string
		wantArgs []string
	}{
		{"next to the DLL", withTray, "", found, true, filepath.Join(withTray, trayExe), []string{"pinentry"}},
		{"on PATH", empty, "", found, true, onPath, []string{"pinentry"}},
		{"unknown module directory", "", "", found, true, onPath, []string{"pinentry"}},
		{"none", empty, "", missing, false, "", nil},
		{"environment first", withTray, `C:\p\pinentry.exe --debug`, found, true, `C:\p\pinentry.exe`, []string{"--debug"}},
		{"environment off", withTray, "none", found, false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := findWindowsProgram(tt.dir, env(tt.env), tt.lookPath)
			if ok != tt.wantOK || p.Path != tt.wantPath || !slices.Equal(p.Args, tt.wantArgs) {
				t.Errorf("findWindowsProgram = %q %q %v, want %q %q %v", p.Path, p.Args, ok, tt.wantPath, tt.wantArgs, tt.wantOK)
			}
		})
	}
}
