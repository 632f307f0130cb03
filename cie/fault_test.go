package cie

import (
	"context"
	"errors"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/sm"
)

// TestReadRecoversOnce: a fault during an idempotent read (a bad MAC, the
// card losing its session, a reset reported by the reader) is repaired by
// one new DH + DAPP and one more read.
func TestReadRecoversOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(sim *ciesim.Card, ft *faultyTransport)
	}{
		{"bad MAC", func(sim *ciesim.Card, _ *faultyTransport) { sim.Inject(ciesim.FaultBadMAC) }},
		{"card-side reset", func(sim *ciesim.Card, _ *faultyTransport) { sim.Inject(ciesim.FaultReset) }},
		{"reader reset", func(_ *ciesim.Card, ft *faultyTransport) { ft.resetOn(insReadBinary) }},
		{"bare 6988", func(sim *ciesim.Card, _ *faultyTransport) { sim.Inject(ciesim.FaultSW(apdu.SWSMDataObjectsIncorrect)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sim := newSim(t, "gemalto", nil)
			ft := &faultyTransport{sim: sim}
			c := openSim(t, sim, ft)
			if _, err := c.DocumentNumber(ctx); err != nil { // session up
				t.Fatal(err)
			}
			tc.fault(sim, ft)
			got, err := c.DocumentNumber(ctx)
			if err != nil || got != sim.Holder().CardNumber {
				t.Fatalf("DocumentNumber after %s: %q, %v", tc.name, got, err)
			}
		})
	}
}

// TestReadFaultTwiceFails: recovery is attempted once only.
func TestReadFaultTwiceFails(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "nxp", nil)
	c := openSim(t, sim, nil)
	if _, err := c.DocumentNumber(ctx); err != nil {
		t.Fatal(err)
	}
	// Every SM command fails its MAC check: the retry fails too.
	bad := apdu.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		if cmd[0]&0x0C == 0x0C {
			sim.Inject(ciesim.FaultBadMAC)
		}
		return sim.Transmit(ctx, cmd)
	})
	c.raw, c.gr = bad, apdu.NewGetResponse(bad)
	c.smt = nil
	before := sim.Stats().APDUs
	_, err := c.DocumentNumber(ctx)
	if !errors.Is(err, sm.ErrMAC) {
		t.Fatalf("DocumentNumber with a persistent fault: %v, want ErrMAC", err)
	}
	if n := sim.Stats().APDUs - before; n > 40 {
		t.Errorf("%d APDUs: the read was retried more than once", n)
	}
}

// TestCertificateAfterReset: after a reset the PIN is gone, so the
// certificate read (retried once) reports ErrPINRequired.
func TestCertificateAfterReset(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "stm", nil)
	ft := &faultyTransport{sim: sim}
	c := openSim(t, sim, ft)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	ft.resetOn(insSelect)
	if _, err := c.Certificate(ctx); !errors.Is(err, ErrPINRequired) {
		t.Fatalf("Certificate after a reset: %v, want ErrPINRequired", err)
	}
	if ft.firedCount() != 1 {
		t.Fatalf("reset fired %d times", ft.firedCount())
	}
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Certificate(ctx); err != nil {
		t.Fatalf("Certificate after verifying again: %v", err)
	}
}

