package certcache

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testCert(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "RSSMRA80A01H501U/123456789012"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func testKey(t testing.TB, seed byte) *Key {
	t.Helper()
	sig := bytes.Repeat([]byte{seed}, sigBytes)
	k, err := KeyFromSignature(sig)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStoreLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cie-desktop", "certs")
	c := New(dir)
	der := testCert(t)
	k := testKey(t, 1)
	if c.Has("123456789012") {
		t.Fatal("Has before Store")
	}
	if _, err := c.Load("123456789012", k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load before Store: %v, want ErrNotFound", err)
	}
	if err := c.Store("123456789012", k, der); err != nil {
		t.Fatal(err)
	}
	if !c.Has("123456789012") {
		t.Fatal("Has after Store is false")
	}
	cert, err := c.Load("123456789012", k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.Raw, der) {
		t.Fatal("loaded certificate differs from the stored one")
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
	}
	fst, err := os.Stat(filepath.Join(dir, "123456789012.cert"))
	if err != nil {
		t.Fatal(err)
	}
	if fst.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fst.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the certificate (no temporary files)", len(entries))
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "123456789012.cert"))
	if bytes.Contains(raw, der[:64]) {
		t.Error("the file holds the certificate in clear")
	}
}

func TestStoreTightensExistingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := New(dir).Store("ABC", testKey(t, 1), testCert(t)); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
	}
}

func TestStoreReplaces(t *testing.T) {
	c := New(t.TempDir())
	k := testKey(t, 1)
	first, second := testCert(t), testCert(t)
	if err := c.Store("A1", k, first); err != nil {
		t.Fatal(err)
	}
	if err := c.Store("A1", k, second); err != nil {
		t.Fatal(err)
	}
	cert, err := c.Load("A1", k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.Raw, second) {
		t.Fatal("Store did not replace the entry")
	}
}

func TestLoadRejectsForeignOrDamagedEntries(t *testing.T) {
	dir := t.TempDir()
	c := New(dir)
	k := testKey(t, 1)
	der := testCert(t)
	if err := c.Store("111111111111", k, der); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "111111111111.cert")
	good, _ := os.ReadFile(path)

	t.Run("other card's key", func(t *testing.T) {
		if _, err := c.Load("111111111111", testKey(t, 2)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("renamed to another card", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "222222222222.cert"), good, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Load("222222222222", k); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	for _, tc := range []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"flipped ciphertext bit", func(b []byte) []byte { b[len(magic)+1+12+4+5] ^= 1; return b }},
		{"flipped MAC bit", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-40] }},
		{"empty", func([]byte) []byte { return nil }},
		{"wrong magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"too large", func(b []byte) []byte { return append(b, make([]byte, maxFile)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.mutate(bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Load("111111111111", k); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
	// A corrupt entry is simply overwritten by the next Store.
	if err := c.Store("111111111111", k, der); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load("111111111111", k); err != nil {
		t.Fatalf("after rewriting: %v", err)
	}
}

func TestInvalidIDs(t *testing.T) {
	c := New(t.TempDir())
	k := testKey(t, 1)
	for _, id := range []string{"", "../etc", "a/b", "a.b", strings.Repeat("1", 33), "12 34", "ÀÀ"} {
		if err := c.Store(id, k, testCert(t)); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Store(%q): %v, want ErrInvalidID", id, err)
		}
		if _, err := c.Load(id, k); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Load(%q): %v, want ErrInvalidID", id, err)
		}
		if c.Has(id) {
			t.Errorf("Has(%q) is true", id)
		}
	}
}

func TestStoreRejectsNonCertificate(t *testing.T) {
	c := New(t.TempDir())
	if err := c.Store("A1", testKey(t, 1), []byte("12345678")); err == nil {
		t.Fatal("Store accepted bytes that are not a certificate")
	}
	if c.Has("A1") {
		t.Fatal("an entry was written")
	}
}

