package cie

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

// takeProfile opens sim, runs one handshake and returns the card's Profile.
func takeProfile(t *testing.T, sim *ciesim.Card) Profile {
	t.Helper()
	c := openSim(t, sim, nil)
	if _, ok := c.Profile(); ok {
		t.Fatal("Profile complete right after Open, before any handshake")
	}
	if err := c.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, ok := c.Profile()
	if !ok {
		t.Fatal("Profile incomplete after Prepare")
	}
	return p
}

func openProfile(t *testing.T, sim *ciesim.Card, p Profile) *Card {
	t.Helper()
	c, err := OpenProfile(sim, sim.ATR(), p, testOptions())
	if err != nil {
		t.Fatalf("OpenProfile: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestOpenProfileBudget: a card opened from its profile costs nothing until
// used, and a login with the first signature costs SELECT CIE, DH, DAPP,
// VERIFY and the signature: the PKCS#11 budget of 22.
func TestOpenProfileBudget(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		family string
		want   int
	}{{"gemalto", 22}, {"nxp", 22}} {
		t.Run(tc.family, func(t *testing.T) {
			sim := newSim(t, tc.family, nil)
			p := takeProfile(t, sim)
			sim.ResetStats()
			c := openProfile(t, sim, p)
			if n := sim.Stats().APDUs; n != 0 {
				t.Fatalf("OpenProfile sent %d APDUs", n)
			}
			if c.PAN() != p.PAN() || c.IDServizi() != p.IDServizi || c.Family().ID != tc.family {
				t.Fatalf("identity %s %s %s, want the profile's", c.PAN(), c.IDServizi(), c.Family().ID)
			}
			if err := c.VerifyPIN(ctx, testPIN); err != nil {
				t.Fatal(err)
			}
			if _, err := c.SignDigestInfo(ctx, []byte("digest info")); err != nil {
				t.Fatal(err)
			}
			if n := sim.Stats().APDUs; n != tc.want {
				t.Errorf("VerifyPIN + first sign from the profile: %d APDUs, want %d", n, tc.want)
			}
			if c.presumed {
				t.Error("still presumed after device authentication")
			}
			// The profile survives the round trip through Profile.
			if q, ok := c.Profile(); !ok || q.PAN() != p.PAN() || string(q.CAKey) != string(p.CAKey) {
				t.Error("Profile of the opened card differs")
			}
		})
	}
}

// TestOpenProfileOtherCard: another card with the same ATR is found out by
// device authentication before any PIN is sent, and reported as
// ErrCardChanged; the Card then describes the card really there.
func TestOpenProfileOtherCard(t *testing.T) {
	ctx := context.Background()
	p := takeProfile(t, newSim(t, "gemalto", nil))
	other, err := ciesim.New(ciesim.Config{Family: "gemalto", State: testState(t), Holder: ciesim.Holder{IDServizi: "123456789012"},
		Rand: detRand(0xCA), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	c := openProfile(t, other, p)
	err = c.VerifyPIN(ctx, testPIN)
	if !errors.Is(err, ErrCardChanged) {
		t.Fatalf("VerifyPIN on another card: %v, want ErrCardChanged", err)
	}
	if pin, _ := other.Tries(); pin != 3 {
		t.Fatalf("a PIN try was spent on the wrong card: %d left", pin)
	}
	if c.PAN() != "123456789012" {
		t.Fatalf("PAN after the change %q", c.PAN())
	}
	// The Card works as the new card from then on.
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatalf("VerifyPIN after the change: %v", err)
	}

	// An operation without device authentication identifies the card first.
	c2 := openProfile(t, other, p)
	if _, err := c2.AuthenticateServizi(ctx, []byte(p.PAN())); !errors.Is(err, ErrCardChanged) {
		t.Fatalf("AuthenticateServizi on another card: %v, want ErrCardChanged", err)
	}
}

// TestOpenProfileStale: a card that answers with the profile's serial
// number but not with its chip key is not the profile's card (a real card's
// profile never changes): ErrCardChanged before any PIN is sent.
func TestOpenProfileStale(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "gemalto", nil)
	p := takeProfile(t, sim)
	c0 := openSim(t, sim, nil)
	serv, err := c0.serviziKeyFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.ChipKey = serv.der // a valid key, but not the chip's
	c := openProfile(t, sim, p)
	if err := c.VerifyPIN(ctx, testPIN); !errors.Is(err, ErrCardChanged) || !errors.Is(err, errChipKeyChanged) {
		t.Fatalf("VerifyPIN with another chip key in the profile: %v, want ErrCardChanged (another chip key)", err)
	}
	if pin, _ := sim.Tries(); pin != 3 {
		t.Fatalf("tries %d", pin)
	}
}

// verifyCounter counts the VERIFY commands (plain or protected) sent to a card.
type verifyCounter struct {
	apdu.Transport
	verifies int
}

func (v *verifyCounter) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) >= 4 && cmd[1] == 0x20 {
		v.verifies++
	}
	return v.Transport.Transmit(ctx, cmd)
}

