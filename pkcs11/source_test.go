package pkcs11_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// simSource is a ReaderSource of simulated readers holding ciesim cards,
// in process. Removing a card makes every connection to it fail with
// apdu.ErrCardRemoved, as a PC/SC handle does.
type simSource struct {
	mu      sync.Mutex
	readers []*simReader
	changed chan struct{} // closed at every change

	connects atomic.Int32
	begins   atomic.Int32
	listErr  error
}

type simReader struct {
	name string
	card *ciesim.Card
	gen  int // insertion count: connections of older insertions are dead
}

func newSimSource(names ...string) *simSource {
	s := &simSource{changed: make(chan struct{})}
	for _, n := range names {
		s.readers = append(s.readers, &simReader{name: n})
	}
	return s
}

func (s *simSource) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *simSource) reader(name string) *simReader {
	for _, r := range s.readers {
		if r.name == name {
			return r
		}
	}
	return nil
}

// AddReader plugs in a reader.
func (s *simSource) AddReader(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readers = append(s.readers, &simReader{name: name})
	s.notify()
}

// RemoveReader unplugs a reader (with its card).
func (s *simSource) RemoveReader(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readers = slices.DeleteFunc(s.readers, func(r *simReader) bool {
		if r.name == name {
			r.gen++
			return true
		}
		return false
	})
	s.notify()
}

// Insert puts card into the reader.
func (s *simSource) Insert(name string, card *ciesim.Card) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reader(name)
	r.card = card
	r.gen++
	card.Reset()
	s.notify()
}

// Remove takes the card out of the reader.
func (s *simSource) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reader(name)
	r.card = nil
	r.gen++
	s.notify()
}

func (s *simSource) statusLocked() []pkcs11.ReaderStatus {
	out := make([]pkcs11.ReaderStatus, 0, len(s.readers))
	for _, r := range s.readers {
		st := pkcs11.ReaderStatus{Name: r.name}
		if r.card != nil {
			st.Present, st.ATR = true, r.card.ATR()
		}
		out = append(out, st)
	}
	return out
}

func (s *simSource) Readers(ctx context.Context) ([]pkcs11.ReaderStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listErr != nil {
		return nil, s.listErr
	}
	return s.statusLocked(), nil
}

func sameStatus(a, b []pkcs11.ReaderStatus) bool {
	return slices.EqualFunc(a, b, func(x, y pkcs11.ReaderStatus) bool {
		return x.Name == y.Name && x.Present == y.Present && slices.Equal(x.ATR, y.ATR)
	})
}

func (s *simSource) WaitForChange(ctx context.Context, known []pkcs11.ReaderStatus) ([]pkcs11.ReaderStatus, error) {
	for {
		s.mu.Lock()
		cur := s.statusLocked()
		ch := s.changed
		s.mu.Unlock()
		if !sameStatus(cur, known) {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

func (s *simSource) Connect(ctx context.Context, name string) (pkcs11.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reader(name)
	if r == nil || r.card == nil {
		return nil, fmt.Errorf("sim: connecting to %q: %w", name, apdu.ErrNoCard)
	}
	s.connects.Add(1)
	return &simConn{src: s, r: r, gen: r.gen, card: r.card}, nil
}

type simConn struct {
	src    *simSource
	r      *simReader
	gen    int
	card   *ciesim.Card
	closed bool
}

func (c *simConn) alive() error {
	c.src.mu.Lock()
	defer c.src.mu.Unlock()
	if c.closed {
		return fmt.Errorf("sim: connection closed")
	}
	if c.r.gen != c.gen {
		return fmt.Errorf("sim: %w", apdu.ErrCardRemoved)
	}
	return nil
}

func (c *simConn) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.card.Transmit(ctx, cmd)
}

func (c *simConn) BeginTransaction(ctx context.Context) error {
	c.src.begins.Add(1)
	return c.alive()
}

func (c *simConn) EndTransaction(ctx context.Context) error { return nil }

func (c *simConn) ATR() ([]byte, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.card.ATR(), nil
}

func (c *simConn) Close() error {
	c.src.mu.Lock()
	defer c.src.mu.Unlock()
	c.closed = true
	return nil
}
