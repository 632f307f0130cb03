package ciesim

import "encoding/hex"

// family is one row of the chip-family table (architecture.md "Chip
// families", cie-protocol.md §1.1): how the card answers to the reset, to
// SELECT of the IAS AID and to the DH GET DATA templates, and what EF.ATR
// holds (§1.3).
type family struct {
	id, name   string
	atr        []byte
	selectIAS  bool   // SELECT IAS AID works (else 6A82; SELECT MF always works)
	combinedDH bool   // answers only the combined DH template (else only the three separate ones)
	efATR      []byte // EF.ATR (2F01) content, holding the §1.3 string of the vendor
	foreign    bool   // not a CIE: a generic card that answers 6A82 to every SELECT
}

// EF.ATR strings searched by the pagoPA SDKs (cie-protocol.md §1.3), in
// their order of checking, and the EF.ATR contents built around them.
var (
	efATRActalisMark = mustHexSpaced("80 00 43 01 B8 46 04 10 10 10 10 47 03 94 01 E0 7F 66 08 02 02 04 D6 02 02 07 E3 E0 10 02 02 01 04 02 02 00 E6 02 02 00 E6 02 02 00 E6 78 08 06 06 2B 81 22 F8 78 02")
	efATRSTMark      = mustHexSpaced("80 00 43 01 B9 46 04 00 00 00 10 47 03 94 01 81 4F 0C A0 00 00 00 95 00 00 00 00 8A 00 01 E0 10 02 02 00 FF 02 02 00 FF 02 02 01 00 02 02 01 00 78 08 06 06 2B 81 22 F8 78 02 82 02 90 00")
	efATRNXPMark     = mustHexSpaced("80 00 43 01 B8 46 04 10 10 10 10 47 03 94")
	efATRGemalto2    = mustHexSpaced("47 03 94 41 C0")
	efATRGemaltoMark = []byte("IasEccRoot")

	// Contents: the mark plus plausible IAS-ECC tails that do not contain a
	// mark checked earlier (the NXP content stops short of the Actalis
	// string: 01 C0 instead of 01 E0).
	efATRActalis  = concat(efATRActalisMark, mustHexSpaced("82 02 90 00"))
	efATRST       = efATRSTMark
	efATRNXP      = concat(efATRNXPMark, mustHexSpaced("01 C0 7F 66 08 02 02 04 D6 02 02 04 D6 78 08 06 06 2B 81 22 F8 78 02 82 02 90 00"))
	efATRGem2     = concat(mustHexSpaced("80 00 43 01 BC 46 04 00 00 04 00"), efATRGemalto2, mustHexSpaced("7F 66 08 02 02 04 00 02 02 04 00 78 08 06 06 2B 81 22 F8 78 02 82 02 90 00"))
	efATRGemalto  = concat(mustHexSpaced("80 00 43 01 BC 46 04 00 00 04 00 47 03 94 01 80 4F 0A"), efATRGemaltoMark, mustHexSpaced("78 08 06 06 2B 81 22 F8 78 02 82 02 90 00"))
	efATRForeign  = mustHexSpaced("80 00 43 01 00")
	jcop4ATRStart = "3B 8F 80 01 80 31 80 65 49 54 4A 34 "
	jcop4ATREnd   = " 12 0F FF 82 90 00 "
)

