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
	fmt.Fprintf(&table, "%-16s %6s %8s %9s\n", "operation", "APDUs", "sent", "received")
	for _, op := range ops {
		if _, err := card.Control("stats reset"); err != nil {
			t.Fatal(err)
		}
		runCIE(t, bin, reader, op.stdin, op.args...).expect(t, 0, "stdout", ".")
		stats, err := card.Control("stats")
		if err != nil {
			t.Fatal(err)
		}
		var apdus, sent, recv int
		if _, err := fmt.Sscanf(stats, "apdus=%d sent=%d received=%d", &apdus, &sent, &recv); err != nil {
			t.Fatalf("parsing %q: %v", stats, err)
		}
		if apdus == 0 {
			t.Fatalf("%s: the card saw no APDU", op.name)
		}
		fmt.Fprintf(&table, "%-16s %6d %8d %9d\n", op.name, apdus, sent, recv)
	}
	t.Logf("APDUs measured by cie-sim through pcscd (sent = bytes the card received from the host):\n%s", table.String())
}
