// Command gen writes the application icon in the hicolor sizes of
// icon.LauncherSizes under the directory given as its argument:
// DIR/hicolor/N×N/apps/cie-desktop.png. Run by `go generate ./tray/icon`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ciedesktop/cie-desktop/tray/icon"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen DIR")
		os.Exit(2)
	}
	for _, n := range icon.LauncherSizes {
		dir := filepath.Join(os.Args[1], "hicolor", fmt.Sprintf("%dx%d", n, n), "apps")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(dir, icon.LauncherName+".png"), icon.PNG(icon.App, n), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
