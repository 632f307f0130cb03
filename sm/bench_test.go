package sm

import (
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// command231 is a chained-size command: 231 data bytes, the most one
// protected command carries.
func command231() apdu.Command {
	return apdu.Command{INS: 0x2A, P1: 0x00, P2: 0xAE, Data: make([]byte, ChunkSize), Ne: 256}
}

func BenchmarkProtectCommand231(b *testing.B) {
	host, _ := pair()
	c := command231()
	b.SetBytes(int64(len(c.Data)))
	for b.Loop() {
		if _, err := host.ProtectCommand(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnprotectCommand231(b *testing.B) {
	host, card := pair()
	pc, err := host.ProtectCommand(command231())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(ChunkSize)
	for b.Loop() {
		card.SetSSC(startSSC)
		if _, err := card.UnprotectCommand(pc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProtectResponse231(b *testing.B) {
	_, card := pair()
	r := apdu.Response{Data: make([]byte, ChunkSize), SW: 0x9000}
	b.SetBytes(ChunkSize)
	for b.Loop() {
		if _, err := card.ProtectResponse(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnprotectResponse231(b *testing.B) {
	host, card := pair()
	pr, err := card.ProtectResponse(apdu.Response{Data: make([]byte, ChunkSize), SW: 0x9000})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(ChunkSize)
	for b.Loop() {
		host.SetSSC(startSSC)
		if _, err := host.UnprotectResponse(pr); err != nil {
			b.Fatal(err)
		}
	}
}