// TestOpenProfileCopiedSerial: a card that copies the recorded card's
// EF.SN.ICC (readable by anyone) but holds another chip key fails device
// authentication with the profile's key, and is not given a second
// handshake with the key it offers: ErrCardChanged, and no VERIFY reaches it.
func TestOpenProfileCopiedSerial(t *testing.T) {
	ctx := context.Background()
	p := takeProfile(t, newSim(t, "gemalto", nil))
	st := *testState(t)
	st.ChipKey = st.ServiziKey // the fake's own chip key, whose private half it holds
	fake, err := ciesim.New(ciesim.Config{Family: "gemalto", State: &st, Rand: detRand(0xCA), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	if sn := fake.SNICC(); string(sn[:]) != string(p.SerialICC) {
		t.Fatal("the fake does not repeat the recorded serial number")
	}
	tr := &verifyCounter{Transport: fake}
	c, err := OpenProfile(tr, fake.ATR(), p, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.VerifyPIN(ctx, testPIN)
	if !errors.Is(err, ErrCardChanged) {
		t.Fatalf("VerifyPIN on a card copying the serial: %v, want ErrCardChanged", err)
	}
	if tr.verifies != 0 {
		t.Fatalf("%d VERIFY commands reached the fake card", tr.verifies)
	}
	if pin, _ := fake.Tries(); pin != 3 {
		t.Fatalf("a PIN try was spent on the fake card: %d left", pin)
	}
}

// TestOpenProfileForeign: a card that is not a CIE under the profile's ATR
// is another card than the profile's: ErrCardChanged (wrapping why it
// cannot be identified), and the Card is no longer presumed.
func TestOpenProfileForeign(t *testing.T) {
	ctx := context.Background()
	p := takeProfile(t, newSim(t, "gemalto", nil))
	foreign := newSim(t, "foreign", p.ATR)
	c := openProfile(t, foreign, p)
	err := c.VerifyPIN(ctx, testPIN)
	if !errors.Is(err, ErrCardChanged) || !errors.Is(err, ErrUnsupportedCard) {
		t.Fatalf("VerifyPIN on a foreign card: %v, want ErrCardChanged wrapping ErrUnsupportedCard", err)
	}
	if c.presumed {
		t.Error("still presumed to be the profile's card")
	}
	if _, ok := c.Profile(); ok {
		t.Error("the profile's public data are still in use")
	}
}

// TestOpenProfileRejects: a profile that is not usable is refused at once.
func TestOpenProfileRejects(t *testing.T) {
	sim := newSim(t, "gemalto", nil)
	p := takeProfile(t, sim)
	for name, mod := range map[string]func(*Profile) []byte{
		"other ATR":   func(p *Profile) []byte { return []byte{0x3B, 0x00} },
		"family":      func(p *Profile) []byte { p.Family = "nope"; return p.ATR },
		"serial":      func(p *Profile) []byte { p.SerialICC = p.SerialICC[:5]; return p.ATR },
		"id servizi":  func(p *Profile) []byte { p.IDServizi = "1"; return p.ATR },
		"select":      func(p *Profile) []byte { p.Select = 9; return p.ATR },
		"dh style":    func(p *Profile) []byte { p.DH = 0; return p.ATR },
		"dh group":    func(p *Profile) []byte { p.DHP = []byte{1, 2, 3}; return p.ATR },
		"ca key":      func(p *Profile) []byte { p.CAKey = p.CAKey[:20]; return p.ATR },
		"chip key":    func(p *Profile) []byte { p.ChipKey = []byte{0x30, 0x00}; return p.ATR },
		"nil profile": func(p *Profile) []byte { *p = Profile{}; return nil },
	} {
		q := p
		q.SerialICC = append([]byte(nil), p.SerialICC...)
		atr := mod(&q)
		if _, err := OpenProfile(sim, atr, q, nil); err == nil {
			t.Errorf("%s: OpenProfile accepted it", name)
		}
	}
}

// noSFI answers 6A86 (incorrect P1 P2) to READ BINARY by short EF
// identifier, as a card without short identifiers would.
type noSFI struct {
	*ciesim.Card
	refused int
}

func (n *noSFI) Transmit(ctx context.Context, cmd []byte) ([]byte, error) {
	if len(cmd) >= 4 && cmd[1] == insReadBinary && cmd[2]&0x80 != 0 {
		n.refused++
		return []byte{0x6A, 0x86}, nil
	}
	return n.Card.Transmit(ctx, cmd)
}

// TestShortEFFallback: a card that refuses READ BINARY by SFI is read by
// SELECT and READ BINARY instead, one more APDU per file.
func TestShortEFFallback(t *testing.T) {
	ctx := context.Background()
	sim := newSim(t, "gemalto", nil)
	tr := &noSFI{Card: sim}
	c, err := Open(ctx, tr, sim.ATR(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.IDServizi() != "635874769602" {
		t.Fatalf("ID_Servizi %q", c.IDServizi())
	}
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthenticateServizi(ctx, []byte(c.PAN())); err != nil {
		t.Fatal(err)
	}
	if tr.refused != 2 {
		t.Errorf("%d SFI reads refused, want 2 (1001, 1004; 1005 is read under SM, by FID)", tr.refused)
	}
	// The login survived the servizi key read.
	if _, err := c.SignDigestInfo(ctx, []byte("digest info")); err != nil {
		t.Fatalf("sign after reading 1005 under SM: %v", err)
	}
}
