package cie

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

// Test material of the simulated card (ciesim defaults).
var (
	testPIN = []byte(ciesim.DefaultPIN)
	testPUK = []byte(ciesim.DefaultPUK)
	testNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
)

// detRand is a deterministic random source (ChaCha8 with a fixed seed).
func detRand(seed byte) io.Reader {
	var s [32]byte
	for i := range s {
		s[i] = seed
	}
	return rand.NewChaCha8(s)
}

var (
	stateOnce sync.Once
	state     *ciesim.State
	stateErr  error
)

// testState loads the committed simulator state once per test binary.
func testState(t testing.TB) *ciesim.State {
	t.Helper()
	stateOnce.Do(func() { state, stateErr = ciesim.TestState() })
	if stateErr != nil {
		t.Fatalf("loading the simulator's test state: %v", stateErr)
	}
	return state
}

// newSim returns a simulated card of family with the test state and a
// deterministic card-side random source.
func newSim(t testing.TB, family string, atr []byte) *ciesim.Card {
	t.Helper()
	sim, err := ciesim.New(ciesim.Config{Family: family, ATR: atr, State: testState(t), Rand: detRand(0xCA), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("ciesim.New(%s): %v", family, err)
	}
	return sim
}

// testOptions are deterministic host options.
func testOptions() *Options {
	return &Options{Rand: detRand(0x05), Now: func() time.Time { return testNow }}
}

// openSim opens a Card on sim through tr (sim itself when tr is nil).
func openSim(t testing.TB, sim *ciesim.Card, tr apdu.Transport) *Card {
	t.Helper()
	if tr == nil {
		tr = sim
	}
	c, err := Open(context.Background(), tr, sim.ATR(), testOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// faultyTransport wraps the simulator and simulates a PC/SC reset: when
// armed, the first command matching trigger is not delivered; the card is
// reset and apdu.ErrCardReset is returned (the command was not executed).
type faultyTransport struct {
	sim     *ciesim.Card
	mu      sync.Mutex
	trigger func(cmd []byte) bool
	fired   int
}

func (f *faultyTransport) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	f.mu.Lock()
	trig := f.trigger
	if trig != nil && trig(cmd) {
		f.trigger = nil
		f.fired++
		f.mu.Unlock()
		f.sim.Reset()
		return nil, errors.Join(errors.New("test: reader reports a reset"), apdu.ErrCardReset)
	}
	f.mu.Unlock()
	return f.sim.Transmit(ctx, cmd)
}

// resetOn arms a reset at the next command whose INS is ins (any CLA).
func (f *faultyTransport) resetOn(ins byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trigger = func(cmd []byte) bool { return len(cmd) >= 4 && cmd[1] == ins }
}

func (f *faultyTransport) firedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// txTransport records transactions and checks they are not nested.
type txTransport struct {
	apdu.Transport
	mu             sync.Mutex
	begins, ends   int
	open           bool
	outside, nests int // commands sent outside a transaction, nested begins
}

func (x *txTransport) BeginTransaction(context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.open {
		x.nests++
	}
	x.open = true
	x.begins++
	return nil
}

func (x *txTransport) EndTransaction(context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.open = false
	x.ends++
	return nil
}

func (x *txTransport) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	x.mu.Lock()
	if !x.open {
		x.outside++
	}
	x.mu.Unlock()
	return x.Transport.Transmit(ctx, cmd)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
