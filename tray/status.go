package tray

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
	"github.com/ciedesktop/cie-desktop/pcsc"
	"github.com/ciedesktop/cie-desktop/tray/icon"
)

// Presence is what the tray knows about the readers and the card.
type Presence int

// The presences, from nothing to a usable CIE.
const (
	// NoService: the smart card service (pcscd) is not running.
	NoService Presence = iota
	// NoReader: no reader is connected.
	NoReader
	// NoCard: a reader is connected but holds no card.
	NoCard
	// OtherCard: the card is not a CIE 3.0 (or its chip is unknown).
	OtherCard
	// CardTrouble: a card is there but could not be read (Status.Problem).
	CardTrouble
	// CIEPresent: a CIE is on the reader; Status.PIN and PUK hold its state.
	CIEPresent
)

var presenceNames = [...]string{"no-service", "no-reader", "no-card", "other-card", "card-trouble", "cie"}

// String returns a stable name, e.g. "no-card".
func (p Presence) String() string {
	if p >= 0 && int(p) < len(presenceNames) {
		return presenceNames[p]
	}
	return "unknown"
}

// Status is the state the tray shows: icon, tooltip, the first line of the
// menu, and the notifications when it changes.
type Status struct {
	Presence Presence
	Reader   string // the reader the card is on (or the only reader)
	ATR      []byte
	Family   string // chip family name, e.g. "Gemalto"
	// PAN identifies the card across probes; it is never shown.
	PAN string
	// Holder is the holder's name when known (certificate cache, or a PIN
	// verified in this session); empty otherwise.
	Holder     string
	PIN, PUK   cie.PINStatus
	TriesKnown bool                // PIN and PUK were read
	Problem    cardsession.Problem // for CardTrouble
}

// Icon returns the tray picture for the status.
func (s Status) Icon() icon.Kind {
	switch {
	case s.Presence == CIEPresent && (s.PIN.Blocked || s.PUK.Blocked):
		return icon.Blocked
	case s.Presence == CIEPresent:
		return icon.Present
	case s.Presence == NoService || s.Presence == NoReader:
		return icon.NoReader
	}
	return icon.NoCard
}

// Summary is one line saying where things stand, for the tray menu and
// the tooltip: "Mario Rossi's CIE: PIN ready (3 tries)".
func (s Status) Summary(c *Catalogue) string {
	switch s.Presence {
	case NoService:
		return c.T("status.no_service")
	case NoReader:
		return c.T("status.no_reader")
	case NoCard:
		return c.T("status.no_card")
	case OtherCard:
		return c.T("status.other_card")
	case CardTrouble:
		return c.T("status.card_trouble")
	}
	who := c.T("status.cie")
	if s.Holder != "" {
		who = c.T("status.cie_of", map[string]any{"Holder": s.Holder})
	}
	switch {
	case !s.TriesKnown:
		return who
	case s.PUK.Blocked:
		return who + ": " + c.T("status.puk_blocked_short")
	case s.PIN.Blocked:
		return who + ": " + c.T("status.pin_blocked_short")
	}
	return who + ": " + c.N("status.pin_tries", s.PIN.Remaining)
}

// Tooltip is the text shown when hovering the tray icon.
func (s Status) Tooltip(c *Catalogue) string {
	return c.T("app.name") + " — " + s.Summary(c)
}

// sameCard reports whether a and b show the same card on the same reader.
func sameCard(a, b Status) bool {
	return a.Presence == b.Presence && a.Reader == b.Reader && bytes.Equal(a.ATR, b.ATR) && a.PAN == b.PAN
}

// hasCard reports whether a card is on the reader.
func (s Status) hasCard() bool {
	return s.Presence == CIEPresent || s.Presence == OtherCard || s.Presence == CardTrouble
}

// Notice is a desktop notification.
type Notice struct {
	Title, Body string
}

// Notices returns the notifications for the change from prev to next:
// a CIE inserted, a card removed, the PIN (or PUK) found blocked.
func Notices(prev, next Status, c *Catalogue) []Notice {
	var out []Notice
	same := sameCard(prev, next)
	if next.Presence == CIEPresent && !same {
		body := c.T("notice.inserted_body")
		if next.Holder != "" {
			body = c.T("notice.inserted_body_holder", map[string]any{"Holder": next.Holder})
		}
		out = append(out, Notice{Title: c.T("notice.inserted"), Body: body})
	}
	if prev.hasCard() && !next.hasCard() {
		out = append(out, Notice{Title: c.T("notice.removed"), Body: c.T("notice.removed_body")})
	}
	if next.Presence == CIEPresent && next.TriesKnown {
		// Already known blocked: the same card was read before with the same state.
		known := prev.Presence == CIEPresent && prev.TriesKnown && prev.PAN == next.PAN
		switch {
		case next.PUK.Blocked && !(known && prev.PUK.Blocked):
			out = append(out, Notice{Title: c.T("notice.puk_blocked"), Body: c.T("problem.puk_blocked")})
		case next.PIN.Blocked && !next.PUK.Blocked && !(known && prev.PIN.Blocked):
			out = append(out, Notice{Title: c.T("notice.pin_blocked"), Body: c.T("notice.pin_blocked_body")})
		}
	}
	return out
}

