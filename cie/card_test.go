package cie

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

// cieFamilies lists the simulator's CIE families (not the foreign card).
func cieFamilies(t *testing.T) []ciesim.FamilyInfo {
	var out []ciesim.FamilyInfo
	for _, f := range ciesim.Families() {
		if !f.Foreign {
			out = append(out, f)
		}
	}
	if len(out) != 12 {
		t.Fatalf("the simulator has %d CIE families, want the 12 of architecture.md", len(out))
	}
	return out
}

func wantPINError(t *testing.T, err error, ref PINRef, remaining int, blocked bool) {
	t.Helper()
	var pe *PINError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want a *PINError", err)
	}
	if pe.Ref != ref || pe.Remaining != remaining || pe.Blocked != blocked {
		t.Fatalf("PINError %+v, want ref %v, %d left, blocked %v", pe, ref, remaining, blocked)
	}
}

func wantStatus(t *testing.T, c *Card, ref PINRef, want PINStatus) {
	t.Helper()
	st, err := c.refStatus(context.Background(), ref)
	if err != nil {
		t.Fatalf("%v status: %v", ref, err)
	}
	if st != want {
		t.Fatalf("%v status %+v, want %+v", ref, st, want)
	}
}

// TestEveryFamily runs a user's whole journey on every chip family.
func TestEveryFamily(t *testing.T) {
	for _, fam := range cieFamilies(t) {
		t.Run(fam.ID, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sim := newSim(t, fam.ID, nil)
			c := openSim(t, sim, nil)

			if got := c.Family().ID; got != fam.ID {
				t.Fatalf("Open identified %q, want %q", got, fam.ID)
			}
			sn := sim.SNICC()
			if !bytes.Equal(c.SerialICC(), sn[:]) {
				t.Errorf("SerialICC % X, want % X", c.SerialICC(), sn)
			}
			if c.IDServizi() != sim.Holder().IDServizi || c.PAN() != sim.Holder().IDServizi {
				t.Errorf("IDServizi %q, PAN %q, want %q", c.IDServizi(), c.PAN(), sim.Holder().IDServizi)
			}

			wantStatus(t, c, PIN, PINStatus{Remaining: 3})
			wantStatus(t, c, PUK, PINStatus{Remaining: 10})
			if _, err := c.Certificate(ctx); !errors.Is(err, ErrPINRequired) {
				t.Fatalf("Certificate before VerifyPIN: %v, want ErrPINRequired", err)
			}
			if err := c.VerifyPIN(ctx, testPIN); err != nil {
				t.Fatalf("VerifyPIN: %v", err)
			}
			wantStatus(t, c, PIN, PINStatus{Remaining: 3, Verified: true})
			wantStyle := DHSeparate
			if fam.CombinedDH {
				wantStyle = DHCombined
			}
			if c.dhStyle != wantStyle || c.Family().DH != wantStyle {
				t.Errorf("DH parameters read with the %v template (family row: %v), the card answers %v", c.dhStyle, c.Family().DH, wantStyle)
			}

			cert, err := c.Certificate(ctx)
			if err != nil {
				t.Fatalf("Certificate: %v", err)
			}
			if !bytes.Equal(cert.Raw, sim.Certificate().Raw) {
				t.Fatalf("Certificate differs from the card's EF.CertCIE")
			}
			pub := cert.PublicKey.(*rsa.PublicKey)
			digest := sha256.Sum256([]byte("documento da firmare"))
			di, err := DigestInfo(crypto.SHA256, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			sig, err := c.SignDigestInfo(ctx, di)
			if err != nil {
				t.Fatalf("SignDigestInfo: %v", err)
			}
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				t.Fatalf("the card's signature does not verify with the certificate: %v", err)
			}
			sig, err = c.Signer(cert).Sign(nil, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("Signer.Sign: %v", err)
			}
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
				t.Fatalf("Signer signature does not verify: %v", err)
			}

			// Change the PIN; the new one works, the old one does not.
			newPIN := []byte("24681357")
			if err := c.ChangePIN(ctx, testPIN, newPIN); err != nil {
				t.Fatalf("ChangePIN: %v", err)
			}
			c.Logout()
			if err := c.VerifyPIN(ctx, newPIN); err != nil {
				t.Fatalf("VerifyPIN with the new PIN: %v", err)
			}

			// Three wrong PINs: 2, 1 left, then blocked.
			wrong := []byte("00000001")
			wantPINError(t, c.VerifyPIN(ctx, wrong), PIN, 2, false)
			wantPINError(t, c.VerifyPIN(ctx, wrong), PIN, 1, false)
			err = c.VerifyPIN(ctx, wrong)
			wantPINError(t, err, PIN, 0, true)
			if !strings.Contains(err.Error(), "PIN blocked: unblock it with the PUK") || !strings.HasPrefix(err.Error(), "cie: ") {
				t.Errorf("blocked PIN message %q", err)
			}
			wantStatus(t, c, PIN, PINStatus{Remaining: 0, Blocked: true})
			wantPINError(t, c.VerifyPIN(ctx, newPIN), PIN, 0, true)

			// A wrong PUK counts down; the right one unblocks.
			unblocked := []byte("13572468")
			err = c.UnblockPIN(ctx, []byte("11112222"), unblocked)
			wantPINError(t, err, PUK, 9, false)
			if !strings.Contains(err.Error(), "wrong PUK: 9 tries left") {
				t.Errorf("wrong PUK message %q", err)
			}
			wantStatus(t, c, PUK, PINStatus{Remaining: 9})
			if err := c.UnblockPIN(ctx, testPUK, unblocked); err != nil {
				t.Fatalf("UnblockPIN: %v", err)
			}
			wantStatus(t, c, PUK, PINStatus{Remaining: 10, Verified: true})
			wantStatus(t, c, PIN, PINStatus{Remaining: 3})
			if err := c.VerifyPIN(ctx, unblocked); err != nil {
				t.Fatalf("VerifyPIN after unblocking: %v", err)
			}
			if _, err := c.SignDigestInfo(ctx, di); err != nil {
				t.Fatalf("signing after unblocking: %v", err)
			}
		})
	}
}

