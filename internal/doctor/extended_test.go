package doctor

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
)

// script is a strict transport: each command must be the next expected
// one, in order; it also records the transaction calls.
type script struct {
	t     *testing.T
	steps []step
	log   []string
}

type step struct {
	cmd string // hex
	rsp string // hex; ignored when err is set
	err error
}

func (s *script) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	s.t.Helper()
	if len(s.steps) == 0 {
		s.t.Fatalf("unexpected command %X", cmd)
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	if want, _ := hex.DecodeString(st.cmd); !bytes.Equal(cmd, want) {
		s.t.Fatalf("command %X, want %s", cmd, strings.ToUpper(st.cmd))
	}
	s.log = append(s.log, "transmit")
	if st.err != nil {
		return nil, st.err
	}
	return hex.DecodeString(st.rsp)
}

func (s *script) BeginTransaction(context.Context) error { s.log = append(s.log, "begin"); return nil }
func (s *script) EndTransaction(context.Context) error   { s.log = append(s.log, "end"); return nil }

const (
	cmdSelectCIE = "00a4040c06a00000000039"
	cmdSelectEF  = "00a4020c021004"
	cmdRead      = "00b00000000200"
)

func TestProbeExtended(t *testing.T) {
	data300 := strings.Repeat("ab", 300)
	for _, c := range []struct {
		name  string
		steps []step
		want  Support
		how   string
	}{
		{"whole file", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "9000", nil}, {cmdRead, data300 + "6282", nil}},
			Supported, "returned 300 bytes"},
		{"full Ne", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "9000", nil}, {cmdRead, strings.Repeat("cd", 512) + "9000", nil}},
			Supported, "returned 512 bytes"},
		{"card refuses the extended form", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "9000", nil}, {cmdRead, "6700", nil}},
			Unknown, "answered 6700 to an extended-length READ BINARY"},
		{"no data", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "9000", nil}, {cmdRead, "9000", nil}},
			Unknown, "answered 9000"},
		{"reader fails", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "9000", nil}, {cmdRead, "", errors.New("pcsc: transmitting APDU: transaction failed")}},
			NotSupported, "transaction failed"},
		{"card removed", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "9000", nil}, {cmdRead, "", apdu.ErrCardRemoved}},
			Unknown, "interrupted"},
		{"no CIE application", []step{{cmdSelectCIE, "6a82", nil}},
			Unknown, "answered 6A82 to the SELECT of the CIE application"},
		{"no EF.Int.Kpub", []step{{cmdSelectCIE, "9000", nil}, {cmdSelectEF, "6a82", nil}},
			Unknown, "answered 6A82 to the SELECT of EF.Int.Kpub"},
		{"select fails", []step{{cmdSelectCIE, "", errors.New("boom")}},
			Unknown, "failed: boom"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &script{t: t, steps: c.steps}
			got := ProbeExtended(context.Background(), s)
			if got.Support != c.want || !strings.Contains(got.How, c.how) {
				t.Errorf("ProbeExtended = %v %q, want %v and %q", got.Support, got.How, c.want, c.how)
			}
			if len(s.steps) != 0 {
				t.Errorf("%d commands not sent", len(s.steps))
			}
			if s.log[0] != "begin" || s.log[len(s.log)-1] != "end" || strings.Count(strings.Join(s.log, " "), "begin") != 1 {
				t.Errorf("not in one transaction: %v", s.log)
			}
		})
	}
}

// TestProbeExtendedSimulator runs the probe against every simulated CIE
// family: each answers the extended READ BINARY with the public key file,
// and the probe leaves the PIN counters alone.
func TestProbeExtendedSimulator(t *testing.T) {
	st, err := ciesim.TestState()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"nxp", "gemalto", "stm3", "actalis", "bit4id"} {
		sim, err := ciesim.New(ciesim.Config{Family: fam, State: st})
		if err != nil {
			t.Fatal(err)
		}
		var cmds [][]byte
		tr := apdu.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
			cmds = append(cmds, bytes.Clone(cmd))
			return sim.Transmit(ctx, cmd)
		})
		got := ProbeExtended(context.Background(), tr)
		if got.Support != Supported {
			t.Errorf("%s: %v: %s", fam, got.Support, got.How)
		}
		for _, c := range cmds {
			if len(c) > 1 && (c[1] == 0x20 || c[1] == 0x24 || c[1] == 0x2C) {
				t.Errorf("%s: the probe sent a PIN command %X", fam, c)
			}
		}
		if len(cmds) != 3 {
			t.Errorf("%s: %d commands, want 3", fam, len(cmds))
		}
	}
}

func TestExtendedFromMaxAPDU(t *testing.T) {
	if e := ExtendedFromMaxAPDU(0); e.Support != NotSupported || !strings.Contains(e.How, "short APDUs only") {
		t.Errorf("0: %+v", e)
	}
	if e := ExtendedFromMaxAPDU(65536); e.Support != Supported || !strings.Contains(e.How, "65536") {
		t.Errorf("65536: %+v", e)
	}
}

func TestExtendedCheck(t *testing.T) {
	for _, c := range []struct {
		e      ExtendedLength
		status Status
		detail string
	}{
		{ExtendedLength{Supported, "x"}, OK, "yes: x"},
		{ExtendedLength{NotSupported, "y"}, Info, "no: y (CIE Desktop does not need them)"},
		{ExtendedLength{Unknown, "z"}, Info, "unknown: z"},
	} {
		got := ExtendedCheck("R 00", c.e)
		if got.Name != "reader R 00 extended-length APDUs" || got.Status != c.status || got.Detail != c.detail || got.Fix != "" {
			t.Errorf("%+v: %+v", c.e, got)
		}
	}
}
