package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ebfe/scard"
)

// Card is a shared connection to the card in one reader. It implements
// apdu.Transport and apdu.Transactor. Its methods are safe for concurrent
// use, also with its Context's (see Context); each call holds the
// connection for its duration.
type Card struct {
	reader string
	pc     *Context // its lock is held for every pcsc-lite call on card

	mu      sync.Mutex
	card    *scard.Card
	closed  bool
	dropped bool // the Context was released: the handle is gone
}

// drop disconnects the card because its Context is being released.
func (c *Card) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.dropped {
		return
	}
	c.dropped = true
	_ = c.pc.call(func() error { return c.card.Disconnect(scard.LeaveCard) })
}

// gone is the error of a call on a card whose Context was released.
func gone(op string) error { return &Error{Op: op, Code: scard.ErrInvalidHandle} }

// Reader returns the name of the reader the card is in.
func (c *Card) Reader() string { return c.reader }

// fail turns an error of the scard library into the error to return,
// recovering from a reset first: on SCARD_W_RESET_CARD the connection is
// re-established (leaving the card as it is) and the error, which matches
// apdu.ErrCardReset, tells the caller that the card lost its state and the
// command was not executed. It must be called with c.mu held.
func (c *Card) fail(op string, err error) error {
	if !errors.Is(err, scard.ErrResetCard) {
		return wrap(op, err)
	}
	if rerr := c.pc.call(func() error { return c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.LeaveCard) }); rerr != nil {
		return wrap(op+" (reconnecting after a reset)", rerr)
	}
	return wrap(op, err)
}

// removalGrace bounds how long a failed exchange waits for pcscd to tell
// whether the card left: pcscd polls a reader's presence every 0.4 s or so
// (vpcd, and USB readers without interrupt notification).
const removalGrace = 1500 * time.Millisecond

// lostCard tells a removal from other failures of an exchange. A card
// pulled out during an exchange does not always give
// SCARD_W_REMOVED_CARD: readers report a communication error or an
// interrupted operation (SCARD_E_NOT_TRANSACTED) first, and pcscd learns
// of the removal at its next presence poll. For those codes it asks the
// reader, for up to removalGrace, and returns an error matching
// apdu.ErrCardRemoved if the card is gone; nil otherwise. It must be
// called with c.mu held.
func (c *Card) lostCard(op string, err error) error {
	var code scard.Error
	if !errors.As(err, &code) {
		return nil
	}
	switch code {
	case scard.ErrNotTransacted, scard.ErrCommError, scard.ErrCommDataLost, scard.ErrUnresponsiveCard,
		scard.ErrUnpoweredCard, scard.ErrReaderUnavailable, scard.ErrUnknownError:
		return c.removedWithin(op, removalGrace)
	}
	return nil
}