// TestPUKBlocked: ten wrong PUKs block the PUK with the "replace the card" message.
func TestPUKBlocked(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "stm", nil)
	c := openSim(t, sim, nil)
	var err error
	for i := 9; i >= 0; i-- {
		err = c.VerifyPUK(ctx, []byte("99999999"))
		wantPINError(t, err, PUK, i, i == 0)
	}
	if !strings.HasSuffix(err.Error(), "PUK blocked: the card must be replaced at the municipality") {
		t.Errorf("message %q", err)
	}
	wantStatus(t, c, PUK, PINStatus{Blocked: true})
}

// TestProbe: ATRs that identify nothing (zeroed historical bytes, the
// reader-stripped STM2 form on another chip) are resolved by EF.ATR.
func TestProbe(t *testing.T) {
	zeroed := mustHex("3B8F8001" + "00000000000000000000000000" + "FF829000" + "E3")
	stm2 := mustHex("3B80800101")
	for _, tc := range []struct {
		family string
		atr    []byte
		want   string
	}{
		{"gemalto", zeroed, "gemalto"},
		{"gemalto2", zeroed, "gemalto2"},
		{"nxp", zeroed, "nxp"},
		{"stm", zeroed, "stm"},
		{"actalis2023", zeroed, "actalis"},
		{"bit4id", zeroed, "nxp"},
		{"nxp", stm2, "nxp"}, // SELECT IAS fails: probed through the MF
		{"bit4id-b9547", stm2, "nxp"},
	} {
		t.Run(tc.family, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sim := newSim(t, tc.family, tc.atr)
			c := openSim(t, sim, nil)
			if got := c.Family().ID; got != tc.want {
				t.Fatalf("probed family %q, want %q", got, tc.want)
			}
			if !bytes.Equal(c.ATR(), tc.atr) {
				t.Errorf("ATR % X, want % X", c.ATR(), tc.atr)
			}
			if err := c.VerifyPIN(ctx, testPIN); err != nil {
				t.Fatalf("VerifyPIN: %v", err)
			}
			if _, err := c.Certificate(ctx); err != nil {
				t.Fatalf("Certificate: %v", err)
			}
		})
	}
}

