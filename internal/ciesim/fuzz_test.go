package ciesim

import (
	"context"
	"testing"
)

// FuzzTransmit feeds random APDU sequences to a card: it must never panic,
// and must always answer at least a status word. The input is split into
// APDUs by a leading length byte each, so that a sequence can reach states
// (a selected DF, a chain, a pending response) that one APDU cannot.
func FuzzTransmit(f *testing.F) {
	seeds := []string{
		"00 A4 04 0C 06 A0 00 00 00 00 39",
		"00 A4 00 00",
		"00 A4 02 04 02 10 01",
		"00 B0 00 00 00",
		"00 B0 81 00 0C",
		"00 CB 3F FF 0A 4D 08 70 06 BF A1 01 02 A3 80",
		"00 CB 3F FF 0B 4D 09 70 07 BF A0 04 03 7F 49 80",
		"10 22 41 A6 03 80 01 9B",
		"00 22 41 A4 06 80 01 02 84 01 83",
		"00 88 00 00 04 01 02 03 04",
		"00 C0 00 00 00",
		"0C 20 00 81 0A 8E 08 00 00 00 00 00 00 00 00 00",
		"00 20 00 81 08 31 32 33 34 35 36 37 38",
		"00 84 00 00 08",
		"00 2A 00 AE 02 7F 21",
	}
	for _, s := range seeds {
		b := mustHexSpaced(s)
		f.Add(append([]byte{byte(len(b))}, b...))
	}
	f.Add(append([]byte{11}, mustHexSpaced("00 A4 04 0C 06 A0 00 00 00 00 39 0F 00 CB 3F FF 0A 4D 08 70 06 BF A1 01 02 A3 80 05 00 C0 00 00 00")...))
	card := newTestCard(f, "gemalto")
	cards := []*Card{card, newTestCard(f, "nxp"), newTestCard(f, "foreign")}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, c := range cards {
			c.Reset()
			rest := in
			for len(rest) > 0 {
				n := int(rest[0])
				rest = rest[1:]
				n = min(n, len(rest))
				cmd := rest[:n]
				rest = rest[n:]
				resp, err := c.Transmit(context.Background(), cmd)
				if err != nil {
					t.Fatalf("Transmit(% X): %v", cmd, err)
				}
				if len(resp) < 2 {
					t.Fatalf("Transmit(% X) = % X: no status word", cmd, resp)
				}
			}
		}
	})
}
