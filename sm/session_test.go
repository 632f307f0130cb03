package sm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// pair returns a host and a card session with the §14.2 keys at SSC …01.
func pair() (host, card *Session) {
	kEnc, kMAC := vectorKeys()
	return NewSession(kEnc, kMAC, startSSC), NewSession(kEnc, kMAC, startSSC)
}

func TestPadUnpad(t *testing.T) {
	for _, tc := range []struct{ in, padded string }{
		{"", "8000000000000000"},
		{"01", "0180000000000000"},
		{"01020304050607", "0102030405060780"},
		{"0102030405060708", "01020304050607088000000000000000"},
		{"80", "8080000000000000"},
	} {
		p := Pad(unhex(t, tc.in))
		if got := hex.EncodeToString(p); got != tc.padded {
			t.Errorf("Pad(%s) = %s, want %s", tc.in, got, tc.padded)
		}
		u, err := Unpad(p)
		if err != nil || hex.EncodeToString(u) != tc.in {
			t.Errorf("Unpad(%s) = %x, %v, want %s", tc.padded, u, err, tc.in)
		}
	}
	for _, bad := range []string{"", "0000000000000000", "0102030405060708", "8000000000000000 0000000000000000", "0180000000000001"} {
		if u, err := Unpad(unhex(t, bad)); err == nil {
			t.Errorf("Unpad(%s) = %x, want an error", bad, u)
		}
	}
}

func TestCBCRejectsPartialBlocks(t *testing.T) {
	kEnc, _ := vectorKeys()
	if _, err := EncryptCBC(kEnc, make([]byte, 7)); err == nil {
		t.Error("EncryptCBC of 7 bytes: no error")
	}
	if _, err := DecryptCBC(kEnc, make([]byte, 9)); err == nil {
		t.Error("DecryptCBC of 9 bytes: no error")
	}
	if _, err := EncryptCBC(kEnc[:8], make([]byte, 8)); err == nil {
		t.Error("EncryptCBC with an 8-byte key: no error")
	}
}

func TestSSCIncrement(t *testing.T) {
	for _, tc := range []struct{ from, to string }{
		{"0000000000000001", "0000000000000002"},
		{"00000000000000fe", "00000000000000ff"},
		{"00000000000000ff", "0000000000000100"},
		{"000000000000ffff", "0000000000010000"},
		{"00ffffffffffffff", "0100000000000000"},
		{"12345678ffffffff", "1234567900000000"},
		{"ffffffffffffffff", "0000000000000000"},
	} {
		host, card := pair()
		var from [8]byte
		copy(from[:], unhex(t, tc.from))
		host.SetSSC(from)
		card.SetSSC(from)
		pc, err := host.ProtectCommand(apdu.Command{INS: 0x84, Ne: 8})
		if err != nil {
			t.Fatal(err)
		}
		if got := host.SSC(); hex.EncodeToString(got[:]) != tc.to {
			t.Errorf("SSC %s + 1 = %x, want %s", tc.from, got, tc.to)
		}
		// The card, counting the same way, accepts the MAC computed with the new value.
		if _, err := card.UnprotectCommand(pc); err != nil {
			t.Errorf("SSC %s: card rejects the command: %v", tc.from, err)
		}
	}
}

