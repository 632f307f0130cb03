package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// TestAPDUFigures measures, with the virtual card's own counter, how many
// APDUs and bytes the CLI's operations cost through pcscd. It prints the
// figures; the performance targets live in `make bench`, not here.
func TestAPDUFigures(t *testing.T) {
	bench := testbench.Start(t, testbench.Options{})
	bin := testbench.BuildBinary(t, "./cmd/cie")
	card := bench.StartCard(t, "--family", "gemalto", "--state", stateCopy(t))
	defer card.Stop(t)
	reader := card.Reader()

	ops := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"cie status", "", []string{"status"}},
		{"cie cert", defaultPIN + "\n", []string{"--pin-stdin", "cert"}},
		{"cie pin change", defaultPIN + "\n24681357\n", []string{"--pin-stdin", "pin", "change"}},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-16s %6s %10s %10s\n", "operation", "APDUs", "host→card", "card→host")
	for _, op := range ops {
		if _, err := card.Control("stats reset"); err != nil {
			t.Fatal(err)
		}
		runCIE(t, bin, reader, op.stdin, op.args...).expect(t, 0, "stdout", ".")
		stats, err := card.Control("stats")
		if err != nil {
			t.Fatal(err)
		}
		// sent and received are counted by the card.
		var apdus, sent, recv int
		if _, err := fmt.Sscanf(stats, "apdus=%d sent=%d received=%d", &apdus, &sent, &recv); err != nil {
			t.Fatalf("parsing %q: %v", stats, err)
		}
		if apdus == 0 {
			t.Fatalf("%s: the card saw no APDU", op.name)
		}
		fmt.Fprintf(&table, "%-16s %6d %10d %10d\n", op.name, apdus, recv, sent)
	}
	t.Logf("APDUs and bytes counted by cie-sim through pcscd:\n%s", table.String())
}
