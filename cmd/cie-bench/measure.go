package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/benchrun"
)

//go:embed harness/harness.c
var harnessSource []byte

//go:embed floor/floor.go.txt
var floorSource []byte

// buildFloor builds the empty Go c-shared library of the "Go runtime
// floor" row into dir, with the flags the module is built with (make
// module), and returns its path.
func buildFloor(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "floor")
	if err := os.MkdirAll(src, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module ciebenchfloor\n\ngo 1.26\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the floor library: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "floor.go"), floorSource, 0o600); err != nil {
		return "", fmt.Errorf("writing the floor library: %w", err)
	}
	lib := filepath.Join(dir, "libciebenchfloor.so")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", lib, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the floor library: %w\n%s", err, out)
	}
	return lib, nil
}

// buildHarness compiles the C harness against the module's headers into
// dir and returns the executable.
func buildHarness(ctx context.Context, root, dir string) (string, error) {
	src := filepath.Join(dir, "harness.c")
	if err := os.WriteFile(src, harnessSource, 0o600); err != nil {
		return "", fmt.Errorf("writing the harness source: %w", err)
	}
	bin := filepath.Join(dir, "cie-bench-harness")
	include := filepath.Join(root, "cmd", "cie-pkcs11", "include")
	out, err := exec.CommandContext(ctx, "gcc", "-Wall", "-O2", "-I", include, "-o", bin, src, "-ldl").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("compiling the harness with gcc: %w\n%s", err, out)
	}
	return bin, nil
}

// card is what the runner needs of the bench: the reader and the card's
// counter.
type card interface {
	Reader() string
	Stats() (benchrun.Stats, error)
	ResetStats() error
}

// runner runs the measured programs against the card.
type runner struct {
	card    card
	harness string // the compiled harness
	module  string // libcie-pkcs11.so
	home    string // HOME of every program run
	// timeout bounds each program run.
	timeout time.Duration
}

// env is the environment of a measured program: a private HOME, and
// configDir as XDG_CONFIG_HOME (where the certificate cache lives).
func (r *runner) env(configDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "XDG_CONFIG_HOME", "CIE_PKCS11_LOG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+r.home, "XDG_CONFIG_HOME="+configDir)
}

// process runs one program to its end with stdin as input, and measures
// it from the outside: wall time from start to exit, CPU time and peak
// RSS from its rusage, APDUs and bytes from the card's counter (reset
// before the start). A program that fails is an error carrying its
// output.
func (r *runner) process(ctx context.Context, configDir, stdin string, name string, args ...string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env(configDir)
	cmd.Dir = r.home
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := r.card.ResetStats(); err != nil {
		return sample{}, err
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(out.String(), 15))
	}
	st, err := r.card.Stats()
	if err != nil {
		return sample{}, err
	}
	s := sample{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(),
		apdus: st.APDUs, toCard: st.ToCard, fromCard: st.FromCard}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rssKB = ru.Maxrss // kilobytes on Linux
	}
	return s, nil
}

// harnessProcess runs the harness through steps in one process measured
// from the outside.
func (r *runner) harnessProcess(ctx context.Context, configDir, pin string, steps ...string) (sample, error) {
	return r.process(ctx, configDir, "", r.harness, r.module, r.card.Reader(), pin, strings.Join(steps, ","))
}

// floorStep runs the harness's floor step on the library lib.
func (r *runner) floorStep(ctx context.Context, lib string) (sample, error) {
	rr := *r
	rr.module = lib
	steps, err := rr.harnessSteps(ctx, filepath.Join(r.home, ".config"), "", "floor")
	if err != nil {
		return sample{}, err
	}
	return steps[0], nil
}

// harnessSteps runs the harness through steps in one process and measures
// each step from the inside (wall and CPU time around the PKCS#11 calls,
// peak RSS so far); between steps the harness waits while the card's
// counter is read and reset.
func (r *runner) harnessSteps(ctx context.Context, configDir, pin string, steps ...string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.harness, r.module, r.card.Reader(), pin, strings.Join(steps, ","), "pause")
	cmd.Env = r.env(configDir)
	cmd.Dir = r.home
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := r.card.ResetStats(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the harness: %w", err)
	}
	samples, stepErr := r.readSteps(stdout, stdin, steps)
	stdin.Close()
	io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	if err := errors.Join(stepErr, waitErr); err != nil {
		return nil, fmt.Errorf("harness %s: %w\n%s", strings.Join(steps, ","), err, tail(stderr.String(), 15))
	}
	return samples, nil
}

func (r *runner) readSteps(stdout io.Reader, stdin io.Writer, steps []string) ([]sample, error) {
	sc := bufio.NewScanner(stdout)
	var samples []sample
	for _, want := range steps {
		if !sc.Scan() {
			return nil, fmt.Errorf("the harness stopped before step %s", want)
		}
		name, s, rv, err := parseStep(sc.Text())
		if err != nil {
			return nil, err
		}
		if name != want {
			return nil, fmt.Errorf("the harness ran step %s, want %s", name, want)
		}
		if rv != 0 {
			return nil, fmt.Errorf("step %s failed with CK_RV 0x%X", name, rv)
		}
		st, err := r.card.Stats()
		if err != nil {
			return nil, err
		}
		s.apdus, s.toCard, s.fromCard = st.APDUs, st.ToCard, st.FromCard
		if err := r.card.ResetStats(); err != nil {
			return nil, err
		}
		samples = append(samples, s)
		if _, err := io.WriteString(stdin, "\n"); err != nil {
			return nil, fmt.Errorf("letting the harness go on after %s: %w", name, err)
		}
	}
	return samples, nil
}

// parseStep reads a harness line "step NAME WALL_NS CPU_NS MAXRSS_KB RV".
func parseStep(line string) (name string, s sample, rv uint64, err error) {
	var wall, cpu int64
	if _, err := fmt.Sscanf(line, "step %s %d %d %d 0x%x", &name, &wall, &cpu, &s.rssKB, &rv); err != nil {
		return "", sample{}, 0, fmt.Errorf("unexpected harness output %q: %w", line, err)
	}
	s.wall, s.cpu = time.Duration(wall), time.Duration(cpu)
	return name, s, rv, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
