package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ebfe/scard"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/pcsc"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// pcscSource adapts package pcsc to pkcs11.ReaderSource. It keeps two
// PC/SC contexts, because a blocking wait holds its context inside
// pcsc-lite: one for WaitForChange, one for listing readers and
// connecting to cards. Each is established on first use and again after
// the service went away (pcscd restarted, or started after the browser).
type pcscSource struct {
	log *slog.Logger

	mu  sync.Mutex // guards ctx; a pcsc.Context is used by one goroutine at a time
	ctx *pcsc.Context

	wmu  sync.Mutex // guards wctx and last
	wctx *pcsc.Context
	// last holds the statuses WaitForChange returned, with pcsc's hidden
	// event counters, so that the next wait starts from them and a quick
	// remove-and-insert is not missed.
	last map[string]pcsc.ReaderStatus
}

func newPCSCSource(log *slog.Logger) *pcscSource {
	return &pcscSource{log: log, last: map[string]pcsc.ReaderStatus{}}
}

// Close releases both contexts.
func (s *pcscSource) Close() {
	s.mu.Lock()
	release(&s.ctx)
	s.mu.Unlock()
	s.wmu.Lock()
	release(&s.wctx)
	s.wmu.Unlock()
}

func release(c **pcsc.Context) {
	if *c != nil {
		(*c).Release()
		*c = nil
	}
}

func establish(c **pcsc.Context) (*pcsc.Context, error) {
	if *c == nil {
		pc, err := pcsc.Establish()
		if err != nil {
			return nil, err
		}
		*c = pc
	}
	return *c, nil
}

func convert(st []pcsc.ReaderStatus) []pkcs11.ReaderStatus {
	out := make([]pkcs11.ReaderStatus, 0, len(st))
	for _, r := range st {
		present := r.Present && !r.Mute
		out = append(out, pkcs11.ReaderStatus{Name: r.Name, Present: present, ATR: bytes.Clone(r.ATR)})
	}
	return out
}

// Readers lists the readers and their cards now. Without a running PC/SC
// service it reports no reader.
func (s *pcscSource) Readers(ctx context.Context) ([]pkcs11.ReaderStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc, err := establish(&s.ctx)
	if errors.Is(err, pcsc.ErrNoService) {
		return []pkcs11.ReaderStatus{}, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := pc.WaitForChange(ctx, nil) // nil: the current state, at once
	if err != nil {
		if ctx.Err() != nil {
			// C_Finalize: the context is fine, and the token's card
			// connections still use it.
			return nil, err
		}
		// The context may be stale (pcscd restarted): start afresh next time.
		release(&s.ctx)
		if errors.Is(err, pcsc.ErrNoService) {
			return []pkcs11.ReaderStatus{}, nil
		}
		return nil, err
	}
	return convert(st), nil
}

// WaitForChange blocks until the readers differ from known.
func (s *pcscSource) WaitForChange(ctx context.Context, known []pkcs11.ReaderStatus) ([]pkcs11.ReaderStatus, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	pc, err := establish(&s.wctx)
	if err != nil {
		return nil, err
	}
	pk := make([]pcsc.ReaderStatus, 0, len(known)) // non-nil: "no reader" waits for one
	for _, k := range known {
		if l, ok := s.last[k.Name]; ok && l.Present == k.Present && bytes.Equal(l.ATR, k.ATR) {
			pk = append(pk, l)
		} else {
			pk = append(pk, pcsc.ReaderStatus{Name: k.Name, Present: k.Present, ATR: k.ATR})
		}
	}
	st, err := pc.WaitForChange(ctx, pk)
	if err != nil {
		if ctx.Err() == nil {
			release(&s.wctx)
		}
		return nil, err
	}
	clear(s.last)
	for _, r := range st {
		s.last[r.Name] = r
	}
	return convert(st), nil
}

// Connect opens a shared connection to the card in reader.
func (s *pcscSource) Connect(ctx context.Context, reader string) (pkcs11.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc, err := establish(&s.ctx)
	if err != nil {
		return nil, err
	}
	c, err := pc.Connect(ctx, reader)
	if err != nil {
		return nil, err
	}
	return &pcscConn{c: c}, nil
}

// pcscConn is a card connection. Errors that mean the connection is dead
// for good (the reader unplugged, pcscd gone or restarted) also match
// apdu.ErrCardRemoved: the module then drops the token and reconnects at
// the next use, instead of failing on a dead handle until the card is
// pulled.
type pcscConn struct{ c *pcsc.Card }

func dead(err error) error {
	if err == nil || errors.Is(err, apdu.ErrCardRemoved) {
		return err
	}
	var pe *pcsc.Error
	if errors.Is(err, pcsc.ErrNoService) || errors.As(err, &pe) &&
		(pe.Code == scard.ErrInvalidHandle || pe.Code == scard.ErrReaderUnavailable || pe.Code == scard.ErrUnknownReader) {
		return fmt.Errorf("%w: %w", apdu.ErrCardRemoved, err)
	}
	return err
}

func (c *pcscConn) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	r, err := c.c.Transmit(ctx, cmd)
	return r, dead(err)
}

func (c *pcscConn) BeginTransaction(ctx context.Context) error {
	return dead(c.c.BeginTransaction(ctx))
}

func (c *pcscConn) EndTransaction(ctx context.Context) error {
	return dead(c.c.EndTransaction(ctx))
}

func (c *pcscConn) ATR() ([]byte, error) {
	b, err := c.c.ATR()
	return b, dead(err)
}

func (c *pcscConn) Close() error { return c.c.Close() }
