// Package pcsc owns the PC/SC layer: the connection to the smart card
// service (pcscd on Linux, WinSCard on Windows), the list of readers,
// card presence and hot-plug, and raw APDU exchange with a card. It has no
// protocol knowledge: a *Card is an apdu.Transport and an apdu.Transactor
// by shape, and everything above (GET RESPONSE, secure messaging, the CIE
// protocol) is stacked on it by other packages.
//
// Card conditions map to the transport sentinels of package apdu:
// a removed card to apdu.ErrCardRemoved, an empty reader to apdu.ErrNoCard,
// and a card reset by another application to apdu.ErrCardReset, returned
// only after the connection has been re-established and without the
// command having been sent again (a VERIFY or a command under secure
// messaging must never be replayed).
package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ebfe/scard"
)

// pnpNotification is the pseudo reader whose state changes when a reader is
// plugged in or out.
const pnpNotification = `\\?PnP?\Notification`

// waitSlice bounds each blocking SCardGetStatusChange call. Cancellation
// normally arrives through SCardCancel at once; the bound only covers a
// cancel that lands just before the call starts blocking (pcsc-lite then
// ignores it).
const waitSlice = time.Second

// Context is a connection to the PC/SC service. A Context is used from one
// goroutine at a time; in particular a WaitForChange in progress blocks the
// whole Context (for up to a second at a time), so a program that watches
// for cards while talking to one uses two Contexts. Cards obtained from a
// Context are valid until it is released.
//
// pcsc-lite wants each thread to use its own SCARDCONTEXT (only
// SCardCancel may cross threads): two threads calling at once on one
// context, or on card handles of one context, share its socket, and a
// reply can reach the wrong caller, which then waits forever. So a Context
// and its Cards share one lock, held for every pcsc-lite call: a Card may
// be used from another goroutine than its Context, and several Cards of
// one Context from several goroutines.
type Context struct {
	sc       *scard.Context
	lock     *sync.Mutex // held for each call on sc or on a card handle of sc
	released bool

	cardsMu sync.Mutex
	cards   map[*Card]struct{} // connected and not closed
}

// call runs one pcsc-lite call on the context or one of its cards.
func (c *Context) call(fn func() error) error {
	c.lock.Lock()
	defer c.lock.Unlock()
	return fn()
}

// Establish connects to the PC/SC service. It fails with an error matching
// ErrNoService when the service is not running.
func Establish() (*Context, error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, wrap("connecting to the smart card service", err)
	}
	return &Context{sc: sc, lock: new(sync.Mutex)}, nil
}

// Release closes the connection to the PC/SC service. Cards connected
// through the Context and still open are disconnected first (leaving the
// card as it is): pcsc-lite never answers a call on a card handle whose
// context is gone, so the caller would wait forever. Their later calls
// fail as an invalid handle (SCARD_E_INVALID_HANDLE) and Close is a no-op.
// Releasing twice is a no-op.
func (c *Context) Release() error {
	if c.released {
		return nil
	}
	c.released = true
	c.cardsMu.Lock()
	open := make([]*Card, 0, len(c.cards))
	for card := range c.cards {
		open = append(open, card)
	}
	c.cards = nil
	c.cardsMu.Unlock()
	for _, card := range open {
		card.drop()
	}
	if err := c.call(c.sc.Release); err != nil {
		return wrap("releasing the smart card service context", err)
	}
	return nil
}

func (c *Context) check(ctx context.Context) error {
	if c.released {
		return fmt.Errorf("pcsc: %w", ErrClosed)
	}
	return ctx.Err()
}

