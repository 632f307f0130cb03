// Command cie-bench measures what every card operation of CIE Desktop
// costs through the real PC/SC stack (pcscd + vsmartcard's vpcd + the
// cie-sim virtual card): APDUs and bytes counted by the card itself, wall
// time (median, min, max of several runs), host CPU time and peak RSS,
// each at a simulated per-APDU latency of 0 ms and 20 ms, next to the
// targets of issue 8. It prints one table and, with --save, writes it with
// a description of the machine to DIR/<date>.txt.
//
// It drives the built programs: bin/libcie-pkcs11.so (loaded by a small C
// harness compiled with gcc at run time, in a fresh process for each run,
// as a browser loads it), bin/cie and bin/cie-sim. pcscd is started when
// it is not running (root only); a free vpcd reader is taken with the
// lock files of internal/testbench. scripts/bench.sh runs it in private
// namespaces with its own pcscd.
//
//	cie-bench [--reps 5] [--latency 0ms,20ms] [--big=false] [--save bench]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/benchrun"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	root, bin string
	reps      int
	latencies []time.Duration
	big       bool
	family    string
	save      string
	goBench   string
	progress  io.Writer // progress lines; io.Discard with -q
	warnings  io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cie-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var lat string
	fs.StringVar(&cfg.root, "root", "", "the source tree (default: the directory of go.mod above the working directory)")
	fs.StringVar(&cfg.bin, "bin", "", "directory of cie, cie-sim and libcie-pkcs11.so (default ROOT/bin)")
	fs.IntVar(&cfg.reps, "reps", 5, "runs of each operation at each latency")
	fs.StringVar(&lat, "latency", "0ms,20ms", "per-APDU latencies of the card, comma-separated")
	fs.BoolVar(&cfg.big, "big", true, "include the 1 GiB rows (CAdES of 1 GiB and sha256sum); --big=false for a quick run")
	fs.StringVar(&cfg.family, "family", "gemalto", "chip family of the virtual card")
	fs.StringVar(&cfg.save, "save", "", "also write the report to DIR/<date>.txt")
	fs.StringVar(&cfg.goBench, "go-bench", "", "append this file of 'go test -bench' output to the saved report")
	quiet := fs.Bool("q", false, "no progress lines on standard error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 || cfg.reps < 1 {
		fmt.Fprintln(stderr, "cie-bench: usage: cie-bench [flags]; --reps at least 1; -h for the flags")
		return 2
	}
	for _, s := range strings.Split(lat, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			fmt.Fprintf(stderr, "cie-bench: --latency %q: want durations such as 0ms,20ms\n", lat)
			return 2
		}
		cfg.latencies = append(cfg.latencies, d)
	}
	cfg.progress, cfg.warnings = stderr, stderr
	if *quiet {
		cfg.progress = io.Discard
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "cie-bench:", err)
		return 1
	}
	return 0
}

