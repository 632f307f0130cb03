package doctor

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// Support is a three-way answer: a capability that is present, absent, or
// that could not be determined.
type Support int

// The answers. Unknown is the zero value: nothing is claimed without
// evidence.
const (
	Unknown Support = iota
	Supported
	NotSupported
)

// String returns "unknown", "yes" or "no".
func (s Support) String() string {
	switch s {
	case Supported:
		return "yes"
	case NotSupported:
		return "no"
	}
	return "unknown"
}

// ExtendedLength is what is known about a reader carrying extended-length
// APDUs (ISO/IEC 7816-4 §5.1: Lc up to 65535 and Le up to 65536, encoded
// on 3 bytes), and how it was found.
type ExtendedLength struct {
	Support Support
	How     string
}

// ExtendedFromMaxAPDU interprets the reader driver's PC/SC v2 part 10
// property dwMaxAPDUDataSize (pcsc.PropMaxAPDUDataSize): 0 means short
// APDUs only; libccid derives it from the CCID descriptor's exchange level.
func ExtendedFromMaxAPDU(max uint32) ExtendedLength {
	if max == 0 {
		return ExtendedLength{NotSupported, "the reader driver reports short APDUs only (dwMaxAPDUDataSize 0)"}
	}
	return ExtendedLength{Supported, fmt.Sprintf("the reader driver reports APDU data fields up to %d bytes (dwMaxAPDUDataSize)", max)}
}

// The probe's commands (cie-protocol.md §2, §3.1, §3.4): plain SELECTs,
// then a READ BINARY of the public EF.Int.Kpub (the chip's RSA public key,
// about 270 bytes, readable without any condition) with an extended Le of
// 512, so that a whole answer is also longer than any short APDU allows.
var (
	probeSelectCIE = []byte{0x00, 0xA4, 0x04, 0x0C, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x00, 0x39}
	probeSelectEF  = []byte{0x00, 0xA4, 0x02, 0x0C, 0x02, 0x10, 0x04}
	probeRead      = []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x02, 0x00}
)

// ProbeExtended finds out whether the reader carries extended-length APDUs
// by sending one to the CIE in it: SELECT DF_CIE, SELECT EF.Int.Kpub, and
// READ BINARY with a 3-byte Le, in one transaction when t is an
// apdu.Transactor. Nothing it sends touches a PIN or a key; the data read
// is public and discarded. The application SELECT ends another program's
// secure-messaging session with the card, as any CIE program's does, so
// the caller uses it only when the driver does not tell (see
// ExtendedFromMaxAPDU) and only on a card it knows is a CIE.
//
// The answer is Supported when the card returns the file's data through
// the extended command, NotSupported when the reader fails the exchange
// (PC/SC error) while it carried the short SELECTs, and Unknown when the
// card itself refuses the extended form or anything else goes wrong.
func ProbeExtended(ctx context.Context, t apdu.Transport) ExtendedLength {
	if tr, ok := t.(apdu.Transactor); ok {
		if err := tr.BeginTransaction(ctx); err != nil {
			return ExtendedLength{Unknown, "the card could not be reserved for the test: " + err.Error()}
		}
		defer tr.EndTransaction(context.Background())
	}
	for _, s := range []struct {
		cmd  []byte
		what string
	}{{probeSelectCIE, "SELECT of the CIE application"}, {probeSelectEF, "SELECT of EF.Int.Kpub"}} {
		r, err := t.Transmit(ctx, s.cmd)
		if err != nil {
			return ExtendedLength{Unknown, "the " + s.what + " failed: " + err.Error()}
		}
		if sw := swOf(r); sw != apdu.SWOK {
			return ExtendedLength{Unknown, fmt.Sprintf("the card answered %04X to the %s", uint16(sw), s.what)}
		}
	}
	r, err := t.Transmit(ctx, probeRead)
	switch {
	case errors.Is(err, apdu.ErrCardRemoved), errors.Is(err, apdu.ErrNoCard), errors.Is(err, apdu.ErrCardReset), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ExtendedLength{Unknown, "the test was interrupted: " + err.Error()}
	case err != nil:
		return ExtendedLength{NotSupported, "the reader failed an extended-length READ BINARY after carrying short commands: " + err.Error()}
	}
	sw, n := swOf(r), len(r)-2
	clear(r)
	if (sw == apdu.SWOK || sw == apdu.SWEndOfFile) && n > 0 {
		return ExtendedLength{Supported, fmt.Sprintf("an extended-length READ BINARY returned %d bytes", n)}
	}
	return ExtendedLength{Unknown, fmt.Sprintf("the card answered %04X to an extended-length READ BINARY, so the reader could not be tested with it", uint16(sw))}
}

// swOf returns the status word at the end of a response (0 when there is
// none).
func swOf(r []byte) apdu.StatusWord {
	if len(r) < 2 {
		return 0
	}
	return apdu.StatusWord(uint16(r[len(r)-2])<<8 | uint16(r[len(r)-1]))
}

// ExtendedCheck is the doctor line for a reader's extended-length
// support. CIE Desktop keeps every command short (command chaining,
// cie-protocol.md §5.5), so a reader without it is not a problem.
func ExtendedCheck(reader string, e ExtendedLength) Check {
	c := Check{Name: "reader " + reader + " extended-length APDUs", Status: Info, Detail: e.Support.String() + ": " + e.How}
	if e.Support == Supported {
		c.Status = OK
	}
	if e.Support == NotSupported {
		c.Detail += " (CIE Desktop does not need them)"
	}
	return c
}
