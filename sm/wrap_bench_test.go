package sm

import (
	"fmt"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// BenchmarkSM measures the host's secure messaging of the commands and
// answers a CIE session exchanges: wrapping a plain command
// (ProtectCommand) and unwrapping the card's answer (UnprotectResponse,
// MAC check included), then the primitives under them. The names are
// benchstat keys (op=…/cmd=… or rsp=… or bytes=…):
//
//	go test -run '^$' -bench 'BenchmarkSM$' -count 10 ./sm | tee new.txt; benchstat old.txt new.txt
func BenchmarkSM(b *testing.B) {
	commands := []struct {
		name string
		cmd  apdu.Command
	}{
		{"verify-pin", apdu.Command{INS: 0x20, P2: 0x81, Data: []byte("12345678")}},
		{"read-binary", apdu.Command{INS: 0xB0, Ne: ChunkSize}},
		{"sign-digestinfo", apdu.Command{INS: 0x88, Data: make([]byte, 51), Ne: 256}},
		{"max-data", apdu.Command{INS: 0xD6, Data: make([]byte, ChunkSize)}},
	}
	for _, c := range commands {
		b.Run("op=wrap/cmd="+c.name, func(b *testing.B) {
			host, _ := pair()
			b.SetBytes(int64(len(c.cmd.Data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := host.ProtectCommand(c.cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	responses := []struct {
		name string
		data int
	}{
		{"status", 0},
		{"read-binary", ChunkSize},
		{"signature", 256},
	}
	for _, r := range responses {
		b.Run("op=unwrap/rsp="+r.name, func(b *testing.B) {
			host, card := pair()
			pr, err := card.ProtectResponse(apdu.Response{Data: make([]byte, r.data), SW: 0x9000})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(r.data))
			b.ReportAllocs()
			for b.Loop() {
				host.SetSSC(startSSC)
				if _, err := host.UnprotectResponse(pr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	kEnc, kMAC := vectorKeys()
	block := Pad(make([]byte, 255)) // 256 bytes
	enc, err := EncryptCBC(kEnc, block)
	if err != nil {
		b.Fatal(err)
	}
	primitives := []struct {
		name string
		f    func() error
	}{
		{"retail-mac", func() error { RetailMAC(kMAC, block); return nil }},
		{"encrypt-cbc", func() error { _, err := EncryptCBC(kEnc, block); return err }},
		{"decrypt-cbc", func() error { _, err := DecryptCBC(kEnc, enc); return err }},
	}
	for _, p := range primitives {
		b.Run(fmt.Sprintf("op=%s/bytes=%d", p.name, len(block)), func(b *testing.B) {
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