// TestVerifyNeverRetried: a fault during VERIFY returns an error and spends
// at most one try.
func TestVerifyNeverRetried(t *testing.T) {
	wrong := []byte("00000000")
	for _, tc := range []struct {
		name     string
		pin      []byte
		fault    func(sim *ciesim.Card, ft *faultyTransport)
		wantErr  error
		wantLeft int // tries left afterwards
	}{
		// The card ran VERIFY and spent a try; its answer fails the MAC.
		{"bad MAC, wrong PIN", wrong, func(sim *ciesim.Card, _ *faultyTransport) { sim.Inject(ciesim.FaultBadMAC) }, sm.ErrMAC, 2},
		// The card accepted the PIN; the host cannot tell, and the new
		// session does not carry the verification.
		{"bad MAC, right PIN", testPIN, func(sim *ciesim.Card, _ *faultyTransport) { sim.Inject(ciesim.FaultBadMAC) }, sm.ErrMAC, 3},
		// The reader reset the card before VERIFY reached it.
		{"reader reset", wrong, func(_ *ciesim.Card, ft *faultyTransport) { ft.resetOn(insVerify) }, apdu.ErrCardReset, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sim := newSim(t, "gemalto2", nil)
			ft := &faultyTransport{sim: sim}
			c := openSim(t, sim, ft)
			wantStatus(t, c, PIN, PINStatus{Remaining: 3}) // session up
			tc.fault(sim, ft)
			before := sim.Stats().APDUs
			err := c.VerifyPIN(ctx, tc.pin)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifyPIN: %v, want %v", err, tc.wantErr)
			}
			if n := sim.Stats().APDUs - before; n > 1 {
				t.Fatalf("%d APDUs after the fault: VERIFY was retried", n)
			}
			if pin, _ := sim.Tries(); pin != tc.wantLeft {
				t.Fatalf("card has %d tries left, want %d", pin, tc.wantLeft)
			}
			wantStatus(t, c, PIN, PINStatus{Remaining: tc.wantLeft})
			if _, err := c.Certificate(ctx); !errors.Is(err, ErrPINRequired) {
				t.Fatalf("Certificate after a failed VERIFY: %v", err)
			}
		})
	}
}

// TestResetBeforeVerifyIsRepaired: a reset reported while the handshake
// runs (before VERIFY is sent) is repaired, then VERIFY goes out once.
func TestResetBeforeVerifyIsRepaired(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "actalis", nil)
	ft := &faultyTransport{sim: sim}
	c := openSim(t, sim, ft)
	ft.resetOn(insGetChallenge)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatalf("VerifyPIN with a reset during DAPP: %v", err)
	}
	if ft.firedCount() != 1 {
		t.Fatalf("reset fired %d times", ft.firedCount())
	}
}

// TestSignNeverRetried: a fault on the signature returns the error; the
// PIN must be verified again.
func TestSignNeverRetried(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "bit4id", nil)
	ft := &faultyTransport{sim: sim}
	c := openSim(t, sim, ft)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	ft.resetOn(insInternalAuthenticate)
	if _, err := c.SignDigestInfo(ctx, []byte("data")); !errors.Is(err, apdu.ErrCardReset) {
		t.Fatalf("SignDigestInfo with a reset: %v, want ErrCardReset", err)
	}
	if _, err := c.SignDigestInfo(ctx, []byte("data")); !errors.Is(err, ErrPINRequired) {
		t.Fatalf("SignDigestInfo after the reset: %v, want ErrPINRequired", err)
	}
}

// TestSessionLostBeforeSignature: another application ends the
// secure-messaging session between VerifyPIN and SignDigestInfo (its own
// handshake, a reset the card saw but this host did not). The MSE SET of
// the signature then fails; nothing was signed, and the caller learns that
// the PIN is needed again, not a secure-messaging status word.
func TestSessionLostBeforeSignature(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "actalis", nil)
	c := openSim(t, sim, nil)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	sim.Inject(ciesim.FaultReset)
	before := sim.Stats().APDUs
	if _, err := c.SignDigestInfo(ctx, []byte("data")); !errors.Is(err, ErrPINRequired) {
		t.Fatalf("SignDigestInfo after the session was lost: %v, want ErrPINRequired", err)
	}
	if n := sim.Stats().APDUs - before; n != 1 {
		t.Fatalf("%d APDUs sent, want only the refused MSE SET", n)
	}
	if pin, _ := sim.Tries(); pin != 3 {
		t.Fatalf("%d PIN tries left, want 3", pin)
	}
}

// TestBareWrongPIN: a 63Cx that comes back without SM objects is still
// reported as a wrong PIN, and the session restarts.
func TestBareWrongPIN(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "gemalto", nil)
	c := openSim(t, sim, nil)
	wantStatus(t, c, PIN, PINStatus{Remaining: 3})
	sim.Inject(ciesim.FaultSW(0x63C1))
	err := c.VerifyPIN(ctx, []byte("00000000"))
	wantPINError(t, err, PIN, 1, false)
	if c.smt != nil {
		t.Fatal("the session survived a bare status word")
	}
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatalf("VerifyPIN on a new session: %v", err)
	}
}
