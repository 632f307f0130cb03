package sm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// FuzzUnprotectResponse feeds card answers to the host side: it must never
// panic, and every failure must be one of the package's errors.
func FuzzUnprotectResponse(f *testing.F) {
	f.Add(unhex(f, sessionTable[1].protected), uint16(0x9000)) // valid at SSC …03
	f.Add(unhex(f, "871101ec3e92af83b497e7bd6fde3b418da024990290008e08380765f0264858e6"), uint16(0x9000))
	f.Add([]byte{}, uint16(0x63C2))
	f.Add(unhex(f, "8581ff00"), uint16(0x9000))
	f.Add(unhex(f, "8e08000000000000000099029000"), uint16(0x6A82))
	kEnc, kMAC := vectorKeys()
	f.Fuzz(func(t *testing.T, data []byte, sw uint16) {
		s := NewSession(kEnc, kMAC, [8]byte{7: 2})
		r, err := s.UnprotectResponse(apdu.Response{Data: data, SW: apdu.StatusWord(sw)})
		if err != nil {
			if !errors.Is(err, ErrMAC) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBareStatus) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if !s.Closed() {
				t.Fatal("session open after an error")
			}
			return
		}
		// A response the host accepts is one the card side produces byte for byte
		// unless its encoding is non-minimal; at least the status must survive.
		card := NewSession(kEnc, kMAC, [8]byte{7: 2})
		again, err := card.ProtectResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := NewSession(kEnc, kMAC, [8]byte{7: 2}).UnprotectResponse(again); err != nil || back.SW != r.SW || !bytes.Equal(back.Data, r.Data) {
			t.Fatalf("re-protected answer does not round-trip: %v", err)
		}
	})
}

// FuzzUnprotectCommand feeds protected commands to the card side: it must
// never panic, and failures must be ErrMAC or ErrMalformed (6988/6987).
func FuzzUnprotectCommand(f *testing.F) {
	for _, row := range sessionTable {
		if row.command {
			f.Add(unhex(f, row.protected))
		}
	}
	f.Add(unhex(f, "0cb0000003970180"))
	f.Add(unhex(f, "0c2000811d851101c0c020864ccce390b9b0b11267ff1a978e080d437728fb19a1a400"))
	f.Add(unhex(f, "0cb1000000000e970201008e08000000000000000000"))
	kEnc, kMAC := vectorKeys()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := apdu.ParseCommand(b)
		if err != nil {
			return
		}
		s := NewSession(kEnc, kMAC, startSSC)
		plain, err := s.UnprotectCommand(c)
		if err != nil {
			if !errors.Is(err, ErrMAC) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if plain.CLA&0x0C != 0 {
			t.Fatalf("plain CLA %02X keeps the SM bits", plain.CLA)
		}
	})
}