// Prober reads the Status of the card on a reader.
type Prober func(ctx context.Context, reader string, atr []byte) Status

// Opener opens the CIE on a reader for one operation ("" means: the
// reader ChooseReader picks). The caller closes the session.
type Opener func(ctx context.Context, reader string) (*cardsession.Session, error)

// ProbeWith returns a Prober that opens the card with open, reads its
// family, PIN and PUK state (without spending a try), and the holder's
// name from cache when the certificate cache has this card (nil: none).
func ProbeWith(open Opener, cache *certcache.Cache, logger *slog.Logger) Prober {
	return func(ctx context.Context, reader string, atr []byte) Status {
		st := Status{Presence: CIEPresent, Reader: reader, ATR: atr}
		s, err := open(ctx, reader)
		if err != nil {
			return troubled(st, err, logger)
		}
		defer s.Close()
		return readStatus(ctx, st, s, cache, logger)
	}
}

// readStatus fills st from an open card, and notes the PIN and PUK state
// for the card's record (written when the session closes). The holder's
// name comes from the record's certificate, else from a legacy encrypted
// entry in cache (nil: none).
func readStatus(ctx context.Context, st Status, s *cardsession.Session, cache *certcache.Cache, logger *slog.Logger) Status {
	card := s.Card
	st.Family = card.Family().Name
	st.PAN = card.PAN()
	if st.ATR == nil {
		st.ATR = card.ATR()
	}
	pin, err := card.PINStatus(ctx)
	if err != nil {
		return troubled(st, err, logger)
	}
	puk, err := card.PUKStatus(ctx)
	if err != nil {
		return troubled(st, err, logger)
	}
	st.PIN, st.PUK, st.TriesKnown = pin, puk, true
	s.NoteStatus(cie.PIN, pin)
	s.NoteStatus(cie.PUK, puk)
	if cert := s.CachedCertificate(); cert != nil {
		st.Holder = HolderName(cie.HolderFromCertificate(cert))
	} else {
		st.Holder = cachedHolder(ctx, cache, card, logger)
	}
	return st
}

func troubled(st Status, err error, logger *slog.Logger) Status {
	p, _ := cardsession.Classify(err)
	if logger != nil {
		logger.Info("reading the card", "problem", p.String(), "err", err)
	}
	switch p {
	case cardsession.ProblemUnsupported:
		st.Presence = OtherCard
	case cardsession.ProblemNoCard, cardsession.ProblemCardRemoved:
		st.Presence = NoCard
	case cardsession.ProblemNoService:
		st.Presence = NoService
	case cardsession.ProblemNoReader:
		st.Presence = NoReader
	default:
		st.Presence = CardTrouble
		st.Problem = p
	}
	return st
}

// cachedHolder reads the holder's name from a legacy encrypted entry of
// the certificate cache (the card proves the entry is its own with the
// servizi key, no PIN needed).
func cachedHolder(ctx context.Context, cache *certcache.Cache, card *cie.Card, logger *slog.Logger) string {
	if cache == nil || !cache.HasEntry(card.PAN()) {
		return ""
	}
	k, err := certcache.KeyFor(ctx, card)
	if err != nil {
		if logger != nil {
			logger.Info("deriving the certificate cache key", "err", err)
		}
		return ""
	}
	defer k.Close()
	cert, err := cache.Load(card.PAN(), k)
	if err != nil {
		if logger != nil {
			logger.Info("reading the certificate cache", "err", err)
		}
		return ""
	}
	return HolderName(cie.HolderFromCertificate(cert))
}

// HolderName returns "Given Surname", turning names the certificate spells
// in capitals ("MARIO ROSSI") into "Mario Rossi".
func HolderName(h cie.Holder) string {
	return strings.TrimSpace(nameCase(h.GivenName) + " " + nameCase(h.Surname))
}

