package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ebfe/scard"
)

// Card is a shared connection to the card in one reader. It implements
// apdu.Transport and apdu.Transactor. Its methods are safe for concurrent
// use; each call holds the connection for its duration.
type Card struct {
	reader string

	mu     sync.Mutex
	card   *scard.Card
	closed bool
}

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
	if rerr := c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, scard.LeaveCard); rerr != nil {
		return wrap(op+" (reconnecting after a reset)", rerr)
	}
	return wrap(op, err)
}

func (c *Card) check(ctx context.Context) error {
	if c.closed {
		return fmt.Errorf("pcsc: %w", ErrClosed)
	}
	return ctx.Err()
}

// Transmit sends one command APDU and returns the response APDU, SW1SW2
// included. It never sends a command twice: after a reset by another
// application it reconnects and returns an error matching
// apdu.ErrCardReset, and the command was not executed. A removed card is
// an error matching apdu.ErrCardRemoved (or apdu.ErrNoCard). ctx is checked
// before sending; an exchange in progress is not interrupted, since
// abandoning it would leave the card and any secure-messaging counter out
// of step.
func (c *Card) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	if len(cmd) == 0 {
		return nil, errors.New("pcsc: transmitting APDU: empty command")
	}
	rsp, err := c.card.Transmit(cmd)
	if err != nil {
		return nil, c.fail("transmitting APDU", err)
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
	if err := c.check(ctx); err != nil {
		return err
	}
	if err := c.card.BeginTransaction(); err != nil {
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
	if c.closed {
		return fmt.Errorf("pcsc: %w", ErrClosed)
	}
	if err := c.card.EndTransaction(scard.LeaveCard); err != nil {
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
	if c.closed {
		return nil, fmt.Errorf("pcsc: %w", ErrClosed)
	}
	const op = "reading the ATR"
	st, err := c.card.Status()
	if errors.Is(err, scard.ErrResetCard) {
		if err := c.fail(op, err); !errors.Is(err, scard.ErrResetCard) {
			return nil, err // reconnecting failed
		}
		st, err = c.card.Status()
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
	if err := c.check(ctx); err != nil {
		return err
	}
	disp := scard.LeaveCard
	if reset {
		disp = scard.ResetCard
	}
	if err := c.card.Reconnect(scard.ShareShared, scard.ProtocolAny, disp); err != nil {
		return wrap("reconnecting to the card", err)
	}
	return nil
}

// Close disconnects, leaving the card as it is: it is never reset or
// powered down, so another application (or a later connection) finds it
// as it was. Closing twice is a no-op.
func (c *Card) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.card.Disconnect(scard.LeaveCard); err != nil {
		return wrap("disconnecting from the card", err)
	}
	return nil
}
