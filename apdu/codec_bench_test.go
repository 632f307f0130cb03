package apdu

import (
	"context"
	"testing"
)

// BenchmarkAPDU measures the codec and the decorators every APDU of a CIE
// session goes through, with benchstat-friendly names (op=…/…=…).
func BenchmarkAPDU(b *testing.B) {
	commands := []struct {
		name string
		cmd  Command
	}{
		{"select-ef", Command{INS: 0xA4, P1: 0x02, P2: 0x0C, Data: []byte{0x10, 0x01}}},
		{"read-binary", Command{INS: 0xB0, Ne: 256}},
		{"sm-max", Command{CLA: 0x0C, INS: 0xD6, Data: make([]byte, 255), Ne: 256}},
	}
	for _, c := range commands {
		raw, err := c.cmd.Bytes()
		if err != nil {
			b.Fatal(err)
		}
		b.Run("op=encode/cmd="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.cmd.Bytes(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("op=parse/cmd="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseCommand(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	rsp := append(make([]byte, 256), 0x90, 0x00)
	b.Run("op=parse/rsp=data-256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseResponse(rsp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=chain/data=266", func(b *testing.B) {
		// MSE SET KAT with Y_IFD: 266 bytes in two pieces.
		c := Command{INS: 0x22, P1: 0x41, P2: 0xA6, Data: make([]byte, 266)}
		b.ReportAllocs()
		for b.Loop() {
			if n := len(Chain(c, 255)); n != 2 {
				b.Fatalf("%d pieces", n)
			}
		}
	})
	// A 264-byte answer delivered as 61 00, then 256 bytes + 61 08, then 8
	// bytes + 90 00: a signature under secure messaging.
	b.Run("op=get-response/chunks=2", func(b *testing.B) {
		first := append(make([]byte, 256), 0x61, 0x08)
		last := append(make([]byte, 8), 0x90, 0x00)
		step := 0
		gr := NewGetResponse(TransportFunc(func(_ context.Context, cmd []byte) ([]byte, error) {
			step++
			switch step % 3 {
			case 1:
				return []byte{0x61, 0x00}, nil
			case 2:
				return first, nil
			}
			return last, nil
		}))
		cmd := []byte{0x0C, 0x88, 0x00, 0x00, 0x10, 0x87, 0x09, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x8E, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x00}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			r, err := gr.Transmit(ctx, cmd)
			if err != nil || len(r) != 266 {
				b.Fatalf("%d bytes, %v", len(r), err)
			}
		}
	})
}
