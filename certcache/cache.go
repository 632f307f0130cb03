package certcache

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Sentinel errors.
var (
	// ErrNotFound: the cache holds no entry for the card.
	ErrNotFound = errors.New("certcache: no cached certificate for this card")
	// ErrCorrupt: the entry exists but does not authenticate or decode with
	// the card's key (tampered, truncated, written for another card).
	ErrCorrupt = errors.New("certcache: cached certificate is unreadable")
	// ErrInvalidID: the card identifier is not usable as a file name.
	ErrInvalidID = errors.New("certcache: invalid card identifier")
)

const (
	dirMode  = 0o700
	fileMode = 0o600
	suffix   = ".cert"
	// maxFile bounds what Load reads: a CIE certificate is about 1.5 KB.
	maxFile  = 64 << 10
	maxID    = 32
	macSize  = sha256.Size
	sigBytes = 256 // INTERNAL AUTHENTICATE with the 2048-bit key 0x83
)

var magic = []byte("CIECERT\x01")

// Key is the card-bound key of one cache entry (package doc). Its String,
// GoString and LogValue print "[redacted]"; Close zeroes it.
type Key struct {
	enc [32]byte
	iv  [16]byte
	mac [16]byte
}

// String returns "[redacted]".
func (k *Key) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (k *Key) GoString() string { return "[redacted]" }

// LogValue returns "[redacted]" for log/slog.
func (k *Key) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Format prints "[redacted]" for every verb: fmt calls String only for
// %v, %s, %q, %x and %X, and would print the key bytes for %d.
func (k *Key) Format(f fmt.State, _ rune) { io.WriteString(f, "[redacted]") }

// Close zeroes the key.
func (k *Key) Close() {
	if k != nil {
		clear(k.enc[:])
		clear(k.iv[:])
		clear(k.mac[:])
	}
}

// KeyFromSignature derives the key from the card's INTERNAL AUTHENTICATE
// answer with key 0x83 over the PAN (cie-protocol.md §9.2): S = SHA-512(sig).
func KeyFromSignature(sig []byte) (*Key, error) {
	if len(sig) != sigBytes {
		return nil, fmt.Errorf("certcache: deriving key: %d-byte signature, want %d", len(sig), sigBytes)
	}
	s := sha512.Sum512(sig)
	defer clear(s[:])
	k := &Key{}
	copy(k.enc[:], s[0:32])
	copy(k.iv[:], s[32:48])
	copy(k.mac[:], s[48:64])
	return k, nil
}

// Card is what deriving a key needs from a card: *cie.Card satisfies it.
type Card interface {
	// PAN returns the card's 12-character identifier, hex(SN.ICC[5:11]).
	PAN() string
	// AuthenticateServizi signs challenge with the servizi key 0x83 and
	// checks the signature against the card's public key.
	AuthenticateServizi(ctx context.Context, challenge []byte) ([]byte, error)
}

// KeyFor asks card for its cache key: INTERNAL AUTHENTICATE with key 0x83
// over the PAN (no PIN needed), then KeyFromSignature.
func KeyFor(ctx context.Context, card Card) (*Key, error) {
	pan := card.PAN()
	if err := checkID(pan); err != nil {
		return nil, err
	}
	sig, err := card.AuthenticateServizi(ctx, []byte(pan))
	if err != nil {
		return nil, fmt.Errorf("certcache: deriving key: %w", err)
	}
	defer clear(sig)
	return KeyFromSignature(sig)
}

// Cache is a directory of cached certificates. Its methods are safe for
// concurrent use, also by several processes: writes are atomic renames.
type Cache struct {
	dir string
}

// DefaultDir returns os.UserConfigDir()/cie-desktop/certs.
func DefaultDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("certcache: finding the configuration directory: %w", err)
	}
	return filepath.Join(base, "cie-desktop", "certs"), nil
}

