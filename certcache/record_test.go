package certcache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciedesktop/cie-desktop/cie"
)

// testProfile is a profile whose PAN is 635874769602 (its other fields are
// not looked at by this package).
func testProfile() cie.Profile {
	return cie.Profile{
		ATR:       []byte{0x3B, 0x8F, 0x80, 0x01},
		Family:    "gemalto",
		SerialICC: []byte{0x15, 0x88, 0x6A, 0x7D, 0xF9, 0x63, 0x58, 0x74, 0x76, 0x96, 0x02, 0xB1},
		IDServizi: "635874769602",
		CAKey:     []byte{1, 2, 3},
	}
}

const testPAN = "635874769602"

func TestRecordRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	c := New(dir)
	der := testCert(t)
	r := &Record{Profile: testProfile(), Cert: der, PIN: Counter{Known: true, Remaining: 1}}
	if r.ID() != testPAN {
		t.Fatalf("ID %q", r.ID())
	}
	if c.Has(testPAN) {
		t.Fatal("Has before StoreRecord")
	}
	if _, err := c.LoadRecord(testPAN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadRecord of nothing: %v", err)
	}
	if err := c.StoreRecord(r); err != nil {
		t.Fatal(err)
	}
	got, err := c.LoadRecord(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Cert, der) || got.PIN != r.PIN || !bytes.Equal(got.Profile.CAKey, r.Profile.CAKey) || got.Profile.Family != "gemalto" {
		t.Fatalf("round trip: %+v", got)
	}
	// The legacy API sees the record's certificate, without a key.
	if !c.Has(testPAN) {
		t.Error("Has false with a record")
	}
	if cert, err := c.Load(testPAN, nil); err != nil || !bytes.Equal(cert.Raw, der) {
		t.Errorf("Load through the record: %v", err)
	}
	st, _ := os.Stat(filepath.Join(dir, testPAN+".card"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", st.Mode().Perm())
	}
	// Remove deletes it.
	if err := c.Remove(testPAN); err != nil {
		t.Fatal(err)
	}
	if c.Has(testPAN) {
		t.Error("Has after Remove")
	}
	if err := c.Remove(testPAN); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
}

