package pkcs11

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
)

// lazyConn is the connection of a token presented from its card record: it
// connects to the card at the first command, so that a browser's start-up
// (C_GetSlotList, C_GetTokenInfo, C_FindObjects of the certificate) costs
// the card nothing, not even a connection.
type lazyConn struct {
	src    ReaderSource
	reader string
	atr    []byte

	mu sync.Mutex
	c  Conn
}

func (l *lazyConn) conn(ctx context.Context) (Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		c, err := l.src.Connect(ctx, l.reader)
		if err != nil {
			return nil, err
		}
		l.c = c
	}
	return l.c, nil
}

func (l *lazyConn) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	c, err := l.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.Transmit(ctx, cmd)
}

func (l *lazyConn) BeginTransaction(ctx context.Context) error {
	c, err := l.conn(ctx)
	if err != nil {
		return err
	}
	return c.BeginTransaction(ctx)
}

func (l *lazyConn) EndTransaction(ctx context.Context) error {
	l.mu.Lock()
	c := l.c
	l.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.EndTransaction(ctx)
}

// ATR returns the ATR the reader reported, without connecting.
func (l *lazyConn) ATR() ([]byte, error) { return slices.Clone(l.atr), nil }

func (l *lazyConn) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		return nil
	}
	err := l.c.Close()
	l.c = nil
	return err
}

var _ Conn = (*lazyConn)(nil)
var _ apdu.Transactor = (*lazyConn)(nil)

// openRecorded presents the card last seen in the reader from its card
// record when the reader's ATR is still the recorded one: no APDU and no
// connection; the card is opened with cie.OpenProfile and confirmed at its
// first real use. It returns nil when there is no usable record, or when
// this insertion already turned out to be another card than the recorded
// one (cardChanged: the record is not presented again even if the reader
// could not be cleared from it). s.mu is held.
func (s *slot) openRecorded() *token {
	m := s.m
	c := m.cfg.Cache
	if c == nil || len(s.atr) == 0 || s.notRecorded {
		return nil
	}
	rec, ok := c.ReaderRecord(s.reader, s.atr)
	if !ok {
		return nil
	}
	conn := &lazyConn{src: m.src, reader: s.reader, atr: slices.Clone(s.atr)}
	card, err := cie.OpenProfile(conn, s.atr, rec.Profile, &cie.Options{Rand: m.cfg.Rand, Logger: m.log})
	if err != nil {
		m.log.Info("pkcs11: card record not used", "slot", s.id, "err", err)
		return nil
	}
	t := s.newToken(conn, card)
	t.applyRecord(rec)
	t.readerSaved = true
	m.log.Debug("pkcs11: card presented from its record", "slot", s.id, "family", t.family)
	return t
}

// newToken returns the token of an opened card.
func (s *slot) newToken(conn Conn, card *cie.Card) *token {
	t := &token{slot: s, conn: conn, card: card, family: card.Family().Name, pan: card.PAN(), idServizi: card.IDServizi()}
	t.pin.max, t.puk.max = pinTries, pukTries
	return t
}

// applyRecord takes the certificate and the counters of the card's record.
func (t *token) applyRecord(rec *certcache.Record) {
	if cert, err := rec.Certificate(); err == nil && cert != nil {
		t.setCert(cert)
	}
	fromRecord(&t.pin, rec.PIN)
	fromRecord(&t.puk, rec.PUK)
	t.saved = rec
}

func fromRecord(c *counter, r certcache.Counter) {
	if r.Known && r.Remaining >= 0 && r.Remaining <= c.max {
		c.set(r.Remaining, r.Blocked)
	}
}

func toRecord(c *counter) certcache.Counter {
	return certcache.Counter{Known: c.known, Remaining: c.remaining, Blocked: c.blocked}
}

// persist writes the card's record (profile, certificate, counters) when
// it changed since it was read or last written, with the reader it is in, so
// that the next process presents the card without talking to it. It
// writes nothing until the card's public data are all known (after a
// secure-messaging handshake). Failures are logged: the cache is a
// convenience. Only a login (login) creates a record: the first login
// pairs the card, and writes again a record removed meanwhile ("unpair"
// while the card was in use). Other calls (a wrong PIN, an SO login,
// C_SetPIN, C_InitPIN) only update the record the card already has, and
// write nothing for an unpaired card, as cardsession does. s.mu is held.
func (t *token) persist(login bool) {
	c := t.slot.m.cfg.Cache
	if c == nil || t.removed {
		return
	}
	if !login && (t.saved == nil || !c.Has(t.pan)) {
		return
	}
	p, ok := t.card.Profile()
	if !ok {
		return
	}
	rec := &certcache.Record{Profile: p, PIN: toRecord(&t.pin), PUK: toRecord(&t.puk)}
	if t.cert != nil {
		rec.Cert = t.cert.Raw
	}
	if t.saved != nil {
		rec.Reader, rec.ReaderATR, rec.SeenAt = t.saved.Reader, t.saved.ReaderATR, t.saved.SeenAt
	}
	if !t.readerSaved {
		rec.SeenIn(t.slot.reader, t.slot.atr, time.Now())
	}
	if t.saved != nil && sameRecord(t.saved, rec) && c.Has(t.pan) {
		return
	}
	if err := c.StoreRecord(rec); err != nil {
		t.slot.m.log.Info("pkcs11: writing the card record", "slot", t.slot.id, "err", err)
		return
	}
	t.saved, t.readerSaved = rec, true
}

// sameRecord reports whether two records would be written the same.
func sameRecord(a, b *certcache.Record) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// cardChanged handles cie.ErrCardChanged: the card presented from the
// reader's record is another one (cards of one family share their ATR).
// Nothing was sent to it that needs a PIN. To the application this is the
// recorded card's removal and the other card's insertion: the reader is
// cleared from the recorded card's record (the rest of it stays, it is
// still right for that card) and the slot does not present the record
// again for this insertion (even if clearing the reader failed), the token
// is dropped, so that its sessions end with
// CKR_DEVICE_REMOVED (PKCS#11 has no "device changed"; NSS then looks at
// the slot again and finds a new token), and the slot gets an event. The
// next call on the slot opens the card that is really there. s.mu is held.
func (t *token) cardChanged() error {
	s := t.slot
	s.m.log.Info("pkcs11: another card than the recorded one is in the reader", "slot", s.id)
	if c := s.m.cfg.Cache; c != nil {
		if err := c.ForgetReader(s.reader); err != nil {
			s.m.log.Info("pkcs11: forgetting the reader's card", "slot", s.id, "err", err)
		}
	}
	s.notRecorded = true
	s.dropToken("another card")
	s.m.changed(s.id)
	return CKR_DEVICE_REMOVED
}

// isCardChanged reports whether err is cie.ErrCardChanged.
func isCardChanged(err error) bool { return errors.Is(err, cie.ErrCardChanged) }
