package cardsession

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// The try counters of a CIE (cie-protocol.md §7): what a verification or
// an unblock resets them to.
const (
	pinTries = 3
	pukTries = 10
)

// Options configures OpenWith.
type Options struct {
	// Logger receives debug and info messages (never PINs, never card
	// data); nil: none.
	Logger *slog.Logger
	// Cache holds the card records (package certcache): with one, a card
	// recorded as being in the chosen reader with the ATR the reader shows
	// is opened from its record (cie.OpenProfile), and the card's record,
	// when it has one, is kept up to date (Session.Close). Nil: the card is
	// always opened the full way and no record is touched.
	Cache *certcache.Cache
	// IdentifyOnly opens the card with cie.Open and sends nothing more:
	// for operations that need only the card's identity (PAN), which a full
	// open reads (6 APDUs) for less than a handshake confirms a record. The
	// Session's PIN is then unknown and no record is used or updated.
	IdentifyOnly bool
}

// Session is a CIE opened on a PC/SC reader. Close releases it; the
// connection is shared, so other applications (a browser's PKCS#11
// module) can use the card meanwhile.
//
// A Session from OpenWith (or Open) that is not IdentifyOnly has run the
// secure-messaging handshake, whose device authentication proved the chip
// is the card Card describes (its serial number, its key 0x82): Card's
// PAN, family and ID_Servizi, and the record's certificate
// (CachedCertificate), are that card's, whether they came from the card
// or from its record.
type Session struct {
	// Reader is the PC/SC name of the reader.
	Reader string
	// Card is the opened CIE.
	Card *cie.Card
	// PIN is the PIN state the card reported when the session opened: read
	// from the card (VERIFY without data, no try spent), never taken from
	// the record. Zero with IdentifyOnly or in a Session built by hand.
	PIN cie.PINStatus
	// FromRecord reports that the card was opened from its card record
	// (no public data read from the card) and confirmed by the handshake.
	FromRecord bool

	log   *slog.Logger
	cache *certcache.Cache
	// rec is the card's record as Close writes it; nil when the card has
	// none. loaded is rec as read, so that an unchanged record is not
	// rewritten.
	rec      *certcache.Record
	loaded   []byte
	pin, puk certcache.Counter // the last counters seen in this session
	cert     *x509.Certificate // read from the card in this session
	seen     bool              // record the reader and ATR at Close

	pc   *pcsc.Context
	conn *pcsc.Card
	atr  []byte
	held bool
}

// Open connects to the PC/SC service, chooses the reader with
// ChooseReader(want) and opens the CIE on it, from its card record in the
// default certificate cache (certcache.DefaultDir) when the card has one;
// see OpenWith. logger may be nil. The caller closes the Session.
func Open(ctx context.Context, want string, logger *slog.Logger) (*Session, error) {
	opts := &Options{Logger: logger}
	if dir, err := certcache.DefaultDir(); err == nil {
		opts.Cache = certcache.New(dir)
	}
	return OpenWith(ctx, want, opts)
}