func TestRecordDamageIsCorrupt(t *testing.T) {
	c := New(t.TempDir())
	if err := c.StoreRecord(&Record{Profile: testProfile(), Cert: testCert(t)}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.Dir(), testPAN+".card")
	good, _ := os.ReadFile(path)
	for name, b := range map[string][]byte{
		"flipped byte": func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 1; return b }(),
		"truncated":    good[:len(good)-5],
		"empty":        {},
		"other magic":  append([]byte("CIECERT\x01"), good[8:]...),
		"huge":         bytes.Repeat([]byte{1}, maxFile+1),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LoadRecord(testPAN); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// A well-formed record under another card's name.
	other := "111111111111"
	if err := os.WriteFile(filepath.Join(c.Dir(), other+".card"), good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadRecord(other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("record under another name: %v, want ErrCorrupt", err)
	}
	if _, err := c.LoadRecord("../x"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("bad id: %v", err)
	}
	if err := c.StoreRecord(&Record{Profile: testProfile(), Cert: []byte("not a certificate")}); err == nil {
		t.Error("StoreRecord accepted a non-certificate")
	}
}

func TestReaders(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "certs"))
	atr := []byte{0x3B, 0x8F}
	const reader = "Virtual PCD 00 00"
	if err := c.SetReader(reader, testPAN, atr); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetReader without a record: %v", err)
	}
	if err := c.StoreRecord(&Record{Profile: testProfile()}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.ReaderRecord(reader, atr); ok {
		t.Fatal("ReaderRecord before SetReader")
	}
	if err := c.SetReader(reader, testPAN, atr); err != nil {
		t.Fatal(err)
	}
	if r, ok := c.ReaderRecord(reader, atr); !ok || r.ID() != testPAN {
		t.Fatalf("ReaderRecord %v %v", r, ok)
	}
	if _, ok := c.ReaderRecord(reader, []byte{0x3B, 0x8E}); ok {
		t.Error("ReaderRecord with another ATR")
	}
	if _, ok := c.ReaderRecord(reader, nil); ok {
		t.Error("ReaderRecord without an ATR")
	}
	if _, ok := c.ReaderRecord("Virtual PCD 00 01", atr); ok {
		t.Error("ReaderRecord of another reader")
	}
	// One file per card: the reader lives in the record.
	if entries, _ := os.ReadDir(c.Dir()); len(entries) != 1 {
		t.Errorf("cache directory: %v", entries)
	}

	// A second card seen later in the same reader is the one named.
	other := testProfile()
	other.SerialICC = []byte{0x15, 0x88, 0x6A, 0x7D, 0xF9, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0xB1}
	if err := c.StoreRecord(&Record{Profile: other}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReader(reader, "123456789012", atr); err != nil {
		t.Fatal(err)
	}
	if r, ok := c.ReaderRecord(reader, atr); !ok || r.ID() != "123456789012" {
		t.Fatalf("after the second card: %v %v", r, ok)
	}
	// A damaged record is left out.
	path := filepath.Join(c.Dir(), "123456789012.card")
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 1
	os.WriteFile(path, b, 0o600)
	if r, ok := c.ReaderRecord(reader, atr); !ok || r.ID() != testPAN {
		t.Fatalf("with the newer record damaged: %v %v", r, ok)
	}
	if err := c.ForgetReader(reader); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.ReaderRecord(reader, atr); ok {
		t.Error("ReaderRecord after ForgetReader")
	}
	if _, err := c.LoadRecord(testPAN); err != nil {
		t.Errorf("ForgetReader lost the record: %v", err)
	}
	if err := c.ForgetReader(reader); err != nil {
		t.Errorf("ForgetReader of nothing: %v", err)
	}
	if err := c.SetReader(reader, "../../x", atr); !errors.Is(err, ErrInvalidID) {
		t.Errorf("SetReader with a bad id: %v", err)
	}
	// No cache directory yet: nothing to forget. A directory that cannot be
	// listed (here a file in its place) is an error, not "nothing".
	if err := New(filepath.Join(t.TempDir(), "none")).ForgetReader(reader); err != nil {
		t.Errorf("ForgetReader without a directory: %v", err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(notDir).ForgetReader(reader); err == nil {
		t.Error("ForgetReader of a directory that cannot be listed: no error")
	}
	if _, ok := New(notDir).ReaderRecord(reader, atr); ok {
		t.Error("ReaderRecord from a directory that cannot be listed")
	}
}

// TestStoreUpdatesRecord: the encrypted entry's Store (cie pair, the tray)
// puts the certificate in an existing record too.
func TestStoreUpdatesRecord(t *testing.T) {
	c := New(t.TempDir())
	if err := c.StoreRecord(&Record{Profile: testProfile()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(testPAN, testKey(t, 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load without certificate: %v", err)
	}
	der := testCert(t)
	if err := c.Store(testPAN, testKey(t, 1), der); err != nil {
		t.Fatal(err)
	}
	r, err := c.LoadRecord(testPAN)
	if err != nil || !bytes.Equal(r.Cert, der) {
		t.Fatalf("record after Store: %v", err)
	}
}

// FuzzLoadRecord: whatever a record file holds, LoadRecord and the
// profile check of cie.OpenProfile do not panic, and a record that loads
// names the card it is stored for.
func FuzzLoadRecord(f *testing.F) {
	dir := f.TempDir()
	c := New(dir)
	if err := c.StoreRecord(&Record{Profile: testProfile(), PIN: Counter{Known: true, Remaining: 2}}); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, testPAN+".card"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(seal(recordMagic, []byte(`{"profile":{"SerialICC":"FYhqfflje0dnlgKx"},"cert":"AA=="}`)))
	f.Add(seal(recordMagic, []byte(`{}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, testPAN+".card")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := c.LoadRecord(testPAN)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("LoadRecord: %v, want ErrCorrupt", err)
			}
			return
		}
		if r.ID() != testPAN {
			t.Fatalf("a record for %q loaded as %q", r.ID(), testPAN)
		}
		_, _ = cie.OpenProfile(nopTransport{}, r.Profile.ATR, r.Profile, nil)
	})
}

// nopTransport is a transport OpenProfile never uses.
type nopTransport struct{}

func (nopTransport) Transmit(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("no card")
}