// Readers returns the names of the connected readers. No reader is an
// empty slice and a nil error.
func (c *Context) Readers() ([]string, error) {
	if c.released {
		return nil, fmt.Errorf("pcsc: %w", ErrClosed)
	}
	var names []string
	err := c.call(func() (err error) { names, err = c.sc.ListReaders(); return err })
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return []string{}, nil
	}
	if err != nil {
		return nil, wrap("listing readers", err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// ReaderStatus is the state of one reader as PC/SC reports it.
type ReaderStatus struct {
	Name      string // the reader's name as listed by Readers
	Present   bool   // a card is in the reader (or on it, for contactless)
	ATR       []byte // the card's answer to reset; nil when no card is present
	InUse     bool   // some application has a connection to the card
	Exclusive bool   // an application holds the card exclusively
	Mute      bool   // a card is present but does not answer (inserted wrongly, broken)

	// state is the raw dwEventState, including pcsc-lite's event counter
	// in the upper 16 bits, fed back to SCardGetStatusChange by
	// WaitForChange so that a quick remove-and-insert is not missed.
	state scard.StateFlag
}

// String prints the reader, presence and ATR for logs.
func (s ReaderStatus) String() string {
	if !s.Present {
		return fmt.Sprintf("%q: no card", s.Name)
	}
	return fmt.Sprintf("%q: card %X", s.Name, s.ATR)
}

func statusOf(rs scard.ReaderState) ReaderStatus {
	st := ReaderStatus{
		Name:      rs.Reader,
		Present:   rs.EventState&scard.StatePresent != 0,
		InUse:     rs.EventState&scard.StateInuse != 0,
		Exclusive: rs.EventState&scard.StateExclusive != 0,
		Mute:      rs.EventState&scard.StateMute != 0,
		state:     rs.EventState,
	}
	if st.Present && len(rs.Atr) > 0 {
		st.ATR = bytes.Clone(rs.Atr)
	}
	return st
}

// currentState is what to pass as dwCurrentState for a reader last seen
// in state s.
func (s ReaderStatus) currentState() scard.StateFlag {
	if s.state != 0 {
		return s.state &^ scard.StateChanged
	}
	if s.Present {
		return scard.StatePresent
	}
	return scard.StateEmpty
}

// sameCard reports whether two statuses of one reader describe the same
// card situation: presence, ATR and insertion/removal count. Other flags
// (in use, powered down by the daemon) are not a change for the callers of
// WaitForChange.
func sameCard(a, b ReaderStatus) bool {
	return a.Present == b.Present && bytes.Equal(a.ATR, b.ATR) &&
		(a.state == 0 || b.state == 0 || a.state>>16 == b.state>>16) &&
		a.state&scard.StateUnavailable == b.state&scard.StateUnavailable
}

// Status returns the current state of one reader without waiting. An
// unknown reader is an error matching scard.ErrUnknownReader.
func (c *Context) Status(ctx context.Context, reader string) (ReaderStatus, error) {
	if err := c.check(ctx); err != nil {
		return ReaderStatus{}, err
	}
	op := fmt.Sprintf("reading the state of reader %q", reader)
	states := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
	if err := c.call(func() error { return c.sc.GetStatusChange(states, 0) }); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return ReaderStatus{}, wrap(op, err)
	}
	if states[0].EventState&scard.StateUnknown != 0 {
		return ReaderStatus{}, &Error{Op: op, Code: scard.ErrUnknownReader}
	}
	return statusOf(states[0]), nil
}

// statuses returns the state of the named readers without waiting.
func (c *Context) statuses(names []string) ([]ReaderStatus, error) {
	out := make([]ReaderStatus, 0, len(names))
	if len(names) == 0 {
		return out, nil
	}
	states := make([]scard.ReaderState, len(names))
	for i, n := range names {
		states[i] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
	}
	if err := c.call(func() error { return c.sc.GetStatusChange(states, 0) }); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return nil, wrap("reading the state of the readers", err)
	}
	for _, s := range states {
		out = append(out, statusOf(s))
	}
	return out, nil
}

// getStatusChange is SCardGetStatusChange that returns early, with an
// scard.ErrCancelled, when ctx is done.
func (c *Context) getStatusChange(ctx context.Context, states []scard.ReaderState, timeout time.Duration) error {
	if ctx.Done() == nil {
		return c.call(func() error { return c.sc.GetStatusChange(states, timeout) })
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			// SCardCancel is the one call pcsc-lite allows from another
			// thread while the context blocks in SCardGetStatusChange.
			_ = c.sc.Cancel()
		case <-stop:
		}
	}()
	// SCardCancel, from the goroutine above, is the one call made without
	// the lock: pcsc-lite allows it while the context blocks.
	err := c.call(func() error { return c.sc.GetStatusChange(states, timeout) })
	close(stop)
	<-done
	return err
}