// removedWithin polls the card's status until pcscd reports it gone
// (removed, or its reader unplugged) or d has passed. It returns an
// *Error with SCARD_W_REMOVED_CARD in the first case, nil in the second.
// It must be called with c.mu held.
func (c *Card) removedWithin(op string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var st *scard.CardStatus
		err := c.pc.call(func() (err error) { st, err = c.card.Status(); return err })
		var code scard.Error
		switch {
		case err == nil && st.State&scard.Present == 0:
			return &Error{Op: op, Code: scard.ErrRemovedCard}
		case errors.As(err, &code):
			switch code {
			case scard.ErrRemovedCard, scard.ErrNoSmartcard, scard.ErrReaderUnavailable, scard.ErrUnknownReader:
				return &Error{Op: op, Code: scard.ErrRemovedCard}
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Card) check(ctx context.Context, op string) error {
	switch {
	case c.closed:
		return fmt.Errorf("pcsc: %w", ErrClosed)
	case c.dropped:
		return gone(op)
	}
	return ctx.Err()
}

// Transmit sends one command APDU and returns the response APDU, SW1SW2
// included. It never sends a command twice: after a reset by another
// application it reconnects and returns an error matching
// apdu.ErrCardReset, and the command was not executed. A removed card is
// an error matching apdu.ErrCardRemoved (or apdu.ErrNoCard), also when it
// left during the exchange and the reader first reported a communication
// failure or an empty answer (lostCard). ctx is checked
// before sending; an exchange in progress is not interrupted, since
// abandoning it would leave the card and any secure-messaging counter out
// of step.
func (c *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx, "transmitting APDU"); err != nil {
		return nil, err
	}
	if len(cmd) == 0 {
		return nil, errors.New("pcsc: transmitting APDU: empty command")
	}
	const op = "transmitting APDU"
	var rsp []byte
	err := c.pc.call(func() (err error) { rsp, err = c.card.Transmit(cmd); return err })
	if err == nil && len(rsp) < 2 {
		// A response has at least SW1 SW2. vpcd answers "success" with no
		// bytes when the card leaves the reader during the exchange.
		n := len(rsp)
		clear(rsp)
		if gone := c.removedWithin(op, removalGrace); gone != nil {
			return nil, gone
		}
		return nil, fmt.Errorf("pcsc: %s: the reader returned %d bytes, no status word", op, n)
	}
	if err != nil {
		if gone := c.lostCard(op, err); gone != nil {
			return nil, gone
		}
		return nil, c.fail(op, err)
	}
	// The library answers in a 64 KiB buffer: return a right-sized copy
	// and wipe what it held.
	out := bytes.Clone(rsp)
	clear(rsp)
	return out, nil
}

// BeginTransaction takes the card for this connection until
// EndTransaction, so that no other application interleaves commands. It
// waits while another application holds the card; ctx is checked before
// waiting (PC/SC offers no way to interrupt the wait). A reset is handled
// as in Transmit.
func (c *Card) BeginTransaction(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx, "starting a card transaction"); err != nil {
		return err
	}
	if err := c.pc.call(c.card.BeginTransaction); err != nil {
		if gone := c.lostCard("starting a card transaction", err); gone != nil {
			return gone
		}
		return c.fail("starting a card transaction", err)
	}
	return nil
}

// EndTransaction releases the card taken by BeginTransaction, leaving it as
// it is (no reset). It is attempted even when ctx is done, so that the card
// is never left locked.
func (c *Card) EndTransaction(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(context.Background(), "ending a card transaction"); err != nil {
		return err
	}
	if err := c.pc.call(func() error { return c.card.EndTransaction(scard.LeaveCard) }); err != nil {
		return c.fail("ending a card transaction", err)
	}
	return nil
}

// ATR returns the card's answer to reset as the reader reports it now.
// Reading it is harmless, so after a reset by another application it
// reconnects and reads again instead of failing.
func (c *Card) ATR() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	const op = "reading the ATR"
	if err := c.check(context.Background(), op); err != nil {
		return nil, err
	}
	var st *scard.CardStatus
	status := func() (err error) { st, err = c.card.Status(); return err }
	err := c.pc.call(status)
	if errors.Is(err, scard.ErrResetCard) {
		if err := c.fail(op, err); !errors.Is(err, scard.ErrResetCard) {
			return nil, err // reconnecting failed
		}
		err = c.pc.call(status)
	}
	if err != nil {
		return nil, c.fail(op, err)
	}
	return bytes.Clone(st.Atr), nil
}

// Reconnect re-establishes the connection, resetting the card first when
// reset is true (all card-side state, secure messaging and verified PINs
// included, is then lost). Without reset it also clears a pending
// "card was reset" condition.
func (c *Card) Reconnect(ctx context.Context, reset bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx, "reconnecting to the card"); err != nil {
		return err
	}
	disp := scard.LeaveCard
	if reset {
		disp = scard.ResetCard
	}
	if err := c.pc.call(func() error { return c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, disp) }); err != nil {
		return wrap("reconnecting to the card", err)
	}
	return nil
}

// Close disconnects, leaving the card as it is: it is never reset or
// powered down, so another application (or a later connection) finds it
// as it was. Closing twice, or after the Context was released, is a no-op.
func (c *Card) Close() error {
	c.pc.cardsMu.Lock()
	delete(c.pc.cards, c)
	c.pc.cardsMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.dropped {
		return nil // disconnected by Release
	}
	if err := c.pc.call(func() error { return c.card.Disconnect(scard.LeaveCard) }); err != nil {
		return wrap("disconnecting from the card", err)
	}
	return nil
}
