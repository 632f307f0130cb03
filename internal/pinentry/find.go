package pinentry

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvProgram is the environment variable that names the pinentry program:
// a path, optionally followed by arguments separated by spaces, or "none"
// to use no dialog at all.
const EnvProgram = "CIE_PINENTRY"

// Lookup is what Find needs from the process: its environment and the
// executable search. The zero value uses os.Getenv, exec.LookPath and
// os.Stat.
type Lookup struct {
	Getenv     func(string) string
	LookPath   func(string) (string, error)
	Executable func(path string) bool
}

func (l Lookup) getenv(k string) string {
	if l.Getenv != nil {
		return l.Getenv(k)
	}
	return os.Getenv(k)
}

func (l Lookup) lookPath(name string) (string, error) {
	if l.LookPath != nil {
		return l.LookPath(name)
	}
	return exec.LookPath(name)
}

func (l Lookup) executable(path string) bool {
	if l.Executable != nil {
		return l.Executable(path)
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Find returns the pinentry program for the CIE PIN dialog, in this order:
//
//  1. $CIE_PINENTRY ("none" or "off": no program);
//  2. cie-tray next to the PKCS#11 module (moduleDir, may be empty), run
//     as `cie-tray pinentry`;
//  3. cie-tray on PATH, run as `cie-tray pinentry`;
//  4. the system `pinentry` on PATH.
//
// The last three are dialogs of a graphical session: they are used only
// when DISPLAY or WAYLAND_DISPLAY is set. A module loaded by a browser has
// no terminal, so a terminal pinentry could never be shown; without a
// session only an explicit $CIE_PINENTRY counts. ok is false when there is
// no program: the module then behaves as a plain PKCS#11 token whose
// applications log in themselves.
func Find(moduleDir string, l Lookup) (p Program, ok bool) {
	if v := strings.TrimSpace(l.getenv(EnvProgram)); v != "" {
		if v == "none" || v == "off" {
			return Program{}, false
		}
		f := strings.Fields(v)
		return Program{Path: f[0], Args: f[1:]}, true
	}
	if l.getenv("DISPLAY") == "" && l.getenv("WAYLAND_DISPLAY") == "" {
		return Program{}, false
	}
	if moduleDir != "" {
		if path := filepath.Join(moduleDir, "cie-tray"); l.executable(path) {
			return Program{Path: path, Args: []string{"pinentry"}}, true
		}
	}
	if path, err := l.lookPath("cie-tray"); err == nil {
		return Program{Path: path, Args: []string{"pinentry"}}, true
	}
	if path, err := l.lookPath("pinentry"); err == nil {
		return Program{Path: path}, true
	}
	return Program{}, false
}