// The operations, in table order.
var (
	opFloor = &op{name: "Go runtime floor",
		legend: "dlopen + first call of an empty Go c-shared library built like the module: what any Go module pays before its own code runs; timed inside the harness"}
	opStartNoCard = &op{name: "p11 start-up, no card",
		legend: "dlopen + C_GetFunctionList + C_Initialize + C_GetSlotList + C_GetSlotInfo (all slots), the reader empty; timed inside the harness"}
	opStartUnpaired = &op{name: "p11 start-up, card not paired",
		legend: "the same + C_GetTokenInfo of the card's slot, no certificate cache"}
	opStartPaired = &op{name: "p11 start-up, paired card", target: quickNoAPDU(5 * time.Millisecond),
		legend: "the same with the card's certificate cached: what a browser does at start"}
	opPairP11 = &op{name: "p11 first pairing, fresh process", target: maxAPDUs(40),
		legend: "a whole harness process: start-up + C_OpenSession + C_Login + C_Finalize with no cache (the login reads and caches the certificate)"}
	opPairCLI = &op{name: "cie pair", target: maxAPDUs(40),
		legend: "the `cie --pin-stdin pair` process, no cache"}
	opLogin = &op{name: "p11 C_Login, after start-up",
		legend: "C_OpenSession + C_Login in a process that did the start-up (paired card); timed inside the harness"}
	opSign1 = &op{name: "p11 first C_Sign",
		legend: "C_FindObjects + C_SignInit + C_Sign (CKM_SHA256_RSA_PKCS) right after C_Login"}
	opSign2 = &op{name: "p11 further C_Sign", target: maxAPDUs(3),
		legend: "the same, once more in the same session"}
	opLoginSign = &op{name: "p11 C_Login + C_Sign, fresh process", target: maxAPDUs(22),
		legend: "a whole harness process, paired card: start-up + login + first signature + C_Finalize (one browser login)"}
	opStatus = &op{name: "cie status",
		legend: "the `cie status` process"}
	opPINChange = &op{name: "cie pin change",
		legend: "the `cie --pin-stdin pin change` process (current PIN, new PIN)"}
	opCAdES1M = &op{name: "cie sign: CAdES 1 MiB .p7m",
		legend: "the `cie --pin-stdin sign -o OUT FILE` process, 1 MiB of random data, attached signature"}
	opPAdES = &op{name: "cie sign: PAdES 10-page PDF",
		legend: "the same on a 10-page text PDF, invisible signature"}
	opSHA1G = &op{name: "sha256sum 1 GiB",
		legend: "coreutils sha256sum of the 1 GiB file (in the page cache), the reference of the next row"}
	opCAdES1G = &op{name: "cie sign: CAdES 1 GiB .p7m", target: relative{1.2, "sha256sum"},
		legend: "`cie sign` of the 1 GiB file, attached: the 1 GiB .p7m written to disk"}
	opCAdES1GDetached = &op{name: "cie sign: CAdES 1 GiB .p7s",
		legend: "the same, detached (`--detached`): hashing only"}
)

var allOps = []*op{opFloor, opStartNoCard, opStartUnpaired, opStartPaired, opPairP11, opPairCLI, opLogin, opSign1, opSign2,
	opLoginSign, opStatus, opPINChange, opCAdES1M, opPAdES, opSHA1G, opCAdES1G, opCAdES1GDetached}

// pins are the PINs the PIN change rows alternate between; the card
// starts with its default PIN 12345678, which is not a valid new PIN (an
// ascending run).
var pins = []string{"12345678", "24681357", "13572468"}

// session is one benchmark run.
type session struct {
	cfg    config
	r      *runner
	bench  *benchrun.Bench
	work   string
	pin    string // the card's current PIN
	paired string // XDG_CONFIG_HOME with the card's certificate cached
	floor  string // the empty Go c-shared library (opFloor)
	cie    string
	signOK bool // bin/cie has the sign command
	files  struct{ mib, pdf, gib string }
	rows   []*row
	fresh  int
}