// WaitForChange blocks until the readers differ from known: a reader was
// plugged in or out, or a card was inserted into or removed from one of
// them. It returns the state of every reader then connected. Pass the
// result of a previous call to wait for the next change; a nil known
// returns the current state at once (an empty, non-nil one means "no
// reader" and waits for one to be plugged in). Flags other than presence
// and ATR (a connection opened by some application, the daemon powering an
// idle card down) do not end the wait. It returns ctx.Err() when ctx is
// done.
func (c *Context) WaitForChange(ctx context.Context, known []ReaderStatus) ([]ReaderStatus, error) {
	if known == nil {
		if err := c.check(ctx); err != nil {
			return nil, err
		}
		names, err := c.Readers()
		if err != nil {
			return nil, err
		}
		return c.statuses(names)
	}
	byName := make(map[string]ReaderStatus, len(known))
	for _, k := range known {
		byName[k.Name] = k
	}
	for {
		if err := c.check(ctx); err != nil {
			return nil, err
		}
		names, err := c.Readers()
		if err != nil {
			return nil, err
		}
		if !sameNames(names, byName) {
			return c.statuses(names)
		}
		states := make([]scard.ReaderState, 0, len(names)+1)
		for _, n := range names {
			states = append(states, scard.ReaderState{Reader: n, CurrentState: byName[n].currentState()})
		}
		// pcsc-lite ≥ 1.8.24 and Windows read the known reader count from
		// the upper 16 bits; older pcsc-lite count from the call's start.
		states = append(states, scard.ReaderState{Reader: pnpNotification, CurrentState: scard.StateFlag(len(names)) << 16})

		err = c.getStatusChange(ctx, states, waitSlice)
		switch {
		case errors.Is(err, scard.ErrTimeout):
			continue
		case errors.Is(err, scard.ErrCancelled):
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrNoReadersAvailable):
			// A reader left between the listing and the wait, or there is
			// none and this pcsc-lite does not wait on the PnP reader
			// alone: poll.
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			return nil, wrap("waiting for reader changes", err)
		}
		changed, unplugged := false, false
		current := make([]ReaderStatus, len(names))
		for i := range names {
			current[i] = statusOf(states[i])
			if states[i].EventState&scard.StateUnknown != 0 {
				unplugged = true
			}
			if !sameCard(byName[names[i]], current[i]) {
				changed = true
			}
		}
		if unplugged {
			// The next listing lacks the reader and returns; the pause
			// keeps a reader that pcscd lists but cannot reach from
			// spinning this loop.
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		if changed {
			return current, nil
		}
		// Only flags we do not report changed (or the reader list did,
		// which the next listing sees): wait again from the new state.
		for _, s := range current {
			byName[s.Name] = s
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sameNames(names []string, known map[string]ReaderStatus) bool {
	if len(names) != len(known) {
		return false
	}
	for _, n := range names {
		if _, ok := known[n]; !ok {
			return false
		}
	}
	return true
}

// WaitForCard blocks until a card is present in reader, waiting for the
// reader itself to be plugged in if needed. It returns ctx.Err() when ctx is
// done.
func (c *Context) WaitForCard(ctx context.Context, reader string) error {
	var known []ReaderStatus // nil: the first call returns the current state
	for {
		cur, err := c.WaitForChange(ctx, known)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(cur, func(s ReaderStatus) bool { return s.Name == reader }); i >= 0 && cur[i].Present && !cur[i].Mute {
			return nil
		}
		known = cur
	}
}

// Connect opens a shared connection (T=1 or T=0, whichever the card
// offers) to the card in reader. An empty reader is an error matching
// apdu.ErrNoCard. ctx is checked before connecting; the connection itself
// does not block on other applications.
func (c *Context) Connect(ctx context.Context, reader string) (*Card, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	var sc *scard.Card
	err := c.call(func() (err error) { sc, err = c.sc.Connect(reader, scard.ShareShared, scard.ProtocolAny); return err })
	if err != nil {
		return nil, wrap(fmt.Sprintf("connecting to the card in %q", reader), err)
	}
	card := &Card{card: sc, reader: reader, pc: c}
	c.cardsMu.Lock()
	if c.cards == nil {
		c.cards = map[*Card]struct{}{}
	}
	c.cards[card] = struct{}{}
	c.cardsMu.Unlock()
	return card, nil
}
