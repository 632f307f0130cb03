package apdu

import (
	"context"
	"fmt"
)

// Instruction and class bytes of the decorators.
const (
	insGetResponse = 0xC0
	claChaining    = 0x10 // ISO/IEC 7816-4 §5.4.1: command is not the last of a chain
)

// maxGetResponseData bounds the data a GetResponse loop collects, so that a
// card answering 61xx forever cannot hold the caller.
const maxGetResponseData = MaxExtendedNe

// NewGetResponse returns a Transport that resolves response delivery below
// the layers that parse responses (ISO/IEC 7816-4 §5.3.4, cie-protocol.md
// §5.4):
//   - 6Cxx: the same command is sent once more with Ne = xx (00 → 256);
//   - 61xx: plain GET RESPONSE 00 C0 00 00 xx (xx = 00 means 256) is sent
//     while the card answers 61xx, and the data of all answers is
//     concatenated in front of the final status word.
//
// Under secure messaging it sits below package sm, so the protected bytes
// are collected whole before they are unprotected.
func NewGetResponse(t Transport) Transport {
	return getResponse{inner: t}
}

type getResponse struct{ inner Transport }

// Transmit sends cmd and resolves 6Cxx and 61xx answers.
func (g getResponse) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	rb, err := g.inner.Transmit(ctx, cmd)
	if err != nil {
		return nil, err
	}
	r, err := ParseResponse(rb)
	if err != nil {
		return nil, fmt.Errorf("getting response: %w", err)
	}
	if r.SW.SW1() == 0x6C {
		c, err := ParseCommand(cmd)
		if err != nil {
			return nil, fmt.Errorf("resending after %v: %w", r.SW, err)
		}
		c.Ne = shortNe(r.SW.SW2())
		again, err := c.Bytes()
		if err != nil {
			return nil, fmt.Errorf("resending after %v: %w", r.SW, err)
		}
		if rb, err = g.inner.Transmit(ctx, again); err != nil {
			return nil, err
		}
		if r, err = ParseResponse(rb); err != nil {
			return nil, fmt.Errorf("getting response: %w", err)
		}
	}
	if r.SW.SW1() != 0x61 {
		return rb, nil
	}
	data := append([]byte(nil), r.Data...)
	for r.SW.SW1() == 0x61 {
		if len(data) > maxGetResponseData {
			return nil, fmt.Errorf("getting response: more than %d bytes: %w", maxGetResponseData, ErrMalformed)
		}
		gr := []byte{0x00, insGetResponse, 0x00, 0x00, r.SW.SW2()}
		if rb, err = g.inner.Transmit(ctx, gr); err != nil {
			return nil, err
		}
		if r, err = ParseResponse(rb); err != nil {
			return nil, fmt.Errorf("getting response: %w", err)
		}
		data = append(data, r.Data...)
	}
	return Response{Data: data, SW: r.SW}.Bytes(), nil
}

// Chain splits c into a command chain (ISO/IEC 7816-4 §5.4.1) whose pieces
// carry at most size data bytes: every piece but the last has CLA | 10 and
// Ne = 0, the last keeps c's CLA and Ne. A command with at most size data
// bytes is returned alone, unchanged. Pieces alias c.Data. It panics if size
// is not positive.
func Chain(c Command, size int) []Command {
	if size <= 0 {
		panic(fmt.Sprintf("apdu: chain piece size %d", size))
	}
	if len(c.Data) <= size {
		return []Command{c}
	}
	var out []Command
	d := c.Data
	for len(d) > size {
		out = append(out, Command{CLA: c.CLA | claChaining, INS: c.INS, P1: c.P1, P2: c.P2, Data: d[:size:size]})
		d = d[size:]
	}
	last := c
	last.Data = d
	return append(out, last)
}
