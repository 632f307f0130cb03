package pinentry

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvProgram is the environment variable that names the pinentry program:
// a path, optionally followed by arguments separated by spaces, or "none"
// to use no dialog at all. A path or an argument with spaces in it is
// written in double quotes (`"C:\Program Files\GnuPG\bin\pinentry.exe"
// --timeout 60`); a value that is as a whole the path of an existing file
// needs none. Backslashes are not escapes, so Windows paths are written as
// they are.
const EnvProgram = "CIE_PINENTRY"

// ParseCommand splits the value of EnvProgram into a program and its
// arguments: words separated by spaces or tabs, where a part in double
// (or single) quotes keeps its spaces and loses the quotes. It reports an
// unclosed quote or an empty command.
func ParseCommand(v string) (Program, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range v {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return Program{}, fmt.Errorf("parsing %s: unclosed %c quote", EnvProgram, quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 || words[0] == "" {
		return Program{}, fmt.Errorf("parsing %s: no program", EnvProgram)
	}
	return Program{Path: words[0], Args: words[1:]}, nil
}

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

// isFile reports whether path names an existing regular file (with the
// Executable hook when set, as tests do).
func (l Lookup) isFile(path string) bool {
	if l.Executable != nil {
		return l.Executable(path)
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
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
		if l.isFile(v) {
			return Program{Path: v}, true
		}
		p, err := ParseCommand(v)
		if err != nil {
			// Kept whole: starting it fails with an error that shows the
			// value, where silently using no dialog would hide the mistake.
			return Program{Path: v}, true
		}
		return p, true
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
