//go:build linux

package pcsc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

var readBinary = []byte{0x00, 0xB0, 0x00, 0x00, 0x10}

// TestCardRemovedDuringTransmit pulls the card out while it answers: vpcd
// then reports success with an empty answer, and pcscd learns of the
// removal only at its next presence poll. Transmit must report the
// removal, not an answer without a status word nor a generic error.
func TestCardRemovedDuringTransmit(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	var card *testbench.Card
	ready := make(chan struct{})
	card = b.StartFakeCard(t, testbench.FakeCard{Handle: func(cmd []byte) []byte {
		if len(cmd) > 1 && cmd[1] == 0xB0 { // the card leaves while answering READ BINARY
			<-ready
			go card.Stop(t)
			time.Sleep(200 * time.Millisecond)
		}
		return []byte{0x90, 0x00}
	}})
	close(ready)
	pc := establish(t)
	conn := connect(t, pc, card.Reader())
	ctx := context.Background()
	if _, err := conn.Transmit(ctx, selectMF); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rsp, err := conn.Transmit(ctx, readBinary)
	if !errors.Is(err, apdu.ErrCardRemoved) {
		t.Fatalf("Transmit while the card left = % X, %v; want an error matching apdu.ErrCardRemoved", rsp, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the removal was reported after %v", d)
	}
	if err := conn.BeginTransaction(ctx); !errors.Is(err, apdu.ErrCardRemoved) && !errors.Is(err, apdu.ErrNoCard) {
		t.Fatalf("BeginTransaction after the removal = %v, want apdu.ErrCardRemoved", err)
	}
}

// TestContextAndCardsConcurrently uses one Context and two of its Cards
// from several goroutines at once, as the PKCS#11 module does (listing
// readers while other threads talk to cards). pcsc-lite wants one thread
// per context; without the shared lock a reply reaches the wrong caller
// and a call never returns.
func TestContextAndCardsConcurrently(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	card := b.StartFakeCard(t, testbench.FakeCard{})
	pc := establish(t)
	ctx := context.Background()
	conns := []*pcsc.Card{connect(t, pc, card.Reader()), connect(t, pc, card.Reader())}
	deadline := time.Now().Add(2 * time.Second)
	var progress atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var err error
				switch i % 3 {
				case 0, 1:
					_, err = conns[i%2].Transmit(ctx, selectMF)
				case 2:
					if _, err = pc.Readers(); err == nil {
						_, err = pc.Status(ctx, card.Reader())
					}
				}
				if err != nil {
					errs <- err
					return
				}
				progress.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("a PC/SC call never returned (%d calls made)", progress.Load())
	}
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	t.Logf("%d calls from 6 goroutines on one context", progress.Load())
}

// TestReleaseWithOpenCard releases a Context whose Card is still open, as
// a program tearing down after an error does. pcsc-lite never answers a
// call on a handle of a released context (the caller hangs); so Release
// disconnects the card first, its later calls fail at once as an invalid
// handle, and Close is a no-op.
func TestReleaseWithOpenCard(t *testing.T) {
	t.Parallel()
	b := testbench.Start(t, testbench.Options{})
	card := b.StartFakeCard(t, testbench.FakeCard{})
	pc, err := pcsc.Establish()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pc.Connect(context.Background(), card.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Transmit(context.Background(), selectMF); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		if err := pc.Release(); err != nil {
			done <- err
			return
		}
		_, err := conn.Transmit(context.Background(), selectMF)
		if !errors.Is(err, scard.ErrInvalidHandle) {
			done <- fmt.Errorf("Transmit after Release = %v, want SCARD_E_INVALID_HANDLE", err)
			return
		}
		if err := conn.BeginTransaction(context.Background()); !errors.Is(err, scard.ErrInvalidHandle) {
			done <- fmt.Errorf("BeginTransaction after Release = %v, want SCARD_E_INVALID_HANDLE", err)
			return
		}
		done <- conn.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a call after releasing the context never returned")
	}
}
