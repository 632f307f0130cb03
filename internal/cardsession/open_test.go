package cardsession

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

const simReader = "Virtual PCD 00 00"

func newSim(t *testing.T) *ciesim.Card {
	t.Helper()
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatalf("loading the simulator state: %v", err)
	}
	sim, err := ciesim.New(ciesim.Config{Family: "gemalto", State: st})
	if err != nil {
		t.Fatalf("creating the simulated card: %v", err)
	}
	return sim
}

// simSession returns a Session on sim as OpenWith leaves it after the PIN
// state was read, without PC/SC: the card opened from rec when rec is not
// nil, the full way otherwise.
func simSession(t *testing.T, sim *ciesim.Card, cache *certcache.Cache, rec *certcache.Record) *Session {
	t.Helper()
	ctx := context.Background()
	var (
		card *cie.Card
		err  error
	)
	if rec != nil {
		card, err = cie.OpenProfile(sim, sim.ATR(), rec.Profile, nil)
	} else {
		card, err = cie.Open(ctx, sim, sim.ATR(), nil)
	}
	if err != nil {
		t.Fatalf("opening the card: %v", err)
	}
	s := &Session{Reader: simReader, Card: card, cache: cache, atr: sim.ATR()}
	st, err := card.PINStatus(ctx)
	if err != nil {
		t.Fatalf("reading the PIN state: %v", err)
	}
	s.PIN = st
	if rec != nil {
		s.FromRecord = true
		s.adopt(rec)
	}
	s.NoteStatus(cie.PIN, st)
	return s
}

// TestSessionRecord: Pair writes the card's record with the reader and
// the counters seen; a later session opened from it writes the counters it
// saw (a wrong PIN, a PUK state, an unblock), writes nothing when nothing
// changed, and leaves a record removed meanwhile removed.
func TestSessionRecord(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t)
	cache := certcache.New(t.TempDir())

	s := simSession(t, sim, cache, nil)
	if err := s.Card.VerifyPIN(ctx, []byte(ciesim.DefaultPIN)); err != nil {
		t.Fatal(err)
	}
	s.NoteVerified(cie.PIN)
	cert, err := s.Pair(ctx)
	if err != nil {
		t.Fatalf("Pair: %v", err)
	}
	pan := s.Card.PAN()
	s.Close()
	rec, err := cache.LoadRecord(pan)
	if err != nil {
		t.Fatalf("the record after Pair: %v", err)
	}
	if rec.Reader != simReader || string(rec.ReaderATR) != string(sim.ATR()) || string(rec.Cert) != string(cert.Raw) ||
		rec.PIN != (certcache.Counter{Known: true, Remaining: 3}) || rec.PUK.Known {
		t.Fatalf("record after Pair: reader %q, PIN %+v, PUK %+v", rec.Reader, rec.PIN, rec.PUK)
	}

	// Opened from the record: the certificate comes from it, and the
	// counters seen are written back.
	s = simSession(t, sim, cache, rec)
	if got := s.CachedCertificate(); got == nil || !got.Equal(cert) {
		t.Fatal("the session does not give the record's certificate")
	}
	s.NoteError(&cie.PINError{Ref: cie.PIN, Remaining: 2})
	s.NoteStatus(cie.PUK, cie.PINStatus{Remaining: 9})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rec, err = cache.LoadRecord(pan)
	if err != nil || rec.PIN != (certcache.Counter{Known: true, Remaining: 2}) || rec.PUK != (certcache.Counter{Known: true, Remaining: 9}) {
		t.Fatalf("record after a wrong PIN: %v, PIN %+v, PUK %+v", err, rec.PIN, rec.PUK)
	}

	// The card's PIN state (3, read at open) wins over the record's 2;
	// an unblock fills both counters.
	s = simSession(t, sim, cache, rec)
	s.NoteVerified(cie.PUK)
	s.Close()
	rec, _ = cache.LoadRecord(pan)
	if rec.PIN != (certcache.Counter{Known: true, Remaining: 3}) || rec.PUK != (certcache.Counter{Known: true, Remaining: 10}) {
		t.Fatalf("record after open and unblock: PIN %+v, PUK %+v", rec.PIN, rec.PUK)
	}

	// Nothing new: the file is not rewritten (an atomic write replaces it).
	file := filepath.Join(cache.Dir(), pan+".card")
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	s = simSession(t, sim, cache, rec)
	s.Close()
	if after, err := os.Stat(file); err != nil || !os.SameFile(before, after) {
		t.Errorf("an unchanged record was rewritten (%v)", err)
	}

	// Unpaired while the session ran: the record stays removed.
	s = simSession(t, sim, cache, rec)
	if err := cache.Remove(pan); err != nil {
		t.Fatal(err)
	}
	s.NoteError(&cie.PINError{Ref: cie.PIN, Remaining: 1})
	s.Close()
	if _, err := cache.LoadRecord(pan); !errors.Is(err, certcache.ErrNotFound) {
		t.Fatalf("a removed record after Close: %v", err)
	}

	// A card without a record gets none from the counters alone.
	s = simSession(t, sim, cache, nil)
	s.NoteError(&cie.PINError{Ref: cie.PIN, Remaining: 2})
	s.Close()
	if cache.Has(pan) {
		t.Fatal("a session wrote a record for an unpaired card")
	}
}

// TestSessionMovedReader: a record naming another reader or ATR is
// updated with the reader the session used.
func TestSessionMovedReader(t *testing.T) {
	sim := newSim(t)
	cache := certcache.New(t.TempDir())
	s := simSession(t, sim, cache, nil)
	p, ok := s.Card.Profile()
	if !ok {
		t.Fatal("the profile is not complete after the handshake")
	}
	rec := &certcache.Record{Profile: p}
	rec.SeenIn("Other reader", sim.ATR(), rec.SeenAt)
	if err := cache.StoreRecord(rec); err != nil {
		t.Fatal(err)
	}
	s.adopt(rec)
	s.Close()
	got, ok := cache.ReaderRecord(simReader, sim.ATR())
	if !ok || got.ID() != rec.ID() {
		t.Fatalf("the reader's record after a session: %v", ok)
	}
}
