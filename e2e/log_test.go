package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/rotlog"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// logRecordRE is one whole record of the module's log (slog's text format,
// with the pid the module adds).
var logRecordRE = regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=.* pid=\d+`)

// TestModuleLogRotates loads the real module with CIE_PKCS11_LOG set and a
// 1 KiB bound, from pkcs11-tool processes run one after another and two at
// a time against cie-sim, and checks the log files: bounded, rotated, 0600,
// whole records only, no record lost while the rotated files are kept, at
// most KEEP rotated files, and no PIN.
func TestModuleLogRotates(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	module := buildModule(t, t.TempDir())
	card := bench.StartCard(t, "--family", "gemalto")
	const maxSize = 1024
	t.Setenv("CIE_PKCS11_LOG_MAX_KB", "1")
	t.Setenv("CIE_PKCS11_LOG_KEEP", "100") // enough to keep every record of the first part
	p := newP11(t, module, card.Reader())

	runs := 0
	p.tool("--login", "--pin", defaultPIN, "-O") // pairs the card and logs the login
	runs++
	for range 3 {
		p.tool("-L", "-O")
		runs++
	}
	// Two processes at a time append to the same file and rotate it.
	for range 3 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = runTool(p, "-L", "-O")
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		runs += 2
	}

	files := rotlog.Files(p.log)
	if len(files) < 4 {
		t.Fatalf("the log rotated %d times; the test wants at least 3 (files %q)", len(files)-1, files)
	}
	records := checkLogFiles(t, files, maxSize)
	for _, msg := range []string{`msg="pkcs11: initialised"`, `msg="pkcs11: finalised"`} {
		if n := countContaining(records, msg); n != runs {
			t.Errorf("%d records %s for %d module loads: records were lost", n, msg, runs)
		}
	}
	t.Logf("%d module loads: %d records in %d files", runs, len(records), len(files))

	// With KEEP=2, the next rotations drop all but the two newest.
	t.Setenv("CIE_PKCS11_LOG_KEEP", "2")
	for range 2 {
		p.tool("-L", "-O")
	}
	files = rotlog.Files(p.log)
	if want := []string{p.log + ".2", p.log + ".1", p.log}; strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files %q, want %q", files, want)
	}
	records = checkLogFiles(t, files, maxSize)
	if last := records[len(records)-1]; !strings.Contains(last, `msg="pkcs11: finalised"`) {
		t.Errorf("the newest record is not the last load's finalisation: %q", last)
	}
}

// runTool runs pkcs11-tool on p's slot from any goroutine.
func runTool(p *p11, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pkcs11-tool", append([]string{"--module", p.module, "--slot-description", p.reader}, args...)...)
	cmd.Env = p.env()
	cmd.Dir = p.home
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pkcs11-tool %q: %v\n%s", args, err, out)
	}
	return nil
}

// checkLogFiles checks each file (bound, mode, whole records, no PIN) and
// returns their records, oldest first.
func checkLogFiles(t *testing.T, files []string, maxSize int) []string {
	t.Helper()
	var records []string
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(defaultPIN)) {
			t.Errorf("%s holds the PIN", filepath.Base(f))
		}
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		// Over the bound only with a single record larger than it.
		if len(b) > maxSize && len(lines) != 1 {
			t.Errorf("%s holds %d bytes in %d records, over the bound %d", filepath.Base(f), len(b), len(lines), maxSize)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends inside a record", filepath.Base(f))
		}
		for _, l := range lines {
			if !logRecordRE.MatchString(l) {
				t.Errorf("%s: not a whole record: %q", filepath.Base(f), l)
			}
		}
		records = append(records, lines...)
	}
	return records
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