func nameCase(s string) string {
	if s != strings.ToUpper(s) {
		return s
	}
	r := []rune(strings.ToLower(s))
	start := true
	for i, c := range r {
		if start && unicode.IsLetter(c) {
			r[i] = unicode.ToUpper(c)
		}
		start = c == ' ' || c == '-' || c == '\''
	}
	return string(r)
}

// Monitor watches the PC/SC readers in its own goroutine and reports the
// tray Status whenever a reader or a card comes or goes, or Refresh is
// called.
type Monitor struct {
	// Reader restricts the monitor to one reader (as cie --reader: a name,
	// part of one, or an index); empty means any reader.
	Reader string
	// Probe reads the card's Status.
	Probe Prober
	// Logger may be nil.
	Logger *slog.Logger
	// Retry is the pause before reconnecting to a stopped pcscd (default 2 s).
	Retry time.Duration

	refresh chan struct{}
}

// NewMonitor returns a Monitor for reader (may be empty) probing with probe.
func NewMonitor(reader string, probe Prober, logger *slog.Logger) *Monitor {
	return &Monitor{Reader: reader, Probe: probe, Logger: logger, refresh: make(chan struct{}, 1)}
}

// Refresh makes the monitor read the card again (after an operation that
// may have changed the PIN state). It never blocks.
func (m *Monitor) Refresh() {
	select {
	case m.refresh <- struct{}{}:
	default:
	}
}

func (m *Monitor) log(msg string, args ...any) {
	if m.Logger != nil {
		m.Logger.Info(msg, args...)
	}
}

// Run reports statuses until ctx is done. It uses its own PC/SC context,
// as pcsc.Context.WaitForChange requires.
func (m *Monitor) Run(ctx context.Context, report func(Status)) {
	retry := m.Retry
	if retry == 0 {
		retry = 2 * time.Second
	}
	for ctx.Err() == nil {
		pc, err := pcsc.Establish()
		if err != nil {
			m.log("connecting to the smart card service", "err", err)
			report(Status{Presence: NoService})
			m.pause(ctx, retry)
			continue
		}
		err = m.watch(ctx, pc, report)
		pc.Release()
		if ctx.Err() != nil {
			return
		}
		m.log("watching the readers", "err", err)
		if errors.Is(err, pcsc.ErrNoService) {
			report(Status{Presence: NoService})
		}
		m.pause(ctx, retry)
	}
}

// pause waits for d, a Refresh, or the end of ctx.
func (m *Monitor) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-m.refresh:
	}
}

func (m *Monitor) watch(ctx context.Context, pc *pcsc.Context, report func(Status)) error {
	var known []pcsc.ReaderStatus
	var last Status
	first := true
	for {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		refreshed := make(chan bool, 1)
		go func() {
			select {
			case <-m.refresh:
				cancel()
				refreshed <- true
			case <-done:
				refreshed <- false
			}
		}()
		states, err := pc.WaitForChange(wctx, known)
		close(done)
		forced := <-refreshed
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case forced && errors.Is(err, context.Canceled):
			states = known // Refresh: same readers, read the card again
		case err != nil:
			return err
		}
		known = states
		st := m.derive(ctx, states, last, first || forced)
		// Report only news: the card's state as last read is stale once a
		// window has used the card, and must not overwrite what it learned.
		if first || forced || !reflect.DeepEqual(st, last) {
			report(st)
		}
		first = false
		last = st
	}
}

// derive turns the readers' states into a Status, probing the card when it
// changed (or always when force is set).
func (m *Monitor) derive(ctx context.Context, states []pcsc.ReaderStatus, last Status, force bool) Status {
	chosen, err := cardsession.ChooseReader(states, m.Reader)
	var noCard *cardsession.NoCardError
	switch {
	case errors.Is(err, pcsc.ErrNoReaders):
		return Status{Presence: NoReader}
	case errors.As(err, &noCard):
		for _, s := range states {
			if s.Present && s.Mute && (noCard.Reader == "" || s.Name == noCard.Reader) {
				// A card that does not answer: inserted the wrong way, or broken.
				return Status{Presence: CardTrouble, Reader: s.Name, Problem: cardsession.ProblemOther}
			}
		}
		return Status{Presence: NoCard, Reader: noCard.Reader}
	case err != nil:
		return Status{Presence: NoReader}
	case chosen.Mute:
		return Status{Presence: CardTrouble, Reader: chosen.Name, Problem: cardsession.ProblemOther}
	}
	if !force && last.hasCard() && last.Reader == chosen.Name && bytes.Equal(last.ATR, chosen.ATR) {
		return last
	}
	return m.Probe(ctx, chosen.Name, chosen.ATR)
}
