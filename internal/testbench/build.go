//go:build linux

package testbench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds caches BuildBinary's results for the life of the test process.
var builds struct {
	mu      sync.Mutex
	dir     string
	dirErr  error
	cleaner *os.File // write end of the pipe that keeps the cleaner waiting
	byPkg   map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary builds the main package pkg (a path relative to the module
// root, e.g. "./cmd/cie") once per test process and returns the
// executable's path. Binaries live in a temporary directory that is removed
// when the test process exits, however it exits.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	root := ModuleRoot(t)
	builds.mu.Lock()
	if builds.byPkg == nil {
		builds.byPkg = map[string]*build{}
		builds.dir, builds.dirErr = binDir()
	}
	dir, dirErr := builds.dir, builds.dirErr
	bld := builds.byPkg[pkg]
	if bld == nil {
		bld = &build{}
		builds.byPkg[pkg] = bld
	}
	n := len(builds.byPkg)
	builds.mu.Unlock()
	if dirErr != nil {
		t.Fatalf("testbench: %v", dirErr)
	}
	bld.once.Do(func() {
		// One subdirectory per package keeps the executable's own name
		// (programs print it in usage messages) without collisions.
		out := filepath.Join(dir, fmt.Sprint(n), filepath.Base(pkg))
		cmd := exec.Command(goTool(), "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			bld.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
			return
		}
		bld.path = out
	})
	if bld.err != nil {
		t.Fatalf("testbench: %v", bld.err)
	}
	return bld.path
}

// binDir makes the directory for built binaries and starts a helper that
// removes it when this process exits: the helper waits for EOF on a pipe
// whose write end only this process holds, and the kernel closes it on any
// exit, a crash or a SIGKILL included.
func binDir() (string, error) {
	dir, err := os.MkdirTemp("", "cie-testbench-bin-")
	if err != nil {
		return "", fmt.Errorf("creating the binaries directory: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("creating the cleaner's pipe: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", `read _; rm -rf "$0"`, dir)
	cmd.Stdin = r
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(dir)
		return "", fmt.Errorf("starting the cleaner: %w", err)
	}
	r.Close()
	go func() { _ = cmd.Wait() }() // reaps it if the pipe is ever closed early
	builds.cleaner = w             // referenced for the process's life: never collected and closed
	return dir, nil
}

// goTool returns the go command that runs the tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if gr := os.Getenv("GOROOT"); gr != "" {
		return filepath.Join(gr, "bin", "go")
	}
	return "/usr/local/go/bin/go"
}

// ModuleRoot returns the directory of the go.mod that holds the test's
// working directory (go test runs each package in its own directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testbench: %v", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module ") {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("testbench: no go.mod above %s", dir)
		}
	}
}
