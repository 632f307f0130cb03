package sm

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// step is one expected exchange of a strict, ordered script: check inspects
// the command (nil: it must equal want), reply answers it.
type step struct {
	want  []byte
	check func(t *testing.T, cmd []byte)
	reply func(t *testing.T, cmd []byte) []byte
}

// script is a transport that fails the test on any command out of order.
type script struct {
	t     *testing.T
	steps []step
	n     int
}

func (s *script) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	s.t.Helper()
	if s.n >= len(s.steps) {
		s.t.Fatalf("unexpected command #%d %x", s.n+1, cmd)
	}
	st := s.steps[s.n]
	s.n++
	if st.check != nil {
		st.check(s.t, cmd)
	} else if !bytes.Equal(cmd, st.want) {
		s.t.Fatalf("command #%d = %x, want %x", s.n, cmd, st.want)
	}
	return st.reply(s.t, cmd), nil
}

func (s *script) done() {
	s.t.Helper()
	if s.n != len(s.steps) {
		s.t.Errorf("%d of %d scripted commands sent", s.n, len(s.steps))
	}
}

// cardStep expects a protected command; the card side unprotects it, hands
// the plain command to see, and protects the answer.
func cardStep(card *Session, see func(t *testing.T, protected, plain apdu.Command), answer apdu.Response) step {
	return step{
		check: func(t *testing.T, cmd []byte) {},
		reply: func(t *testing.T, cmd []byte) []byte {
			pc, err := apdu.ParseCommand(cmd)
			if err != nil {
				t.Fatalf("card: %v", err)
			}
			c, err := card.UnprotectCommand(pc)
			if err != nil {
				t.Fatalf("card: %v", err)
			}
			if see != nil {
				see(t, pc, c)
			}
			r, err := card.ProtectResponse(answer)
			if err != nil {
				t.Fatal(err)
			}
			return r.Bytes()
		},
	}
}