// bench runs the whole benchmark and writes the report to stdout (and to
// cfg.save).
func bench(ctx context.Context, cfg config, stdout io.Writer) error {
	started := time.Now()
	if cfg.root == "" {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		cfg.root = root
	}
	if cfg.bin == "" {
		cfg.bin = filepath.Join(cfg.root, "bin")
	}
	// The measured programs run in a private home directory: the module
	// and the programs are named by absolute paths.
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return fmt.Errorf("finding the programs: %w", err)
	}
	cfg.bin = bin
	s := &session{cfg: cfg, pin: pins[0], cie: filepath.Join(cfg.bin, "cie")}
	module := filepath.Join(cfg.bin, "libcie-pkcs11.so")
	for _, p := range []string{s.cie, filepath.Join(cfg.bin, "cie-sim"), module} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run make build first)", err)
		}
	}
	work, err := os.MkdirTemp("", "cie-bench-")
	if err != nil {
		return fmt.Errorf("creating the work directory: %w", err)
	}
	defer os.RemoveAll(work)
	s.work = work
	for _, d := range []string{"home", "paired"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			return err
		}
	}
	s.paired = filepath.Join(work, "paired")

	s.progress("compiling the harness")
	harness, err := buildHarness(ctx, cfg.root, work)
	if err != nil {
		return err
	}
	s.progress("building the Go runtime floor library")
	if s.floor, err = buildFloor(ctx, work); err != nil {
		return err
	}
	s.signOK = hasSignCommand(ctx, s.cie)
	if err := s.makeFiles(); err != nil {
		return err
	}

	s.progress("starting pcscd (if needed) and the virtual card")
	b, err := benchrun.Start(ctx, benchrun.Options{
		Sim:     filepath.Join(cfg.bin, "cie-sim"),
		State:   filepath.Join(cfg.root, "testdata", "sim"),
		SimArgs: []string{"--family", cfg.family},
		WorkDir: work,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := b.Close(); err != nil {
			fmt.Fprintln(cfg.warnings, "cie-bench: warning:", err)
		}
	}()
	s.bench = b
	s.r = &runner{card: b, harness: harness, module: module, home: filepath.Join(work, "home"), timeout: 5 * time.Minute}

	// Pair once for the rows that want a paired card (not measured).
	if _, err := s.r.harnessProcess(ctx, s.paired, s.pin, "init", "login", "final"); err != nil {
		return fmt.Errorf("pairing the card: %w", err)
	}
	for _, lat := range cfg.latencies {
		if err := s.block(ctx, lat); err != nil {
			return fmt.Errorf("at latency %v: %w", lat, err)
		}
	}
	return s.report(stdout, started)
}

func (s *session) progress(format string, args ...any) {
	fmt.Fprintf(s.cfg.progress, "cie-bench: "+format+"\n", args...)
}

