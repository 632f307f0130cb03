package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/sign"
)

func rowOf(walls []time.Duration, apdus ...int) *row {
	r := &row{op: &op{name: "x"}}
	for i, w := range walls {
		s := sample{wall: w}
		if i < len(apdus) {
			s.apdus = apdus[i]
		}
		r.samples = append(r.samples, s)
	}
	return r
}

func ms(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, f := range v {
		out[i] = time.Duration(f * float64(time.Millisecond))
	}
	return out
}

// TestTargets: a target says "yes" when met, and by how much it is missed
// otherwise, in the words printed in the table.
func TestTargets(t *testing.T) {
	ref := rowOf(ms(900, 1000, 1100))
	for _, tc := range []struct {
		name   string
		target target
		row    *row
		met    bool
		detail string
	}{
		{"APDUs met", maxAPDUs(3), rowOf(ms(1, 1), 3, 3), true, "yes"},
		{"APDUs missed", maxAPDUs(22), rowOf(ms(1, 1), 45, 45), false, "NO: 45 APDUs, 23 over (+105%)"},
		{"APDUs vary: the worst run counts", maxAPDUs(3), rowOf(ms(1, 1, 1), 3, 4, 3), false, "NO: 4 APDUs, 1 over (+33%)"},
		{"quick met at the median", quickNoAPDU(5 * time.Millisecond), rowOf(ms(4, 5, 60), 0, 0, 0), true, "yes"},
		{"quick missed", quickNoAPDU(5 * time.Millisecond), rowOf(ms(43.8, 40, 47), 40, 40, 40), false, "NO: 38.8 ms over (8.8×), 40 APDUs"},
		{"quick, only APDUs", quickNoAPDU(5 * time.Millisecond), rowOf(ms(1, 2, 3), 0, 1, 0), false, "NO: 1 APDUs"},
		{"relative met", relative{1.2, "sha256sum"}, &row{samples: rowOf(ms(1100, 1150, 1200)).samples, ref: ref}, true, "yes: 1.15×"},
		{"relative missed", relative{1.2, "sha256sum"}, &row{samples: rowOf(ms(1500)).samples, ref: ref}, false, "NO: 1.50×, 300.0 ms over"},
		{"relative without reference", relative{1.2, "sha256sum"}, rowOf(ms(1)), false, "not measured: no sha256sum row"},
	} {
		met, detail := tc.target.check(tc.row)
		if met != tc.met || detail != tc.detail {
			t.Errorf("%s: %v %q, want %v %q", tc.name, met, detail, tc.met, tc.detail)
		}
	}
	if got := quickNoAPDU(5 * time.Millisecond).String(); got != "≤ 5 ms, 0 APDUs" {
		t.Errorf("quickNoAPDU prints %q", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct{ in, want []int }{
		{[]int{}, []int{0}}, {[]int{7}, []int{7}}, {[]int{1, 2, 9}, []int{2}}, {[]int{1, 2, 4, 9}, []int{3}},
	} {
		if got := median(tc.in); got != tc.want[0] {
			t.Errorf("median(%v) = %d, want %d", tc.in, got, tc.want[0])
		}
	}
}

func TestFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{
		830 * time.Microsecond: "0.83 ms", 43800 * time.Microsecond: "43.8 ms", 1014 * time.Millisecond: "1.014 s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if got := fmtLatency(0); got != "0 ms" {
		t.Errorf("fmtLatency(0) = %q", got)
	}
	if got := fmtLatency(20 * time.Millisecond); got != "20 ms" {
		t.Errorf("fmtLatency(20ms) = %q", got)
	}
}

// TestWriteTable: one line per row with the figures in their columns,
// the blocks of each latency apart, no trailing blanks.
func TestWriteTable(t *testing.T) {
	further := &op{name: "p11 further C_Sign", target: maxAPDUs(3)}
	status := &op{name: "cie status"}
	rows := []*row{
		{latency: 0, op: further, samples: []sample{
			{wall: 3 * time.Millisecond, cpu: time.Millisecond, rssKB: 10240, apdus: 3, toCard: 85, fromCard: 289},
			{wall: 2 * time.Millisecond, cpu: time.Millisecond, rssKB: 11264, apdus: 3, toCard: 85, fromCard: 289},
			{wall: 4 * time.Millisecond, cpu: 2 * time.Millisecond, rssKB: 10240, apdus: 3, toCard: 85, fromCard: 289},
		}},
		{latency: 20 * time.Millisecond, op: status, samples: []sample{{wall: time.Second, apdus: 44, toCard: 1510, fromCard: 2889}}},
	}
	var b bytes.Buffer
	if err := writeTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 || lines[2] != "" {
		t.Fatalf("want header, row, blank, row:\n%s", b.String())
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing blanks: %q", l)
		}
	}
	want := []string{"0 ms", "p11 further C_Sign", "3", "85", "289", "3.00 ms", "2.00 ms", "4.00 ms", "1.00 ms", "11.0 MiB", "≤ 3 APDUs", "yes"}
	if got := strings.Join(strings.Fields(lines[1]), " "); !strings.Contains(got, strings.Join(want, " ")) {
		t.Errorf("row: %q\nwant: %q", got, strings.Join(want, " "))
	}
	if got := strings.Fields(lines[3]); got[0] != "20" || got[3] != "status" || got[4] != "44" {
		t.Errorf("second block: %q", lines[3])
	}
}

func TestParseStep(t *testing.T) {
	name, s, rv, err := parseStep("step sign 2830000 1140000 10036 0x0")
	if err != nil || name != "sign" || rv != 0 || s.wall != 2830*time.Microsecond || s.cpu != 1140*time.Microsecond || s.rssKB != 10036 {
		t.Fatalf("parseStep: %q %+v %x %v", name, s, rv, err)
	}
	if _, _, rv, err := parseStep("step login 1 1 1 0xA0"); err != nil || rv != 0xA0 {
		t.Fatalf("CKR_PIN_INCORRECT: %x %v", rv, err)
	}
	if _, _, _, err := parseStep("dlopen: no such file"); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestTextPDF: the document of the PAdES row opens with its 10 pages, and
// a signature made on it verifies.
func TestTextPDF(t *testing.T) {
	pdf := textPDF(10)
	doc, err := sign.OpenPDF(bytes.NewReader(pdf), int64(len(pdf)))
	if err != nil {
		t.Fatal(err)
	}
	if doc.NumPages() != 10 {
		t.Fatalf("%d pages", doc.NumPages())
	}
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return st.HolderCert.NotBefore.Add(24 * time.Hour) }
	var signed bytes.Buffer
	err = doc.Sign(context.Background(), &signed, sign.PAdESOptions{Options: sign.Options{
		Signer: st.HolderKey, Chain: []*x509.Certificate{st.HolderCert}, Now: now}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(st.CACert)
	rep, err := sign.VerifyPDF(context.Background(), bytes.NewReader(signed.Bytes()), int64(signed.Len()), sign.VerifyOptions{Roots: roots, Now: now})
	if err != nil || !rep.Valid() {
		t.Fatalf("the signed PDF does not verify: %v", err)
	}
}

// TestHarnessBuilds: the embedded harness compiles against the module's
// headers and explains its usage.
func TestHarnessBuilds(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc is needed (scripts/install-deps.sh)")
	}
	bin, err := buildHarness(context.Background(), filepath.Join("..", ".."), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "usage: cie-bench-harness MODULE READER PIN STEPS") {
		t.Fatalf("harness without arguments: %v\n%s", err, out)
	}
}
