//go:build linux

package pcsc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// TestReaderPropertiesVPCD: Debian's vpcd 0.8 answers every SCardControl
// with "not supported" (its IFDHControl), with a card in the reader or
// not, and the direct connection leaves the card usable.
func TestReaderPropertiesVPCD(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	card := bench.StartCard(t, "--family", "gemalto")
	pc := establish(t)
	for _, reader := range []string{card.Reader(), bench.ReaderName(1 - card.Slot())} {
		props, err := pc.ReaderProperties(context.Background(), reader)
		if !errors.Is(err, pcsc.ErrNoProperties) {
			t.Errorf("%s: ReaderProperties = %x, %v; want ErrNoProperties", reader, props, err)
		}
	}
	conn := connect(t, pc, card.Reader())
	rsp, err := conn.Transmit(context.Background(), selectMF)
	if err != nil || len(rsp) != 2 || rsp[0] != 0x90 {
		t.Fatalf("SELECT MF after ReaderProperties: %X, %v", rsp, err)
	}
	if _, err := pc.ReaderProperties(context.Background(), "no such reader"); err == nil || errors.Is(err, pcsc.ErrNoProperties) {
		t.Errorf("ReaderProperties of a missing reader: %v", err)
	}
}