// freshConfig returns a new, empty XDG_CONFIG_HOME: no certificate cache.
func (s *session) freshConfig() (string, error) {
	s.fresh++
	dir := filepath.Join(s.work, fmt.Sprintf("config-%d", s.fresh))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// add records a sample of op at latency.
func (s *session) add(lat time.Duration, o *op, smp sample) {
	for _, r := range s.rows {
		if r.latency == lat && r.op == o {
			r.samples = append(r.samples, smp)
			return
		}
	}
	s.rows = append(s.rows, &row{latency: lat, op: o, samples: []sample{smp}})
}

// repeat runs f reps times, reporting progress under name.
func (s *session) repeat(ctx context.Context, lat time.Duration, name string, f func() error) error {
	s.progress("%-6s %s ×%d", fmtLatency(lat), name, s.cfg.reps)
	for range s.cfg.reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// block measures every operation at one latency.
func (s *session) block(ctx context.Context, lat time.Duration) error {
	b, r := s.bench, s.r
	if err := b.SetLatency(lat); err != nil {
		return err
	}
	one := func(o *op, f func() (sample, error)) error {
		return s.repeat(ctx, lat, o.name, func() error {
			smp, err := f()
			if err == nil {
				s.add(lat, o, smp)
			}
			return err
		})
	}
	startup := func(o *op, config func() (string, error)) error {
		return one(o, func() (sample, error) {
			dir, err := config()
			if err != nil {
				return sample{}, err
			}
			steps, err := r.harnessSteps(ctx, dir, s.pin, "init", "final")
			if err != nil {
				return sample{}, err
			}
			return steps[0], nil
		})
	}
	paired := func() (string, error) { return s.paired, nil }

	if err := b.Remove(ctx); err != nil {
		return err
	}
	if err := one(opFloor, func() (sample, error) { return r.floorStep(ctx, s.floor) }); err != nil {
		return err
	}
	if err := startup(opStartNoCard, paired); err != nil {
		return err
	}
	if err := b.Insert(ctx); err != nil {
		return err
	}
	if err := startup(opStartUnpaired, s.freshConfig); err != nil {
		return err
	}
	if err := startup(opStartPaired, paired); err != nil {
		return err
	}
	if err := one(opPairP11, func() (sample, error) {
		dir, err := s.freshConfig()
		if err != nil {
			return sample{}, err
		}
		return r.harnessProcess(ctx, dir, s.pin, "init", "login", "final")
	}); err != nil {
		return err
	}
	if err := one(opPairCLI, func() (sample, error) {
		dir, err := s.freshConfig()
		if err != nil {
			return sample{}, err
		}
		return r.process(ctx, dir, s.pin+"\n", s.cie, "--reader", b.Reader(), "--pin-stdin", "pair")
	}); err != nil {
		return err
	}
	if err := s.repeat(ctx, lat, "p11 C_Login, first and further C_Sign", func() error {
		steps, err := r.harnessSteps(ctx, s.paired, s.pin, "init", "login", "sign", "sign", "final")
		if err != nil {
			return err
		}
		s.add(lat, opLogin, steps[1])
		s.add(lat, opSign1, steps[2])
		s.add(lat, opSign2, steps[3])
		return nil
	}); err != nil {
		return err
	}
	if err := one(opLoginSign, func() (sample, error) {
		return r.harnessProcess(ctx, s.paired, s.pin, "init", "login", "sign", "final")
	}); err != nil {
		return err
	}
	if err := one(opStatus, func() (sample, error) {
		return r.process(ctx, s.paired, "", s.cie, "--reader", b.Reader(), "status")
	}); err != nil {
		return err
	}
	if err := one(opPINChange, func() (sample, error) {
		next := pins[1]
		if s.pin == pins[1] {
			next = pins[2]
		}
		smp, err := r.process(ctx, s.paired, s.pin+"\n"+next+"\n", s.cie, "--reader", b.Reader(), "--pin-stdin", "pin", "change")
		if err == nil {
			s.pin = next
		}
		return smp, err
	}); err != nil {
		return err
	}
	if !s.signOK {
		return nil
	}
	out := filepath.Join(s.work, "signed.out")
	signCmd := func(file string, extra ...string) (sample, error) {
		defer os.Remove(out)
		args := append([]string{"--reader", b.Reader(), "--pin-stdin", "--timeout", "10m", "sign"}, extra...)
		args = append(args, "-o", out, file)
		return r.process(ctx, s.paired, s.pin+"\n", s.cie, args...)
	}
	if err := one(opCAdES1M, func() (sample, error) { return signCmd(s.files.mib) }); err != nil {
		return err
	}
	if err := one(opPAdES, func() (sample, error) { return signCmd(s.files.pdf) }); err != nil {
		return err
	}
	if !s.cfg.big {
		return nil
	}
	// sha256sum and the 1 GiB signatures take turns, so that both see the
	// same state of the machine.
	return s.repeat(ctx, lat, "sha256sum and cie sign of 1 GiB", func() error {
		smp, err := r.process(ctx, s.paired, "", "sha256sum", s.files.gib)
		if err != nil {
			return err
		}
		s.add(lat, opSHA1G, smp)
		if smp, err = signCmd(s.files.gib); err != nil {
			return err
		}
		s.add(lat, opCAdES1G, smp)
		if smp, err = signCmd(s.files.gib, "--detached"); err != nil {
			return err
		}
		s.add(lat, opCAdES1GDetached, smp)
		return nil
	})
}

// makeFiles writes the documents to sign into the work directory.
func (s *session) makeFiles() error {
	if !s.signOK {
		return nil
	}
	s.files.mib = filepath.Join(s.work, "data-1MiB.bin")
	s.files.pdf = filepath.Join(s.work, "document-10-pages.pdf")
	if err := writeRandomFile(s.files.mib, 1<<20); err != nil {
		return err
	}
	pdf := textPDF(10)
	if err := os.WriteFile(s.files.pdf, pdf, 0o600); err != nil {
		return err
	}
	opPAdES.legend = fmt.Sprintf("the same on a 10-page text PDF of %.1f KB, invisible signature", float64(len(pdf))/1000)
	if s.cfg.big {
		s.progress("writing the 1 GiB file")
		s.files.gib = filepath.Join(s.work, "data-1GiB.bin")
		if err := writeRandomFile(s.files.gib, 1<<30); err != nil {
			return err
		}
	}
	return nil
}

// hasSignCommand reports whether this build of cie has `cie sign`: with
// no file it answers a usage error about the file, not an unknown command.
func hasSignCommand(ctx context.Context, cie string) bool {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, cie, "sign")
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return !strings.Contains(out.String(), "unknown command")
}

// report prints the table and, with --save, writes it to a file too.
func (s *session) report(stdout io.Writer, started time.Time) error {
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "CIE Desktop benchmark (cie-bench): card operations through pcscd + vpcd + cie-sim\n\n")
	for _, l := range machine(s.cfg.root, started) {
		fmt.Fprintln(&rep, l)
	}
	lats := make([]string, len(s.cfg.latencies))
	for i, l := range s.cfg.latencies {
		lats[i] = fmtLatency(l)
	}
	fmt.Fprintf(&rep, "Runs: %d of each operation at each latency (%s); card family %s; pcscd: %s; duration %s\n\n",
		s.cfg.reps, strings.Join(lats, ", "), s.cfg.family, pcscdWhere(), time.Since(started).Round(time.Second))
	rows := s.ordered()
	if err := writeTable(&rep, rows); err != nil {
		return err
	}
	fmt.Fprintln(&rep)
	writeVerdicts(&rep, rows)
	if !s.signOK {
		fmt.Fprintln(&rep, "\nThe signing rows are missing: this build of cie has no sign command.")
	} else if !s.cfg.big {
		fmt.Fprintln(&rep, "\nThe 1 GiB rows were left out (--big=false).")
	}
	fmt.Fprintln(&rep)
	var measured []*op
	for _, o := range allOps {
		for _, r := range rows {
			if r.op == o {
				measured = append(measured, o)
				break
			}
		}
	}
	writeLegend(&rep, measured)
	fmt.Fprintln(&rep, `
APDUs and bytes are counted by the virtual card (cie-sim's "stats"); "to card" are command bytes, "from card"
response bytes. CPU is the user + system time of the host process (median); peak RSS its ru_maxrss (largest run).
Rows timed inside the harness exclude process start and exit; "fresh process" and cie rows are whole processes.
The relative target compares medians of runs that took turns with the reference.`)
	if _, err := stdout.Write(rep.Bytes()); err != nil {
		return err
	}
	if s.cfg.save == "" {
		return nil
	}
	if s.cfg.goBench != "" {
		b, err := os.ReadFile(s.cfg.goBench)
		if err != nil {
			return fmt.Errorf("reading the Go benchmarks: %w", err)
		}
		fmt.Fprintf(&rep, "\nGo benchmarks (go test -bench; compare runs with benchstat):\n\n%s", b)
	}
	if err := os.MkdirAll(s.cfg.save, 0o755); err != nil {
		return err
	}
	path := filepath.Join(s.cfg.save, started.Format("2006-01-02_150405")+".txt")
	if err := os.WriteFile(path, rep.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nSaved to %s\n", path)
	return nil
}

// ordered returns the rows by latency, then in the order of allOps, with
// the relative targets' reference rows set.
func (s *session) ordered() []*row {
	var out []*row
	for _, lat := range s.cfg.latencies {
		byOp := map[*op]*row{}
		for _, r := range s.rows {
			if r.latency == lat {
				byOp[r.op] = r
			}
		}
		for _, o := range allOps {
			r := byOp[o]
			if r == nil {
				continue
			}
			if rel, ok := o.target.(relative); ok {
				for _, ref := range allOps {
					if strings.HasPrefix(ref.name, rel.ref) {
						r.ref = byOp[ref]
					}
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// pcscdWhere says whether the bench runs in scripts/bench.sh's private
// namespaces.
func pcscdWhere() string {
	if os.Getenv("CIE_BENCH_NAMESPACE") == "private" {
		return "own, in private mount and network namespaces"
	}
	return "shared with other processes on this machine"
}

// moduleRoot returns the directory of the go.mod above the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: give --root", dir)
		}
	}
}
