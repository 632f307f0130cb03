package pkcs11

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
)

// Token constants.
const (
	tokenManufacturer = "IPZS" // the CIE's issuer; the chip vendor goes in the model
	pinLen            = 8      // CIE PIN and PUK: exactly 8 digits (§7)
	pinTries          = 3
	pukTries          = 10
)

// slot is one reader. Its mutex guards its fields and its token; card I/O
// for the token runs with it held, so operations on one card are
// serialised (the card itself could not do better).
type slot struct {
	m      *Module
	id     SlotID
	reader string

	// ask keeps one PIN dialog per slot at a time; it is taken before mu,
	// never while mu is held.
	ask sync.Mutex

	mu           sync.Mutex
	connected    bool   // the reader is plugged in
	present      bool   // a card is in the reader
	atr          []byte // its ATR as the source reported it
	tok          *token // the opened card, nil until first needed
	unrecognized bool   // this insertion is not a CIE: do not probe it again
	notRecorded  bool   // this insertion is not the reader's recorded card: do not present the record
}

// update records the reader's state; it reports whether anything a slot
// event is about changed. s.mu is held.
func (s *slot) update(st ReaderStatus, connected bool) bool {
	changed := s.connected != connected
	s.connected = connected
	if st.Present != s.present || !bytes.Equal(st.ATR, s.atr) {
		changed = true
		s.dropToken("card removed or replaced")
		s.unrecognized, s.notRecorded = false, false
	}
	s.present, s.atr = st.Present, slices.Clone(st.ATR)
	return changed
}

// info returns CK_SLOT_INFO; s.mu is held.
func (s *slot) info() SlotInfo {
	var in SlotInfo
	pad(in.SlotDescription[:], s.reader)
	vendor, _, _ := strings.Cut(s.reader, " ")
	pad(in.ManufacturerID[:], vendor)
	in.Flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT
	if s.present {
		in.Flags |= CKF_TOKEN_PRESENT
	}
	return in
}

// dropToken forgets the card: its sessions end (their next call gets
// CKR_DEVICE_REMOVED), the secure-messaging keys and a held PUK are
// zeroed, the connection is closed without resetting the card. s.mu is held.
func (s *slot) dropToken(why string) {
	t := s.tok
	if t == nil {
		return
	}
	s.m.log.Debug("pkcs11: token gone", "slot", s.id, "why", why)
	s.tok = nil
	t.removed = true
	t.logout()
	t.card.Close()
	if err := t.conn.Close(); err != nil {
		s.m.log.Debug("pkcs11: closing card connection", "slot", s.id, "err", err)
	}
	if t.key != nil {
		t.key.Close()
	}
}

// token returns the opened card, opening it on first use: this is the
// only card I/O slot and token information ever cause, once per insertion
// (cie.Open's reads and the certificate cache for a card without a usable
// record; none for a recorded card, opened at its first real use). s.mu is
// held.
func (s *slot) token(ctx context.Context) (*token, error) {
	switch {
	case s.m.closed.Load():
		return nil, CKR_CRYPTOKI_NOT_INITIALIZED // C_Finalize ran: open no card
	case !s.present:
		return nil, CKR_TOKEN_NOT_PRESENT
	case s.tok != nil:
		return s.tok, nil
	case s.unrecognized:
		return nil, CKR_TOKEN_NOT_RECOGNIZED
	}
	t, err := s.open(ctx)
	if err != nil {
		if s.m.closed.Load() {
			return nil, CKR_CRYPTOKI_NOT_INITIALIZED // the card work failed because C_Finalize closed it
		}
		return nil, err
	}
	if s.m.closed.Load() { // C_Finalize ran during the opening: keep no connection
		s.tok = t
		s.dropToken("finalize")
		return nil, CKR_CRYPTOKI_NOT_INITIALIZED
	}
	s.tok = t
	return t, nil
}

