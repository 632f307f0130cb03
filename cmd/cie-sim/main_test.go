package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListFamilies(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--list-families"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 13 || !strings.HasPrefix(lines[1], "gemalto ") || !strings.Contains(lines[1], "3B8F800180318065B085040011120FFF8290008A") {
		t.Fatalf("families:\n%s", out.String())
	}
}

func TestExportCA(t *testing.T) {
	// A copy of the committed state, so that no key is generated.
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(dir, os.DirFS("../../testdata/sim")); err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "ca.pem")
	var out, errb bytes.Buffer
	if code := run([]string{"--state", dir, "--export-ca", pemFile}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || c.Subject.CommonName != "CIE Desktop Test CA" {
		t.Fatalf("exported %v, %v", c.Subject, err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"extra"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(dir, os.DirFS("../../testdata/sim")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--state", dir, "--atr", "zz"}, {"--state", dir, "--family", "cns"}, {"--state", dir, "--pin", "1234"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 || !strings.HasPrefix(errb.String(), "cie-sim: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
