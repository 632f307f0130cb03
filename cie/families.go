package cie

import (
	"bytes"
	"fmt"
	"slices"
)

// SelectMode says how the IAS root (where EF.SN.ICC, EF.DH and EF.ATR live)
// is selected on a chip family (§2).
type SelectMode int

const (
	// SelectIAS selects the IAS-ECC application by its AID
	// (00 A4 04 0C 0D A0 00 00 00 30 80 00 00 00 09 81 60 01).
	SelectIAS SelectMode = iota + 1
	// SelectMF selects the master file (00 A4 00 00): NXP and the JCOP4
	// applets answer 6A82 to the IAS AID.
	SelectMF
)

// String returns "IAS" or "MF".
func (m SelectMode) String() string {
	switch m {
	case SelectIAS:
		return "IAS"
	case SelectMF:
		return "MF"
	}
	return fmt.Sprintf("SelectMode(%d)", int(m))
}

// DHStyle says which GET DATA template a chip family answers for the DH
// group (§3.3).
type DHStyle int

const (
	// DHSeparate fetches g, p and q with three GET DATA commands.
	DHSeparate DHStyle = iota + 1
	// DHCombined fetches g, p and q with one GET DATA (4D 08 70 06 BF A1 01 02 A3 80).
	DHCombined
)

// String returns "separate" or "combined".
func (s DHStyle) String() string {
	switch s {
	case DHSeparate:
		return "separate"
	case DHCombined:
		return "combined"
	}
	return fmt.Sprintf("DHStyle(%d)", int(s))
}

// Family is one row of the chip-family table (architecture.md "Chip
// families", cie-protocol.md §1.1): how the chip is recognised and the two
// protocol choices that differ between vendors. Everything else (SM, DAPP,
// PIN, signing) is the same on every family.
type Family struct {
	ID     string     // stable identifier, e.g. "gemalto"
	Name   string     // human name, e.g. "Gemalto"
	Select SelectMode // how the IAS root is selected
	DH     DHStyle    // which DH GET DATA template is tried first
	// ATR is the pattern the whole ATR is compared with, byte by byte, where
	// ATRMask has 0xFF; ATRMask has 0x00 at the TCK and, for the generic
	// JCOP4 row, at the variant letter.
	ATR, ATRMask []byte
}

// MatchATR reports whether atr has the family's length and equals its
// pattern on every byte the mask keeps.
func (f Family) MatchATR(atr []byte) bool {
	if len(atr) != len(f.ATR) || len(f.ATRMask) != len(f.ATR) {
		return false
	}
	for i, b := range atr {
		if (b^f.ATR[i])&f.ATRMask[i] != 0 {
			return false
		}
	}
	return true
}

// String returns the family name.
func (f Family) String() string { return f.Name }

// atrPattern is an ATR pattern with its mask.
type atrPattern struct{ pattern, mask []byte }

// atr builds an ATR pattern with a mask that ignores the last byte (TCK).
func atr(b ...byte) atrPattern {
	mask := bytes.Repeat([]byte{0xFF}, len(b))
	mask[len(mask)-1] = 0
	return atrPattern{b, mask}
}

// jcop4 builds the ATR of an "ITJ4<letter>" applet on NXP JCOP4 (§1.1).
func jcop4(letter, tck byte) atrPattern {
	return atr(0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0x49, 0x54, 0x4A, 0x34, letter,
		0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00, tck)
}

// jcop4LetterIndex is the position of the variant letter in a JCOP4 ATR.
const jcop4LetterIndex = 12

func family(id, name string, sel SelectMode, dh DHStyle, a atrPattern) Family {
	return Family{ID: id, Name: name, Select: sel, DH: dh, ATR: a.pattern, ATRMask: a.mask}
}

