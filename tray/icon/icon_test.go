package icon

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestPicturesDifferAndCarryTheirColour: each state has its own picture,
// with a green badge for a usable CIE and a red one for a blocked PIN.
func TestPicturesDifferAndCarryTheirColour(t *testing.T) {
	seen := map[string]Kind{}
	for _, k := range Kinds() {
		for _, size := range []int{16, 64} {
			b := PNG(k, size)
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil || img.Bounds().Dx() != size || img.Bounds().Dy() != size {
				t.Fatalf("%v at %d: %v %v", k, size, img.Bounds(), err)
			}
		}
		b := PNG(k, 64)
		if prev, dup := seen[string(b)]; dup {
			t.Errorf("%v and %v are the same picture", k, prev)
		}
		seen[string(b)] = k
	}
	// The badge ring at (47, 36) of the 64-pixel design.
	for k, want := range map[Kind][3]uint32{Present: {0x2E, 0x9E, 0x44}, Blocked: {0xD0, 0x31, 0x2D}, NoReader: {0x5F, 0x64, 0x6C}} {
		r, g, b, _ := Draw(k, 64).At(47, 36).RGBA()
		if [3]uint32{r >> 8, g >> 8, b >> 8} != want {
			t.Errorf("%v badge colour %02X%02X%02X, want %02X%02X%02X", k, r>>8, g>>8, b>>8, want[0], want[1], want[2])
		}
	}
	// No badge without a card; the corner is transparent.
	if _, _, _, a := Draw(NoCard, 64).At(47, 56).RGBA(); a != 0 {
		t.Errorf("the no-card picture has something in the badge corner")
	}
	if App.String() != "app" || Kind(42).String() != "kind-42" {
		t.Errorf("names %q %q", App, Kind(42))
	}
}

// TestLauncherIconsAreGenerated: the installer's icons are what go
// generate writes from this drawing.
func TestLauncherIconsAreGenerated(t *testing.T) {
	for _, n := range LauncherSizes {
		p := filepath.Join("..", "..", "installer", "linux", "desktop", "icons", "hicolor",
			fmt.Sprintf("%dx%d", n, n), "apps", LauncherName+".png")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("launcher icon: %v (run go generate ./tray/icon)", err)
		}
		if !bytes.Equal(b, PNG(App, n)) {
			t.Errorf("%s is stale: run go generate ./tray/icon", p)
		}
	}
}