// New returns the cache kept in dir. Nothing is created until Store.
func New(dir string) *Cache { return &Cache{dir: dir} }

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// checkID accepts 1 to 32 ASCII letters and digits: the PAN comes from the
// card, and must not be able to name another file.
func checkID(id string) error {
	if len(id) == 0 || len(id) > maxID {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('0' <= ch && ch <= '9' || 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z') {
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	return nil
}

func (c *Cache) path(id string) string { return filepath.Join(c.dir, id+suffix) }

// Has reports whether the cache knows card id: an encrypted certificate
// entry or a card record exists, without reading them.
func (c *Cache) Has(id string) bool {
	if checkID(id) != nil {
		return false
	}
	for _, p := range []string{c.path(id), c.recordPath(id)} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// HasEntry reports whether an encrypted certificate entry (Store) exists
// for id, without reading it.
func (c *Cache) HasEntry(id string) bool {
	if checkID(id) != nil {
		return false
	}
	st, err := os.Stat(c.path(id))
	return err == nil && st.Mode().IsRegular()
}

// Load returns the certificate of card id: the one of its card record when
// the record has one (public data, k is not needed), else the encrypted
// entry authenticated with k. No certificate is ErrNotFound; an entry that
// does not authenticate or decode is ErrCorrupt.
func (c *Cache) Load(id string, k *Key) (*x509.Certificate, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if r, err := c.LoadRecord(id); err == nil && r.Cert != nil {
		return r.Certificate()
	}
	b, err := readFile(c.path(id))
	if err != nil {
		return nil, err
	}
	der, err := Open(b, id, k)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return cert, nil
}

// Store writes der (a DER certificate) as the encrypted entry for id,
// replacing any previous one atomically, and puts der in the card's record
// when there is one. The directory is created with mode 0700 (and
// tightened to it if it exists), the files with mode 0600.
func (c *Cache) Store(id string, k *Key, der []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return fmt.Errorf("certcache: storing entry: not a certificate: %w", err)
	}
	blob, err := Seal(der, id, k)
	if err != nil {
		return err
	}
	if err := c.writeFile(c.path(id), blob); err != nil {
		return err
	}
	if r, err := c.LoadRecord(id); err == nil && !bytes.Equal(r.Cert, der) {
		r.Cert = bytes.Clone(der)
		return c.StoreRecord(r)
	}
	return nil
}

// Remove deletes what the cache holds of card id, its encrypted entry and
// its record ("unpair"). When neither exists it is ErrNotFound.
func (c *Cache) Remove(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	found := false
	for _, p := range []string{c.path(id), c.recordPath(id)} {
		err := os.Remove(p)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("certcache: removing entry: %w", err)
		}
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// Seal returns the file content for der and id under k (package doc).
func Seal(der []byte, id string, k *Key) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k.enc[:])
	if err != nil {
		return nil, fmt.Errorf("certcache: sealing: %w", err)
	}
	pt := pad(der)
	defer clear(pt)
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, k.iv[:]).CryptBlocks(ct, pt)

	out := make([]byte, 0, len(magic)+1+len(id)+4+len(ct)+macSize)
	out = append(out, magic...)
	out = append(out, byte(len(id)))
	out = append(out, id...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ct)))
	out = append(out, ct...)
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(out)
	return m.Sum(out), nil
}

// Open authenticates and decrypts a file's content b, written by Seal for
// id, and returns the DER. Every failure is ErrCorrupt.
func Open(b []byte, id string, k *Key) ([]byte, error) {
	if len(b) < len(magic)+1+4+macSize || !bytes.Equal(b[:len(magic)], magic) {
		return nil, fmt.Errorf("%w: not a cache entry", ErrCorrupt)
	}
	body, tag := b[:len(b)-macSize], b[len(b)-macSize:]
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), tag) {
		return nil, fmt.Errorf("%w: authentication failed (another card's entry, or tampered)", ErrCorrupt)
	}
	rest := body[len(magic):]
	idLen := int(rest[0])
	rest = rest[1:]
	if len(rest) < idLen+4 || string(rest[:idLen]) != id {
		return nil, fmt.Errorf("%w: entry is for another card", ErrCorrupt)
	}
	rest = rest[idLen:]
	ctLen := binary.BigEndian.Uint32(rest)
	ct := rest[4:]
	if uint64(len(ct)) != uint64(ctLen) || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: bad ciphertext length", ErrCorrupt)
	}
	block, err := aes.NewCipher(k.enc[:])
	if err != nil {
		return nil, fmt.Errorf("certcache: opening: %w", err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, k.iv[:]).CryptBlocks(pt, ct)
	der, ok := unpad(pt)
	if !ok {
		return nil, fmt.Errorf("%w: bad padding", ErrCorrupt)
	}
	return der, nil
}

// pad applies ISO/IEC 9797-1 padding method 2 to 16-byte blocks (§9.2):
// 0x80 then zeros, always at least one byte.
func pad(b []byte) []byte {
	n := (len(b)/aes.BlockSize + 1) * aes.BlockSize
	out := make([]byte, n)
	copy(out, b)
	out[len(b)] = 0x80
	return out
}

// unpad removes the method-2 padding.
func unpad(b []byte) ([]byte, bool) {
	for j := len(b) - 1; j >= 0 && j >= len(b)-aes.BlockSize; j-- {
		switch b[j] {
		case 0x00:
			continue
		case 0x80:
			return b[:j], true
		default:
			return nil, false
		}
	}
	return nil, false
}