// TestForeignCard: a non-CIE card is refused with its ATR, also when it
// shows the Gemalto ATR (shared with the Dutch driving licence, §1.1).
func TestForeignCard(t *testing.T) {
	gemalto := familyByID("gemalto").ATR
	for _, atr := range [][]byte{nil, gemalto} {
		sim := newSim(t, "foreign", atr)
		_, err := Open(context.Background(), sim, sim.ATR(), testOptions())
		if !errors.Is(err, ErrUnsupportedCard) {
			t.Fatalf("Open(foreign, ATR % X): %v, want ErrUnsupportedCard", sim.ATR(), err)
		}
		var ue *UnsupportedCardError
		if !errors.As(err, &ue) || !bytes.Equal(ue.ATR, sim.ATR()) {
			t.Fatalf("error %v does not carry the ATR % X", err, sim.ATR())
		}
		want := "cie: unsupported card (ATR " + hexSpaced(sim.ATR()) + ")"
		if err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
	}
}

// TestPINRequired: PIN-protected operations refuse before VerifyPIN, after
// Logout, and send nothing to the card.
func TestPINRequired(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "gemalto", nil)
	c := openSim(t, sim, nil)
	check := func(when string) {
		t.Helper()
		before := sim.Stats().APDUs
		if _, err := c.Certificate(ctx); !errors.Is(err, ErrPINRequired) {
			t.Errorf("%s: Certificate: %v, want ErrPINRequired", when, err)
		}
		if _, err := c.SignDigestInfo(ctx, []byte{1, 2, 3}); !errors.Is(err, ErrPINRequired) {
			t.Errorf("%s: SignDigestInfo: %v, want ErrPINRequired", when, err)
		}
		if n := sim.Stats().APDUs - before; n != 0 {
			t.Errorf("%s: %d APDUs sent", when, n)
		}
	}
	check("before VerifyPIN")
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	check("after Logout")
	// Logout cleared the card's security status too.
	wantStatus(t, c, PIN, PINStatus{Remaining: 3})
}

// TestInvalidPINsSendNothing: format errors are caught before the card.
func TestInvalidPINsSendNothing(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "nxp", nil)
	c := openSim(t, sim, nil)
	before := sim.Stats().APDUs
	for name, err := range map[string]error{
		"short PIN":        c.VerifyPIN(ctx, []byte("1234")),
		"letters":          c.VerifyPIN(ctx, []byte("1234567a")),
		"PUK too long":     c.VerifyPUK(ctx, []byte("123456789")),
		"weak new PIN":     c.ChangePIN(ctx, testPIN, []byte("11111111")),
		"run as new PIN":   c.ChangePIN(ctx, testPIN, []byte("23456789")),
		"bad old PIN":      c.ChangePIN(ctx, []byte("12"), []byte("24681357")),
		"unblock weak PIN": c.UnblockPIN(ctx, testPUK, []byte("98765432")),
	} {
		if !errors.Is(err, ErrInvalidPIN) {
			t.Errorf("%s: %v, want ErrInvalidPIN", name, err)
		}
	}
	if n := sim.Stats().APDUs - before; n != 0 {
		t.Errorf("%d APDUs sent for invalid PINs", n)
	}
	if pin, _ := sim.Tries(); pin != 3 {
		t.Errorf("PIN tries %d, want 3", pin)
	}
}

// TestTransactions: every public operation runs in exactly one transaction.
func TestTransactions(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "gemalto2", nil)
	tx := &txTransport{Transport: sim}
	c := openSim(t, sim, tx)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Certificate(ctx); err != nil {
		t.Fatal(err)
	}
	if tx.begins != 3 || tx.ends != 3 || tx.outside != 0 || tx.nests != 0 {
		t.Fatalf("begins %d ends %d, commands outside %d, nested %d; want 3, 3, 0, 0", tx.begins, tx.ends, tx.outside, tx.nests)
	}
}