// OpenWith connects to the PC/SC service, chooses the reader with
// ChooseReader(want) and opens the CIE on it. The caller closes the
// Session.
//
// When opts.Cache records a card as being in that reader with the ATR the
// reader shows (certcache.Cache.ReaderRecord), the card is opened with
// cie.OpenProfile: no public data is read, and the first command is the
// handshake (SELECT, DH, device authentication) of the PIN state read for
// Session.PIN, before any PIN can be sent. Cards of one family share their
// ATR: when device authentication finds another card (cie.ErrCardChanged),
// the reader is cleared from the record and the card is opened the full
// way, as it is on any other problem with the record. Otherwise (and
// without a record) the card is opened with cie.Open and the PIN state
// read the same way. With IdentifyOnly, only cie.Open runs.
func OpenWith(ctx context.Context, want string, opts *Options) (*Session, error) {
	if opts == nil {
		opts = &Options{}
	}
	pc, err := pcsc.Establish()
	if err != nil {
		return nil, err
	}
	s := &Session{pc: pc, log: opts.Logger}
	if !opts.IdentifyOnly {
		s.cache = opts.Cache
	}
	names, err := pc.Readers()
	if err != nil {
		s.Close()
		return nil, err
	}
	states := make([]pcsc.ReaderStatus, 0, len(names))
	for _, n := range names {
		st, err := pc.Status(ctx, n)
		if err != nil {
			st = pcsc.ReaderStatus{Name: n}
		}
		states = append(states, st)
	}
	chosen, err := ChooseReader(states, want)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Reader = chosen.Name
	s.debug("connecting", "reader", s.Reader)
	s.conn, err = pc.Connect(ctx, s.Reader)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("connecting to %q: %w", s.Reader, err)
	}
	s.atr, err = s.conn.ATR()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("reading the ATR: %w", err)
	}
	if opts.IdentifyOnly {
		if s.Card, err = cie.Open(ctx, s.conn, s.atr, s.cieOptions()); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	if err := s.openRecorded(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.Card == nil {
		if err := s.openFull(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Session) cieOptions() *cie.Options { return &cie.Options{Logger: s.log} }

func (s *Session) debug(msg string, args ...any) {
	if s.log != nil {
		s.log.Debug(msg, args...)
	}
}

// openRecorded opens the card from the record of the card last seen in the
// reader, and confirms it with the handshake of the PIN state. It leaves
// s.Card nil, and returns no error, when there is no usable record or the
// card turned out to be another one or the record did not work; it
// returns the errors the full open would meet too (transport, context).
func (s *Session) openRecorded(ctx context.Context) error {
	if s.cache == nil {
		return nil
	}
	rec, ok := s.cache.ReaderRecord(s.Reader, s.atr)
	if !ok {
		return nil
	}
	card, err := cie.OpenProfile(s.conn, s.atr, rec.Profile, s.cieOptions())
	if err != nil {
		s.debug("card record not used", "err", err)
		return nil
	}
	// The first command: SELECT, DH and device authentication, which proves
	// the chip is the record's, then VERIFY without data. No PIN can reach
	// another card: every PIN command runs after this handshake.
	st, err := card.PINStatus(ctx)
	switch {
	case err == nil:
	case errors.Is(err, cie.ErrCardChanged):
		card.Close()
		s.debug("another card than the recorded one is in the reader")
		if err := s.cache.ForgetReader(s.Reader); err != nil {
			s.debug("forgetting the reader's card", "err", err)
		}
		return nil
	case transportFailure(err):
		card.Close()
		return err
	default:
		card.Close()
		s.debug("card record did not work, opening the card the full way", "err", err)
		return nil
	}
	s.Card, s.FromRecord, s.PIN = card, true, st
	s.adopt(rec)
	s.NoteStatus(cie.PIN, st)
	return nil
}

// transportFailure reports whether err is a failure of the reader, the
// connection or the context rather than of the card's answers.
func transportFailure(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, apdu.ErrCardReset) || errors.Is(err, apdu.ErrCardRemoved) || errors.Is(err, apdu.ErrNoCard)
}

// openFull opens the card with cie.Open, reads the PIN state (the
// handshake) and takes the card's record when it has one.
func (s *Session) openFull(ctx context.Context) error {
	card, err := cie.Open(ctx, s.conn, s.atr, s.cieOptions())
	if err != nil {
		return err
	}
	s.Card = card
	st, err := card.PINStatus(ctx)
	if err != nil {
		return err
	}
	s.PIN = st
	if s.cache != nil {
		switch rec, err := s.cache.LoadRecord(card.PAN()); {
		case err == nil:
			s.adopt(rec)
		case !errors.Is(err, certcache.ErrNotFound):
			// A damaged record: the card is used as if it had none; the
			// next pairing (cie pair, a browser login) writes it again.
			s.debug("card record not used", "err", err)
		}
	}
	s.NoteStatus(cie.PIN, st)
	return nil
}

// adopt makes rec the card's record, to be kept up to date.
func (s *Session) adopt(rec *certcache.Record) {
	s.rec = rec
	s.loaded, _ = json.Marshal(rec)
	s.seen = rec.Reader != s.Reader || !bytes.Equal(rec.ReaderATR, s.atr)
}

// CachedCertificate returns the certificate of the card's record, nil when
// the card has no record or the record no certificate. The handshake of
// OpenWith proved the card is the record's.
func (s *Session) CachedCertificate() *x509.Certificate {
	if s.cert != nil {
		return s.cert
	}
	if s.rec == nil {
		return nil
	}
	cert, err := s.rec.Certificate()
	if err != nil {
		return nil
	}
	return cert
}

// Certificate returns the card's certificate: the record's when the card
// has one (no APDU), else the one ReadCertificate reads.
func (s *Session) Certificate(ctx context.Context) (*x509.Certificate, error) {
	if cert := s.CachedCertificate(); cert != nil {
		return cert, nil
	}
	return s.ReadCertificate(ctx)
}

// ReadCertificate reads the certificate from the card (the PIN must be
// verified) and keeps it for the card's record.
func (s *Session) ReadCertificate(ctx context.Context) (*x509.Certificate, error) {
	cert, err := s.Card.Certificate(ctx)
	if err != nil {
		return nil, err
	}
	s.cert = cert
	return cert, nil
}

// NoteStatus keeps the state of ref the card reported, for the card's
// record.
func (s *Session) NoteStatus(ref cie.PINRef, st cie.PINStatus) {
	c := certcache.Counter{Known: true, Remaining: st.Remaining, Blocked: st.Blocked}
	if st.Verified {
		c.Remaining = fullCount(ref)
	}
	s.setCounter(ref, c)
}

// NoteVerified keeps that ref was just verified, changed or reset on the
// card: its counter is full again.
func (s *Session) NoteVerified(ref cie.PINRef) {
	s.setCounter(ref, certcache.Counter{Known: true, Remaining: fullCount(ref)})
}

// NoteError keeps the counter a *cie.PINError in err carries (a wrong or
// blocked PIN or PUK); other errors are ignored.
func (s *Session) NoteError(err error) {
	var pe *cie.PINError
	if errors.As(err, &pe) {
		s.setCounter(pe.Ref, certcache.Counter{Known: true, Remaining: max(pe.Remaining, 0), Blocked: pe.Blocked})
	}
}

func fullCount(ref cie.PINRef) int {
	if ref == cie.PUK {
		return pukTries
	}
	return pinTries
}

func (s *Session) setCounter(ref cie.PINRef, c certcache.Counter) {
	if ref == cie.PUK {
		s.puk = c
		return
	}
	s.pin = c
}

// Pair reads the certificate (the PIN must be verified) and writes the
// card's record: profile, certificate, the counters seen and the reader,
// so that later sessions and the PKCS#11 module open the card from it.
func (s *Session) Pair(ctx context.Context) (*x509.Certificate, error) {
	if s.cache == nil {
		return nil, errors.New("pairing the card: no certificate cache")
	}
	cert, err := s.ReadCertificate(ctx)
	if err != nil {
		return nil, err
	}
	p, ok := s.Card.Profile()
	if !ok {
		return nil, errors.New("pairing the card: the card's public data are not all known yet")
	}
	rec := &certcache.Record{Profile: p}
	if old, err := s.cache.LoadRecord(p.PAN()); err == nil {
		rec = old
	}
	s.rec, s.loaded, s.seen = rec, nil, true
	if err := s.save(true); err != nil {
		return nil, err
	}
	return cert, nil
}

// save writes the card's record when what the session saw changed it: the
// profile (complete after the handshake), the certificate read, the
// counters, the reader and ATR. Without pair, a record removed meanwhile
// (unpaired from another program) stays removed.
func (s *Session) save(pair bool) error {
	if s.cache == nil || s.rec == nil || s.Card == nil {
		return nil
	}
	rec := *s.rec
	if p, ok := s.Card.Profile(); ok && p.PAN() == rec.ID() {
		rec.Profile = p
	}
	if s.cert != nil {
		rec.Cert = s.cert.Raw
	}
	if s.pin.Known {
		rec.PIN = s.pin
	}
	if s.puk.Known {
		rec.PUK = s.puk
	}
	if s.seen {
		rec.SeenIn(s.Reader, s.atr, time.Now())
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("writing the card record: %w", err)
	}
	if !s.seen && bytes.Equal(b, s.loaded) {
		return nil
	}
	if !pair {
		if _, err := s.cache.LoadRecord(rec.ID()); errors.Is(err, certcache.ErrNotFound) {
			return nil
		}
	}
	if err := s.cache.StoreRecord(&rec); err != nil {
		return fmt.Errorf("writing the card record: %w", err)
	}
	s.rec, s.loaded, s.seen = &rec, b, false
	return nil
}

// Hold keeps the card for the rest of the session (one PC/SC transaction;
// the card operations nest theirs in it), so that no other application, a
// browser's PKCS#11 module for one, runs its own secure-messaging
// handshake between a PIN verification and the operations that need it.
// Close ends it.
//
// The secure-messaging session was set up when the Session opened (to read
// the PIN state), and another application may have run its own handshake
// since, which ends ours on the card: a VERIFY sent then would fail. So,
// inside the transaction, Hold asks the PIN state again (a VERIFY without
// data: no try is spent, so asking twice is allowed); when that fails, the
// card package has dropped the dead session and the second query sets up a
// new one. One APDU when nothing happened meanwhile.
func (s *Session) Hold(ctx context.Context) error {
	if s.conn == nil || s.held {
		return nil
	}
	if err := s.conn.BeginTransaction(ctx); err != nil {
		return err
	}
	s.held = true
	if s.Card == nil {
		return nil
	}
	if _, err := s.Card.PINStatus(ctx); err != nil {
		s.debug("the secure messaging session was lost before the transaction; setting up a new one", "err", err)
		if _, err := s.Card.PINStatus(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close writes the card's record when the session changed it (failures
// are logged: the record is a convenience), then closes the card, the
// connection and the PC/SC context. It is safe to call more than once.
func (s *Session) Close() error {
	if err := s.save(false); err != nil {
		s.debug("keeping the card record up to date", "err", err)
	}
	var errs []error
	if s.Card != nil {
		errs = append(errs, s.Card.Close())
		s.Card = nil
	}
	if s.held && s.conn != nil {
		errs = append(errs, s.conn.EndTransaction(context.Background()))
		s.held = false
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
		s.conn = nil
	}
	if s.pc != nil {
		errs = append(errs, s.pc.Release())
		s.pc = nil
	}
	return errors.Join(errs...)
}