func TestRemove(t *testing.T) {
	c := New(t.TempDir())
	k := testKey(t, 1)
	if err := c.Store("A1", k, testCert(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("A1"); err != nil {
		t.Fatal(err)
	}
	if c.Has("A1") {
		t.Fatal("entry still there")
	}
	if err := c.Remove("A1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v, want ErrNotFound", err)
	}
}

// TestKeyDerivation checks §9.2: AES-256 key S[0:32] and IV S[32:48] of
// S = SHA-512(signature), by decrypting a sealed entry by hand.
func TestKeyDerivation(t *testing.T) {
	sig := make([]byte, sigBytes)
	for i := range sig {
		sig[i] = byte(i * 7)
	}
	k, err := KeyFromSignature(sig)
	if err != nil {
		t.Fatal(err)
	}
	der := testCert(t)
	blob, err := Seal(der, "ID1", k)
	if err != nil {
		t.Fatal(err)
	}
	s := sha512.Sum512(sig)
	block, _ := aes.NewCipher(s[:32])
	ct := blob[len(magic)+1+3+4 : len(blob)-macSize]
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, s[32:48]).CryptBlocks(pt, ct)
	if !bytes.Equal(pt[:len(der)], der) || pt[len(der)] != 0x80 {
		t.Fatal("ciphertext is not AES-256-CBC(S[0:32], S[32:48], pad(DER))")
	}
	if len(pt)-len(der) > aes.BlockSize || len(pt)%aes.BlockSize != 0 {
		t.Fatalf("padding of %d bytes", len(pt)-len(der))
	}
	if _, err := KeyFromSignature(sig[:255]); err == nil {
		t.Fatal("a 255-byte signature was accepted")
	}
}

type fakeCard struct {
	pan       string
	challenge []byte
	sig       []byte
	err       error
}

func (f *fakeCard) PAN() string { return f.pan }
func (f *fakeCard) AuthenticateServizi(_ context.Context, ch []byte) ([]byte, error) {
	f.challenge = bytes.Clone(ch)
	return bytes.Clone(f.sig), f.err
}

func TestKeyForSignsThePAN(t *testing.T) {
	card := &fakeCard{pan: "0123456789AB", sig: bytes.Repeat([]byte{9}, sigBytes)}
	k, err := KeyFor(context.Background(), card)
	if err != nil {
		t.Fatal(err)
	}
	if string(card.challenge) != "0123456789AB" {
		t.Fatalf("challenge %q, want the PAN", card.challenge)
	}
	want := testKey(t, 9)
	if k.enc != want.enc || k.iv != want.iv || k.mac != want.mac {
		t.Fatal("KeyFor differs from KeyFromSignature of the card's answer")
	}
	card.err = errors.New("card removed")
	if _, err := KeyFor(context.Background(), card); err == nil || !strings.Contains(err.Error(), "card removed") {
		t.Fatalf("card error not returned: %v", err)
	}
	if _, err := KeyFor(context.Background(), &fakeCard{pan: "../x"}); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("bad PAN: %v", err)
	}
}

func TestKeyIsRedacted(t *testing.T) {
	k := testKey(t, 0x41)
	var buf bytes.Buffer
	// The time is left out of the log line: its digits could contain any
	// short form of a key byte.
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})).Info("x", "key", k)
	var leaks []string
	for _, part := range [][]byte{k.enc[:], k.iv[:], k.mac[:]} {
		dec := fmt.Sprint(part[:6])
		leaks = append(leaks, hex.EncodeToString(part[:6]), strings.ToUpper(hex.EncodeToString(part[:6])), dec[1:len(dec)-1])
	}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%#v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%x", k), fmt.Sprintf("%d", k), buf.String()} {
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("key printed as %q, want [redacted]", s)
		}
		for _, leak := range leaks {
			if strings.Contains(s, leak) {
				t.Errorf("key printed as %q shows key bytes %q", s, leak)
			}
		}
	}
	k.Close()
	if k.enc != [32]byte{} || k.iv != [16]byte{} || k.mac != [16]byte{} {
		t.Fatal("Close did not zero the key")
	}
}

func FuzzOpen(f *testing.F) {
	k := testKey(f, 3)
	good, err := Seal(testCert(f), "ID", k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("CIECERT\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		der, err := Open(b, "ID", k)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := Seal(der, "ID", k)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("an accepted entry does not re-seal to itself")
		}
	})
}