// open returns the token of the card in the reader: presented from its
// card record without any card I/O when the reader's ATR is the recorded
// one (openRecorded), else opened with cie.Open (family, EF.SN.ICC,
// EF.ID_Servizi) and completed from the card's record or, for a card
// paired by an older version, from its encrypted certificate entry. The
// PIN try counter is not read here: it comes from the record and is
// updated by every PIN command.
func (s *slot) open(ctx context.Context) (*token, error) {
	if t := s.openRecorded(); t != nil {
		return t, nil
	}
	m := s.m
	conn, err := m.src.Connect(ctx, s.reader)
	if err != nil {
		m.log.Info("pkcs11: connecting to the card", "slot", s.id, "err", err)
		if removed(err) {
			return nil, CKR_TOKEN_NOT_PRESENT
		}
		return nil, CKR_DEVICE_ERROR
	}
	atr, err := conn.ATR()
	if err != nil || len(atr) == 0 {
		atr = s.atr
	}
	card, err := cie.Open(ctx, conn, atr, &cie.Options{Rand: m.cfg.Rand, Logger: m.log})
	if err != nil {
		conn.Close()
		if errors.Is(err, cie.ErrUnsupportedCard) {
			m.log.Info("pkcs11: not a CIE", "slot", s.id, "err", err)
			s.unrecognized = true
			return nil, CKR_TOKEN_NOT_RECOGNIZED
		}
		m.log.Info("pkcs11: opening the card", "slot", s.id, "err", err)
		if removed(err) {
			return nil, CKR_DEVICE_REMOVED
		}
		return nil, CKR_DEVICE_ERROR
	}
	t := s.newToken(conn, card)
	m.log.Debug("pkcs11: card opened", "slot", s.id, "family", t.family)

	c := m.cfg.Cache
	if c == nil || !c.Has(t.pan) {
		return t, nil
	}
	rec, err := c.LoadRecord(t.pan)
	if err == nil {
		t.applyRecord(rec)
		if rec.Reader != s.reader || !bytes.Equal(rec.ReaderATR, s.atr) {
			rec.SeenIn(s.reader, s.atr, time.Now())
			if err := c.StoreRecord(rec); err != nil {
				m.log.Info("pkcs11: recording the reader's card", "slot", s.id, "err", err)
			}
		}
		t.readerSaved = true
		if t.cert != nil {
			return t, nil
		}
	} else if !errors.Is(err, certcache.ErrNotFound) {
		m.log.Info("pkcs11: card record not used", "slot", s.id, "err", err)
	}
	if !c.HasEntry(t.pan) {
		return t, nil
	}
	if err := t.loadCached(ctx, c); err != nil && !errors.Is(err, certcache.ErrNotFound) {
		m.log.Info("pkcs11: cached certificate not used", "slot", s.id, "err", err)
		if removed(err) {
			s.tok = t
			s.dropToken("card removed")
			return nil, CKR_DEVICE_REMOVED
		}
	}
	return t, nil
}

// removed reports whether err means the card is gone.
func removed(err error) bool {
	return errors.Is(err, apdu.ErrCardRemoved) || errors.Is(err, apdu.ErrNoCard)
}

// counter is what the module knows of a PIN or PUK try counter.
type counter struct {
	known     bool
	remaining int
	blocked   bool
	max       int
}

func (c *counter) set(remaining int, blocked bool) {
	c.known, c.remaining, c.blocked = true, remaining, blocked
}

// ok records a successful verification.
func (c *counter) ok() { c.set(c.max, false) }

// flags returns the token flags for the counter: count low after a wrong
// entry, final try, locked.
func (c *counter) flags(low, final, locked Flags) Flags {
	switch {
	case !c.known:
		return 0
	case c.blocked:
		return locked
	case c.remaining == 1:
		return low | final
	case c.remaining < c.max:
		return low
	}
	return 0
}

// loginState is who is logged in to the token.
type loginState int

const (
	loggedOut loginState = iota
	loggedUser
	loggedSO
)

