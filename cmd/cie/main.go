// Command cie manages a CIE 3.0 (Italian electronic identity card) from the
// command line: readers, card status, certificate, PIN change and unblock.
// See README.md for usage and exit codes.
package main

import (
	"os"

	"golang.org/x/term"

	"github.com/ciedesktop/cie-desktop/internal/cli"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	env := cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Version: version}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		env.ReadPassword = func() ([]byte, error) { return term.ReadPassword(fd) }
	}
	os.Exit(cli.Main(os.Args[1:], env))
}