// TestConcurrentCallers: in-process callers are serialised (run with -race).
func TestConcurrentCallers(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "stm3", nil)
	c := openSim(t, sim, nil)
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	cert, err := c.Certificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Signer(cert)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			d := sha256.Sum256([]byte{byte(i)})
			sig, err := s.Sign(nil, d[:], crypto.SHA256)
			if err == nil {
				err = rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig)
			}
			if err == nil && i%2 == 0 {
				_, err = c.PINStatus(ctx)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestPublicKeysAndServizi: EF 1004/1005 hold the state's keys and key 83
// proves the card genuine.
func TestPublicKeysAndServizi(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "bit4id2023", nil)
	c := openSim(t, sim, nil)
	st := testState(t)
	chip, err := c.ChipPublicKey(ctx)
	if err != nil || !chip.Equal(&st.ChipKey.PublicKey) {
		t.Fatalf("ChipPublicKey: %v (equal: %v)", err, err == nil && chip.Equal(&st.ChipKey.PublicKey))
	}
	srv, err := c.ServiziPublicKey(ctx)
	if err != nil || !srv.Equal(&st.ServiziKey.PublicKey) {
		t.Fatalf("ServiziPublicKey: %v", err)
	}
	for _, withSM := range []bool{false, true} {
		if withSM {
			if err := c.VerifyPIN(ctx, testPIN); err != nil {
				t.Fatal(err)
			}
		}
		challenge := []byte(c.PAN())
		sig, err := c.AuthenticateServizi(ctx, challenge)
		if err != nil {
			t.Fatalf("AuthenticateServizi (SM %v): %v", withSM, err)
		}
		if err := rsa.VerifyPKCS1v15(srv, crypto.Hash(0), challenge, sig); err != nil {
			t.Fatalf("servizi signature: %v", err)
		}
	}
	// The servizi key did not disturb the signature key selection.
	if _, err := c.SignDigestInfo(ctx, []byte("short data")); err != nil {
		t.Fatalf("SignDigestInfo after AuthenticateServizi: %v", err)
	}
}

// TestDocumentNumber reads EF.Seriale under SM without the PIN.
func TestDocumentNumber(t *testing.T) {
	sim := newSim(t, "actalis-b946", nil)
	c := openSim(t, sim, nil)
	got, err := c.DocumentNumber(context.Background())
	if err != nil || got != sim.Holder().CardNumber {
		t.Fatalf("DocumentNumber = %q, %v; want %q", got, err, sim.Holder().CardNumber)
	}
}

// TestHolderFromCertificate reads the simulator's certificate subject.
func TestHolderFromCertificate(t *testing.T) {
	sim := newSim(t, "gemalto", nil)
	h := HolderFromCertificate(sim.Certificate())
	want := Holder{GivenName: sim.Holder().GivenName, Surname: sim.Holder().Surname, FiscalCode: sim.Holder().FiscalCode}
	if h != want {
		t.Fatalf("holder %+v, want %+v", h, want)
	}
}

// TestClosed: a closed Card refuses work.
func TestClosed(t *testing.T) {
	sim := newSim(t, "gemalto", nil)
	c := openSim(t, sim, nil)
	c.Close()
	if _, err := c.PINStatus(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("PINStatus after Close: %v", err)
	}
}

// TestTransportErrorsPassThrough: a removed card is reported, not hidden.
func TestTransportErrorsPassThrough(t *testing.T) {
	sim := newSim(t, "gemalto", nil)
	c := openSim(t, sim, nil)
	sim.Inject(ciesim.FaultMute)
	_, err := c.PINStatus(context.Background())
	if !errors.Is(err, apdu.ErrCardRemoved) {
		t.Fatalf("PINStatus with the card gone: %v, want ErrCardRemoved", err)
	}
}

// TestDHStyleFallback: when the family's DH template is refused, the other
// one is used, and remembered.
func TestDHStyleFallback(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		family string
		wrong  DHStyle
		want   DHStyle
	}{{"gemalto", DHSeparate, DHCombined}, {"stm", DHCombined, DHSeparate}} {
		sim := newSim(t, tc.family, nil)
		c := openSim(t, sim, nil)
		c.family.DH = tc.wrong
		if err := c.VerifyPIN(ctx, testPIN); err != nil {
			t.Fatalf("%s: VerifyPIN with the wrong DH template first: %v", tc.family, err)
		}
		if c.dhStyle != tc.want {
			t.Fatalf("%s: style %v, want %v", tc.family, c.dhStyle, tc.want)
		}
	}
}
