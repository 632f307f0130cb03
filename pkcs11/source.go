package pkcs11

import (
	"bytes"
	"context"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// ReaderStatus is the state of one card reader as a ReaderSource reports it.
type ReaderStatus struct {
	Name    string // the reader's name; it identifies the slot
	Present bool   // a card is in the reader
	ATR     []byte // the card's answer to reset, nil without a card
}

// sameCard reports whether two statuses of one reader show the same card
// situation.
func sameCard(a, b ReaderStatus) bool {
	return a.Present == b.Present && bytes.Equal(a.ATR, b.ATR)
}

// ReaderSource is where the module gets its readers and cards: PC/SC in
// the shared library (cmd/cie-pkcs11 adapts package pcsc), simulated cards
// in tests. Implementations must be safe for concurrent use: WaitForChange
// may block in one goroutine while others call Readers and Connect.
type ReaderSource interface {
	// Readers returns the state of every connected reader now, without
	// waiting and without talking to any card. When the smart-card service
	// is not running it returns no reader and no error: for a browser that
	// is a machine without readers, not a failure.
	Readers(ctx context.Context) ([]ReaderStatus, error)
	// WaitForChange blocks until the readers differ from known (a reader
	// plugged in or out, a card inserted or removed) and returns the state
	// of every reader then. It returns ctx.Err() when ctx is done.
	WaitForChange(ctx context.Context, known []ReaderStatus) ([]ReaderStatus, error)
	// Connect opens a shared connection to the card in reader. An empty
	// reader is an error matching apdu.ErrNoCard.
	Connect(ctx context.Context, reader string) (Conn, error)
}

// Conn is a connection to one card. Errors follow package apdu's
// conventions: apdu.ErrCardRemoved, apdu.ErrNoCard, apdu.ErrCardReset.
type Conn interface {
	apdu.Transport
	apdu.Transactor
	// ATR returns the card's answer to reset.
	ATR() ([]byte, error)
	// Close disconnects, leaving the card as it is (no reset).
	Close() error
}
