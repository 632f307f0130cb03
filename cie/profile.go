package cie

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// ErrCardChanged: a Card opened with OpenProfile turned out to be another
// card than the profile's: its EF.SN.ICC differs, it repeats the serial
// number but not the chip key (EF.Int.Kpub), or it cannot be identified
// as a CIE at all (the error then wraps the *UnsupportedCardError). The Card now describes
// the card really in the reader, but nothing of the profile was used for it
// beyond the failed handshake: callers drop whatever they derived from the
// profile (a cached certificate) and start again.
var ErrCardChanged = errors.New("another card than the expected one is in the reader")

// Profile is the public data of one card that never changes and that Open
// and the first secure-messaging handshake read from it (§1–§6): the chip
// family and the selection that works, the chip serial number and
// EF.ID_Servizi, the DH group, the IFD-CA key (the GET DATA answer as the
// card sent it) and EF.Int.Kpub. None of it is secret. A caller keeps it
// (package certcache) so that a later process opens the same card with
// OpenProfile and sends only what the operation needs.
//
// Nothing in a Profile is trusted beyond what the card confirms: the
// handshake of OpenProfile's Card fails on the card's side when the DH
// group or the IFD-CA key is not the card's, and device authentication
// (§6.3) checks that the chip holds the private half of ChipKey and
// answers with SerialICC; a mismatch makes the Card identify the card again
// (ErrCardChanged when it is another one).
type Profile struct {
	ATR       []byte     // the ATR the card had when the profile was taken
	Family    string     // Family.ID
	Select    SelectMode // how the IAS root was selected
	DH        DHStyle    // the GET DATA template that gave the DH group
	SerialICC []byte     // EF.SN.ICC, 12 bytes
	IDServizi string     // EF.ID_Servizi, 12 characters
	DHG       []byte     // the DH group as the card sent it (DAPP hashes these bytes)
	DHP       []byte
	DHQ       []byte
	CAKey     []byte // the answer to GET DATA of the IFD-CA key 0x84 (§3.3)
	ChipKey   []byte // EF.Int.Kpub (1004), the DER of the chip key 0x82
}

// PAN returns hex(SerialICC[5:11]) in upper case, as Card.PAN does.
func (p *Profile) PAN() string {
	c := Card{snICC: p.SerialICC}
	return c.panString()
}

// Profile returns the card's Profile when everything in it is known
// (after Open and one secure-messaging handshake, or Prepare); ok is false
// otherwise. It sends nothing.
func (c *Card) Profile() (p Profile, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.group == nil || c.caRaw == nil || c.chip == nil || len(c.snICC) != snICCSize || c.family.ID == "" {
		return Profile{}, false
	}
	return Profile{
		ATR: slices.Clone(c.atr), Family: c.family.ID, Select: c.sel, DH: c.dhStyle,
		SerialICC: slices.Clone(c.snICC), IDServizi: string(c.idServizi),
		DHG: slices.Clone(c.group.g), DHP: slices.Clone(c.group.p), DHQ: slices.Clone(c.group.q),
		CAKey: slices.Clone(c.caRaw), ChipKey: slices.Clone(c.chip.der),
	}, true
}

// lookupFamily returns the row with the given ID.
func lookupFamily(id string) (Family, bool) {
	for _, f := range families {
		if f.ID == id {
			f.ATR, f.ATRMask = slices.Clone(f.ATR), slices.Clone(f.ATRMask)
			return f, true
		}
	}
	return Family{}, false
}

// OpenProfile returns the card behind t as described by p without sending
// anything: the Card answers PAN, SerialICC, IDServizi and Family from p,
// and the first operation that needs the card runs with p's DH group,
// IFD-CA key and chip key (a login costs SELECT CIE, DH, DAPP and VERIFY).
// Until device authentication succeeded, the card is only presumed to be
// p's: when the handshake fails because of the card's answers (not the
// transport), or when an operation without secure messaging comes first,
// the Card identifies the card as Open does and compares EF.SN.ICC; another
// card, or one that cannot be identified, gives ErrCardChanged. After a
// failed handshake, the same serial number (which anyone can read and copy)
// is not enough: the chip key read afresh must be the profile's, else
// ErrCardChanged before any PIN is sent; the handshake is then run once
// more with the data read afresh.
// atr must be p's ATR (the reader's ATR is a cheap first check); p must
// be complete and well-formed, else the error says why and the caller
// uses Open.
func OpenProfile(t apdu.Transport, atr []byte, p Profile, opts *Options) (*Card, error) {
	if t == nil {
		return nil, errors.New("cie: opening card: nil transport")
	}
	if !bytes.Equal(atr, p.ATR) {
		return nil, errors.New("cie: opening card from its profile: the ATR differs")
	}
	c, err := newCard(t, atr, opts)
	if err != nil {
		return nil, err
	}
	if err := c.applyProfile(p); err != nil {
		return nil, fmt.Errorf("cie: opening card from its profile: %w", err)
	}
	c.presumed = true
	return c, nil
}

