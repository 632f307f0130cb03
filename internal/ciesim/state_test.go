package ciesim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStateSaveLoad(t *testing.T) {
	st := loadTestState(t)
	dir := filepath.Join(t.TempDir(), "state")
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 9 {
		t.Errorf("%d files in the state dir, want 9", len(ents))
	}
	for _, e := range ents {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Holder != st.Holder || got.SNICC != st.SNICC || !got.Created.Equal(st.Created) ||
		!bytes.Equal(got.HolderCert.Raw, st.HolderCert.Raw) || !got.ChipKey.Equal(st.ChipKey) ||
		got.IFDCA.E.Cmp(st.IFDCA.E) != 0 || got.DH.P.Cmp(st.DH.P) != 0 || got.DH.G.Cmp(st.DH.G) != 0 {
		t.Error("state changed through Save and LoadState")
	}
	if s := st.String(); s != "ciesim.State{[redacted]}" {
		t.Errorf("String() = %q", s)
	}
	// A tampered state is refused.
	if err := os.WriteFile(filepath.Join(dir, fileHolderCert), mustReadFile(t, filepath.Join(dir, fileDSCert)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil {
		t.Error("state with a swapped certificate accepted")
	}
	if _, err := LoadState(t.TempDir()); !errors.Is(err, ErrNoState) {
		t.Errorf("empty dir: %v, want ErrNoState", err)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCommittedStateValidity: the committed certificates were made valid
// for five years.
func TestCommittedStateValidity(t *testing.T) {
	st := loadTestState(t)
	for _, c := range [...]struct {
		name  string
		years int
		nb    time.Time
		na    time.Time
	}{
		{"holder", certValidity, st.HolderCert.NotBefore, st.HolderCert.NotAfter},
		{"document signer", certValidity, st.DSCert.NotBefore, st.DSCert.NotAfter},
		{"CA", caValidity, st.CACert.NotBefore, st.CACert.NotAfter},
	} {
		if !c.nb.Equal(st.Created.Add(-time.Hour)) || !c.na.Equal(c.nb.AddDate(c.years, 0, 0)) {
			t.Errorf("%s certificate valid %v – %v, created %v", c.name, c.nb, c.na, st.Created)
		}
	}
	if st.CACert.Subject.CommonName != "CIE Desktop Test CA" || !st.CACert.IsCA {
		t.Errorf("CA %v", st.CACert.Subject)
	}
}

// TestLoadOrCreateState creates a fresh card state (NewState), then loads
// the same one again.
func TestLoadOrCreateState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cie-sim")
	start := time.Now()
	st, err := LoadOrCreateState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NewState took %v", time.Since(start))
	if err := st.check(); err != nil {
		t.Fatalf("fresh state: %v", err)
	}
	if st.HolderCert.NotBefore.After(time.Now()) || st.HolderCert.NotAfter.Before(time.Now().AddDate(4, 11, 0)) {
		t.Errorf("fresh certificate valid %v – %v", st.HolderCert.NotBefore, st.HolderCert.NotAfter)
	}
	again, err := LoadOrCreateState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.HolderCert.Raw, st.HolderCert.Raw) || again.IFDCA.N.Cmp(st.IFDCA.N) != 0 {
		t.Error("second LoadOrCreateState made a new state")
	}
	// The fresh card works: one full handshake.
	c, err := New(Config{Family: "stm2", State: st})
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, c)
	h.open()
	if sw := h.verifySW(0x81, DefaultPIN); sw != 0x9000 {
		t.Fatalf("VERIFY on a fresh card: %04X", uint16(sw))
	}
}
