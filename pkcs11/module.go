package pkcs11

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciedesktop/cie-desktop/certcache"
)

// Library identity reported by C_GetInfo.
const (
	manufacturer       = "CIE Desktop"
	libraryDescription = "CIE 3.0 PKCS#11 module"
)

// Config configures a Module.
type Config struct {
	// Source supplies readers and card connections. Required.
	Source ReaderSource
	// Cache keeps the records of the cards seen (public data, the holder
	// certificate once paired, the PIN counters) and which card each reader
	// last held, so that a paired card is presented without any APDU and
	// certificate and public key are visible without a login after the
	// first one. Nil disables it: every start-up opens the card, and the
	// objects appear only after each login.
	Cache *certcache.Cache
	// Logger receives the module's diagnostics and the card protocol's
	// debug records (never PINs, keys or data to be signed). Nil discards.
	Logger *slog.Logger
	// Rand is the randomness of the card protocol (DH, device
	// authentication); nil means crypto/rand.
	Rand io.Reader
	// LibraryVersion is reported by C_GetInfo.
	LibraryVersion Version
	// PIN, when set, is the module's own PIN dialog: the private key is
	// usable without C_Login, the module asks the PIN when a signature
	// needs it, and C_Login with a NULL PIN (protected authentication path)
	// asks it too. See "Sign on demand" in the package documentation. Nil:
	// applications log in with C_Login and the PIN, as on any token.
	PIN PINPrompter
}

// Module is one initialised instance of the PKCS#11 library: what lives
// between C_Initialize and C_Finalize. Its methods mirror the PKCS#11
// functions with Go types; every error they return is an RV. They are safe
// for concurrent use.
type Module struct {
	cfg    Config
	src    ReaderSource
	log    *slog.Logger
	ctx    context.Context // cancelled by Close: ends blocking waits
	cancel context.CancelFunc
	closed atomic.Bool

	// Handles are unique for the life of the Module, so that a handle of a
	// removed card never names an object or session of the next one.
	nextSession atomic.Uint64
	nextObject  atomic.Uint64

	mu     sync.Mutex // guards slots, byName, known, events; never held with a slot's mu
	slots  []*slot
	byName map[string]*slot
	known  []ReaderStatus
	events []SlotID

	swapMu  sync.Mutex         // leaf lock: guards swapped and wake only
	swapped []SlotID           // slot events found with a slot's mu held (changed)
	wake    context.CancelFunc // ends the wait of a blocked WaitForSlotEvent (changed)

	sessMu   sync.Mutex // leaf lock: guards sessions only
	sessions map[SessionHandle]*session

	waitMu sync.Mutex // one blocking WaitForSlotEvent talks to the source at a time
}

// New initialises a Module (C_Initialize): it lists the readers once, to
// number the slots and to have a baseline for slot events. It talks to no
// card.
func New(cfg Config) (*Module, error) {
	if cfg.Source == nil {
		return nil, CKR_ARGUMENTS_BAD
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Module{
		cfg: cfg, src: cfg.Source, log: log, ctx: ctx, cancel: cancel,
		byName:   map[string]*slot{},
		sessions: map[SessionHandle]*session{},
	}
	st, err := m.src.Readers(ctx)
	if err != nil {
		m.log.Warn("pkcs11: listing readers", "err", err)
		st = nil
	}
	m.apply(st, false)
	return m, nil
}

// Close finalises the Module (C_Finalize): blocking waits return, sessions
// end, card connections are closed (the cards are not reset). Later calls
// return CKR_CRYPTOKI_NOT_INITIALIZED.
func (m *Module) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return CKR_CRYPTOKI_NOT_INITIALIZED
	}
	m.cancel()
	m.mu.Lock()
	slots := slices.Clone(m.slots)
	m.mu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		s.dropToken("finalize")
		s.mu.Unlock()
	}
	return nil
}

func (m *Module) check() error {
	if m.closed.Load() {
		return CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return nil
}

// Info returns CK_INFO. The Cryptoki version is 3.0, the highest interface
// the library offers.
func (m *Module) Info() (Info, error) {
	if err := m.check(); err != nil {
		return Info{}, err
	}
	var in Info
	in.CryptokiVersion = Version{3, 0}
	pad(in.ManufacturerID[:], manufacturer)
	pad(in.LibraryDescription[:], libraryDescription)
	in.LibraryVersion = m.cfg.LibraryVersion
	return in, nil
}

// refresh asks the source for the readers' state and applies it; slot
// events are recorded. Failures are logged: the last known state stays.
func (m *Module) refresh(ctx context.Context) {
	st, err := m.src.Readers(ctx)
	if err != nil {
		m.log.Debug("pkcs11: listing readers", "err", err)
		return
	}
	m.apply(st, true)
}

// apply records the readers' state: new readers get a slot, slots whose
// card left or changed lose their token. With events, each changed slot is
// queued for WaitForSlotEvent.
func (m *Module) apply(st []ReaderStatus, events bool) {
	type change struct {
		s  *slot
		st ReaderStatus
	}
	var changes []change
	m.mu.Lock()
	listed := map[string]bool{}
	for _, r := range st {
		listed[r.Name] = true
		s := m.byName[r.Name]
		if s == nil {
			s = &slot{m: m, id: SlotID(len(m.slots) + 1), reader: r.Name}
			m.slots = append(m.slots, s)
			m.byName[r.Name] = s
			if events {
				m.queue(s.id)
			}
		}
		changes = append(changes, change{s, r})
	}
	for _, s := range m.slots {
		if !listed[s.reader] {
			changes = append(changes, change{s, ReaderStatus{Name: s.reader}})
		}
	}
	m.known = slices.Clone(st)
	m.mu.Unlock()

	for _, c := range changes {
		c.s.mu.Lock()
		changed := c.s.update(c.st, listed[c.s.reader])
		c.s.mu.Unlock()
		if changed && events {
			m.mu.Lock()
			m.queue(c.s.id)
			m.mu.Unlock()
		}
	}
}

// queue records a slot event once; m.mu is held.
func (m *Module) queue(id SlotID) {
	if !slices.Contains(m.events, id) {
		m.events = append(m.events, id)
	}
}

// changed queues a slot event from code that holds the slot's mu (which
// must not take m.mu): popEvent picks it up.
// A WaitForSlotEvent blocked in the source is woken to return it.
func (m *Module) changed(id SlotID) {
	m.swapMu.Lock()
	defer m.swapMu.Unlock()
	if !slices.Contains(m.swapped, id) {
		m.swapped = append(m.swapped, id)
	}
	if m.wake != nil {
		m.wake()
		m.wake = nil
	}
}

// waitContext returns the context of one blocking wait for the source:
// changed cancels it. It is done already when an event found by changed
// is pending, so that none is missed between popEvent and the wait.
func (m *Module) waitContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(m.ctx)
	m.swapMu.Lock()
	defer m.swapMu.Unlock()
	if len(m.swapped) > 0 {
		cancel()
	} else {
		m.wake = cancel
	}
	return ctx, cancel
}

