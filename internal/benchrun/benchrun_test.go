//go:build linux

package benchrun

import "testing"

// TestParseStats: cie-sim's "sent" is the card's bytes to the host, its
// "received" the host's bytes to the card.
func TestParseStats(t *testing.T) {
	s, err := ParseStats("apdus=45 sent=3049 received=1508")
	if err != nil || s != (Stats{APDUs: 45, ToCard: 1508, FromCard: 3049}) {
		t.Fatalf("ParseStats = %+v, %v", s, err)
	}
	for _, bad := range []string{"", "ok", "error: unknown request", "apdus=x sent=1 received=2"} {
		if _, err := ParseStats(bad); err == nil {
			t.Errorf("ParseStats(%q) accepted", bad)
		}
	}
}
