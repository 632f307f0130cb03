package certcache

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciedesktop/cie-desktop/cie"
)

const recordSuffix = ".card"

var recordMagic = []byte("CIECARD\x01")

// Counter is the last state of a PIN or PUK try counter the module saw.
type Counter struct {
	Known     bool `json:"known"`
	Remaining int  `json:"remaining"`
	Blocked   bool `json:"blocked"`
}

// Record is the card record of the package doc: the card's public profile
// (what cie.OpenProfile needs to use the card without reading it first),
// its certificate once paired, and the last try counters seen.
type Record struct {
	Profile cie.Profile `json:"profile"`
	Cert    []byte      `json:"cert,omitempty"` // DER; nil while the card is not paired
	PIN     Counter     `json:"pin"`
	PUK     Counter     `json:"puk"`

	// Reader is the reader the card was last seen in, ReaderATR the ATR it
	// showed there, SeenAt when (SeenIn). ReaderRecord uses them.
	Reader    string    `json:"reader,omitempty"`
	ReaderATR []byte    `json:"reader_atr,omitempty"`
	SeenAt    time.Time `json:"seen_at,omitempty"`
}

// SeenIn records in r that the card is in reader with answer to reset atr,
// now.
func (r *Record) SeenIn(reader string, atr []byte, now time.Time) {
	r.Reader, r.ReaderATR, r.SeenAt = reader, bytes.Clone(atr), now.UTC().Round(0)
}

// ID returns the record's card identifier, the profile's PAN.
func (r *Record) ID() string { return r.Profile.PAN() }

// Certificate parses Cert; nil without one.
func (r *Record) Certificate() (*x509.Certificate, error) {
	if r.Cert == nil {
		return nil, nil
	}
	cert, err := x509.ParseCertificate(r.Cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return cert, nil
}

func (c *Cache) recordPath(id string) string { return filepath.Join(c.dir, id+recordSuffix) }

// seal frames body: magic ‖ body ‖ SHA-256(magic ‖ body). The checksum
// detects a truncated or damaged file; it is no authentication (see the
// package doc for what a record is trusted with).
func seal(magic, body []byte) []byte {
	out := append(append([]byte(nil), magic...), body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// unseal checks seal's framing and returns the body.
func unseal(magic, b []byte) ([]byte, error) {
	if len(b) < len(magic)+sha256.Size || !bytes.Equal(b[:len(magic)], magic) {
		return nil, fmt.Errorf("%w: not a cache file", ErrCorrupt)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(want[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return body[len(magic):], nil
}

// readFile reads a cache file of at most maxFile bytes; a missing file is
// ErrNotFound.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("certcache: reading entry: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("certcache: reading entry: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrCorrupt)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("certcache: reading entry: %w", err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxFile)
	}
	return b, nil
}

// StoreRecord writes r as the record of its card (r.ID()), replacing any
// previous one atomically, with the modes of Store. Only public data is
// written: the profile, the certificate and the counters.
func (c *Cache) StoreRecord(r *Record) error {
	id := r.ID()
	if err := checkID(id); err != nil {
		return err
	}
	if _, err := r.Certificate(); err != nil {
		return fmt.Errorf("certcache: storing record: not a certificate: %w", err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("certcache: storing record: %w", err)
	}
	return c.writeFile(c.recordPath(id), seal(recordMagic, body))
}

// LoadRecord reads the record of card id. No record is ErrNotFound; one
// that is damaged, for another card or not well-formed is ErrCorrupt.
func (c *Cache) LoadRecord(id string) (*Record, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := readFile(c.recordPath(id))
	if err != nil {
		return nil, err
	}
	body, err := unseal(recordMagic, b)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if r.ID() != id {
		return nil, fmt.Errorf("%w: record is for another card", ErrCorrupt)
	}
	if _, err := r.Certificate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// StoreCard pairs card: it writes the card's record with its profile
// (complete once the card ran a secure-messaging handshake, e.g. after
// VerifyPIN) and cert, keeping the counters of an existing record. No card
// I/O happens here.
func (c *Cache) StoreCard(card *cie.Card, cert *x509.Certificate) error {
	p, ok := card.Profile()
	if !ok {
		return errors.New("certcache: storing record: the card's public data are not all known yet")
	}
	r := &Record{Profile: p}
	if cert != nil {
		r.Cert = cert.Raw
	}
	if old, err := c.LoadRecord(r.ID()); err == nil {
		r.PIN, r.PUK = old.PIN, old.PUK
	}
	return c.StoreRecord(r)
}

// SetReader records in the record of card id that the card, with answer
// to reset atr, is in reader: ReaderRecord then names it without talking
// to the card. The record must exist (ErrNotFound otherwise).
func (c *Cache) SetReader(reader, id string, atr []byte) error {
	r, err := c.LoadRecord(id)
	if err != nil {
		return err
	}
	r.SeenIn(reader, atr, time.Now())
	return c.StoreRecord(r)
}

// records returns every record that loads, damaged ones left out; none
// when the directory does not exist, an error when it cannot be listed.
func (c *Cache) records() ([]*Record, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certcache: listing records: %w", err)
	}
	var out []*Record
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), recordSuffix)
		if !ok || !e.Type().IsRegular() || checkID(id) != nil {
			continue
		}
		if r, err := c.LoadRecord(id); err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// ReaderRecord returns the record of the card last seen in reader
// (SetReader, Record.SeenIn) when it showed atr there; the most recent one
// when several cards were seen in the reader. It is a presumption only:
// cards of one chip family share their ATR, so the caller confirms the
// card at its first real use (cie.OpenProfile).
func (c *Cache) ReaderRecord(reader string, atr []byte) (*Record, bool) {
	var best *Record
	recs, _ := c.records() // no record to presume from: the card is opened in full
	for _, r := range recs {
		if r.Reader == reader && (best == nil || r.SeenAt.After(best.SeenAt)) {
			best = r
		}
	}
	if best == nil || len(atr) == 0 || !bytes.Equal(best.ReaderATR, atr) {
		return nil, false
	}
	return best, true
}

// ForgetReader clears reader from every record that names it, so that
// ReaderRecord names no card for it.
func (c *Cache) ForgetReader(reader string) error {
	recs, err := c.records()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		if r.Reader == reader {
			r.Reader, r.ReaderATR, r.SeenAt = "", nil, time.Time{}
			errs = append(errs, c.StoreRecord(r))
		}
	}
	return errors.Join(errs...)
}

// writeFile writes content to path, in the cache directory, atomically
// (temporary file in the same directory, fsync, rename) with mode 0600;
// the directory is created with mode 0700, or tightened to it.
func (c *Cache) writeFile(path string, content []byte) error {
	dir := c.dir
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("certcache: creating directory: %w", err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return fmt.Errorf("certcache: restricting directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("certcache: storing entry: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(fileMode); err != nil {
		return fmt.Errorf("certcache: storing entry: %w", err)
	}
	if _, err := tmp.Write(content); err != nil {
		return fmt.Errorf("certcache: storing entry: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("certcache: storing entry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certcache: storing entry: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certcache: storing entry: %w", err)
	}
	done = true
	return nil
}