func TestProtectCommandDataObjects(t *testing.T) {
	data := []byte("0123456789")
	for _, tc := range []struct {
		name   string
		c      apdu.Command
		prefix string // start of the protected data field
		le     string // DO97 expected before DO8E, "" for none
	}{
		{"even INS → DO87", apdu.Command{INS: 0xD6, Data: data}, "871101", ""},
		{"odd INS → DO85", apdu.Command{INS: 0xB1, Data: data}, "8510", ""},
		{"case 2 Ne 1", apdu.Command{INS: 0xB0, Ne: 1}, "970101", "970101"},
		{"case 2 Ne 255", apdu.Command{INS: 0xB0, Ne: 255}, "9701ff", "9701ff"},
		{"case 2 Ne 256 → Le 00", apdu.Command{INS: 0xB0, Ne: 256}, "970100", "970100"},
		{"case 4", apdu.Command{INS: 0x88, Data: data, Ne: 0x80}, "871101", "970180"},
		{"case 1", apdu.Command{INS: 0x20}, "8e08", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, card := pair()
			pc, err := host.ProtectCommand(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if pc.CLA != 0x0C || pc.Ne != 256 {
				t.Errorf("CLA %02X Ne %d, want 0C and 256", pc.CLA, pc.Ne)
			}
			b, _ := pc.Bytes()
			if b[len(b)-1] != 0x00 || len(b) != 4+1+len(pc.Data)+1 {
				t.Errorf("protected %x: want short Lc and Le 00 last", b)
			}
			d := hex.EncodeToString(pc.Data)
			if !strings.HasPrefix(d, tc.prefix) {
				t.Errorf("data %s, want prefix %s", d, tc.prefix)
			}
			mac := d[len(d)-20:]
			if !strings.HasPrefix(mac, "8e08") {
				t.Errorf("data %s does not end with DO8E", d)
			}
			hasLe := strings.Contains(d[:len(d)-20], "9701") && strings.HasSuffix(d[:len(d)-20], tc.le)
			if (tc.le != "") != hasLe {
				t.Errorf("data %s: DO97 %q expected=%v", d, tc.le, tc.le != "")
			}
			got, err := card.UnprotectCommand(pc)
			if err != nil {
				t.Fatalf("card: %v", err)
			}
			if got.CLA != tc.c.CLA || got.INS != tc.c.INS || !bytes.Equal(got.Data, tc.c.Data) || got.Ne != tc.c.Ne {
				t.Errorf("card sees %v data %x, want %v data %x", got, got.Data, tc.c, tc.c.Data)
			}
		})
	}
}

func TestProtectCommandKeepsChainingBit(t *testing.T) {
	host, card := pair()
	pc, err := host.ProtectCommand(apdu.Command{CLA: 0x10, INS: 0x2A, P1: 0x00, P2: 0xAE, Data: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	if pc.CLA != 0x1C {
		t.Errorf("CLA' = %02X, want 1C", pc.CLA)
	}
	c, err := card.UnprotectCommand(pc)
	if err != nil || c.CLA != 0x10 {
		t.Errorf("card: CLA %02X, %v; want 10", c.CLA, err)
	}
}

func TestProtectCommandRefusesExtendedNe(t *testing.T) {
	host, _ := pair()
	if _, err := host.ProtectCommand(apdu.Command{INS: 0xB0, Ne: 257}); err == nil {
		t.Fatal("Ne 257: no error")
	}
	if got := host.SSC(); got != startSSC {
		t.Errorf("refused command moved the SSC to %x", got)
	}
}

func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	host, card := pair()
	for i := range 300 {
		c := apdu.Command{CLA: byte(rng.IntN(2)) << 4, INS: byte(rng.IntN(256)), P1: byte(rng.IntN(256)), P2: byte(rng.IntN(256)), Ne: rng.IntN(257)}
		if n := rng.IntN(300); n > 0 {
			c.Data = make([]byte, n)
			for j := range c.Data {
				c.Data[j] = byte(rng.IntN(256))
			}
		}
		pc, err := host.ProtectCommand(c)
		if err != nil {
			t.Fatalf("#%d protect %v: %v", i, c, err)
		}
		wire, _ := pc.Bytes()
		pc2, err := apdu.ParseCommand(wire)
		if err != nil {
			t.Fatal(err)
		}
		got, err := card.UnprotectCommand(pc2)
		if err != nil {
			t.Fatalf("#%d card unprotect %v: %v", i, c, err)
		}
		if got.CLA != c.CLA || got.INS != c.INS || got.P1 != c.P1 || got.P2 != c.P2 || got.Ne != c.Ne || !bytes.Equal(got.Data, c.Data) {
			t.Fatalf("#%d card sees %v %x, sent %v %x", i, got, got.Data, c, c.Data)
		}
		r := apdu.Response{SW: apdu.StatusWord(0x6000 | rng.IntN(0x4000))}
		if n := rng.IntN(300); n > 0 {
			r.Data = make([]byte, n)
		}
		pr, err := card.ProtectResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		if pr.SW != r.SW {
			t.Errorf("outer SW %v, want the inner %v", pr.SW, r.SW)
		}
		back, err := host.UnprotectResponse(pr)
		if err != nil {
			t.Fatalf("#%d host unprotect: %v", i, err)
		}
		if back.SW != r.SW || !bytes.Equal(back.Data, r.Data) {
			t.Fatalf("#%d host sees %x %v, card sent %x %v", i, back.Data, back.SW, r.Data, r.SW)
		}
	}
}

func TestUnprotectResponseUsesInnerStatus(t *testing.T) {
	host, card := pair()
	host.SetSSC([8]byte{7: 2})
	card.SetSSC([8]byte{7: 2})
	pr, _ := card.ProtectResponse(apdu.Response{SW: 0x6282, Data: []byte{1}})
	pr.SW = 0x9000 // the outer SW is not authenticated; DO99 is
	r, err := host.UnprotectResponse(pr)
	if err != nil || r.SW != 0x6282 {
		t.Errorf("got SW %v, %v; want the DO99 status 6282", r.SW, err)
	}
}

func TestBareStatusClosesSession(t *testing.T) {
	host, _ := pair()
	r, err := host.UnprotectResponse(apdu.Response{SW: 0x63C2})
	if !errors.Is(err, ErrBareStatus) {
		t.Fatalf("err = %v, want ErrBareStatus", err)
	}
	if r.SW != 0x63C2 || len(r.Data) != 0 {
		t.Errorf("response %x %v, want bare 63C2", r.Data, r.SW)
	}
	var pe *apdu.PINError
	if !errors.As(err, &pe) || pe.Remaining != 2 {
		t.Errorf("err = %v, want a *apdu.PINError with 2 tries left", err)
	}
	if !host.Closed() {
		t.Error("session still open after a bare status word")
	}
	if _, err := host.ProtectCommand(apdu.Command{INS: 0x84, Ne: 8}); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("next call: %v, want ErrSessionClosed", err)
	}
}