// applyProfile loads p's data into c, checking it like the card's answers.
func (c *Card) applyProfile(p Profile) error {
	fam, ok := lookupFamily(p.Family)
	switch {
	case !ok:
		return fmt.Errorf("unknown family %q", p.Family)
	case p.Select != SelectIAS && p.Select != SelectMF:
		return fmt.Errorf("bad selection mode %d", p.Select)
	case p.DH != DHSeparate && p.DH != DHCombined:
		return fmt.Errorf("bad DH style %d", p.DH)
	case len(p.SerialICC) != snICCSize:
		return fmt.Errorf("EF.SN.ICC of %d bytes", len(p.SerialICC))
	case len(p.IDServizi) != idServiziSize:
		return fmt.Errorf("EF.ID_Servizi of %d bytes", len(p.IDServizi))
	}
	grp, err := newDHGroup(slices.Clone(p.DHG), slices.Clone(p.DHP), slices.Clone(p.DHQ))
	if err != nil {
		return err
	}
	ca, err := parseCAKey(p.CAKey)
	if err != nil {
		return err
	}
	// The CV certificate (an RSA private operation, ~5 ms) is signed at the
	// first handshake, not here: presenting a card must stay cheap.
	chip, err := parseRSAPublicKeyFile(p.ChipKey)
	if err != nil {
		return err
	}
	c.family, c.sel, c.dhStyle = fam, p.Select, p.DH
	c.snICC, c.idServizi = slices.Clone(p.SerialICC), []byte(p.IDServizi)
	c.group, c.ca, c.caRaw, c.cvCert, c.chip = grp, ca, slices.Clone(p.CAKey), nil, chip
	return nil
}

// dropPublicData forgets the public data read from the card or a profile,
// so that the next use reads it again.
func (c *Card) dropPublicData() {
	c.group, c.ca, c.caRaw, c.cvCert, c.chip, c.servizi, c.efDH = nil, nil, nil, nil, nil, nil, nil
	c.dhStyle, c.noDHStyle = 0, false
}

// confirm makes sure a Card opened from a profile is the profile's card,
// by identifying it as Open does (6 APDUs). Operations that do not run
// device authentication call it before they trust anything of the profile.
func (c *Card) confirm(ctx context.Context) error {
	if !c.presumed {
		return nil
	}
	want := slices.Clone(c.snICC)
	if err := c.identify(ctx); err != nil {
		if !errors.Is(err, ErrUnsupportedCard) {
			return err // the transport or the context: nothing known of the card
		}
		// Not a CIE, or not one this package can identify: whatever it
		// is, it is not the profile's card.
		c.presumed = false
		c.dropPublicData()
		c.log.InfoContext(ctx, "cie: the card in the reader is not the profile's and cannot be identified")
		return fmt.Errorf("%w: %w", ErrCardChanged, err)
	}
	c.presumed = false
	if !bytes.Equal(c.snICC, want) {
		c.dropPublicData()
		c.log.InfoContext(ctx, "cie: another card than the profile's is in the reader")
		return ErrCardChanged
	}
	return nil
}

// profileMismatch reports whether a failed handshake of a presumed card
// may come from the card not being the profile's: anything but a failure
// of the transport or the context (a card that refuses a command, a
// secure-messaging channel that does not work because the DH group or the
// keys are another card's, an answer that does not parse, a failed chip
// authentication). Identifying the card costs plain reads only, so a
// transport error mistaken for a mismatch only repeats itself there.
func profileMismatch(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, apdu.ErrCardReset) && !errors.Is(err, apdu.ErrCardRemoved) && !errors.Is(err, apdu.ErrNoCard)
}