// token is an opened CIE in a slot. Its fields are guarded by the slot's
// mutex.
type token struct {
	slot      *slot
	conn      Conn
	card      *cie.Card
	family    string
	pan       string
	idServizi string
	removed   bool // the card left: sessions report CKR_DEVICE_REMOVED once

	cert    *x509.Certificate // the holder certificate, once known
	key     *certcache.Key    // the card-bound cache key, once derived
	objects []*object         // certificate, public key, private key (once cert is known)

	pin, puk counter
	login    loginState
	soPUK    []byte // the PUK while the SO is logged in (C_InitPIN needs it); zeroed at logout

	sessions map[SessionHandle]*session

	saved       *certcache.Record // the card record as last read or written
	readerSaved bool              // the record names this card's reader and ATR
}

// logout forgets the login: PKCS#11 state, the PUK and the card's
// secure-messaging session (the PIN verification goes with it). Active
// signature operations end with it.
func (t *token) logout() {
	t.loseLogin()
	for _, ss := range t.sessions {
		ss.sign = nil
	}
}

// loseLogin is logout when the card, not the application, ended the login
// (another application's handshake or reset took the PIN verification):
// signature operations other sessions started stay, so that their C_Sign
// says CKR_USER_NOT_LOGGED_IN, the application's cue to log in again (or,
// with the module's PIN dialog, asks for the PIN), rather than
// CKR_OPERATION_NOT_INITIALIZED for an operation it did start.
func (t *token) loseLogin() {
	if t.login != loggedOut {
		t.card.Logout()
	}
	t.login = loggedOut
	clear(t.soPUK)
	t.soPUK = nil
	for _, ss := range t.sessions {
		ss.find = nil // a search may hold private objects
	}
}

// loadCached derives the card-bound key and reads the cached certificate.
func (t *token) loadCached(ctx context.Context, c *certcache.Cache) error {
	key, err := certcache.KeyFor(ctx, t.card)
	if err != nil {
		return err
	}
	t.key = key
	cert, err := c.Load(t.pan, key)
	if err != nil {
		return err
	}
	t.setCert(cert)
	return nil
}

// storeCached writes the card's record with the certificate (persist);
// for a card whose public data are not all known yet (no handshake ran)
// it falls back to the encrypted certificate entry, which costs the
// card-bound key. Failures are logged: the cache is a convenience.
func (t *token) storeCached(ctx context.Context) {
	c := t.slot.m.cfg.Cache
	if c == nil || t.cert == nil {
		return
	}
	if _, ok := t.card.Profile(); ok {
		t.persist(true)
		return
	}
	if t.key == nil {
		key, err := certcache.KeyFor(ctx, t.card)
		if err != nil {
			t.slot.m.log.Info("pkcs11: deriving the certificate cache key", "err", err)
			return
		}
		t.key = key
	}
	if err := c.Store(t.pan, t.key, t.cert.Raw); err != nil {
		t.slot.m.log.Info("pkcs11: caching the certificate", "err", err)
	}
}

// setCert records the holder certificate and creates the objects.
func (t *token) setCert(cert *x509.Certificate) {
	t.cert = cert
	objs, err := buildObjects(cert, func() ObjectHandle { return ObjectHandle(t.slot.m.nextObject.Add(1)) }, t.slot.m.cfg.PIN != nil)
	if err != nil {
		t.slot.m.log.Info("pkcs11: certificate not usable", "err", err)
		t.cert = nil
		return
	}
	t.objects = objs
}

// label is the token label: the holder's name when the certificate is
// known, else "CIE <ID_Servizi>".
func (t *token) label() string {
	if t.cert != nil {
		h := cie.HolderFromCertificate(t.cert)
		if n := strings.TrimSpace(h.GivenName + " " + h.Surname); n != "" {
			return n
		}
	}
	return "CIE " + t.serial()
}

