package apdu

import (
	"context"
	"fmt"
)

// Transport sends one encoded command APDU and returns the response APDU
// including SW1SW2. Transport errors are returned, never swallowed.
type Transport interface {
	Transmit(ctx context.Context, cmd []byte) ([]byte, error)
}

// TransportFunc adapts a function to Transport.
type TransportFunc func(ctx context.Context, cmd []byte) ([]byte, error)

// Transmit calls f.
func (f TransportFunc) Transmit(ctx context.Context, cmd []byte) ([]byte, error) { return f(ctx, cmd) }

// Transactor is implemented by transports that can hold the card for the
// length of one operation (PC/SC SCardBeginTransaction/EndTransaction).
type Transactor interface {
	BeginTransaction(ctx context.Context) error
	EndTransaction(ctx context.Context) error
}

// Exchange encodes c, transmits it over t and parses the answer.
func Exchange(ctx context.Context, t Transport, c Command) (Response, error) {
	b, err := c.Bytes()
	if err != nil {
		return Response{}, err
	}
	rb, err := t.Transmit(ctx, b)
	if err != nil {
		return Response{}, err
	}
	r, err := ParseResponse(rb)
	if err != nil {
		return Response{}, fmt.Errorf("exchanging %v: %w", c, err)
	}
	return r, nil
}
