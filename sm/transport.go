package sm

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// ChunkSize is the most plain data one protected command carries (§5.5):
// 231 bytes pad to 232, so DO87 (236) + DO97 (3) + DO8E (10) = 249 < 256
// and the protected command stays short. Longer data is chained, and
// package cie reads files under secure messaging in chunks of this size so
// the protected answer fits one response.
const ChunkSize = 0xE7

// Transport protects every command sent through it with a Session. Its inner
// transport is expected to resolve 61xx and 6Cxx (apdu.NewGetResponse), so
// Transport sees whole protected responses.
type Transport struct {
	mu    sync.Mutex
	inner apdu.Transport
	s     *Session
}

// NewTransport returns a Transport that protects commands with s and sends
// them over inner.
func NewTransport(inner apdu.Transport, s *Session) *Transport {
	return &Transport{inner: inner, s: s}
}

// Session returns the session of t.
func (t *Transport) Session() *Session { return t.s }

// Transmit takes a plain command APDU, protects it (chaining it in pieces of
// ChunkSize if its data is longer, each piece protected on its own) and
// returns the plain response APDU. An intermediate piece answered with a
// status word other than 9000 ends the chain and that answer is returned.
//
// Errors: ErrSessionClosed; ErrMAC and ErrMalformed (session closed); a bare
// status word is returned as the response together with an error wrapping
// ErrBareStatus (session closed); an error of the inner transport is
// returned as is and closes the session too, because the card may or may not
// have counted the command.
func (t *Transport) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := apdu.ParseCommand(cmd)
	if err != nil {
		return nil, fmt.Errorf("sm: transmitting: %w", err)
	}
	pieces := apdu.Chain(c, ChunkSize)
	for i, p := range pieces {
		r, err := t.exchange(ctx, p)
		if err != nil {
			if errors.Is(err, ErrBareStatus) {
				return r.Bytes(), err
			}
			return nil, err
		}
		if i == len(pieces)-1 || r.SW != apdu.SWOK {
			return r.Bytes(), nil
		}
	}
	panic("unreachable: Chain returns at least one command")
}

func (t *Transport) exchange(ctx context.Context, c apdu.Command) (apdu.Response, error) {
	pc, err := t.s.ProtectCommand(c)
	if err != nil {
		return apdu.Response{}, err
	}
	b, err := pc.Bytes()
	if err != nil {
		return apdu.Response{}, fmt.Errorf("sm: transmitting %v: %w", c, err)
	}
	rb, err := t.inner.Transmit(ctx, b)
	if err != nil {
		t.s.Close()
		return apdu.Response{}, err
	}
	r, err := apdu.ParseResponse(rb)
	if err != nil {
		t.s.Close()
		return apdu.Response{}, fmt.Errorf("sm: transmitting %v: %w", c, err)
	}
	return t.s.UnprotectResponse(r)
}
