package rotlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// childEnv makes the test binary, re-executed by TestConcurrentProcesses,
// append records to a log instead of running the tests: its value is
// "path maxSize keep id goroutines lines".
const childEnv = "ROTLOG_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := child(spec); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(spec string) error {
	var path string
	var maxSize int64
	var keep, id, goroutines, lines int
	if _, err := fmt.Sscan(spec, &path, &maxSize, &keep, &id, &goroutines, &lines); err != nil {
		return fmt.Errorf("parsing %q: %w", spec, err)
	}
	return writeLines(path, Options{MaxSize: maxSize, Keep: keep}, id, goroutines, lines)
}

// record is one numbered line; its length varies with n so that rotation
// points fall on different records.
func record(proc, g, n int) string {
	return fmt.Sprintf("p=%d g=%d n=%05d %s\n", proc, g, n, strings.Repeat("x", n%23))
}

var recordRE = regexp.MustCompile(`^p=(\d+) g=(\d+) n=(\d{5}) (x*)$`)

// writeLines appends lines records from each of goroutines goroutines, each
// with its own Writer (as separate module instances would) except that
// even-numbered goroutines share one, to cover both cases.
func writeLines(path string, opts Options, proc, goroutines, lines int) error {
	shared, err := Open(path, opts)
	if err != nil {
		return err
	}
	defer shared.Close()
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := shared
			if g%2 == 1 {
				own, err := Open(path, opts)
				if err != nil {
					errs <- err
					return
				}
				defer own.Close()
				w = own
			}
			for n := range lines {
				if _, err := w.Write([]byte(record(proc, g, n))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// readAll returns the records of every file of path, oldest file first,
// and checks that no file is over maxSize.
func readAll(t *testing.T, path string, maxSize int64) []string {
	t.Helper()
	var out []string
	for _, f := range Files(path) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) > maxSize {
			t.Errorf("%s holds %d bytes, over the bound %d", filepath.Base(f), len(b), maxSize)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s does not end with a whole record", filepath.Base(f))
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
	}
	return out
}

// checkComplete wants every record of procs × goroutines × lines exactly
// once, whole, and each writer's records in order.
func checkComplete(t *testing.T, recs []string, procs []int, goroutines, lines int) {
	t.Helper()
	seen := map[string]bool{}
	last := map[[2]int]int{}
	for _, r := range recs {
		m := recordRE.FindStringSubmatch(r)
		if m == nil {
			t.Errorf("a torn or mixed record: %q", r)
			continue
		}
		p, _ := strconv.Atoi(m[1])
		g, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		if record(p, g, n) != r+"\n" {
			t.Errorf("a damaged record: %q", r)
		}
		if seen[r] {
			t.Errorf("record %q written twice", r)
		}
		seen[r] = true
		if prev, ok := last[[2]int{p, g}]; ok && n != prev+1 {
			t.Errorf("p=%d g=%d: record %d follows %d", p, g, n, prev)
		}
		last[[2]int{p, g}] = n
	}
	if want := len(procs) * goroutines * lines; len(seen) != want {
		t.Errorf("%d distinct records, want %d (lost %d)", len(seen), want, want-len(seen))
	}
}

func TestRotatesAtBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	w, err := Open(path, Options{MaxSize: 100, Keep: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := []byte(strings.Repeat("a", 29) + "\n") // 30 bytes: 3 fit in 100
	for range 3 {
		if _, err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if got := Files(path); len(got) != 1 {
		t.Fatalf("files after 90 bytes: %q", got)
	}
	// 90 + 10 = 100 still fits exactly.
	if _, err := w.Write([]byte("123456789\n")); err != nil {
		t.Fatal(err)
	}
	if got := Files(path); len(got) != 1 {
		t.Fatalf("files after exactly 100 bytes: %q", got)
	}
	// One more byte does not.
	if _, err := w.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if got := Files(path); len(got) != 2 {
		t.Fatalf("files after 101 bytes: %q", got)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if len(old) != 100 || string(cur) != "\n" {
		t.Fatalf("path.1 has %d bytes, path %q", len(old), cur)
	}
}

func TestKeepsN(t *testing.T) {
	for _, keep := range []int{1, 3} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.log")
			if err := writeLines(path, Options{MaxSize: 256, Keep: keep}, 0, 1, 300); err != nil {
				t.Fatal(err)
			}
			files := Files(path)
			if len(files) != keep+1 {
				t.Fatalf("files %q, want path and %d rotated", files, keep)
			}
			if _, err := os.Stat(Name(path, keep+1)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%s exists: %v", Name(path, keep+1), err)
			}
			// What is kept is the most recent, contiguous part.
			recs := readAll(t, path, 256)
			for i, r := range recs {
				if want := strings.TrimSuffix(record(0, 0, 300-len(recs)+i), "\n"); r != want {
					t.Fatalf("record %d of the kept files is %q, want %q", i, r, want)
				}
			}
		})
	}
}

func TestKeepNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	if err := writeLines(path, Options{MaxSize: 200, Keep: -1}, 0, 1, 100); err != nil {
		t.Fatal(err)
	}
	if files := Files(path); len(files) != 1 || files[0] != path {
		t.Fatalf("files %q, want only the log", files)
	}
	recs := readAll(t, path, 200)
	if len(recs) == 0 || recs[len(recs)-1] != strings.TrimSuffix(record(0, 0, 99), "\n") {
		t.Fatalf("the log does not end with the last record: %q", recs)
	}
}

// TestOversizedRecord: a record larger than the bound sits alone in a file.
func TestOversizedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	w, err := Open(path, Options{MaxSize: 50, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	big := strings.Repeat("b", 79) + "\n"
	for _, r := range []string{"small\n", big, "after\n"} {
		if _, err := w.Write([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range map[int]string{2: "small\n", 1: big, 0: "after\n"} {
		if got, _ := os.ReadFile(Name(path, i)); string(got) != want {
			t.Errorf("%s = %q, want %q", Name(path, i), got, want)
		}
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	const goroutines, lines, maxSize = 8, 300, 2048
	if err := writeLines(path, Options{MaxSize: maxSize, Keep: 100}, 0, goroutines, lines); err != nil {
		t.Fatal(err)
	}
	if n := len(Files(path)); n < 10 || n > 100 {
		t.Fatalf("%d files: the test wants many rotations and none dropped", n)
	}
	checkComplete(t, readAll(t, path, maxSize), []int{0}, goroutines, lines)
}

// TestConcurrentProcesses runs two copies of the test binary appending to
// the same log at once, as two browsers with the module loaded do.
func TestConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	const goroutines, lines, maxSize = 4, 400, 2048
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	procs := []int{1, 2}
	cmds := make([]*exec.Cmd, len(procs))
	outs := make([]bytes.Buffer, len(procs))
	for i, p := range procs {
		cmds[i] = exec.Command(exe, "-test.run=^$")
		cmds[i].Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d %d %d", childEnv, path, maxSize, 100, p, goroutines, lines))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", procs[i], err, outs[i].String())
		}
	}
	if n := len(Files(path)); n < 10 || n > 100 {
		t.Fatalf("%d files: the test wants many rotations and none dropped", n)
	}
	checkComplete(t, readAll(t, path, maxSize), procs, goroutines, lines)
}

// TestRotatedByOther: a writer whose file another writer rotated away
// writes to the new file, never to the rotated one.
func TestRotatedByOther(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	opts := Options{MaxSize: 20, Keep: 3}
	a, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []struct {
		w   *Writer
		rec string
	}{{a, "a1 0123456789\n"}, {a, "a2 0123456789\n"}, {b, "b1\n"}} {
		if _, err := s.w.Write([]byte(s.rec)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(path + ".1"); string(got) != "a1 0123456789\n" {
		t.Errorf("path.1 = %q", got)
	}
	if got, _ := os.ReadFile(path); string(got) != "a2 0123456789\nb1\n" {
		t.Errorf("path = %q", got)
	}
	// The log removed by hand comes back on the next record.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("a3\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "a3\n" {
		t.Errorf("path after removal = %q", got)
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows files take the ACL of their directory")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	// An existing log readable by others is closed to them on open.
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeLines(path, Options{MaxSize: 128, Keep: 2}, 0, 1, 40); err != nil {
		t.Fatal(err)
	}
	files := Files(path)
	if len(files) != 3 {
		t.Fatalf("files %q", files)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
	}
}

func TestClosed(t *testing.T) {
	w, err := Open(filepath.Join(t.TempDir(), "x.log"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("late\n")); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "x.log"), Options{}); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}

func TestFromEnv(t *testing.T) {
	for _, c := range []struct {
		maxKB, keep string
		want        Options
		wantErr     bool
	}{
		{"", "", Options{}, false},
		{"64", "5", Options{MaxSize: 64 << 10, Keep: 5}, false},
		{" 1 ", "0", Options{MaxSize: 1024, Keep: -1}, false},
		{"1048576", "100", Options{MaxSize: 1 << 30, Keep: 100}, false},
		{"0", "", Options{}, true},
		{"1048577", "", Options{}, true},
		{"1k", "", Options{}, true},
		{"", "-1", Options{}, true},
		{"", "101", Options{}, true},
		{"8", "x", Options{MaxSize: 8 << 10}, true},
	} {
		env := map[string]string{"CIE_X_LOG_MAX_KB": c.maxKB, "CIE_X_LOG_KEEP": c.keep}
		got, err := FromEnv("CIE_X_LOG", func(k string) string { return env[k] })
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("MAX_KB=%q KEEP=%q: %+v, %v; want %+v, error %v", c.maxKB, c.keep, got, err, c.want, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "CIE_X_LOG_") {
			t.Errorf("the error does not name the variable: %v", err)
		}
	}
	if d := (Options{}).withDefaults(); d.MaxSize != DefaultMaxSize || d.Keep != DefaultKeep {
		t.Errorf("defaults: %+v", d)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	for _, n := range []string{"x.log", "x.log.1", "x.log.2", "x.log.10", "x.log.bak", "y.log.1"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{path + ".10", path + ".2", path + ".1", path}
	if got := Files(path); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Files = %q, want %q", got, want)
	}
}

// TestKeepLowered: files beyond Keep left by writers that kept more go at
// the next rotation.
func TestKeepLowered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	if err := writeLines(path, Options{MaxSize: 128, Keep: 8}, 0, 1, 100); err != nil {
		t.Fatal(err)
	}
	if n := len(Files(path)); n != 9 {
		t.Fatalf("%d files with Keep 8", n)
	}
	if err := writeLines(path, Options{MaxSize: 128, Keep: 2}, 1, 1, 20); err != nil {
		t.Fatal(err)
	}
	if got, want := Files(path), []string{path + ".2", path + ".1", path}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Files = %q, want %q", got, want)
	}
}

// BenchmarkWrite is the cost of one 150-byte record (lock, two stats,
// write), rotation included at the default bound.
func BenchmarkWrite(b *testing.B) {
	w, err := Open(filepath.Join(b.TempDir(), "x.log"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	rec := []byte(strings.Repeat("r", 149) + "\n")
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}
