package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckedInFileIsCurrent fails when ckconst.go differs from what the
// headers generate: someone edited one without running go generate.
func TestCheckedInFileIsCurrent(t *testing.T) {
	include := filepath.Join("..", "..", "..", "cmd", "cie-pkcs11", "include")
	got, err := generate("pkcs11", []string{filepath.Join(include, "pkcs11t.h"), filepath.Join(include, "pkcs11_3_0.h")})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "ckconst.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("pkcs11/ckconst.go is stale: run go generate ./pkcs11")
	}
	for _, want := range []string{
		"CKR_OK                               RV = 0x0",
		"CKR_PIN_LEN_RANGE                    RV = 0xa2",
		"CKA_WRAP_TEMPLATE              AttributeType = 0x40000211",
		"CKM_SHA256_RSA_PKCS",
		"CKF_INTERFACE_FORK_SAFE",
	} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("generated file lacks %q", want)
		}
	}
}

func TestEval(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "h.h")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	src, err := generate("x", []string{write("#define CKF_A 0x10UL\n#define CKA_B (CKF_A|0x01UL)\n#define CKA_C CKA_B\n#define CKR_D 12\n")})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CKA_B AttributeType = 0x11", "CKA_C AttributeType = 0x11", "CKR_D RV = 0xc", "CKA_B: \"CKA_B\""} {
		if !strings.Contains(string(src), want) {
			t.Errorf("missing %q in\n%s", want, src)
		}
	}
	if strings.Contains(string(src), `CKA_C: "CKA_C"`) {
		t.Error("an alias got its own name entry (duplicate map key)")
	}
	for _, bad := range []string{
		"#define CKA_X (CKA_Y + 1)\n",
		"#define CKA_X CKA_MISSING\n",
		"#define CKA_X 0x1UL\n#define CKA_X 0x2UL\n",
		"#define CKA_X 0x100000000UL\n",
	} {
		if _, err := generate("x", []string{write(bad)}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
