package apdu

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// exchange is one expected command of a strict, ordered script and the
// answer to it.
type exchange struct{ cmd, answer []byte }

// script fails the test on any command that is not the next one expected.
type script struct {
	t    *testing.T
	want []exchange
	n    int
}

func (s *script) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	s.t.Helper()
	if s.n >= len(s.want) {
		s.t.Fatalf("unexpected command #%d %x", s.n+1, cmd)
	}
	e := s.want[s.n]
	s.n++
	if !bytes.Equal(cmd, e.cmd) {
		s.t.Fatalf("command #%d = %x, want %x", s.n, cmd, e.cmd)
	}
	return e.answer, nil
}

func (s *script) done() {
	s.t.Helper()
	if s.n != len(s.want) {
		s.t.Errorf("%d of %d scripted commands sent", s.n, len(s.want))
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestGetResponse(t *testing.T) {
	getData := unhex(t, "00cb3fff06 4d04a6029100")
	readBinary := unhex(t, "00b0000000")
	for _, tc := range []struct {
		name   string
		cmd    []byte
		script []exchange
		want   []byte
	}{
		{"9000 passes through", readBinary, []exchange{
			{readBinary, unhex(t, "01029000")},
		}, unhex(t, "01029000")},
		{"error passes through", readBinary, []exchange{
			{readBinary, unhex(t, "6a82")},
		}, unhex(t, "6a82")},
		{"61xx once", getData, []exchange{
			{getData, unhex(t, "6110")},
			{unhex(t, "00c0000010"), cat(data(16), unhex(t, "9000"))},
		}, cat(data(16), unhex(t, "9000"))},
		{"6100 means 256, then 61xx again, data kept from every answer", getData, []exchange{
			{getData, unhex(t, "aa6100")},
			{unhex(t, "00c0000000"), cat(data(256), unhex(t, "6105"))},
			{unhex(t, "00c0000005"), unhex(t, "01020304059000")},
		}, cat([]byte{0xaa}, data(256), unhex(t, "01020304059000"))},
		{"61xx ending in an error status", getData, []exchange{
			{getData, unhex(t, "6102")},
			{unhex(t, "00c0000002"), unhex(t, "01026282")},
		}, unhex(t, "01026282")},
		{"6Cxx resends with Ne xx", readBinary, []exchange{
			{readBinary, unhex(t, "6c20")},
			{unhex(t, "00b0000020"), cat(data(32), unhex(t, "9000"))},
		}, cat(data(32), unhex(t, "9000"))},
		{"6C00 means Ne 256", unhex(t, "00b0000010"), []exchange{
			{unhex(t, "00b0000010"), unhex(t, "6c00")},
			{unhex(t, "00b0000000"), unhex(t, "9000")},
		}, unhex(t, "9000")},
		{"6Cxx keeps the data of a case 4 command", unhex(t, "0088000002 abcd 00"), []exchange{
			{unhex(t, "0088000002abcd00"), unhex(t, "6c04")},
			{unhex(t, "0088000002abcd04"), unhex(t, "010203049000")},
		}, unhex(t, "010203049000")},
		{"6Cxx on a case 3 command adds Le", unhex(t, "0088000002 abcd"), []exchange{
			{unhex(t, "0088000002abcd"), unhex(t, "6c04")},
			{unhex(t, "0088000002abcd04"), unhex(t, "010203049000")},
		}, unhex(t, "010203049000")},
		{"6Cxx only once", readBinary, []exchange{
			{readBinary, unhex(t, "6c20")},
			{unhex(t, "00b0000020"), unhex(t, "6c10")},
		}, unhex(t, "6c10")},
		{"6Cxx then 61xx", readBinary, []exchange{
			{readBinary, unhex(t, "6c08")},
			{unhex(t, "00b0000008"), unhex(t, "6104")},
			{unhex(t, "00c0000004"), unhex(t, "010203049000")},
		}, unhex(t, "010203049000")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{t: t, want: tc.script}
			got, err := NewGetResponse(s).Transmit(context.Background(), tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			s.done()
			if !bytes.Equal(got, tc.want) {
				t.Errorf("answer %x, want %x", got, tc.want)
			}
		})
	}
}

func TestGetResponseErrors(t *testing.T) {
	ctx := context.Background()
	calls := 0
	failing := TransportFunc(func(context.Context, []byte) ([]byte, error) {
		calls++
		if calls == 2 {
			return nil, ErrCardRemoved
		}
		return []byte{0x61, 0x10}, nil
	})
	if _, err := NewGetResponse(failing).Transmit(ctx, []byte{0, 0xCB, 0x3F, 0xFF}); !errors.Is(err, ErrCardRemoved) || calls != 2 {
		t.Errorf("transport error in the loop: %v after %d calls, want ErrCardRemoved after 2", err, calls)
	}
	short := TransportFunc(func(context.Context, []byte) ([]byte, error) { return []byte{0x90}, nil })
	if _, err := NewGetResponse(short).Transmit(ctx, []byte{0, 0xB0, 0, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("1-byte answer: %v, want ErrMalformed", err)
	}
	calls = 0
	endless := TransportFunc(func(context.Context, []byte) ([]byte, error) {
		calls++
		return append(make([]byte, 256), 0x61, 0x00), nil
	})
	if _, err := NewGetResponse(endless).Transmit(ctx, []byte{0, 0xB0, 0, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("endless 61xx: %v, want ErrMalformed", err)
	}
	if calls > MaxExtendedNe/256+2 {
		t.Errorf("endless 61xx: %d GET RESPONSE sent", calls)
	}
}

func TestChain(t *testing.T) {
	mseSet := Command{CLA: 0x00, INS: 0x22, P1: 0x41, P2: 0xA6, Data: data(266)}
	for _, tc := range []struct {
		name  string
		c     Command
		size  int
		sizes []int
	}{
		{"no data", Command{CLA: 0x00, INS: 0x84, Ne: 8}, 255, []int{0}},
		{"exactly size", Command{INS: 0xD6, Data: data(255), Ne: 0}, 255, []int{255}},
		{"size + 1", Command{INS: 0xD6, Data: data(256), Ne: 256}, 255, []int{255, 1}},
		{"DH MSE SET 266 bytes (§4 step 3)", mseSet, 255, []int{255, 11}},
		{"PSO 352 bytes under SM (§5.5)", Command{CLA: 0x80, INS: 0x2A, P1: 0x00, P2: 0xAE, Data: data(352), Ne: 0x80}, 0xE7, []int{0xE7, 121}},
		{"three pieces", Command{CLA: 0x0C, INS: 0xD6, Data: data(600), Ne: 1}, 255, []int{255, 255, 90}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Chain(tc.c, tc.size)
			if len(got) != len(tc.sizes) {
				t.Fatalf("%d pieces, want %d", len(got), len(tc.sizes))
			}
			var joined []byte
			for i, p := range got {
				last := i == len(got)-1
				wantCLA, wantNe := tc.c.CLA|0x10, 0
				if last {
					wantCLA, wantNe = tc.c.CLA, tc.c.Ne
				}
				if p.CLA != wantCLA || p.Ne != wantNe || p.INS != tc.c.INS || p.P1 != tc.c.P1 || p.P2 != tc.c.P2 || len(p.Data) != tc.sizes[i] {
					t.Errorf("piece %d = %v, want CLA %02X Nc %d Ne %d", i, p, wantCLA, tc.sizes[i], wantNe)
				}
				joined = append(joined, p.Data...)
			}
			if !bytes.Equal(joined, tc.c.Data) {
				t.Error("pieces do not add up to the data")
			}
		})
	}
	first, _ := Chain(mseSet, 255)[0].Bytes()
	if !bytes.Equal(first[:5], unhex(t, "102241a6ff")) {
		t.Errorf("first MSE SET piece starts %x, want 102241a6ff", first[:5])
	}
	defer func() {
		if recover() == nil {
			t.Error("Chain with size 0 did not panic")
		}
	}()
	Chain(mseSet, 0)
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"00a40000", "00b0000000", "00b00000ff", "00b0000000ffff", "00b0000000000000",
		"00a4040c0da0000000308000000009816001", "0088000002abcd00", "002241a6000100" + string(bytes.Repeat([]byte("ab"), 256)),
		"0088000000000201020000", "00a40000000000", "0c2000811d871101c0c020864ccce390b9b0b11267ff1a978e080d437728fb19a1a400",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		enc, err := c.Bytes()
		if err != nil {
			t.Fatalf("parsed %v does not encode: %v", c, err)
		}
		c2, err := ParseCommand(enc)
		if err != nil {
			t.Fatalf("re-encoded %x does not parse: %v", enc, err)
		}
		if c2.CLA != c.CLA || c2.INS != c.INS || c2.P1 != c.P1 || c2.P2 != c.P2 || c2.Ne != c.Ne || !bytes.Equal(c2.Data, c.Data) {
			t.Fatalf("unstable: %v → %x → %v", c, enc, c2)
		}
		if enc2, _ := c2.Bytes(); !bytes.Equal(enc2, enc) {
			t.Fatalf("unstable encoding %x → %x", enc, enc2)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{"9000", "6a82", "63c2", "6100", "3082010a02820101009000", "01026282"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			if len(b) >= 2 || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseResponse(%x): %v", b, err)
			}
			return
		}
		if !bytes.Equal(r.Bytes(), b) {
			t.Fatalf("Bytes() = %x, want %x", r.Bytes(), b)
		}
		if r.SW.Error() == "" || (r.Err() == nil) != (r.SW == SWOK) {
			t.Fatalf("SW %04X: Error %q Err %v", uint16(r.SW), r.SW.Error(), r.Err())
		}
	})
}