func TestTransportChains352Bytes(t *testing.T) {
	host, card := pair()
	data := make([]byte, 352)
	for i := range data {
		data[i] = byte(i)
	}
	cmd, _ := apdu.Command{CLA: 0x00, INS: 0x2A, P1: 0x00, P2: 0xAE, Data: data}.Bytes()
	var got []byte
	sc := &script{t: t, steps: []step{
		cardStep(card, func(t *testing.T, pc, c apdu.Command) {
			wire, _ := pc.Bytes()
			if pc.CLA != 0x1C || pc.Extended() || len(wire) != 4+1+246+1 {
				t.Errorf("first piece %x: want CLA 1C, short, 252 bytes", wire)
			}
			if c.CLA != 0x10 || len(c.Data) != 0xE7 || c.Ne != 0 {
				t.Errorf("first piece plain %v, want CLA 10, 231 bytes, Ne 0", c)
			}
			got = append(got, c.Data...)
		}, apdu.Response{SW: 0x9000}),
		cardStep(card, func(t *testing.T, pc, c apdu.Command) {
			if pc.CLA != 0x0C || c.CLA != 0x00 || len(c.Data) != 352-0xE7 || c.Ne != 0 {
				t.Errorf("last piece %v (plain %v), want CLA 0C/00, 121 bytes", pc, c)
			}
			got = append(got, c.Data...)
		}, apdu.Response{SW: 0x9000}),
	}}
	rb, err := NewTransport(sc, host).Transmit(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	sc.done()
	if !bytes.Equal(rb, []byte{0x90, 0x00}) {
		t.Errorf("response %x, want 9000", rb)
	}
	if !bytes.Equal(got, data) {
		t.Error("the card reassembled different data")
	}
	if ssc := host.SSC(); ssc != [8]byte{7: 5} {
		t.Errorf("SSC %x, want …05 after two protected exchanges", ssc)
	}
}

func TestTransportStopsChainOnError(t *testing.T) {
	host, card := pair()
	cmd, _ := apdu.Command{INS: 0x2A, P1: 0x00, P2: 0xAE, Data: make([]byte, 300)}.Bytes()
	sc := &script{t: t, steps: []step{cardStep(card, nil, apdu.Response{SW: 0x6A80})}}
	rb, err := NewTransport(sc, host).Transmit(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	sc.done()
	if !bytes.Equal(rb, []byte{0x6A, 0x80}) {
		t.Errorf("response %x, want 6A80", rb)
	}
}

func TestTransportBareStatus(t *testing.T) {
	host, _ := pair()
	verify := []byte{0x00, 0x20, 0x00, 0x81, 0x08, '1', '2', '3', '4', '5', '6', '7', '8'}
	sc := &script{t: t, steps: []step{{
		want:  unhex(t, sessionTable[0].protected),
		reply: func(*testing.T, []byte) []byte { return []byte{0x63, 0xC2} },
	}}}
	tr := NewTransport(sc, host)
	rb, err := tr.Transmit(context.Background(), verify)
	if !errors.Is(err, ErrBareStatus) || !bytes.Equal(rb, []byte{0x63, 0xC2}) {
		t.Fatalf("got %x, %v; want 63C2 with ErrBareStatus", rb, err)
	}
	var pe *apdu.PINError
	if !errors.As(err, &pe) || pe.Remaining != 2 {
		t.Errorf("err %v: want *apdu.PINError{Remaining: 2}", err)
	}
	if _, err := tr.Transmit(context.Background(), verify); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("next call: %v, want ErrSessionClosed", err)
	}
	sc.done() // the closed session sent nothing
}

func TestTransportCorruptMAC(t *testing.T) {
	host, card := pair()
	st := cardStep(card, nil, apdu.Response{Data: []byte{1, 2, 3}, SW: 0x9000})
	inner := st.reply
	st.reply = func(t *testing.T, cmd []byte) []byte {
		r := inner(t, cmd)
		r[len(r)-3] ^= 0x01 // last MAC byte
		return r
	}
	sc := &script{t: t, steps: []step{st}}
	_, err := NewTransport(sc, host).Transmit(context.Background(), []byte{0x00, 0xB0, 0x00, 0x00, 0x03})
	if !errors.Is(err, ErrMAC) || !host.Closed() {
		t.Errorf("err %v, closed %v; want ErrMAC and a closed session", err, host.Closed())
	}
	sc.done()
}

func TestTransportInnerErrorClosesSession(t *testing.T) {
	host, _ := pair()
	tr := NewTransport(apdu.TransportFunc(func(context.Context, []byte) ([]byte, error) {
		return nil, apdu.ErrCardReset
	}), host)
	if _, err := tr.Transmit(context.Background(), []byte{0x00, 0x84, 0x00, 0x00, 0x08}); !errors.Is(err, apdu.ErrCardReset) {
		t.Fatalf("err %v, want ErrCardReset", err)
	}
	if !host.Closed() {
		t.Error("session still open after a transport error")
	}
}

// TestTransportOverGetResponse: a protected answer longer than 256 bytes is
// delivered through plain GET RESPONSE below the SM layer.
func TestTransportOverGetResponse(t *testing.T) {
	host, card := pair()
	plain := make([]byte, 256)
	for i := range plain {
		plain[i] = byte(255 - i)
	}
	var wire []byte
	sc := &script{t: t}
	sc.steps = []step{
		{check: func(t *testing.T, cmd []byte) {
			pc, _ := apdu.ParseCommand(cmd)
			c, err := card.UnprotectCommand(pc)
			if err != nil || c.Ne != 256 || c.INS != 0xB0 {
				t.Fatalf("card sees %v, %v; want READ BINARY Ne 256", c, err)
			}
			r, _ := card.ProtectResponse(apdu.Response{Data: plain, SW: 0x9000})
			wire = r.Data // 87 82 0109 01 <264> 99 02 9000 8E 08 <8>: 283 bytes
		}, reply: func(*testing.T, []byte) []byte { return []byte{0x61, 0x00} }},
		{want: []byte{0x00, 0xC0, 0x00, 0x00, 0x00}, reply: func(*testing.T, []byte) []byte {
			return append(append([]byte(nil), wire[:256]...), 0x61, byte(len(wire)-256))
		}},
		{want: []byte{0x00, 0xC0, 0x00, 0x00, 27}, reply: func(*testing.T, []byte) []byte {
			return append(append([]byte(nil), wire[256:]...), 0x90, 0x00)
		}},
	}
	rb, err := NewTransport(apdu.NewGetResponse(sc), host).Transmit(context.Background(), []byte{0x00, 0xB0, 0x00, 0x00, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	sc.done()
	if len(wire) != 283 {
		t.Errorf("protected answer of %d bytes, want 283", len(wire))
	}
	if want := append(append([]byte(nil), plain...), 0x90, 0x00); !bytes.Equal(rb, want) {
		t.Errorf("response %x, want the 256 plain bytes and 9000", rb)
	}
}
