//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/benchrun"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// binDir puts the programs cie-bench drives, built from this tree, in one
// directory, as `make build` does in bin/.
func binDir(t *testing.T) string {
	t.Helper()
	root := testbench.ModuleRoot(t)
	dir := t.TempDir()
	for _, pkg := range []string{"./cmd/cie", "./cmd/cie-sim"} {
		if err := os.Symlink(testbench.BuildBinary(t, pkg), filepath.Join(dir, filepath.Base(pkg))); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath",
		"-ldflags", "-s -w -extldflags=-Wl,--version-script="+filepath.Join(root, "cmd", "cie-pkcs11", "exports.map"),
		"-o", filepath.Join(dir, "libcie-pkcs11.so"), "./cmd/cie-pkcs11")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the module: %v\n%s", err, out)
	}
	return dir
}

// TestBench drives the built programs through pcscd (started as root if
// it is not running) and vpcd readers taken beside the other tests.
func TestBench(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	bin := binDir(t)
	t.Run("whole run", func(t *testing.T) { testBenchRun(t, bin) })
	t.Run("steps add up", func(t *testing.T) { testStepsAddUp(t, bench, bin) })
}

// testBenchRun runs the whole benchmark once at 0 ms and reads the table
// as a user would: every operation is there, the card counted APDUs
// exactly where a card is used, and the report is saved with the machine
// description.
func testBenchRun(t *testing.T, bin string) {
	save := t.TempDir()
	var out, errb bytes.Buffer
	code := run([]string{"--root", testbench.ModuleRoot(t), "--bin", bin, "--reps", "1", "--latency", "0ms",
		"--big=false", "--save", save, "-q"}, &out, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("cie-bench exited %d: %s\n%s", code, errb.String(), out.String())
	}
	table := out.String()
	t.Logf("\n%s", table)
	for _, o := range allOps {
		if o == opSHA1G || o == opCAdES1G || o == opCAdES1GDetached {
			if regexp.MustCompile(`(?m)^0 ms +`+regexp.QuoteMeta(o.name)+` `).MatchString(table) || strings.Contains(table, "  "+o.name+"  ") {
				t.Errorf("--big=false, but the table has %q", o.name)
			}
			continue
		}
		m := regexp.MustCompile(`(?m)^0 ms +` + regexp.QuoteMeta(o.name) + ` +(\d+) +(\d+) +(\d+) `).FindStringSubmatch(table)
		if m == nil {
			t.Errorf("no row %q", o.name)
			continue
		}
		apdus, _ := strconv.Atoi(m[1])
		toCard, _ := strconv.Atoi(m[2])
		fromCard, _ := strconv.Atoi(m[3])
		// Without a card, and with a paired card (presented from its
		// record), start-up sends nothing.
		silent := o == opFloor || o == opStartNoCard || o == opStartPaired
		switch {
		case silent && (apdus != 0 || toCard != 0 || fromCard != 0):
			t.Errorf("%s: the card counted %d APDUs", o.name, apdus)
		case !silent && (apdus == 0 || toCard < 4*apdus || fromCard < 2*apdus):
			t.Errorf("%s: %d APDUs, %d bytes to the card, %d from it", o.name, apdus, toCard, fromCard)
		}
	}
	if !strings.Contains(table, "Targets met: ") || !strings.Contains(table, "p11 further C_Sign (≤ 3 APDUs)") {
		t.Errorf("no verdicts:\n%s", table)
	}
	files, _ := filepath.Glob(filepath.Join(save, "*.txt"))
	if len(files) != 1 || !regexp.MustCompile(`/\d{4}-\d\d-\d\d_\d{6}\.txt$`).MatchString(files[0]) {
		t.Fatalf("saved reports: %q", files)
	}
	saved, _ := os.ReadFile(files[0])
	for _, key := range []string{"Date: ", "CPUs (nproc): ", "CPU model: ", "Memory: ", "Kernel: ", "Go: go1."} {
		if !bytes.Contains(saved, []byte("\n"+key)) {
			t.Errorf("the saved report lacks %q", key)
		}
	}
}

// testStepsAddUp: the APDUs the runner attributes to the steps of one
// harness process add up to what the card counts for the same process run
// whole, and the figures of each step are there.
func testStepsAddUp(t *testing.T, bench *testbench.Bench, bin string) {
	card := bench.StartCard(t, "--family", "nxp")
	work := t.TempDir()
	harness, err := buildHarness(context.Background(), testbench.ModuleRoot(t), work)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{card: testCard{card}, harness: harness, module: filepath.Join(bin, "libcie-pkcs11.so"), home: work, timeout: 90 * time.Second}
	steps := []string{"init", "login", "sign", "sign", "final"}
	parts, err := r.harnessSteps(context.Background(), t.TempDir(), "12345678", steps...)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i, p := range parts {
		sum += p.apdus
		if p.wall <= 0 || p.rssKB <= 0 {
			t.Errorf("step %s: %+v", steps[i], p)
		}
	}
	if parts[0].apdus == 0 || parts[1].apdus == 0 || parts[2].apdus == 0 || parts[3].apdus == 0 {
		t.Errorf("steps without APDUs: %+v", parts)
	}
	whole, err := r.harnessProcess(context.Background(), t.TempDir(), "12345678", steps...)
	if err != nil {
		t.Fatal(err)
	}
	if whole.apdus != sum || whole.cpu <= 0 || whole.rssKB <= 0 {
		t.Fatalf("whole process: %+v; the steps add up to %d APDUs", whole, sum)
	}
	// A wrong PIN is an error that names the step and its CK_RV.
	_, err = r.harnessSteps(context.Background(), t.TempDir(), "11112222", "init", "login")
	if err == nil || !strings.Contains(err.Error(), "step login failed with CK_RV 0xA0") {
		t.Fatalf("wrong PIN: %v", err)
	}
}

// testCard gives a testbench card the counter methods of a benchrun one.
type testCard struct{ c *testbench.Card }

func (tc testCard) Reader() string { return tc.c.Reader() }

func (tc testCard) Stats() (benchrun.Stats, error) {
	a, err := tc.c.Control("stats")
	if err != nil {
		return benchrun.Stats{}, err
	}
	return benchrun.ParseStats(a)
}

func (tc testCard) ResetStats() error {
	_, err := tc.c.Control("stats reset")
	return err
}