// endWait forgets the cancel function of waitContext.
func (m *Module) endWait(cancel context.CancelFunc) {
	m.swapMu.Lock()
	m.wake = nil
	m.swapMu.Unlock()
	cancel()
}

func (m *Module) popEvent() (SlotID, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.swapMu.Lock()
	for _, id := range m.swapped {
		m.queue(id)
	}
	m.swapped = nil
	m.swapMu.Unlock()
	if len(m.events) == 0 {
		return 0, false
	}
	id := m.events[0]
	m.events = m.events[1:]
	return id, true
}

// slot returns the slot with id.
func (m *Module) slot(id SlotID) (*slot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == 0 || int(id) > len(m.slots) {
		return nil, CKR_SLOT_ID_INVALID
	}
	return m.slots[id-1], nil
}

// SlotList returns the slots (C_GetSlotList): every reader connected now,
// or with tokenPresent only those holding a card. Readers plugged in since
// the last call get new slots; a reader seen before keeps its slot ID.
func (m *Module) SlotList(tokenPresent bool) ([]SlotID, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	m.refresh(m.ctx)
	m.mu.Lock()
	slots := slices.Clone(m.slots)
	m.mu.Unlock()
	ids := []SlotID{}
	for _, s := range slots {
		s.mu.Lock()
		ok := s.connected && (!tokenPresent || s.present)
		s.mu.Unlock()
		if ok {
			ids = append(ids, s.id)
		}
	}
	return ids, nil
}

// SlotInfo returns CK_SLOT_INFO (C_GetSlotInfo). It talks to no card.
func (m *Module) SlotInfo(id SlotID) (SlotInfo, error) {
	if err := m.check(); err != nil {
		return SlotInfo{}, err
	}
	s, err := m.slot(id)
	if err != nil {
		return SlotInfo{}, err
	}
	m.refresh(m.ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info(), nil
}

// WaitForSlotEvent returns the next slot whose reader or card changed
// since the Module was created or the last event was returned
// (C_WaitForSlotEvent). With dontBlock it returns CKR_NO_EVENT when there
// is none; otherwise it waits, until Close (CKR_CRYPTOKI_NOT_INITIALIZED).
func (m *Module) WaitForSlotEvent(dontBlock bool) (SlotID, error) {
	if err := m.check(); err != nil {
		return 0, err
	}
	if id, ok := m.popEvent(); ok {
		return id, nil
	}
	m.refresh(m.ctx)
	if id, ok := m.popEvent(); ok {
		return id, nil
	}
	if dontBlock {
		return 0, CKR_NO_EVENT
	}
	for {
		m.waitMu.Lock()
		if id, ok := m.popEvent(); ok { // another waiter saw it
			m.waitMu.Unlock()
			return id, nil
		}
		m.mu.Lock()
		known := slices.Clone(m.known)
		m.mu.Unlock()
		wctx, cancel := m.waitContext()
		st, err := m.src.WaitForChange(wctx, known)
		woken := wctx.Err() != nil
		m.endWait(cancel)
		m.waitMu.Unlock()
		if m.ctx.Err() != nil || m.closed.Load() {
			return 0, CKR_CRYPTOKI_NOT_INITIALIZED
		}
		if err != nil && woken { // changed: another card in a slot
			if id, ok := m.popEvent(); ok {
				return id, nil
			}
			continue
		}
		if err != nil {
			m.log.Debug("pkcs11: waiting for reader changes", "err", err)
			if !sleep(m.ctx, time.Second) {
				return 0, CKR_CRYPTOKI_NOT_INITIALIZED
			}
			continue
		}
		m.apply(st, true)
		if id, ok := m.popEvent(); ok {
			return id, nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// rvOf returns the RV an error stands for: itself when it is one,
// CKR_FUNCTION_FAILED otherwise (internal errors never reach the caller
// unmapped, this is a safety net).
func rvOf(err error) RV {
	if err == nil {
		return CKR_OK
	}
	var rv RV
	if errors.As(err, &rv) {
		return rv
	}
	return CKR_FUNCTION_FAILED
}