// serial is the token serial number: ID_Servizi, or the PAN.
func (t *token) serial() string {
	if t.idServizi != "" {
		return t.idServizi
	}
	return t.pan
}

// info returns CK_TOKEN_INFO; s.mu is held.
func (t *token) info() TokenInfo {
	var in TokenInfo
	pad(in.Label[:], t.label())
	pad(in.ManufacturerID[:], tokenManufacturer)
	pad(in.Model[:], t.family)
	pad(in.SerialNumber[:], t.serial())
	in.Flags = CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED |
		t.pin.flags(CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED) |
		t.puk.flags(CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED)
	if t.slot.m.cfg.PIN != nil {
		// Sign on demand: the module's dialog takes the PIN, and nothing
		// needs a C_Login, so NSS never logs in to list certificates (it
		// would with LOGIN_REQUIRED on a module registered without
		// FRIENDLY, as Firefox's SecurityDevices policy does): the PIN is
		// asked only when a signature is made.
		in.Flags |= CKF_PROTECTED_AUTHENTICATION_PATH
		in.Flags &^= CKF_LOGIN_REQUIRED
	}
	in.MaxSessionCount, in.MaxRwSessionCount = EffectivelyInfinite, EffectivelyInfinite
	for _, ss := range t.sessions {
		in.SessionCount++
		if ss.rw {
			in.RwSessionCount++
		}
	}
	in.MinPinLen, in.MaxPinLen = pinLen, pinLen
	in.TotalPublicMemory, in.FreePublicMemory = UnavailableInformation, UnavailableInformation
	in.TotalPrivateMemory, in.FreePrivateMemory = UnavailableInformation, UnavailableInformation
	in.HardwareVersion = Version{3, 0} // CIE 3.0
	pad(in.UTCTime[:], "")
	return in
}

// TokenInfo returns CK_TOKEN_INFO (C_GetTokenInfo). The first call after a
// card is inserted opens it (see Module doc); later calls talk to no card.
func (m *Module) TokenInfo(id SlotID) (TokenInfo, error) {
	if err := m.check(); err != nil {
		return TokenInfo{}, err
	}
	s, err := m.slot(id)
	if err != nil {
		return TokenInfo{}, err
	}
	m.refresh(m.ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.token(m.ctx)
	if err != nil {
		return TokenInfo{}, err
	}
	return t.info(), nil
}

// MechanismList returns the mechanisms (C_GetMechanismList).
func (m *Module) MechanismList(id SlotID) ([]MechanismType, error) {
	if err := m.withToken(id, nil); err != nil {
		return nil, err
	}
	out := make([]MechanismType, len(mechanisms))
	for i, mech := range mechanisms {
		out[i] = mech.typ
	}
	return out, nil
}

// MechanismInfo returns CK_MECHANISM_INFO (C_GetMechanismInfo): key sizes
// in bits, CKF_HW | CKF_SIGN.
func (m *Module) MechanismInfo(id SlotID, typ MechanismType) (MechanismInfo, error) {
	bits := uint(rsaBits)
	err := m.withToken(id, func(t *token) {
		if t.cert != nil {
			if b := modulusBits(t.cert); b > 0 {
				bits = uint(b)
			}
		}
	})
	if err != nil {
		return MechanismInfo{}, err
	}
	if mechanismByType(typ) == nil {
		return MechanismInfo{}, CKR_MECHANISM_INVALID
	}
	return MechanismInfo{MinKeySize: bits, MaxKeySize: bits, Flags: CKF_HW | CKF_SIGN}, nil
}

// withToken runs fn (if not nil) on the slot's token.
func (m *Module) withToken(id SlotID, fn func(*token)) error {
	if err := m.check(); err != nil {
		return err
	}
	s, err := m.slot(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.token(m.ctx)
	if err != nil {
		return err
	}
	if fn != nil {
		fn(t)
	}
	return nil
}

// String names the slot for logs.
func (s *slot) String() string { return fmt.Sprintf("slot %d (%s)", s.id, s.reader) }