// families is the ordered table of architecture.md; the first row whose
// pattern matches wins. The generic JCOP4 row comes last and ignores the
// variant letter, so that a future ITJ4? applet is still recognised.
var families = func() []Family {
	fs := []Family{
		family("nxp", "NXP", SelectMF, DHSeparate,
			atr(0x3B, 0x8E, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0x49, 0x54, 0x4E, 0x58, 0x50, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0xF0)),
		family("gemalto", "Gemalto", SelectIAS, DHCombined,
			atr(0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x00, 0x11, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00, 0x8A)),
		family("gemalto2", "Gemalto2", SelectIAS, DHSeparate,
			atr(0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x03, 0x00, 0xEF, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00, 0x73)),
		family("stm", "STM", SelectIAS, DHSeparate,
			atr(0x3B, 0x8B, 0x80, 0x01, 0x80, 0x66, 0x47, 0x50, 0x00, 0xB8, 0x00, 0x7F, 0x82, 0x90, 0x00, 0x2E)),
		family("stm2", "STM2", SelectIAS, DHSeparate,
			atr(0x3B, 0x80, 0x80, 0x01, 0x01)),
		family("stm3", "STM3", SelectIAS, DHSeparate,
			atr(0x3B, 0x8B, 0x80, 0x01, 0x80, 0x66, 0x47, 0x50, 0x00, 0xB8, 0x00, 0x94, 0x82, 0x90, 0x00, 0xC5)),
		family("actalis", "Actalis", SelectMF, DHSeparate, jcop4('A', 0x88)),
		family("actalis2023", "Actalis 2023", SelectMF, DHSeparate, jcop4('C', 0x8A)),
		family("actalis-b946", "Actalis B946", SelectMF, DHSeparate, jcop4('L', 0x85)),
		family("bit4id", "Bit4id", SelectMF, DHSeparate, jcop4('B', 0x8B)),
		family("bit4id2023", "Bit4id 2023", SelectMF, DHSeparate, jcop4('D', 0x8D)),
		family("bit4id-b9547", "Bit4id B9547", SelectMF, DHSeparate, jcop4('I', 0x80)),
	}
	generic := family("jcop4", "JCOP4 (unknown applet)", SelectMF, DHSeparate, jcop4(0, 0))
	generic.ATRMask[jcop4LetterIndex] = 0
	return append(fs, generic)
}()

// Families returns a copy of the chip-family table in matching order: the
// twelve known families of architecture.md, then the generic JCOP4 row.
func Families() []Family {
	out := make([]Family, len(families))
	for i, f := range families {
		f.ATR = slices.Clone(f.ATR)
		f.ATRMask = slices.Clone(f.ATRMask)
		out[i] = f
	}
	return out
}

// FamilyByATR returns the first family of Families whose pattern matches
// atr (ordered, whole-ATR, masked comparison). A match is a hint only: Open
// still confirms the card with SELECT CIE.
func FamilyByATR(atr []byte) (Family, bool) {
	for _, f := range families {
		if f.MatchATR(atr) {
			f.ATR, f.ATRMask = slices.Clone(f.ATR), slices.Clone(f.ATRMask)
			return f, true
		}
	}
	return Family{}, false
}

// familyByID returns the row with the given ID.
func familyByID(id string) Family {
	for _, f := range families {
		if f.ID == id {
			return f
		}
	}
	panic("cie: no family " + id)
}

// efATRSignatures are the byte strings searched in EF.ATR (2F01) when the
// ATR is unknown, in the order of §1.3 (the NXP string is a prefix of the
// Actalis one, so order matters).
var efATRSignatures = []struct {
	familyID string
	content  []byte
}{
	{"actalis", mustHex("80004301b846041010101047039401e07f6608020204d6020207e3e01002020104020200e6020200e6020200e6780806062b8122f87802")},
	{"stm", mustHex("80004301b946040000001047039401814f0ca000000095000000008a0001e010020200ff020200ff0202010002020100780806062b8122f8780282029000")},
	{"nxp", mustHex("80004301b8460410101010470394")},
	{"gemalto2", mustHex("47039441c0")},
	{"gemalto", []byte("IasEccRoot")},
}

// familyByEFATR matches the content of EF.ATR against §1.3.
func familyByEFATR(content []byte) (Family, bool) {
	for _, s := range efATRSignatures {
		if bytes.Contains(content, s.content) {
			return familyByID(s.familyID), true
		}
	}
	return Family{}, false
}