func TestBare9000IsAnErrorToo(t *testing.T) {
	host, _ := pair()
	r, err := host.UnprotectResponse(apdu.Response{SW: 0x9000})
	if !errors.Is(err, ErrBareStatus) || r.SW != 0x9000 || !host.Closed() {
		t.Errorf("got %v, %v, closed %v; want SW 9000 with ErrBareStatus and a closed session", r.SW, err, host.Closed())
	}
}

// protectedAnswer returns the §14.2 "answer data" line, valid at SSC …05 (set …04).
func protectedAnswer(t *testing.T) apdu.Response {
	return apdu.Response{Data: unhex(t, sessionTable[3].protected), SW: 0x9000}
}

func TestUnprotectResponseRejects(t *testing.T) {
	good := hex.EncodeToString(protectedAnswer(t).Data)
	for _, tc := range []struct {
		name string
		data string
		want error
	}{
		{"flipped MAC bit", good[:len(good)-1] + "7", ErrMAC},
		{"flipped cryptogram bit", strings.Replace(good, "871101ec", "871101ed", 1), ErrMAC},
		{"changed status", strings.Replace(good, "99029000", "99026a82", 1), ErrMAC},
		{"no DO8E", good[:len(good)-20], ErrMalformed},
		{"short DO8E", good[:len(good)-20] + "8e0700000000000000", ErrMalformed},
		{"bytes after DO8E", good + "00", ErrMalformed},
		{"no DO99", strings.Replace(good, "99029000", "", 1), ErrMalformed},
		{"unknown DO", "0101ff" + good, ErrMalformed},
		{"truncated", good[:10], ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, _ := pair()
			host.SetSSC([8]byte{7: 4})
			_, err := host.UnprotectResponse(apdu.Response{Data: unhex(t, tc.data), SW: 0x9000})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if other := map[error]error{ErrMAC: ErrMalformed, ErrMalformed: ErrMAC}[tc.want]; errors.Is(err, other) {
				t.Errorf("err = %v also matches %v", err, other)
			}
			if !host.Closed() {
				t.Error("session still open")
			}
			if _, err := host.UnprotectResponse(protectedAnswer(t)); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("next call: %v, want ErrSessionClosed", err)
			}
		})
	}
	host, _ := pair()
	host.SetSSC([8]byte{7: 4})
	if _, err := host.UnprotectResponse(protectedAnswer(t)); err != nil {
		t.Fatalf("the untouched answer is rejected: %v", err)
	}
}