// families is the card-side table. The ATRs are those of architecture.md;
// their TCKs are checked by a test.
var families = []family{
	{id: "nxp", name: "NXP", atr: mustHexSpaced("3B 8E 80 01 80 31 80 65 49 54 4E 58 50 12 0F FF 82 90 F0"), efATR: efATRNXP},
	{id: "gemalto", name: "Gemalto", atr: mustHexSpaced("3B 8F 80 01 80 31 80 65 B0 85 04 00 11 12 0F FF 82 90 00 8A"), selectIAS: true, combinedDH: true, efATR: efATRGemalto},
	{id: "gemalto2", name: "Gemalto2", atr: mustHexSpaced("3B 8F 80 01 80 31 80 65 B0 85 03 00 EF 12 0F FF 82 90 00 73"), selectIAS: true, efATR: efATRGem2},
	{id: "stm", name: "STM", atr: mustHexSpaced("3B 8B 80 01 80 66 47 50 00 B8 00 7F 82 90 00 2E"), selectIAS: true, efATR: efATRST},
	{id: "stm2", name: "STM2", atr: mustHexSpaced("3B 80 80 01 01"), selectIAS: true, efATR: efATRST},
	{id: "stm3", name: "STM3", atr: mustHexSpaced("3B 8B 80 01 80 66 47 50 00 B8 00 94 82 90 00 C5"), selectIAS: true, efATR: efATRST},
	{id: "actalis", name: "Actalis", atr: mustHexSpaced(jcop4ATRStart + "41" + jcop4ATREnd + "88"), efATR: efATRActalis},
	{id: "actalis2023", name: "Actalis 2023", atr: mustHexSpaced(jcop4ATRStart + "43" + jcop4ATREnd + "8A"), efATR: efATRActalis},
	{id: "actalis-b946", name: "Actalis B946", atr: mustHexSpaced(jcop4ATRStart + "4C" + jcop4ATREnd + "85"), efATR: efATRActalis},
	{id: "bit4id", name: "Bit4id", atr: mustHexSpaced(jcop4ATRStart + "42" + jcop4ATREnd + "8B"), efATR: efATRNXP},
	{id: "bit4id2023", name: "Bit4id 2023", atr: mustHexSpaced(jcop4ATRStart + "44" + jcop4ATREnd + "8D"), efATR: efATRNXP},
	{id: "bit4id-b9547", name: "Bit4id B9547", atr: mustHexSpaced(jcop4ATRStart + "49" + jcop4ATREnd + "80"), efATR: efATRNXP},
	// A generic T=1 card with historical bytes "TESTCARD": not a CIE.
	{id: "foreign", name: "Foreign (not a CIE)", atr: mustHexSpaced("3B 88 80 01 54 45 53 54 43 41 52 44 0B"), efATR: efATRForeign, foreign: true},
}

// FamilyInfo describes one simulated chip family.
type FamilyInfo struct {
	ID, Name string
	ATR      []byte
	// SelectIAS reports whether SELECT of the IAS AID works (else only
	// SELECT MF); CombinedDH whether the DH group is answered to the
	// combined GET DATA template only (else to the three separate ones).
	SelectIAS, CombinedDH bool
	// Foreign marks the non-CIE card.
	Foreign bool
}

// Families lists the simulated families in table order (DefaultFamily is
// the one of an empty Config.Family).
func Families() []FamilyInfo {
	out := make([]FamilyInfo, 0, len(families))
	for _, f := range families {
		out = append(out, FamilyInfo{ID: f.id, Name: f.name, ATR: append([]byte(nil), f.atr...), SelectIAS: f.selectIAS, CombinedDH: f.combinedDH, Foreign: f.foreign})
	}
	return out
}

// DefaultFamily is the family of a Config with an empty Family.
const DefaultFamily = "gemalto"

func lookupFamily(id string) (*family, bool) {
	if id == "" {
		id = DefaultFamily
	}
	for i := range families {
		if families[i].id == id {
			return &families[i], true
		}
	}
	return nil, false
}

// mustHexSpaced decodes hex written with spaces; it panics on a typo in a
// table above (caught by every test).
func mustHexSpaced(s string) []byte {
	out := make([]byte, 0, len(s)/3+1)
	buf := make([]byte, 0, 2)
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			continue
		}
		buf = append(buf, s[i])
		if len(buf) == 2 {
			b, err := hex.DecodeString(string(buf))
			if err != nil {
				panic("ciesim: bad hex in table: " + s)
			}
			out = append(out, b[0])
			buf = buf[:0]
		}
	}
	if len(buf) != 0 {
		panic("ciesim: odd hex in table: " + s)
	}
	return out
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