func TestUnprotectCommandRejects(t *testing.T) {
	verify := sessionTable[0].protected // valid at SSC …02 (set …01)
	readBinary := sessionTable[2].protected
	for _, tc := range []struct {
		name string
		apdu string
		ssc  byte
		want error
	}{
		{"flipped MAC bit", verify[:len(verify)-4] + "a500", 1, ErrMAC},
		{"changed header", "0c2000821d" + verify[10:], 1, ErrMAC},
		{"replayed (old SSC)", verify, 2, ErrMAC},
		{"changed Le", strings.Replace(readBinary, "970180", "970181", 1), 3, ErrMAC},
		{"plain CLA", "00" + verify[2:], 1, ErrMalformed},
		{"no DO8E", "0cb0000003970180" + "00", 3, ErrMalformed},
		{"DO85 for even INS", "0c2000811d851101" + verify[16:], 1, ErrMalformed},
		{"DO87 for odd INS", "0c2100811d871101" + verify[16:], 1, ErrMalformed},
		{"DO97 before DO87", "0c20008120970100871101c0c020864ccce390b9b0b11267ff1a978e080d437728fb19a1a400", 1, ErrMalformed},
		{"two DO97", "0cb0000010970180970180" + readBinary[16:], 3, ErrMalformed},
		{"unknown DO", "0cb0000010010100" + readBinary[10:], 3, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, card := pair()
			card.SetSSC([8]byte{7: tc.ssc})
			c, err := apdu.ParseCommand(unhex(t, tc.apdu))
			if err != nil {
				t.Fatal(err)
			}
			_, err = card.UnprotectCommand(c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if other := map[error]error{ErrMAC: ErrMalformed, ErrMalformed: ErrMAC}[tc.want]; errors.Is(err, other) {
				t.Errorf("err = %v also matches %v", err, other)
			}
			if !card.Closed() {
				t.Error("session still open")
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	kEnc, kMAC := vectorKeys()
	s := NewSession(kEnc, kMAC, startSSC)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("sm", "session", s, "value", *s)
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v", *s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%#v", *s),
		s.String(), s.GoString(), s.LogValue().String(),
	}
	for i, out := range outs {
		if out != "[redacted]" {
			t.Errorf("format #%d = %q, want [redacted]", i, out)
		}
	}
	if !strings.Contains(logged.String(), `"session":"[redacted]","value":"[redacted]"`) {
		t.Errorf("slog output %s does not redact the session", logged.String())
	}
	for _, k := range [][]byte{kEnc, kMAC} {
		if strings.Contains(strings.ToLower(logged.String()+strings.Join(outs, "")), hex.EncodeToString(k)) {
			t.Error("a key leaked into formatted output")
		}
	}
}

func TestCloseZeroesKeys(t *testing.T) {
	kEnc, kMAC := vectorKeys()
	s := NewSession(kEnc, kMAC, startSSC)
	clear(kEnc) // the session keeps its own copy
	if _, err := s.ProtectCommand(apdu.Command{INS: 0x84, Ne: 8}); err != nil {
		t.Fatal(err)
	}
	if s.st.kEnc == [KeySize]byte{} {
		t.Fatal("NewSession did not copy K_ENC")
	}
	s.Close()
	if s.st.kEnc != [KeySize]byte{} || s.st.kMAC != [KeySize]byte{} || s.st.ssc != [8]byte{} {
		t.Errorf("after Close: K_ENC %x K_MAC %x SSC %x, want zeros", s.st.kEnc, s.st.kMAC, s.st.ssc)
	}
	if !s.Closed() {
		t.Error("Closed() = false after Close")
	}
	for name, call := range map[string]func() error{
		"ProtectCommand":    func() error { _, err := s.ProtectCommand(apdu.Command{}); return err },
		"UnprotectResponse": func() error { _, err := s.UnprotectResponse(apdu.Response{Data: []byte{1}}); return err },
		"UnprotectCommand":  func() error { _, err := s.UnprotectCommand(apdu.Command{CLA: 0x0C}); return err },
		"ProtectResponse":   func() error { _, err := s.ProtectResponse(apdu.Response{SW: 0x9000}); return err },
	} {
		if err := call(); !errors.Is(err, ErrSessionClosed) {
			t.Errorf("%s after Close: %v, want ErrSessionClosed", name, err)
		}
	}
	s.Close() // harmless
}
